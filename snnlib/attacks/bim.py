"""BIM / iterative FGSM (Kurakin et al. 2017): steps of size alpha from x, no random start.

x^{k+1} = clip_{x,eps}(x^k + alpha * sign(grad)).  Kurakin's defaults: alpha = 1/255 and
steps = round(min(eps*255 + 4, 1.25 * eps*255)) (at least 1).
"""
from __future__ import annotations

from typing import Optional

import torch

from .base import Attack
from .checks import check_step_size, check_steps

__all__ = ["BIM", "kurakin_steps"]


def kurakin_steps(eps: float) -> int:
    """Kurakin et al.'s number of iterations for budget eps (pixel units): round(min(eps*255 + 4, 1.25*eps*255))."""
    e = eps * 255.0
    return max(1, int(round(min(e + 4.0, 1.25 * e))))


class BIM(Attack):
    """BIM with step ``alpha`` (default 1/255) and ``steps`` (default :func:`kurakin_steps`)."""

    name = "BIM"

    def __init__(self, model, eps: float = 8 / 255, alpha: float = 1 / 255, steps: Optional[int] = None, **kw):
        super().__init__(model, eps, **kw)
        self.alpha = check_step_size(alpha)
        self.steps = kurakin_steps(self.eps) if steps is None else check_steps(steps)

    def params(self) -> dict:
        return dict(alpha=self.alpha, alpha_255=round(self.alpha * 255, 6), steps=self.steps)

    def _attack_batch(self, x, y, gen):
        x_adv = x.clone()
        if self.eps == 0:
            return x_adv
        for _ in range(self.steps):
            g, _ = self.gradient(x_adv, y)
            x_adv = self.project(x_adv + self.alpha * torch.sign(g), x)
        return x_adv
