"""Training: the ANN with SGD, the hybrid SNN with BPTT through the surrogate (Adam), checkpoint every epoch, resume.

Defaults follow the papers' setup (reference/papers.md 1.7): ANN — SGD lr 1e-2, momentum 0.9, weight decay 5e-4,
batch 64, lr / 10 at 60/80/90 % of the epochs; SNN — Adam (amsgrad) lr 1e-4, weight decay 5e-4, lr / 5 at
60/80/90 %.  Every random draw (shuffle, augmentation, dropout, Poisson spikes) is seeded, and a checkpoint holds
all generator states, so a resumed run ends with exactly the weights of an uninterrupted one.
Checkpoints load with ``torch.load(weights_only=True)`` and carry the configuration that made them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .data import Split, batches
from .files import atomic_save_torch

__all__ = ["fit", "train_ann", "train_snn", "load_checkpoint", "CheckpointMismatch"]


class CheckpointMismatch(RuntimeError):
    """A checkpoint exists at the path but was made with another configuration."""


def _json_clean(obj):
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def load_checkpoint(path: Union[str, Path]) -> dict:
    """Load a checkpoint safely (``weights_only=True``); raises FileNotFoundError with the path."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def _lr_at(epoch: int, epochs: int, lr: float, milestones: Sequence[float], factor: float) -> float:
    n = sum(1 for f in milestones if 0 < round(f * epochs) <= epoch)
    return lr / (factor ** n)


def fit(model: nn.Module, train: Split, epochs: int, optimizer: torch.optim.Optimizer, *, lr: float,
        milestones: Sequence[float] = (0.6, 0.8, 0.9), lr_reduce: float = 10.0, batch_size: int = 64,
        seed: int = 0, augment: bool = True, checkpoint: Optional[Union[str, Path]] = None,
        config: Optional[dict] = None, progress: bool = True, device: Union[str, torch.device] = "cpu",
        stop_after: Optional[int] = None, encoder=None) -> Dict[str, list]:
    """Train ``model`` with cross-entropy for ``epochs`` epochs; returns the history {'loss': [...], 'acc': [...]}.

    checkpoint: file written after every epoch (atomically) and resumed from when present with the same config.
    stop_after: stop after this many epochs of *this call* (used to test resume).
    encoder: the SNN's encoder, whose generator state is checkpointed too.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    config = _json_clean(dict(config or {}, epochs=epochs, batch_size=batch_size, seed=seed, lr=lr,
                              milestones=list(milestones), lr_reduce=lr_reduce, augment=augment,
                              data=train.info()))
    device = torch.device(device)
    model.to(device)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks use the global generator; its state is checkpointed
    history: Dict[str, list] = {"loss": [], "acc": [], "lr": [], "seconds": []}
    start = 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state.get("config") != config:
            raise CheckpointMismatch(
                f"checkpoint {ckpt_path} was made with another configuration; delete it or choose another path "
                f"(differences in: {sorted(k for k in set(config) | set(state.get('config', {})) if config.get(k) != state.get('config', {}).get(k))})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"]["data"])
        torch.set_rng_state(state["rng"]["torch"])
        if encoder is not None and "encoder" in state["rng"]:
            encoder.set_state(state["rng"]["encoder"], device)
        history = {k: list(v) for k, v in state["history"].items()}
        start = int(state["epoch"]) + 1
    ran = 0
    for epoch in range(start, epochs):
        if stop_after is not None and ran >= stop_after:
            break
        lr_e = _lr_at(epoch, epochs, lr, milestones, lr_reduce)
        for group in optimizer.param_groups:
            group["lr"] = lr_e
        model.train()
        t0 = time.time()
        tot_loss, correct, seen = 0.0, 0, 0
        it = batches(train, batch_size, shuffle=True, augment=augment, generator=gen)
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(it, total=(len(train) + batch_size - 1) // batch_size, desc=f"epoch {epoch + 1}/{epochs}",
                      leave=False)
        for x, y in it:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            optimizer.step()
            tot_loss += float(loss.detach()) * len(y)
            correct += int((out.detach().argmax(1) == y).sum())
            seen += len(y)
        history["loss"].append(tot_loss / max(seen, 1))
        history["acc"].append(correct / max(seen, 1))
        history["lr"].append(lr_e)
        history["seconds"].append(time.time() - t0)
        ran += 1
        if ckpt_path is not None:
            rng = {"data": gen.get_state(), "torch": torch.get_rng_state()}
            if encoder is not None:
                rng["encoder"] = encoder.get_state(device)
            atomic_save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                          "history": history, "rng": rng, "config": config}, ckpt_path)
    return history


def train_ann(net: nn.Module, train: Split, epochs: int, *, lr: float = 1e-2, momentum: float = 0.9,
              weight_decay: float = 5e-4, batch_size: int = 64, milestones=(0.6, 0.8, 0.9), lr_reduce: float = 10.0,
              seed: int = 0, **kw) -> Dict[str, list]:
    """SGD training of the ANN as in the papers' setup (Rathi et al.'s ``ann.py`` defaults)."""
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    cfg = dict(kind="ann", model=net.config(), momentum=momentum, weight_decay=weight_decay, optimizer="sgd")
    cfg.update(kw.pop("config", {}) or {})
    return fit(net, train, epochs, opt, lr=lr, milestones=milestones, lr_reduce=lr_reduce, batch_size=batch_size,
               seed=seed, config=cfg, **kw)


def train_snn(snn: nn.Module, train: Split, epochs: int, *, lr: float = 1e-4, weight_decay: float = 5e-4,
              amsgrad: bool = True, batch_size: int = 64, milestones=(0.6, 0.8, 0.9), lr_reduce: float = 5.0,
              seed: int = 0, **kw) -> Dict[str, list]:
    """Hybrid fine-tuning of a converted SNN with BPTT through the surrogate, Adam (amsgrad) as Rathi's ``snn.py``.

    Only the weights are trained; thresholds and leak stay fixed, as in the released code.
    """
    opt = torch.optim.Adam(snn.net.parameters(), lr=lr, weight_decay=weight_decay, amsgrad=amsgrad)
    cfg = dict(kind="snn", model=snn.config(), weight_decay=weight_decay, optimizer="adam", amsgrad=amsgrad)
    cfg.update(kw.pop("config", {}) or {})
    return fit(snn, train, epochs, opt, lr=lr, milestones=milestones, lr_reduce=lr_reduce, batch_size=batch_size,
               seed=seed, config=cfg, encoder=getattr(snn, "encoder", None), **kw)
