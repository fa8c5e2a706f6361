"""The per-image worst case over several attacks: an image is robust only if it survives every one of them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from ..attacks.base import Attack
from ..attacks.checks import check_inputs
from ..stats import Accuracy, accuracy_from_counts
from .evaluation import attack_seed_of
from .outcomes import Outcomes
from .prediction import score

__all__ = ["worst_case", "WorstCaseResult", "evaluate_worst_case"]


def worst_case(results_per_attack: Mapping[str, Tensor]) -> Tensor:
    """Per-image robustness (N,) bool: correct under *every* attack.  Input: {name: per-image correct (N,) bool}."""
    if not results_per_attack:
        raise ValueError("worst_case needs at least one attack's per-image results")
    masks = [torch.as_tensor(v).to(torch.bool).flatten().cpu() for v in results_per_attack.values()]
    n = masks[0].numel()
    if any(m.numel() != n for m in masks):
        raise ValueError(f"per-image results differ in length: "
                         f"{ {k: int(torch.as_tensor(v).numel()) for k, v in results_per_attack.items()} }")
    return torch.stack(masks).all(0)


@dataclass
class WorstCaseResult:
    """Per-attack adversarial accuracy of one target and the per-image worst case over the attacks.

    per_attack: {name: Accuracy}; worst: Accuracy of images correct under every attack (and clean, when
    ``include_clean``); strongest: {name: images for which it is the first attack, in the given order, that
    fooled them}; unique: {name: images that only this attack fooled}; correct: {name: (N,) bool}.
    """

    n: int
    eps: Dict[str, float]
    clean: Accuracy
    per_attack: Dict[str, Accuracy]
    worst: Accuracy
    strongest: Dict[str, int]
    unique: Dict[str, int]
    robust: Tensor
    correct: Dict[str, Tensor] = field(repr=False, default_factory=dict)
    configs: Dict[str, dict] = field(repr=False, default_factory=dict)
    max_linf: Dict[str, float] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    include_clean: bool = True
    eval_seed: Optional[int] = 0
    outcomes: Dict[str, Outcomes] = field(repr=False, default_factory=dict)

    @property
    def weakest_gap(self) -> float:
        """Best single attack's accuracy minus the worst case (fraction, >= 0): what the ensemble adds."""
        return min(a.value for a in self.per_attack.values()) - self.worst.value

    def to_dict(self) -> dict:
        """JSON-able dict (accuracies as dicts, eps also in /255, the per-image worst case as 0/1)."""
        return dict(n=self.n, eps=self.eps, eps_255={k: round(v * 255, 6) for k, v in self.eps.items()},
                    clean=self.clean.to_dict(), per_attack={k: v.to_dict() for k, v in self.per_attack.items()},
                    worst=self.worst.to_dict(), strongest=dict(self.strongest), unique=dict(self.unique),
                    robust_per_image=[int(b) for b in self.robust.tolist()], attacks=self.configs,
                    max_linf=self.max_linf, seconds={k: round(v, 3) for k, v in self.seconds.items()},
                    include_clean=self.include_clean, eval_seed=self.eval_seed)

    def __str__(self) -> str:
        rows = [f"  {k:<32} {v}" for k, v in self.per_attack.items()]
        return "\n".join([f"clean {self.clean}", *rows, f"  {'worst case':<32} {self.worst}"])


def _attribution(correct: Dict[str, Tensor]) -> Tuple[Dict[str, int], Dict[str, int]]:
    """(first attack in order that fooled each image: counts, images fooled by exactly one attack: counts)."""
    names = list(correct)
    fooled = torch.stack([~correct[k] for k in names])  # (A, N)
    any_fooled = fooled.any(0)
    first = fooled.to(torch.int8).argmax(0)
    strongest = {k: int(((first == i) & any_fooled).sum()) for i, k in enumerate(names)}
    only = fooled.sum(0) == 1
    unique = {k: int((fooled[i] & only).sum()) for i, k in enumerate(names)}
    return strongest, unique


def evaluate_worst_case(target: nn.Module, attacks: Mapping[str, Attack], x: Tensor, y: Tensor, *,
                        eval_seed: Optional[int] = 0, batch_size: int = 64,
                        include_clean: bool = True, draws: int = 1, image_ids=None) -> WorstCaseResult:
    """Craft with every attack, evaluate ``target`` on each, and take the per-image worst case.

    x: (N, 3, 32, 32) pixels in [0, 1]; y: (N,) true labels; attacks: {name: untargeted Attack} (their ``model``
    is the crafting source: the target, a twin or another model).  Every pass is scored by
    :func:`snnlib.robustness.prediction.score` over ``draws`` Poisson draws from ``eval_seed``'s evaluation stream
    (the same stream for every attack; per-image majority vote); ``outcomes`` keeps them ("clean" and one entry per
    attack).  image_ids: global data-set indices (default 0..N-1).  include_clean: an image misclassified without attack
    counts as not robust (the AutoAttack convention).  By construction the worst case is never above any
    single attack's accuracy.
    """
    check_inputs(x, y)
    if not attacks:
        raise ValueError("evaluate_worst_case needs at least one attack")
    for name, atk in attacks.items():
        if not isinstance(atk, Attack):
            raise TypeError(f"attack {name!r} must be a snnlib.attacks.Attack, got {type(atk).__name__}")
        if atk.targeted:
            raise ValueError(f"attack {name!r} is targeted; the worst case is over untargeted attacks")
    if include_clean and "clean" in attacks:
        raise ValueError("'clean' names the unattacked images; give the attack another name")
    y = y.cpu()
    n = int(y.numel())
    if n == 0:
        raise ValueError("no images to evaluate")
    outcomes = {"clean": score(target, x, y, draws=draws, seed=eval_seed, image_ids=image_ids,
                               batch_size=batch_size)}
    clean_ok = torch.from_numpy(outcomes["clean"].majority())
    correct, max_linf, seconds = {}, {}, {}
    for name, atk in attacks.items():
        t0 = time.time()
        x_adv = atk(x, y)
        outcomes[name] = score(target, x_adv, y, draws=draws, seed=eval_seed, image_ids=image_ids,
                               attack_seed=attack_seed_of(atk), batch_size=batch_size)
        correct[name] = torch.from_numpy(outcomes[name].majority())
        max_linf[name] = float((x_adv.detach().cpu().double() - x.detach().cpu().double()).abs().max())
        seconds[name] = time.time() - t0
    groups = ({"clean": clean_ok} if include_clean else {}) | correct
    robust = worst_case(groups)
    strongest, unique = _attribution(groups)
    acc = {k: accuracy_from_counts(int(v.sum()), n) for k, v in correct.items()}
    return WorstCaseResult(n=n, eps={k: a.eps for k, a in attacks.items()},
                           clean=accuracy_from_counts(int(clean_ok.sum()), n), per_attack=acc,
                           worst=accuracy_from_counts(int(robust.sum()), n), strongest=strongest, unique=unique,
                           robust=robust, correct=correct, configs={k: a.config() for k, a in attacks.items()},
                           max_linf=max_linf, seconds=seconds, include_clean=include_clean, eval_seed=eval_seed,
                           outcomes=outcomes)
