"""The cascade worst case: each further attack only on the images that survived every earlier one.

The full worst case (:func:`snnlib.robustness.worst_case.evaluate_worst_case`) runs every attack on every image.
An image fooled once is not robust whatever the other attacks do, so the cascade runs the papers' attack first and
each further stage only on the survivors (images the target still classifies correctly): the same robust set for
deterministic stages, at a fraction of the cost.  :func:`audit` compares a cascade with the full worst case on a
small audit sample and counts the images the cascade missed (called robust, but fooled by some attack).

A stage whose source is another model (transfer from the parent ANN, a surrogate twin) is an :class:`Attack` whose
``model`` is that source; the *target* scores every stage.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..attacks.base import Attack
from ..attacks.checks import check_inputs
from ..stats import Accuracy, accuracy_from_counts
from .prediction import predict_draws
from .worst_case import worst_case

__all__ = ["CLEAN", "StageRecord", "CascadeResult", "cascade_worst_case", "full_correctness", "AuditResult", "audit",
           "correct_predictions"]

#: name of the pseudo-stage that scores the unattacked images (``include_clean=True``)
CLEAN = "clean"


@dataclass
class StageRecord:
    """One stage of a cascade: its name, how many images it attacked, how many of those it fooled, seconds
    (crafting plus scoring), the largest L-infinity distance of its images (pixel units) and the attack's config."""

    name: str
    attacked: int
    fooled: int
    seconds: float
    max_linf: float = 0.0
    config: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return dict(name=self.name, attacked=self.attacked, fooled=self.fooled, seconds=round(self.seconds, 3),
                    max_linf=self.max_linf, config=self.config)


@dataclass
class CascadeResult:
    """Outcome of :func:`cascade_worst_case` on N images.

    image_ids: (N,) int64 dataset indices; robust: (N,) bool, correct under every stage (and clean, when
    ``include_clean``); first_fooled: (N,) int64, index into ``stage_names`` of the first stage that fooled the
    image (-1 = never fooled); stages: one :class:`StageRecord` per stage, the clean pseudo-stage first when
    ``include_clean``; accuracy: robust accuracy with its Clopper-Pearson interval; eval_seed, draws: how the target
    was scored.
    """

    image_ids: np.ndarray
    robust: Tensor
    first_fooled: Tensor
    stages: List[StageRecord]
    accuracy: Accuracy
    eval_seed: int = 0
    draws: int = 1
    include_clean: bool = True

    @property
    def n(self) -> int:
        """Number of images N."""
        return int(self.robust.numel())

    @property
    def stage_names(self) -> List[str]:
        """Stage names in cascade order (``"clean"`` first when the clean images were scored)."""
        return [s.name for s in self.stages]

    def fooled_by(self) -> Dict[str, int]:
        """{stage name: images it fooled first} (the stage's ``fooled`` count)."""
        return {s.name: s.fooled for s in self.stages}

    def first_fooled_names(self) -> List[Optional[str]]:
        """(N,) the name of the first stage that fooled each image, None for robust images."""
        names = self.stage_names
        return [names[i] if i >= 0 else None for i in self.first_fooled.tolist()]

    def to_dict(self) -> dict:
        """JSON-able dict (per-image results as lists)."""
        return dict(n=self.n, image_ids=[int(i) for i in self.image_ids], accuracy=self.accuracy.to_dict(),
                    robust_per_image=[int(b) for b in self.robust.tolist()],
                    first_fooled=[int(i) for i in self.first_fooled.tolist()],
                    stages=[s.to_dict() for s in self.stages], eval_seed=self.eval_seed, draws=self.draws,
                    include_clean=self.include_clean)

    def __str__(self) -> str:
        rows = [f"  {s.name:<32} attacked {s.attacked:>6}  fooled {s.fooled:>6}  {s.seconds:8.1f} s"
                for s in self.stages]
        return "\n".join([*rows, f"  {'cascade worst case':<32} {self.accuracy}"])


def check_image_ids(image_ids, n: int) -> np.ndarray:
    """image_ids as (n,) int64 distinct values, or a clear error."""
    ids = np.asarray(image_ids.cpu() if isinstance(image_ids, Tensor) else image_ids)
    if ids.ndim != 1 or ids.size != n:
        raise ValueError(f"image_ids must be a 1-D sequence of {n} ints (one per image of x), got shape {ids.shape}")
    if n and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"image_ids must be integers (dataset indices), got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    if np.unique(ids).size != n:
        raise ValueError("image_ids must be distinct (each image once)")
    return ids


def correct_predictions(target: nn.Module, x: Tensor, y: Tensor, image_ids, *, eval_seed: int = 0, draws: int = 1,
                        batch_size: int = 64) -> Tensor:
    """(N,) bool: the target classifies each image right by majority vote over ``draws`` evaluation draws.

    Scored with :func:`snnlib.robustness.prediction.predict_draws`: image n's spikes in draw k come from its own
    stream (``eval_seed``, ``image_ids[n]``, k), so an image's result does not depend on the images scored with
    it (the cascade scores shrinking subsets).  A tie (even ``draws``) counts as wrong.
    """
    pred = predict_draws(target, x, draws, eval_seed, torch.as_tensor(np.asarray(image_ids), dtype=torch.int64),
                         batch_size)
    return (pred == y.cpu()).sum(0) * 2 > draws


def check_scoring(x: Tensor, y: Tensor, image_ids, eval_seed, draws) -> Tuple[int, np.ndarray]:
    """(N, image ids (N,) int64) after checking the images, labels, ids, evaluation seed and draws."""
    check_inputs(x, y)
    n = int(y.numel())
    if n == 0:
        raise ValueError("no images to evaluate")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws (evaluation draws per image) must be an int >= 1, got {draws!r}")
    if isinstance(eval_seed, bool) or not isinstance(eval_seed, int) or eval_seed < 0:
        raise ValueError(f"eval_seed must be a non-negative int (it seeds the target's per-image spike streams), "
                         f"got {eval_seed!r}")
    ids = check_image_ids(image_ids, n)
    if (ids < 0).any():
        raise ValueError("image_ids must be non-negative (dataset indices)")
    return n, ids


def full_correctness(target: nn.Module, stages: Sequence[Tuple[str, Attack]], x: Tensor, y: Tensor, *, image_ids,
                     eval_seed: int = 0, draws: int = 1, batch_size: int = 64,
                     include_clean: bool = True) -> Dict[str, Tensor]:
    """Every stage on every image: {"clean" (when include_clean), stage name: per-image correct (N,) bool}.

    The full worst case for :func:`audit` (run it on a small audit sample), scored exactly as the cascade scores.
    """
    n, ids = check_scoring(x, y, image_ids, eval_seed, draws)
    stages = check_stages(stages, include_clean)
    y = y.cpu()

    def score(x_eval: Tensor) -> Tensor:
        return correct_predictions(target, x_eval, y, ids, eval_seed=eval_seed, draws=draws, batch_size=batch_size)

    out = {CLEAN: score(x)} if include_clean else {}
    for name, atk in stages:
        out[name] = score(atk(x, y))
    return out


def check_stages(stages: Sequence[Tuple[str, Attack]], include_clean: bool) -> List[Tuple[str, Attack]]:
    """The stages as a list of (distinct name, untargeted Attack), or a clear error."""
    if isinstance(stages, Mapping):
        stages = list(stages.items())
    stages = list(stages)
    if not stages:
        raise ValueError("cascade_worst_case needs at least one stage: [(name, Attack), ...]")
    names = []
    for i, stage in enumerate(stages):
        if not (isinstance(stage, (tuple, list)) and len(stage) == 2):
            raise TypeError(f"stages[{i}] must be a (name, Attack) pair, got {type(stage).__name__}")
        name, atk = stage
        if not isinstance(name, str) or not name:
            raise TypeError(f"stages[{i}]: the name must be a non-empty string, got {name!r}")
        if not isinstance(atk, Attack):
            raise TypeError(f"stage {name!r} must be a snnlib.attacks.Attack, got {type(atk).__name__}")
        if atk.targeted:
            raise ValueError(f"stage {name!r} is targeted; the worst case is over untargeted attacks")
        if name in names or (include_clean and name == CLEAN):
            raise ValueError(f"stage name {name!r} is used twice" if name in names else
                             f"'{CLEAN}' names the unattacked images; give stage {i} another name")
        names.append(name)
    return [(name, atk) for name, atk in stages]


def cascade_worst_case(target: nn.Module, stages: Sequence[Tuple[str, Attack]], x: Tensor, y: Tensor, *,
                       image_ids, eval_seed: int = 0, draws: int = 1, batch_size: int = 64,
                       include_clean: bool = True) -> CascadeResult:
    """Per-image worst case over ``stages`` run as a cascade: each stage attacks only the survivors so far.

    target: the evaluated model; stages: [(name, untargeted Attack), ...] in order (the papers' attack first; a
    transfer stage is an Attack whose ``model`` is the source); x: (N, 3, H, W) pixels in [0, 1]; y: (N,) labels;
    image_ids: (N,) distinct non-negative dataset indices; eval_seed, draws: scoring of the target (per-image
    streams, majority over ``draws``: :func:`correct_predictions`); batch_size: scoring batch size (the attacks keep
    their own); include_clean: score the clean images first, so an image misclassified without attack is not
    robust and no stage attacks it (the AutoAttack convention).

    An image's robust outcome is False as soon as any stage fools it.  For stages whose images do not depend on
    the batch (deterministic, e.g. FGSM or PGD without random start from a deterministic source) the robust set
    equals the AND of every stage's correctness on all images (:func:`full_correctness` and
    :func:`snnlib.robustness.worst_case.worst_case`).
    """
    n, ids = check_scoring(x, y, image_ids, eval_seed, draws)
    stages = check_stages(stages, include_clean)
    y = y.cpu()
    robust = torch.ones(n, dtype=torch.bool)
    first = torch.full((n,), -1, dtype=torch.int64)
    records: List[StageRecord] = []

    def score(idx: Tensor, x_eval: Tensor) -> Tensor:
        return correct_predictions(target, x_eval, y[idx], ids[idx.numpy()], eval_seed=eval_seed, draws=draws,
                                   batch_size=batch_size)

    if include_clean:
        t0 = time.time()
        idx = torch.arange(n)
        ok = score(idx, x)
        fooled = idx[~ok]
        robust[fooled] = False
        first[fooled] = 0
        records.append(StageRecord(CLEAN, n, int(fooled.numel()), time.time() - t0))
    for name, atk in stages:
        k = len(records)
        idx = robust.nonzero().flatten()
        if idx.numel() == 0:
            records.append(StageRecord(name, 0, 0, 0.0, 0.0, atk.config()))
            continue
        t0 = time.time()
        x_in = x[idx.to(x.device)]
        x_adv = atk(x_in, y[idx])
        ok = score(idx, x_adv)
        fooled = idx[~ok]
        robust[fooled] = False
        first[fooled] = k
        linf = float((x_adv.detach().cpu().double() - x_in.detach().cpu().double()).abs().max())
        records.append(StageRecord(name, int(idx.numel()), int(fooled.numel()), time.time() - t0, linf,
                                   atk.config()))
    return CascadeResult(image_ids=ids, robust=robust, first_fooled=first, stages=records,
                         accuracy=accuracy_from_counts(int(robust.sum()), n), eval_seed=eval_seed, draws=draws,
                         include_clean=include_clean)


@dataclass
class AuditResult:
    """A cascade checked against the full worst case on an audit sample of n images.

    missed: images the cascade calls robust that some attack of the full run fooled (should be 0); extra: images
    the cascade calls fooled that survived the full run (possible for attacks whose random draws depend on the
    images crafted with them, such as random starts); *_ids: those images' ids; full, cascade: the robust accuracies of both on the sample.
    """

    n: int
    missed: int
    extra: int
    missed_ids: List[int]
    extra_ids: List[int]
    full: Accuracy
    cascade: Accuracy

    @property
    def ok(self) -> bool:
        """True when the cascade missed no image."""
        return self.missed == 0

    def to_dict(self) -> dict:
        return dict(n=self.n, missed=self.missed, extra=self.extra, missed_ids=self.missed_ids,
                    extra_ids=self.extra_ids, full=self.full.to_dict(), cascade=self.cascade.to_dict(), ok=self.ok)


def audit(full: Mapping[str, Tensor], cascade: CascadeResult, image_ids=None) -> AuditResult:
    """Compare a cascade's robust set with the full worst case of all attacks on all images of an audit sample.

    full: {attack name (and "clean" if scored): per-image correct (M,) bool} from running every attack on every
    image of the sample; image_ids: (M,) ids of the sample (default: the cascade's own images, M = N, same order);
    each must be one of the cascade's images.  Returns the :class:`AuditResult` (the count of missed images).
    """
    if not isinstance(cascade, CascadeResult):
        raise TypeError(f"cascade must be a CascadeResult, got {type(cascade).__name__}")
    full_robust = worst_case(full)
    m = int(full_robust.numel())
    if image_ids is None:
        if m != cascade.n:
            raise ValueError(f"the full results cover {m} images but the cascade {cascade.n}; "
                             "pass image_ids= for an audit sample")
        pos = np.arange(m)
        ids = cascade.image_ids
    else:
        ids = check_image_ids(image_ids, m)
        where = {int(v): i for i, v in enumerate(cascade.image_ids)}
        absent = [int(v) for v in ids if int(v) not in where]
        if absent:
            raise KeyError(f"audit images not in the cascade: {absent[:5]}{' ...' if len(absent) > 5 else ''}")
        pos = np.array([where[int(v)] for v in ids], dtype=np.int64)
    casc = cascade.robust[torch.as_tensor(pos)]
    missed = casc & ~full_robust
    extra = ~casc & full_robust
    return AuditResult(n=m, missed=int(missed.sum()), extra=int(extra.sum()),
                       missed_ids=[int(v) for v in ids[missed.numpy()]], extra_ids=[int(v) for v in ids[extra.numpy()]],
                       full=accuracy_from_counts(int(full_robust.sum()), m),
                       cascade=accuracy_from_counts(int(casc.sum()), m))
