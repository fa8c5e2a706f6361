"""PGD (Madry et al. 2018) with random start and restarts.

Random start as in the released code: x^0 = clamp(x + 2 eps U - eps, 0, 1), U ~ U[0, 1) of x's dtype from the
attack's "attack.noise" stream (:mod:`snnlib.seeding`); then x^{k+1} = clip_{x,eps}(x^k + alpha * sign(grad)).  With ``restarts > 1`` each image keeps the
restart that succeeded (misclassified, or classified as the target when targeted) and, among equals, the one with
the highest objective, both measured by one more forward pass (``get_logits``) of the source at the final iterate.
Released-code defaults: eps = 8/255, alpha = 2/255, 7 steps, random start.
"""
from __future__ import annotations

import torch

from .base import Attack
from .checks import check_step_size, check_steps
from .objective import attack_objective

__all__ = ["PGD"]


class PGD(Attack):
    """L-infinity PGD: ``PGD(model, eps=8/255, alpha=2/255, steps=7, random_start=True, restarts=1)``."""

    name = "PGD"

    def __init__(self, model, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 7,
                 random_start: bool = True, restarts: int = 1, **kw):
        super().__init__(model, eps, **kw)
        self.alpha = check_step_size(alpha)
        self.steps = check_steps(steps)
        if not isinstance(random_start, bool):
            raise TypeError(f"random_start must be True or False, got {random_start!r}")
        self.random_start = random_start
        self.restarts = check_steps(restarts, "restarts")

    def params(self) -> dict:
        return dict(alpha=self.alpha, alpha_255=round(self.alpha * 255, 6), steps=self.steps,
                    random_start=self.random_start, restarts=self.restarts)

    def _run(self, x, y, gen):
        x_adv = x.clone()
        if self.random_start:
            u = self._noise(x.shape, gen, x.device, dtype=x.dtype)
            x_adv = torch.clamp(x + 2 * self.eps * u - self.eps, 0.0, 1.0)
        for _ in range(self.steps):
            g, _ = self.gradient(x_adv, y)
            x_adv = self.project(x_adv + self.alpha * torch.sign(g), x)
        return x_adv

    @torch.no_grad()
    def _score(self, x_adv, y):
        logits = self.get_logits(x_adv)
        obj = attack_objective(logits, y, self.targeted)
        pred = logits.argmax(1)
        success = pred == y if self.targeted else pred != y
        return success, obj

    def _attack_batch(self, x, y, gen):
        if self.eps == 0:
            return x.clone()
        best = self._run(x, y, gen)
        if self.restarts == 1:
            return best
        best_succ, best_obj = self._score(best, y)
        for _ in range(self.restarts - 1):
            cand = self._run(x, y, gen)
            succ, obj = self._score(cand, y)
            better = (succ & ~best_succ) | ((succ == best_succ) & (obj > best_obj))
            best = torch.where(better.view(-1, 1, 1, 1), cand, best)
            best_succ = torch.where(better, succ, best_succ)
            best_obj = torch.where(better, obj, best_obj)
        return best
