"""Gradient-masking checks (after AutoAttack's ``checks.py`` and Athalye et al. 2018, section 3.1).

Each check returns a :class:`Check` ``(name, ok, detail, value)`` to show as a flag next to a robustness number:
``ok=False`` means a *sign* of gradient masking (the number is probably an overestimate), not a proof.
Accuracies are :class:`snnlib.stats.Accuracy` (or anything with an ``adversarial`` Accuracy, such as a
:class:`snnlib.robustness.RobustnessResult`); comparisons use their Clopper-Pearson intervals ("beyond CI
overlap": one interval lies entirely below the other) unless ``rule="point"``.

* :func:`black_box_stronger` — a transfer (black-box) attack beats the white-box one;
* :func:`single_step_stronger` — FGSM beats PGD;
* :func:`no_convergence_at_large_eps` — accuracy does not approach 0 at a large eps (e.g. 64/255);
* :func:`non_monotone_in_eps` — accuracy rises with eps;
* :func:`zero_gradients` — input gradients that are exactly zero;
* :func:`randomness` — predictions change with the random draw (Poisson spikes): attacks need EOT;
* :func:`run_checks` runs those whose inputs are given; :func:`badge` turns a list into one line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ..stats import Accuracy, accuracy_from_counts
from .prediction import predict

__all__ = ["Check", "black_box_stronger", "single_step_stronger", "no_convergence_at_large_eps",
           "non_monotone_in_eps", "zero_gradients", "randomness", "run_checks", "badge", "accuracy_of"]

RULES = ("ci", "point")


@dataclass
class Check:
    """One masking check: ok=False flags a sign of masking; skipped=True means it could not be run."""

    name: str
    ok: bool
    detail: str
    value: Any = None
    skipped: bool = False

    def __str__(self) -> str:
        mark = "-" if self.skipped else ("✓" if self.ok else "⚠")
        return f"{mark} {self.name}: {self.detail}"

    def to_dict(self) -> dict:
        """JSON-able dict (the value as given; accuracies as fractions)."""
        return dict(name=self.name, ok=self.ok, detail=self.detail, value=self.value, skipped=self.skipped)


def _acc(a, what: str) -> Accuracy:
    if isinstance(a, Accuracy):
        return a
    adv = getattr(a, "adversarial", None)
    if isinstance(adv, Accuracy):
        return adv
    raise TypeError(f"{what} must be a snnlib.stats.Accuracy or a RobustnessResult, got {type(a).__name__}")


def _pct(a: Accuracy) -> str:
    return f"{100 * a.value:.1f}% [{100 * a.low:.1f}, {100 * a.high:.1f}]"


def _below(a: Accuracy, b: Accuracy, rule: str) -> bool:
    """a is below b: intervals disjoint (rule "ci") or point estimates (rule "point")."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    return a.high < b.low if rule == "ci" else a.value < b.value


def _stronger_check(name: str, weak, weak_label: str, strong, strong_label: str, meaning: str, rule: str) -> Check:
    """Flag when the attack that should be weaker (``weak``) leaves a lower accuracy than ``strong``."""
    w, st = _acc(weak, f"{weak_label} accuracy"), _acc(strong, f"{strong_label} accuracy")
    bad = _below(w, st, rule)
    detail = f"{weak_label} {_pct(w)} {'<' if bad else '>='} {strong_label} {_pct(st)}" + (f": {meaning}" if bad else "")
    return Check(name, not bad, detail, w.value - st.value)


def black_box_stronger(wb_acc, bb_acc, rule: str = "ci") -> Check:
    """Flag when the black-box (transfer) accuracy is below the white-box one.  value: bb - wb (fraction)."""
    return _stronger_check("black_box_stronger", bb_acc, "black-box", wb_acc, "white-box",
                           "the white-box gradient is worse than a transfer attack", rule)


def single_step_stronger(fgsm_acc, pgd_acc, rule: str = "ci") -> Check:
    """Flag when single-step FGSM leaves a lower accuracy than iterative PGD.  value: fgsm - pgd (fraction)."""
    return _stronger_check("single_step_stronger", fgsm_acc, "FGSM", pgd_acc, "PGD",
                           "iterating does not help, the gradient direction is unreliable", rule)


def _eps_items(acc_by_eps: Mapping[float, Any]) -> List[tuple]:
    if not acc_by_eps:
        raise ValueError("acc_by_eps needs at least one eps")
    items = []
    for e, a in acc_by_eps.items():
        e = float(e)
        if not 0.0 <= e <= 1.0 or math.isnan(e):
            raise ValueError(f"eps keys are in [0, 1] pixel units (e.g. 64/255), got {e!r}")
        items.append((e, _acc(a, f"accuracy at eps {e:g}")))
    return sorted(items, key=lambda t: t[0])


def no_convergence_at_large_eps(acc_by_eps: Mapping[float, Any], large: float = 64 / 255,
                                max_acc: float = 0.10, max_low: float = 0.05) -> Check:
    """Flag when, at the largest eps (>= ``large``), accuracy > ``max_acc`` or its CI low > ``max_low``.

    acc_by_eps: {eps in [0, 1] pixel units: Accuracy}.  Skipped (ok) when no eps reaches ``large``.
    """
    e, a = _eps_items(acc_by_eps)[-1]
    if e < large - 1e-12:
        return Check("no_convergence_at_large_eps", True,
                     f"not run: largest eps {e * 255:g}/255 < {large * 255:g}/255", None, skipped=True)
    bad = a.value > max_acc or a.low > max_low
    detail = (f"accuracy {_pct(a)} at eps {e * 255:g}/255"
              + (f" does not approach 0 (> {100 * max_acc:g}% or CI low > {100 * max_low:g}%)" if bad else ""))
    return Check("no_convergence_at_large_eps", not bad, detail, a.value)


def non_monotone_in_eps(acc_by_eps: Mapping[float, Any], rule: str = "ci") -> Check:
    """Flag when accuracy at a larger eps is above that at a smaller one.  value: the largest rise (fraction)."""
    items = _eps_items(acc_by_eps)
    rises = [(e1, e2, a2.value - a1.value) for (e1, a1), (e2, a2) in
             ((items[i], items[j]) for i in range(len(items)) for j in range(i + 1, len(items)))
             if _below(a1, a2, rule)]
    if not rises:
        return Check("non_monotone_in_eps", True, f"accuracy does not rise with eps ({len(items)} values)", 0.0)
    e1, e2, d = max(rises, key=lambda t: t[2])
    return Check("non_monotone_in_eps", False,
                 f"accuracy rises by {100 * d:.1f} points from eps {e1 * 255:g}/255 to {e2 * 255:g}/255", d)


def zero_gradients(share, max_share: float = 0.0) -> Check:
    """Flag when more than ``max_share`` of the images have an exactly zero input gradient.

    share: a fraction in [0, 1], or the gradients themselves (B, ...) (an image counts when all its entries are 0).
    """
    if isinstance(share, Tensor):
        if share.dim() < 1 or share.shape[0] == 0:
            raise ValueError("zero_gradients needs gradients of shape (B, ...) with B >= 1")
        share = float((share.detach().flatten(1).abs().amax(1) == 0).float().mean())
    share = float(share)
    if math.isnan(share) or not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be a fraction in [0, 1], got {share!r}")
    bad = share > max_share
    detail = (f"{100 * share:.1f}% of images have an exactly zero input gradient"
              + (": the attack cannot move them (masked/vanishing gradient)" if bad else ""))
    return Check("zero_gradients", not bad, detail, share)


@torch.no_grad()
def randomness(model: nn.Module, x: Tensor, y: Tensor, seeds: Sequence[int] = (0, 1, 2, 3),
               batch_size: int = 256, max_changed: float = 0.0) -> Check:
    """Flag when predictions change with the random draw (the encoder seed): attacks then need EOT.

    x: (N, 3, 32, 32) pixels in [0, 1]; y: (N,) labels; seeds: encoder seeds (>= 2).  value: dict with the
    accuracy per seed, their spread (max - min, fraction) and the share of images whose prediction changes.
    The model's encoder seed and generator state are restored afterwards.
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2:
        raise ValueError("randomness needs at least two seeds")
    enc = getattr(model, "encoder", None)
    saved = None
    if enc is not None and hasattr(enc, "get_state"):
        device = next(model.parameters()).device
        saved = (enc.seed, enc.get_state(device).clone(), device)
    try:
        preds = torch.stack([predict(model, x, batch_size, s) for s in seeds])  # (S, N)
    finally:
        if saved is not None:
            enc.reseed(saved[0])
            enc.set_state(saved[1], saved[2])
    y = y.cpu()
    accs = [float((p == y).float().mean()) for p in preds]
    changed = float((preds != preds[0]).any(0).float().mean())
    spread = max(accs) - min(accs)
    bad = changed > max_changed
    value = dict(seeds=seeds, accuracy=accs, spread=spread, changed=changed)
    detail = (f"{100 * changed:.1f}% of predictions change across {len(seeds)} seeds, accuracy spread "
              f"{100 * spread:.1f} points" + (": a stochastic model; use EOT and report several seeds" if bad else ""))
    return Check("randomness", not bad, detail, value)


def run_checks(*, whitebox=None, blackbox=None, fgsm=None, pgd=None,
               acc_by_eps: Optional[Mapping[float, Any]] = None, zero_grad_share=None,
               model: Optional[nn.Module] = None, x: Optional[Tensor] = None, y: Optional[Tensor] = None,
               seeds: Sequence[int] = (0, 1, 2), rule: str = "ci", large: float = 64 / 255) -> List[Check]:
    """Run every check whose inputs are given, in a fixed order; returns the list of Checks."""
    out: List[Check] = []
    if whitebox is not None and blackbox is not None:
        out.append(black_box_stronger(whitebox, blackbox, rule))
    if fgsm is not None and pgd is not None:
        out.append(single_step_stronger(fgsm, pgd, rule))
    if acc_by_eps:
        out.append(no_convergence_at_large_eps(acc_by_eps, large))
        out.append(non_monotone_in_eps(acc_by_eps, rule))
    if zero_grad_share is not None:
        out.append(zero_gradients(zero_grad_share))
    if model is not None and x is not None and y is not None:
        out.append(randomness(model, x, y, seeds))
    return out


def badge(checks: Sequence[Check]) -> str:
    """One line: "✓ no masking signs (5 checks)" or "⚠ 2 masking signs: randomness, zero_gradients"."""
    run = [c for c in checks if not c.skipped]
    bad = [c.name for c in run if not c.ok]
    skipped = len(checks) - len(run)
    tail = f", {skipped} skipped" if skipped else ""
    if not bad:
        return f"✓ no masking signs ({len(run)} check{'s' if len(run) != 1 else ''}{tail})"
    return f"⚠ {len(bad)} masking sign{'s' if len(bad) != 1 else ''}: {', '.join(bad)}"


def accuracy_of(correct: Tensor) -> Accuracy:
    """Accuracy with its interval from a per-image correct (N,) bool tensor (a convenience for the checks)."""
    correct = torch.as_tensor(correct).to(torch.bool).flatten()
    return accuracy_from_counts(int(correct.sum()), int(correct.numel()))
