"""Robustness under attack, with sanity flags next to every number.

``evaluate_attack(target, attack, x, y)`` crafts adversarial examples with ``attack`` (its ``model`` is the source:
white-box when it *is* the target, transfer/black-box otherwise) and reports, on the same images:

* clean and adversarial accuracy of the target (95 % Clopper-Pearson intervals);
* the attack success rate: the share of originally correct images that become wrong (with its interval);
* the largest L-infinity perturbation actually used;
* sanity flags (AutoAttack ``checks.py`` / Pintor et al.'s indicators of attack failure, reduced to the basics):
  ``budget_ok`` (max |x_adv - x| <= eps + 1e-6 and x_adv in [0, 1]), ``adv_not_above_clean`` (adversarial
  accuracy <= clean accuracy), ``more_iters_not_weaker`` (only with ``iter_check``, a weaker variant of the
  attack: the stronger one must not leave a higher accuracy), ``zero_grad_share`` (share of images whose input
  gradient on the source is exactly zero: a masked gradient, flagged when > 0), and readable warnings.

The target is scored under ``torch.inference_mode`` in eval mode by :func:`snnlib.robustness.prediction.score`:
each image over ``draws`` Poisson draws from the evaluation stream of ``eval_seed`` (never the attack's stream,
and independent of the batch size), clean and adversarial alike; accuracies are majority-vote accuracies and the
result keeps the per-image :class:`~snnlib.robustness.outcomes.Outcomes` for paired tests.  ``transfer_matrix``
crafts once per source and evaluates every target.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

from ..attacks.base import Attack
from ..attacks.checks import check_inputs
from .outcomes import Outcomes
from .prediction import score
from ..stats import Accuracy, accuracy_from_counts, accuracy_from_outcomes

__all__ = ["RobustnessResult", "evaluate_attack", "transfer_matrix", "attack_seed_of", "BUDGET_TOL"]

BUDGET_TOL = 1e-6


@dataclass
class RobustnessResult:
    """Clean vs adversarial accuracy of one target under one attack, with sanity flags."""

    attack: dict
    source: str
    target: str
    whitebox: bool
    n: int
    eps: float
    clean: Accuracy
    adversarial: Accuracy
    success_rate: Optional[Accuracy]
    max_linf: float
    budget_ok: bool
    adv_not_above_clean: bool
    zero_grad_share: Optional[float]
    more_iters_not_weaker: Optional[bool] = None
    weaker: Optional[dict] = None
    eval_seed: Optional[int] = 0
    seconds: float = 0.0
    warnings: List[str] = field(default_factory=list)
    clean_outcomes: Optional[Outcomes] = field(default=None, repr=False)
    adversarial_outcomes: Optional[Outcomes] = field(default=None, repr=False)

    @property
    def outcomes(self) -> Dict[str, Outcomes]:
        """{"clean": ..., "adversarial": ...}: per-image correctness over the evaluation draws (same images)."""
        return {k: v for k, v in (("clean", self.clean_outcomes), ("adversarial", self.adversarial_outcomes))
                if v is not None}

    @property
    def flags_ok(self) -> bool:
        """True when no sanity flag fired (unset optional checks count as passed)."""
        return (self.budget_ok and self.adv_not_above_clean and self.more_iters_not_weaker is not False
                and not (self.zero_grad_share or 0.0) > 0)

    def to_dict(self) -> dict:
        """JSON-able dict (eps and the perturbation also in /255 units)."""
        return dict(attack=self.attack, source=self.source, target=self.target, whitebox=self.whitebox, n=self.n,
                    eps=self.eps, eps_255=round(self.eps * 255, 6), clean=self.clean.to_dict(),
                    adversarial=self.adversarial.to_dict(),
                    success_rate=None if self.success_rate is None else self.success_rate.to_dict(),
                    max_linf=self.max_linf, max_linf_255=round(self.max_linf * 255, 6), budget_ok=self.budget_ok,
                    adv_not_above_clean=self.adv_not_above_clean, zero_grad_share=self.zero_grad_share,
                    more_iters_not_weaker=self.more_iters_not_weaker, weaker=self.weaker,
                    eval_seed=self.eval_seed, seconds=round(self.seconds, 3), flags_ok=self.flags_ok,
                    warnings=list(self.warnings))

    def __str__(self) -> str:
        kind = "white-box" if self.whitebox else "transfer"
        sr = "n/a" if self.success_rate is None else f"{100 * self.success_rate.value:.1f}%"
        flags = "ok" if self.flags_ok else f"{len(self.warnings)} warning(s)"
        return (f"{self.attack.get('attack', 'attack')} eps={self.eps * 255:g}/255 {self.source}->{self.target} "
                f"({kind}): clean {100 * self.clean.value:.1f}% adv {100 * self.adversarial.value:.1f}% "
                f"[{100 * self.adversarial.low:.1f}, {100 * self.adversarial.high:.1f}] success {sr} "
                f"max|dx|={self.max_linf * 255:.2f}/255 n={self.n} flags: {flags}")


def _name(model: nn.Module, given: Optional[str]) -> str:
    return given if given is not None else type(model).__name__


def _attack_labels(attack: Attack, y: Tensor, target_labels: Optional[Tensor]) -> Tensor:
    if attack.targeted:
        if target_labels is None:
            raise ValueError("a targeted attack needs target_labels (the classes to reach); y stays the true labels")
        check_inputs(torch.zeros(y.shape[0], 1, 1, 1), target_labels)
        return target_labels
    return y


def _craft(attack: Attack, x: Tensor, y_attack: Tensor, zero_grad_check: bool):
    """x_adv and the share of images with an exactly zero source gradient at x (None when not checked)."""
    x_adv = attack(x, y_attack)
    share = None
    if zero_grad_check and x.shape[0]:
        g, _ = attack.input_gradient(x, y_attack)
        share = float((g.flatten(1).abs().amax(1) == 0).float().mean())
    return x_adv, share


def attack_seed_of(attack: Attack) -> Optional[int]:
    """The seed of an attack's own randomness (its ``config()["seed"]``), None when it has none."""
    seed = attack.config().get("seed")
    return None if seed is None else int(seed)


def _result(target, attack: Attack, x: Tensor, y: Tensor, x_adv: Tensor, clean_out: Outcomes, zero_share,
            *, eval_seed, draws, image_ids, batch_size, source_name, target_name, weaker_attack=None,
            weaker_adv=None, seconds=0.0) -> RobustnessResult:
    y = y.cpu()
    n = int(y.numel())
    if n == 0:
        raise ValueError("no images to evaluate")
    adv_out = score(target, x_adv, y, draws=draws, seed=eval_seed, image_ids=image_ids,
                    attack_seed=attack_seed_of(attack), batch_size=batch_size)
    clean_ok, adv_ok = torch.from_numpy(clean_out.majority()), torch.from_numpy(adv_out.majority())
    clean = accuracy_from_outcomes(clean_ok.numpy())
    adv = accuracy_from_outcomes(adv_ok.numpy())
    n_correct = int(clean_ok.sum())
    success = accuracy_from_counts(int((clean_ok & ~adv_ok).sum()), n_correct) if n_correct else None
    diff = (x_adv.detach().cpu().double() - x.detach().cpu().double()).abs()
    max_linf = float(diff.max())
    in_range = bool(x_adv.min() >= 0) and bool(x_adv.max() <= 1)
    budget_ok = max_linf <= attack.eps + BUDGET_TOL and in_range
    warnings: List[str] = []
    if not budget_ok:
        warnings.append(f"budget violated: max |x_adv - x| = {max_linf * 255:.4f}/255 > eps = {attack.eps * 255:g}/255"
                        if max_linf > attack.eps + BUDGET_TOL else "adversarial images leave [0, 1]")
    adv_not_above_clean = adv.value <= clean.value
    if not adv_not_above_clean:
        warnings.append(f"adversarial accuracy {100 * adv.value:.1f}% is above clean accuracy {100 * clean.value:.1f}%"
                        " (the attack makes the target more accurate: check the gradient and the labels)")
    more_ok, weaker = None, None
    if weaker_adv is not None:
        w_out = score(target, weaker_adv, y, draws=draws, seed=eval_seed, image_ids=image_ids,
                      attack_seed=attack_seed_of(weaker_attack), batch_size=batch_size)
        w_acc = accuracy_from_outcomes(w_out.majority())
        weaker = dict(attack=weaker_attack.config(), adversarial=w_acc.to_dict())
        more_ok = adv.value <= w_acc.value
        if not more_ok:
            warnings.append(f"the stronger attack leaves a higher accuracy ({100 * adv.value:.1f}%) than its weaker "
                            f"variant ({100 * w_acc.value:.1f}%): the attack is not converging")
    if zero_share is not None and zero_share > 0:
        warnings.append(f"{100 * zero_share:.1f}% of images have an exactly zero input gradient on the source "
                        f"(grad mode {attack.config()['grad_mode_resolved']}): masked gradients overstate robustness")
    return RobustnessResult(attack=attack.config(), source=source_name, target=target_name,
                            whitebox=attack.model is target, n=n, eps=attack.eps, clean=clean, adversarial=adv,
                            success_rate=success, max_linf=max_linf, budget_ok=budget_ok,
                            adv_not_above_clean=adv_not_above_clean, zero_grad_share=zero_share,
                            more_iters_not_weaker=more_ok, weaker=weaker, eval_seed=eval_seed, seconds=seconds,
                            warnings=warnings, clean_outcomes=clean_out, adversarial_outcomes=adv_out)


def evaluate_attack(target: nn.Module, attack: Attack, x: Tensor, y: Tensor, *, eval_seed: Optional[int] = 0,
                    batch_size: int = 64, iter_check: Optional[Attack] = None,
                    target_labels: Optional[Tensor] = None, zero_grad_check: bool = True,
                    source_name: Optional[str] = None, target_name: Optional[str] = None, draws: int = 1,
                    image_ids=None, clean_outcomes: Optional[Outcomes] = None) -> RobustnessResult:
    """Accuracy of ``target`` on x and on ``attack(x)``, with sanity flags and per-image outcomes.

    x: (N, 3, 32, 32) pixels in [0, 1]; y: true labels (N,).  ``attack.model`` is the source.
    draws: Poisson draws each image is scored over (from ``eval_seed``'s evaluation stream, independent of the
    attack's seed); accuracies are majority-vote accuracies, and the result keeps the per-image outcomes.
    image_ids: global data-set indices of the images (default 0..N-1).  clean_outcomes: the target's outcomes on
    x when already scored (same images, draws and seed), to save a pass.
    iter_check: optional weaker variant (e.g. the same PGD with fewer steps) for ``more_iters_not_weaker``.
    target_labels: the classes a targeted attack aims for (required when ``attack.targeted``).
    zero_grad_check: spend one gradient call on the source to measure ``zero_grad_share``.
    """
    if not isinstance(attack, Attack):
        raise TypeError(f"attack must be a snnlib.attacks.Attack, got {type(attack).__name__}")
    check_inputs(x, y)
    t0 = time.time()
    y_atk = _attack_labels(attack, y, target_labels)
    clean_out = clean_outcomes if clean_outcomes is not None else score(
        target, x, y, draws=draws, seed=eval_seed, image_ids=image_ids, batch_size=batch_size)
    if clean_out.n != int(y.shape[0]):
        raise ValueError(f"clean_outcomes cover {clean_out.n} images, x has {int(y.shape[0])}")
    x_adv, share = _craft(attack, x, y_atk, zero_grad_check)
    weaker_adv = None
    if iter_check is not None:
        if not isinstance(iter_check, Attack):
            raise TypeError(f"iter_check must be a snnlib.attacks.Attack, got {type(iter_check).__name__}")
        weaker_adv = iter_check(x, _attack_labels(iter_check, y, target_labels))
    src = source_name if source_name is not None else (target_name if attack.model is target else None)
    return _result(target, attack, x, y, x_adv, clean_out, share, eval_seed=eval_seed, draws=draws,
                   image_ids=image_ids, batch_size=batch_size,
                   source_name=_name(attack.model, src), target_name=_name(target, target_name),
                   weaker_attack=iter_check, weaker_adv=weaker_adv, seconds=time.time() - t0)


def transfer_matrix(sources: Dict[str, nn.Module], targets: Dict[str, nn.Module],
                    attack_factory: Callable[[nn.Module], Attack], x: Tensor, y: Tensor, *,
                    eval_seed: Optional[int] = 0, batch_size: int = 64, target_labels: Optional[Tensor] = None,
                    zero_grad_check: bool = True, draws: int = 1,
                    image_ids=None) -> Dict[str, Dict[str, RobustnessResult]]:
    """Source-by-target table ``{source_name: {target_name: RobustnessResult}}``.

    ``attack_factory(source_model)`` builds the attack; examples are crafted once per source and evaluated on
    every target (the diagonal, when a source is also a target, is the white-box entry).
    """
    if not sources or not targets:
        raise ValueError("transfer_matrix needs at least one source and one target")
    check_inputs(x, y)
    clean = {name: score(m, x, y, draws=draws, seed=eval_seed, image_ids=image_ids, batch_size=batch_size)
             for name, m in targets.items()}
    table: Dict[str, Dict[str, RobustnessResult]] = {}
    for s_name, s_model in sources.items():
        t0 = time.time()
        attack = attack_factory(s_model)
        if not isinstance(attack, Attack) or attack.model is not s_model:
            raise ValueError(f"attack_factory must return an Attack whose model is the given source ({s_name!r})")
        x_adv, share = _craft(attack, x, _attack_labels(attack, y, target_labels), zero_grad_check)
        craft_s = time.time() - t0
        table[s_name] = {
            t_name: _result(t_model, attack, x, y, x_adv, clean[t_name], share, eval_seed=eval_seed,
                            draws=draws, image_ids=image_ids, batch_size=batch_size, source_name=s_name, target_name=t_name, seconds=craft_s)
            for t_name, t_model in targets.items()}
    return table
