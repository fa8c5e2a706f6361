"""The objective every attack ascends, and the input gradient of a differentiable forward.

The *objective* is the per-image cross-entropy for untargeted attacks and minus the cross-entropy of the target
class for targeted ones (the given labels are the targets), so every step is ``x + alpha * sign(grad)`` and
"higher objective" always means "more successful".  Gradients are taken of the objective summed over the batch,
so one image's gradient does not depend on the batch it sits in (the released code takes the batch mean; the
sign, which is all FGSM/PGD use, is the same).
"""
from __future__ import annotations

from typing import Callable, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["is_spiking", "attack_objective", "model_device", "input_gradient"]


def is_spiking(model: nn.Module) -> bool:
    """True for models with an input encoder (snnlib's ``SpikingVGG``), False for ANNs."""
    return getattr(model, "encoder", None) is not None


def attack_objective(logits: Tensor, y: Tensor, targeted: bool = False) -> Tensor:
    """Per-image objective to *ascend*: CE(logits, y), or -CE(logits, target) when targeted."""
    ce = F.cross_entropy(logits, y, reduction="none")
    return -ce if targeted else ce


def model_device(model: nn.Module, fallback) -> torch.device:
    """Device of the model's first parameter (``fallback`` for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device(fallback)



def input_gradient(forward: Callable[[Tensor], Tensor], x: Tensor, y: Tensor,
                   targeted: bool) -> Tuple[Tensor, Tensor]:
    """(grad (B, C, H, W), objective (B,)) of the attack objective of ``forward`` at pixels x.

    A forward whose output does not depend on the pixels gives an exactly zero gradient (a masked gradient).
    """
    with torch.enable_grad():
        xr = x.detach().clone().requires_grad_(True)
        obj = attack_objective(forward(xr), y, targeted)
        g = None
        if obj.requires_grad:
            (g,) = torch.autograd.grad(obj.sum(), xr, allow_unused=True)
    return (torch.zeros_like(x) if g is None else g.detach()), obj.detach()
