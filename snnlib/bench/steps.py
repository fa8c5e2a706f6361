"""The benchmark modes: one inference, training or attack-gradient step of the study's networks on a seeded batch.

Shared by the timings (:mod:`snnlib.bench.throughput`) and the profile split (:mod:`snnlib.bench.breakdown`).
"""
from __future__ import annotations

from typing import Dict, Optional

from ..machine import resolve_device

__all__ = ["MODES", "build_step"]

#: mode -> (description, unit)
MODES: Dict[str, tuple] = {
    "ann_infer": ("ANN inference (eval, no grad)", "img/s"),
    "ann_train": ("ANN train step (SGD momentum)", "img/s"),
    "snn_infer": ("SNN inference (eval, no grad)", "img*T/s"),
    "snn_bptt": ("SNN BPTT step (fwd+bwd+Adam)", "img*T/s"),
    "snn_attack": ("SNN attack gradient (PGD step, BPTT)", "img*T/s"),
}

# released model-1 thresholds x 0.7 (https://github.com/ssharmin/spikingNN-adversarial-attack, commit 57c7772, stores
# round(th x 0.7, 2)); other architectures use 1.0 everywhere
_VGG5_THRESHOLDS = [14.53, 1.88, 1.63, 0.2, 0.8]


def build_step(mode: str, model: str = "vgg5", T: int = 25, batch: int = 64, seed: int = 0,
               precision: str = "fp32", grad_time_chunk: Optional[int] = None, device: str = "cpu"):
    """(step, images x timesteps per step) of one benchmark mode: ``step()`` runs one inference, training or
    attack-gradient step of ``model`` on a seeded random batch (N, 3, 32, 32) on ``device``."""
    import torch
    import torch.nn.functional as F

    from ..models import SpikingVGG, build_ann, check_precision

    check_precision(precision)
    if mode not in MODES:
        raise ValueError(f"unknown benchmark mode {mode!r}; choose from {sorted(MODES)}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    net = build_ann(model, seed=seed)
    x = torch.rand(batch, 3, 32, 32).to(dev)
    y = torch.randint(0, net.num_classes, (batch,)).to(dev)
    if mode.startswith("ann"):
        per_iter, target = batch, net.to(dev)
    else:
        th = _VGG5_THRESHOLDS if net.arch == "vgg5" else [1.0] * net.num_spiking
        target = SpikingVGG(net, th, T=T, leak=0.99, precision=precision, grad_time_chunk=grad_time_chunk).to(dev)
        per_iter = batch * T
    if mode == "ann_train":
        opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9, weight_decay=5e-4)
    elif mode == "snn_attack":
        from ..attacks.gradients import gradient
        for p in net.parameters():                      # an attack differentiates the input, not the weights
            p.requires_grad_(False)
        eps, alpha = 8 / 255, 2 / 255
    elif mode == "snn_bptt":
        opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=5e-4, amsgrad=True)
    x_adv = [x.clone()]

    def step():
        if mode.endswith("infer"):
            target.eval()
            with torch.inference_mode():
                return target(x)
        if mode == "snn_attack":
            target.eval()
            g, _ = gradient(target, x_adv[0], y, mode="bptt")
            x_adv[0] = torch.min(torch.max(x_adv[0] + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
            return x_adv[0]
        target.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(target(x), y)
        loss.backward()
        opt.step()
        return loss

    return step, per_iter
