"""FGSM (Goodfellow et al. 2015): x_adv = clip_[0,1](x + eps * sign(grad))."""
from __future__ import annotations

import torch

from .base import Attack

__all__ = ["FGSM"]


class FGSM(Attack):
    """One signed-gradient step of size eps.  ``FGSM(model, eps=8/255)(x, y)``; options as in :class:`Attack`."""

    name = "FGSM"

    def __init__(self, model, eps: float = 8 / 255, **kw):
        super().__init__(model, eps, **kw)

    def _attack_batch(self, x, y, gen):
        if self.eps == 0:
            return x.clone()
        g, _ = self.gradient(x, y)
        return x + self.eps * torch.sign(g)
