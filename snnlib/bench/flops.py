"""How much of the machine's fp32 peak a benchmark mode reaches: ``python -m snnlib.bench --peak``.

:func:`forward_flops` counts the floating-point operations of the convolutions and linear layers in one forward pass
of one image (for an SNN: one image-timestep, since every timestep runs the same layers; pooling, activations and
neuron updates are not counted, so the fraction is a slight under-estimate).  :func:`matmul_gflops` measures the
practical peak: the rate of a large fp32 matrix multiply (``torch.mm``) with the same threads, not the datasheet
number.  A training or attack step is counted as 3 forward passes (forward, gradient of the activations, gradient
of the weights), the usual convention; :data:`PASSES` holds it per mode.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import torch
from torch import nn

__all__ = ["forward_flops", "matmul_gflops", "PASSES", "peak_fraction"]

#: forward-pass equivalents of one unit of work (an image, or an image-timestep) of each benchmark mode
PASSES = {"ann_infer": 1, "snn_infer": 1, "ann_train": 3, "snn_bptt": 3, "snn_attack": 3}


def forward_flops(net: nn.Module, image_shape: Sequence[int] = (3, 32, 32)) -> int:
    """FLOPs (2 x multiply-accumulates) of every ``nn.Conv2d`` and ``nn.Linear`` of ``net`` in one forward pass of
    one image of shape (C, H, W); the biases are not counted."""
    macs = []

    def conv(m: nn.Conv2d, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        macs.append(out[0].numel() * k)

    def linear(m: nn.Linear, inp, out):
        macs.append(out[0].numel() * m.in_features)

    hooks = [m.register_forward_hook(conv) for m in net.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear) for m in net.modules() if isinstance(m, nn.Linear)]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, *image_shape))
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)
    return 2 * int(sum(macs))


def matmul_gflops(n: int = 1024, seconds: float = 1.0, threads: Optional[int] = None, device: str = "cpu") -> float:
    """Measured fp32 GFLOP/s of an n x n by n x n ``torch.mm`` (2 n^3 FLOPs each), repeated for about ``seconds``
    after one warm-up; ``threads``: torch threads for the measurement (default: the current setting); ``device``:
    "cpu" or "cuda" (on a GPU each product is waited for, and TF32 stays off as torch's default leaves it)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (matrix size) must be an int >= 1, got {n!r}")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.rand(n, n, generator=g).to(dev), torch.rand(n, n, generator=g).to(dev)
        torch.mm(a, b)
        sync()
        count, t0 = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            sync()
            count += 1
            dt = time.perf_counter() - t0
            if dt >= seconds:
                break
    finally:
        torch.set_num_threads(before)
    return 2.0 * n ** 3 * count / dt / 1e9


def peak_fraction(rate: float, mode: str, flops_per_image: int, peak_gflops: float) -> float:
    """Share of ``peak_gflops`` that ``rate`` (images or image-timesteps per second of ``mode``) reaches."""
    if mode not in PASSES:
        raise ValueError(f"unknown mode {mode!r}; known: {sorted(PASSES)}")
    return rate * PASSES[mode] * flops_per_image / (peak_gflops * 1e9)
