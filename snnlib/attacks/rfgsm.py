"""R-FGSM (Tramèr et al. 2018): a random signed step of size alpha, then an FGSM step of size eps - alpha.

x' = clip_[0,1](x + alpha * sign(N(0, I))); x_adv = clip_{x,eps}(x' + (eps - alpha) * sign(grad at x')).
The normal draw (of x's dtype) comes from the attack's "attack.noise" stream (:mod:`snnlib.seeding`).
"""
from __future__ import annotations

from typing import Optional

import torch

from .base import Attack
from .checks import check_step_size

__all__ = ["RFGSM"]


class RFGSM(Attack):
    """R-FGSM with random step ``alpha`` (default eps/2, must be in [0, eps])."""

    name = "RFGSM"

    def __init__(self, model, eps: float = 8 / 255, alpha: Optional[float] = None, **kw):
        super().__init__(model, eps, **kw)
        if alpha is None:
            alpha = self.eps / 2
        self.alpha = check_step_size(alpha, "alpha (random step size)", allow_zero=True)
        if self.alpha > self.eps + 1e-12:
            raise ValueError(f"alpha (random step size) must be in [0, eps] = [0, {self.eps:g}], got {self.alpha:g}")

    def params(self) -> dict:
        return dict(alpha=self.alpha, alpha_255=round(self.alpha * 255, 6))

    def _attack_batch(self, x, y, gen):
        noise = self._noise(x.shape, gen, x.device, "normal", dtype=x.dtype)
        x1 = torch.clamp(x + self.alpha * torch.sign(noise), 0.0, 1.0)
        if self.eps - self.alpha <= 0:
            return x1
        g, _ = self.gradient(x1, y)
        return x1 + (self.eps - self.alpha) * torch.sign(g)
