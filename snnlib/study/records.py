"""Typed records of the study's results: what every chapter writes to ``results/<profile>/<chapter>.json``.

One dataclass per kind of result row, one results record per chapter, one file record (:class:`ChapterFile`)
around it with the run's parameters, data, scale note and provenance.  This module alone turns them into JSON and
back (:func:`to_json` / :func:`from_json`, :func:`to_dict` / :func:`from_dict`); every file carries
``schema_version``.  Reading is strict: a missing field, a field of the wrong type or an unknown field raises
:class:`RecordError` naming the file and the field (``results.rows[3].result.adversarial``), never a default.
Files written before the schema had a version (``schema_version`` absent, "version 0") have the same fields and
are read by the same code.

Accuracies are :class:`snnlib.stats.Accuracy` (fractions in [0, 1] with their 95 % Clopper-Pearson interval);
budgets ``eps_255`` are in 1/255 of the [0, 1] pixel range.  Extending a record: add a field **with a default**
(so older files still load), e.g. the optional ``outcomes`` of :class:`AttackRecord` and :class:`MaskingReport`
(per-image outcomes, :class:`snnlib.robustness.outcomes.Outcomes` by name), and bump :data:`SCHEMA_VERSION` when
a field is renamed or removed.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..files import atomic_write_json
from ..robustness.outcomes import Outcomes
from ..stats import Accuracy

__all__ = ["SCHEMA_VERSION", "RecordError", "AttackRecord", "CleanRow", "TimestepPoint", "ModelsResults",
           "RobustnessRow", "DiscretizationRow", "TRAINED_T", "DiscretizationResults", "LeakRow", "LayerPerturbation",
           "LeakResults", "PerturbationImages", "TrainingMethodRow", "TrainingMethodResults", "TransferCell",
           "AttackSourceResults",
           "CheckRecord", "MaskingReport", "StageRow", "CascadeRecord", "GradientMaskingResults", "ClaimRow",
           "SummaryFile", "ChapterFile",
           "CHAPTER_RESULTS", "StudyResults", "to_dict", "from_dict", "to_json", "from_json", "read_chapter",
           "write_record", "load_study", "series"]

#: version of the JSON layout written by :func:`to_json`; files without the key are version 0 (same fields)
SCHEMA_VERSION = 1
KNOWN_VERSIONS = (0, 1)

#: the three model kinds of every chapter, in the book's order
KINDS = ("ANN", "SNN-conv", "SNN-BP")


class RecordError(ValueError):
    """A results file does not match its record type; the message names the file and the field."""


# ------------------------------------------------------------------------------------------------- row records
@dataclass
class AttackRecord:
    """One robustness number: ``attack_name`` at ``eps_255``/255 crafted on ``source``, scored on ``target``.

    The fields of :class:`snnlib.robustness.RobustnessResult` (``to_dict``): clean and adversarial accuracy on the
    same images, the attack's success rate (share of the clean-correct images it fools; None when none were
    correct), the perturbation used (``max_linf`` in [0, 1], ``max_linf_255``), the sanity flags and warnings and
    the attack's configuration.  ``outcomes``: per-image outcomes "clean" and "adversarial" (K evaluation draws
    each; None in files written before schema version 1).
    """

    attack_name: str
    attack: Dict[str, Any]
    source: str
    target: str
    whitebox: bool
    n: int
    eps: float
    eps_255: float
    clean: Accuracy
    adversarial: Accuracy
    success_rate: Optional[Accuracy]
    max_linf: float
    max_linf_255: float
    budget_ok: bool
    adv_not_above_clean: bool
    zero_grad_share: Optional[float]
    more_iters_not_weaker: Optional[bool]
    weaker: Optional[Dict[str, Any]]
    eval_seed: Optional[int]
    seconds: float
    flags_ok: bool
    warnings: List[str]
    outcomes: Optional[Dict[str, Outcomes]] = None

    @classmethod
    def from_result(cls, result, attack_name: str, whitebox: Optional[bool] = None) -> "AttackRecord":
        """The record of a :class:`snnlib.robustness.RobustnessResult` (``attack_name``: "FGSM", "PGD", ...)."""
        d = result.to_dict()
        names = {f.name for f in dataclasses.fields(cls)} - {"attack_name", "outcomes"}
        missing = sorted(names - set(d))
        if missing:
            raise RecordError(f"RobustnessResult.to_dict() lacks {missing}; AttackRecord needs them")
        rec = from_dict(cls, {**{k: d[k] for k in names}, "attack_name": attack_name.upper()},
                        where="RobustnessResult")
        if whitebox is not None:
            rec.whitebox = bool(whitebox)
        rec.outcomes = dict(getattr(result, "outcomes", None) or {}) or None
        return rec


@dataclass
class CleanRow:
    """Clean test accuracy of one model kind and training seed (01_models); T and leak are None for the ANN."""

    kind: str
    seed: int
    T: Optional[int]
    leak: Optional[float]
    accuracy: Accuracy
    outcomes: Optional[Outcomes] = None      # per-image correctness over the evaluation draws (None before v1)


@dataclass
class TimestepPoint:
    """Clean accuracy of an SNN simulated for T timesteps, and the per-image outcomes behind it (None in results
    written before they were recorded)."""

    T: int
    accuracy: Accuracy
    outcomes: Optional[Outcomes] = None


@dataclass
class ModelsResults:
    """Chapter 01_models: clean accuracies, the converted SNN against T and the thresholds per seed ("seed 0")."""

    clean: List[CleanRow]
    conv_vs_T: List[TimestepPoint]
    thresholds: Dict[str, List[float]]
    snn_bp_thresholds: Dict[str, List[float]]
    paper_table_I: Dict[str, float]

    def clean_accuracy(self, kind: str, seed: Optional[int] = None) -> Optional[Accuracy]:
        """Clean accuracy of ``kind`` (of ``seed``; default: the first seed listed), None when absent."""
        for r in self.clean:
            if r.kind == kind and (seed is None or r.seed == seed):
                return r.accuracy
        return None


@dataclass
class RobustnessRow:
    """Clean accuracy and white-box FGSM / PGD and black-box PGD (crafted on a twin) of one model variant."""

    kind: str
    eps_255: float
    clean: Accuracy
    fgsm_wb: AttackRecord
    pgd_wb: AttackRecord
    pgd_bb: AttackRecord

    def entry(self, name: str) -> Accuracy:
        """'clean' -> the clean accuracy; 'fgsm_wb' / 'pgd_wb' / 'pgd_bb' -> that attack's adversarial accuracy."""
        if name == "clean":
            return self.clean
        if name not in ("fgsm_wb", "pgd_wb", "pgd_bb"):
            raise ValueError(f"entry must be 'clean', 'fgsm_wb', 'pgd_wb' or 'pgd_bb', got {name!r}")
        return getattr(self, name).adversarial


@dataclass(kw_only=True)
class DiscretizationRow(RobustnessRow):
    """A :class:`RobustnessRow` at T timesteps and ``bits``-bit input (None: unquantised); sweep: "T" (the model
    simulated at T), "bits" or :data:`TRAINED_T` (SNN-BP fine-tuned at T)."""

    T: int
    bits: Optional[int]
    sweep: str


@dataclass(kw_only=True)
class LeakRow(RobustnessRow):
    """A :class:`RobustnessRow` of SNN-BP at membrane leak factor ``leak`` (1.0 = IF)."""

    leak: float


#: the sweep of chapter 2's SNN-BP models fine-tuned at another T (next to the inference-time "T" sweep)
TRAINED_T = "T trained"


@dataclass
class DiscretizationResults:
    """Chapter 02_discretization: the T sweep and the input-quantisation sweep at ``eps_255``."""

    rows: List[DiscretizationRow]
    eps_255: float

    def select(self, kind: Optional[str] = None, sweep: Optional[str] = None) -> List[DiscretizationRow]:
        return [r for r in self.rows if (kind is None or r.kind == kind) and (sweep is None or r.sweep == sweep)]

    def bits_series(self, kind: str, entry: str) -> List[Tuple[float, Accuracy]]:
        """[(bits, accuracy)] of the quantisation sweep, with the unquantised point at the same T as 8 bits."""
        q = self.select(kind, "bits")
        if not q:
            return []
        full = [(8.0, r.entry(entry)) for r in self.select(kind, "T") if r.T == q[0].T][:1]
        return full + [(float(r.bits), r.entry(entry)) for r in q]


@dataclass
class LayerPerturbation:
    """Mean relative perturbation of one layer over n images with a 95 % interval (nan when undefined)."""

    mean: float
    low: float
    high: float
    n: int


@dataclass
class PerturbationImages:
    """One model's relative perturbation ||a(x') - a(x)|| / ||a(x)|| at its last spiking layer, per attacked image:
    under the attack (x' = x_adv) and under random-sign noise of the same L2 size per image (x' = x_noise).
    None where the layer is silent on the clean image (undefined)."""

    image_ids: List[int]
    adversarial: List[Optional[float]]
    noise: List[Optional[float]]


@dataclass
class LeakResults:
    """Chapter 03_leak: the leak sweep, the layer-wise perturbation of each model ({label: per layer}) and, per model,
    the per-image perturbation at the last spiking layer under the attack and under noise (claim E10's paired test;
    empty in results written before it)."""

    rows: List[LeakRow]
    perturbation: Dict[str, List[LayerPerturbation]]
    eps_255: float
    perturbation_images: Dict[str, PerturbationImages] = field(default_factory=dict)


@dataclass
class TrainingMethodRow:
    """One attack (FGSM/PGD) in one setting ("white-box"/"black-box") at eps_255 on one model kind.

    seed: the training seed of the target model (the black-box source is the other seed's model).
    """

    kind: str
    attack: str
    setting: str
    eps_255: float
    result: AttackRecord
    seed: int = 0


@dataclass
class TrainingMethodResults:
    """Chapter 04_training_method: every kind under FGSM and PGD, white- and black-box, at every budget."""

    rows: List[TrainingMethodRow]
    clean: Dict[str, Accuracy]

    def find(self, kind: str, attack: str, setting: str, eps_255: float) -> Optional[AttackRecord]:
        """The result of that row, None when the chapter did not measure it."""
        for r in self.rows:
            if r.kind == kind and r.attack == attack and r.setting == setting and float(r.eps_255) == float(eps_255):
                return r.result
        return None

    def adversarial(self, kind: str, attack: str, setting: str, eps_255: float = 8.0) -> Optional[Accuracy]:
        r = self.find(kind, attack, setting, eps_255)
        return None if r is None else r.adversarial

    def budget_series(self, kind: str, attack: str, setting: str) -> List[Tuple[float, Accuracy]]:
        """[(eps_255, accuracy)] from eps 0 (the clean accuracy on the attacked images) up."""
        pts = [(r.eps_255, r.result.adversarial) for r in self.rows
               if r.kind == kind and r.attack == attack and r.setting == setting]
        return [(0.0, self.clean[kind])] + pts

    def warnings(self) -> List[str]:
        """Every sanity warning, prefixed with its row."""
        return [f"{r.kind} {r.attack} {r.setting} {r.eps_255:g}/255: {w}" for r in self.rows for w in r.result.warnings]


@dataclass
class TransferCell:
    """``attack`` crafted on ``source`` (kind ``source_kind``, training seed ``source_seed``), scored on ``target``."""

    attack: str
    source: str
    source_kind: str
    source_seed: int
    target: str
    result: AttackRecord
    target_seed: int = 0


@dataclass
class AttackSourceResults:
    """Chapter 05_attack_source: the source-by-target transfer matrices of FGSM and PGD (and of the IJCNN paper's
    other attacks, R-FGSM and BIM, where run) at eps_255."""

    cells: List[TransferCell]
    eps_255: float

    def attacks(self) -> List[str]:
        """Attack names (upper case, e.g. "PGD", "RFGSM") in the order measured."""
        return list(dict.fromkeys(c.attack for c in self.cells))

    def merged(self, other: "AttackSourceResults") -> "AttackSourceResults":
        """These cells followed by ``other``'s (same budget; an attack may not be in both)."""
        if float(other.eps_255) != float(self.eps_255):
            raise ValueError(f"cannot merge results at {self.eps_255:g}/255 and {other.eps_255:g}/255")
        both = set(self.attacks()) & set(other.attacks())
        if both:
            raise ValueError(f"both results hold {sorted(both)}; merge results of different attacks")
        return AttackSourceResults(cells=list(self.cells) + list(other.cells), eps_255=self.eps_255)

    def sources(self) -> List[str]:
        """Source names in the order measured."""
        return list(dict.fromkeys(c.source for c in self.cells))

    def adversarial(self, attack: str, source: str, target: str) -> Optional[Accuracy]:
        for c in self.cells:
            if c.attack == attack and c.source == source and c.target == target:
                return c.result.adversarial
        return None

    def matrix(self, attack: str, targets: Sequence[str] = KINDS) -> List[List[Accuracy]]:
        """Accuracy per (source row, target column); raises RecordError when a cell is missing."""
        out = []
        for s in self.sources():
            row = []
            for t in targets:
                a = self.adversarial(attack, s, t)
                if a is None:
                    raise RecordError(f"05_attack_source: no {attack} cell from {s!r} to {t!r}")
                row.append(a)
            out.append(row)
        return out


@dataclass
class CheckRecord:
    """One gradient-masking check (:class:`snnlib.robustness.Check`): passed (ok), skipped, detail, value."""

    name: str
    ok: bool
    detail: str
    value: Any
    skipped: bool


@dataclass
class MaskingReport:
    """Worst case over the papers' and the adaptive attacks for one target, and the masking checks.

    per_attack: {attack name: adversarial accuracy}; worst_case: images correct under every attack; strongest /
    unique: images first / only fooled by each attack; acc_by_eps: {"8.0": accuracy} of the papers' PGD.
    outcomes: per-image outcomes "clean", "paper" (the papers' PGD), "worst_case" (every attack),
    "worst_case_whitebox" (attacks crafted on the target itself) and "worst_case_transfer" (transfer attacks only).
    """

    kind: str
    n: int
    eps_255: float
    clean: Accuracy
    per_attack: Dict[str, Accuracy]
    worst_case: Accuracy
    strongest: Dict[str, int]
    unique: Dict[str, int]
    seconds: Dict[str, float]
    acc_by_eps: Dict[str, Accuracy]
    checks: List[CheckRecord]
    badge: str
    paper_attack: str
    outcomes: Optional[Dict[str, Outcomes]] = None

    @property
    def paper(self) -> Accuracy:
        """Accuracy under the papers' white-box PGD."""
        return self.per_attack[self.paper_attack]

    def eps_series(self) -> List[Tuple[float, Accuracy]]:
        return sorted(((float(e), a) for e, a in self.acc_by_eps.items()), key=lambda p: p[0])


@dataclass
class StageRow:
    """One stage of a cascade worst case (:class:`snnlib.robustness.cascade.StageRecord`): the images it attacked
    (the survivors of every earlier stage), how many of them it fooled, seconds, the largest L-infinity distance
    of its images (pixel units, [0, 1]) and the attack's configuration.  ``whitebox``: crafted on the target."""

    name: str
    attacked: int
    fooled: int
    seconds: float
    max_linf: float
    config: Dict[str, Any]
    whitebox: bool


@dataclass
class CascadeRecord:
    """The cascade worst case of one target (``kind``, training ``seed``) on every attacked image.

    The stages run in order (the papers' PGD first, then the other attacks crafted on the target, then the
    transfers), each only on the images that survived the earlier ones.  worst_case: robust under every stage;
    whitebox: robust under the clean images and every stage crafted on the target (the transfers excluded);
    outcomes: per-image "clean", "worst_case" and "worst_case_whitebox" (majority vote, K = 1);
    audit: on the first images (the full suite of :class:`MaskingReport`), the cascade against the full worst case
    (:class:`snnlib.robustness.cascade.AuditResult` as a dict; ``missed`` should be 0), None where not audited.
    """

    kind: str
    seed: int
    n: int
    eps_255: float
    stages: List[StageRow]
    worst_case: Accuracy
    whitebox: Accuracy
    outcomes: Dict[str, Outcomes]
    audit: Optional[Dict[str, Any]] = None


@dataclass
class GradientMaskingResults:
    """Chapter 06_gradient_masking: one :class:`MaskingReport` per model kind (the full suite on the audit images
    of the first seed) and, from schema v1 on, one :class:`CascadeRecord` per kind and seed on every attacked
    image."""

    worst_case: Dict[str, MaskingReport]
    eps_255: float
    cascades: List[CascadeRecord] = field(default_factory=list)

    def cascade(self, kind: str, seed: int) -> Optional[CascadeRecord]:
        """The cascade of ``kind`` at training ``seed``, None when it did not run."""
        return next((c for c in self.cascades if c.kind == kind and c.seed == seed), None)


@dataclass
class ClaimRow:
    """One claim of the papers and this study's verdict on it (07_summary), with the test behind the verdict.

    effect: A - B in accuracy points (for a trend: the last level minus the first) with its 95 % interval
    ci_low / ci_high (points); p_value: the claim's own test, p_adjusted: Holm-adjusted over the primary claims
    (None for a secondary claim); mde: the difference (points) detectable with 80 % power on these n_images;
    seeds: the target models' training seeds used; excluded: model variants the guards removed.  Fields after
    ``scale`` have defaults, so summaries written before they existed still load.
    """

    id: str
    paper: str
    claim: str
    chapter: str
    verdict: str
    measured: str
    scale: Optional[str]
    test: Optional[str] = None
    effect: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    p_value: Optional[float] = None
    p_adjusted: Optional[float] = None
    mde: Optional[float] = None
    n_images: Optional[int] = None
    seeds: List[int] = field(default_factory=list)
    primary: bool = False
    excluded: List[str] = field(default_factory=list)


#: the results record of each chapter, by notebook stem
CHAPTER_RESULTS: Dict[str, type] = {
    "01_models": ModelsResults,
    "02_discretization": DiscretizationResults,
    "03_leak": LeakResults,
    "04_training_method": TrainingMethodResults,
    "05_attack_source": AttackSourceResults,
    "06_gradient_masking": GradientMaskingResults,
}

ChapterResults = Union[ModelsResults, DiscretizationResults, LeakResults, TrainingMethodResults,
                       AttackSourceResults, GradientMaskingResults]


# ------------------------------------------------------------------------------------------------ file records
@dataclass
class ChapterFile:
    """One chapter's results file: the typed ``results`` plus parameters, data, scale note and provenance.

    wall_time_s: the notebook's own wall time (seconds); machine / versions / commit / timestamp as written by
    :func:`snnlib.study.results.provenance`; models: {"seed S": {kind: weights digest}} of the trained models the
    chapter used (:meth:`snnlib.study.pipeline.ModelSet.fingerprint`; None in files written before it existed);
    training_s: seconds of ``wall_time_s`` spent training those models (0 when all came from the artifact cache;
    None in older files), so that the runner can estimate the chapter's own work apart from training;
    reused_s: seconds of attack work (crafted examples, scored cells, chapter 6's reports) loaded from the artifact
    cache instead of done again, by the build times recorded with them (each entry once): the work of an earlier,
    interrupted attempt (or a cell another chapter shares), so ``wall_time_s - training_s + reused_s`` is the
    chapter's work with only its models cached (None in older files; 0 for entries cached before build times were
    recorded).
    """

    notebook: str
    profile: str
    parameters: Dict[str, Any]
    data: Dict[str, Any]
    scale_note: str
    device: str
    results: ChapterResults
    wall_time_s: Optional[float]
    snnlib_version: str
    torch_version: str
    machine: Dict[str, Any]
    git_commit: Optional[str]
    timestamp_utc: str
    models: Optional[Dict[str, Dict[str, str]]] = None
    training_s: Optional[float] = None
    reused_s: Optional[float] = None
    schema_version: int = SCHEMA_VERSION


@dataclass
class SummaryFile:
    """The summary's results file (07_summary): every claim's verdict and the count of each verdict."""

    notebook: str
    profile: str
    claims: List[ClaimRow]
    counts: Dict[str, int]
    snnlib_version: str
    torch_version: str
    machine: Dict[str, Any]
    git_commit: Optional[str]
    timestamp_utc: str
    schema_version: int = SCHEMA_VERSION


# ----------------------------------------------------------------------------------------------- encoding
def to_dict(record: Any) -> Any:
    """JSON-able form of a record (nested records, Accuracy, Outcomes, lists and dicts); NaN stays a float."""
    if hasattr(record, "to_dict") and callable(record.to_dict):     # its own JSON form (Accuracy, Outcomes)
        return record.to_dict()
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_dict(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, Mapping):
        return {str(k): to_dict(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_dict(v) for v in record]
    return record


def _fail(where: str, what: str) -> RecordError:
    return RecordError(f"{where}: {what}")


def _decode(tp: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as type ``tp``; raises RecordError naming ``where`` on a mismatch."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union:
        options = [a for a in args if a is not type(None)]
        if value is None:
            if type(None) in args:
                return None
            raise _fail(where, "is null; expected a value")
        if len(options) == 1:
            return _decode(options[0], value, where)
        for opt in options:  # ChapterResults: decided by the caller, never here
            try:
                return _decode(opt, value, where)
            except RecordError:
                continue
        raise _fail(where, f"matches none of {options}")
    if origin in (list, List, Sequence):
        if not isinstance(value, list):
            raise _fail(where, f"expected a list, got {type(value).__name__}")
        return [_decode(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict, Mapping):
        if not isinstance(value, dict):
            raise _fail(where, f"expected an object, got {type(value).__name__}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _decode(vt, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and hasattr(tp, "from_dict"):      # its own JSON form (Outcomes)
        if not isinstance(value, dict):
            raise _fail(where, f"expected an object for {tp.__name__}, got {type(value).__name__}")
        try:
            return tp.from_dict(value)
        except (KeyError, TypeError, ValueError) as e:
            raise _fail(where, f"not a valid {tp.__name__}: {e}") from None
    if dataclasses.is_dataclass(tp):
        return _decode_record(tp, value, where)
    if tp is float:
        if value is None:            # NaN is written as null (strict JSON)
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, f"expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise _fail(where, f"expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(where, f"expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _fail(where, f"expected a string, got {value!r}")
        return value
    raise _fail(where, f"cannot decode type {tp!r}")


def _decode_record(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise _fail(where, f"expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise _fail(where, f"unknown field(s) {unknown} for {cls.__name__} (renamed, or written by a newer "
                           f"snnlib?); known: {sorted(fields)}")
    out = {}
    for name, f in fields.items():
        here = f"{where}.{name}" if where else name
        if name not in data:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if has_default:
                continue
            raise _fail(here, f"missing field '{name}' of {cls.__name__}")
        if cls is ChapterFile and name == "results":
            continue
        out[name] = _decode(hints[name], data[name], here)
    if cls is ChapterFile:
        nb = out["notebook"]
        if nb not in CHAPTER_RESULTS:
            raise _fail(f"{where}.notebook" if where else "notebook",
                        f"unknown chapter {nb!r}; known: {sorted(CHAPTER_RESULTS)}")
        out["results"] = _decode_record(CHAPTER_RESULTS[nb], data["results"], f"{where}.results" if where
                                        else "results")
    return cls(**out)


def from_dict(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Record of type ``cls`` from its JSON form; RecordError names ``where`` and the offending field."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"cls must be a record dataclass, got {cls!r}")
    return _decode_record(cls, data, where)


def to_json(record: Union[ChapterFile, SummaryFile], path: Union[str, os.PathLike]) -> Path:
    """Write a file record atomically as strict JSON (NaN -> null) with ``schema_version``; returns the path."""
    if not isinstance(record, (ChapterFile, SummaryFile)):
        raise TypeError(f"to_json writes a ChapterFile or SummaryFile, got {type(record).__name__}")
    data = to_dict(record)
    data["schema_version"] = SCHEMA_VERSION
    return atomic_write_json(Path(path), data)


def from_json(path: Union[str, os.PathLike]) -> Union[ChapterFile, SummaryFile]:
    """Read a chapter's (or the summary's) results file; RecordError names the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RecordError(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:
        raise RecordError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version", 0)
    if version not in KNOWN_VERSIONS:
        raise RecordError(f"{path}: schema_version {version!r} is not one this snnlib reads {KNOWN_VERSIONS}; "
                          "update snnlib or re-run the chapter")
    data = dict(data, schema_version=SCHEMA_VERSION)   # version 0 has the same fields
    notebook = data.get("notebook")
    cls = SummaryFile if notebook == "07_summary" else ChapterFile
    try:
        return _decode_record(cls, data, "")
    except RecordError as e:
        raise RecordError(f"{path}: {e}") from None


def read_chapter(path: Union[str, os.PathLike], notebook: Optional[str] = None) -> ChapterFile:
    """A chapter file (not the summary); ``notebook`` checks that the file is that chapter's."""
    rec = from_json(path)
    if not isinstance(rec, ChapterFile):
        raise RecordError(f"{path}: is the summary, not a chapter's results")
    if notebook is not None and rec.notebook != notebook:
        raise RecordError(f"{path}: field 'notebook' is {rec.notebook!r}, expected {notebook!r}")
    return rec


def write_record(results_dir: Union[str, os.PathLike], record: Union[ChapterFile, SummaryFile]) -> Path:
    """Write ``<results_dir>/<record.notebook>.json``; returns the path."""
    return to_json(record, Path(results_dir) / f"{record.notebook}.json")


# ------------------------------------------------------------------------------------------------- the study
@dataclass
class StudyResults:
    """The chapters' typed results that the claims read; a chapter that has not run is None.

    scale_notes: {notebook: the chapter's scale note}; num_classes: of the dataset (chance = 1 / num_classes);
    parameters: the run's profile parameters (of 01_models, else of the first chapter present), e.g.
    ``equivalence_margin`` (accuracy points) and ``model_seeds``.
    """

    models: Optional[ModelsResults] = None
    discretization: Optional[DiscretizationResults] = None
    leak: Optional[LeakResults] = None
    training_method: Optional[TrainingMethodResults] = None
    attack_source: Optional[AttackSourceResults] = None
    gradient_masking: Optional[GradientMaskingResults] = None
    scale_notes: Dict[str, str] = field(default_factory=dict)
    num_classes: int = 10
    parameters: Dict[str, Any] = field(default_factory=dict)

    ATTRIBUTE = {"01_models": "models", "02_discretization": "discretization", "03_leak": "leak",
                 "04_training_method": "training_method", "05_attack_source": "attack_source",
                 "06_gradient_masking": "gradient_masking"}

    def chapter(self, notebook: str) -> Optional[ChapterResults]:
        """The typed results of ``notebook`` (stem), None when it has not run."""
        if notebook not in self.ATTRIBUTE:
            raise ValueError(f"unknown chapter {notebook!r}; known: {sorted(self.ATTRIBUTE)}")
        return getattr(self, self.ATTRIBUTE[notebook])

    @classmethod
    def from_files(cls, files: Mapping[str, ChapterFile]) -> "StudyResults":
        """From {notebook: ChapterFile} (e.g. read with :func:`read_chapter`)."""
        kw: Dict[str, Any] = {cls.ATTRIBUTE[nb]: f.results for nb, f in files.items()}
        kw["scale_notes"] = {nb: f.scale_note for nb, f in files.items()}
        models = files.get("01_models")
        if models is not None:
            kw["num_classes"] = 100 if models.parameters.get("dataset") == "cifar100" else 10
        first = models if models is not None else next(iter(files.values()), None)
        kw["parameters"] = dict(first.parameters) if first is not None else {}
        return cls(**kw)


def load_study(results_dir: Union[str, os.PathLike]) -> StudyResults:
    """Read every chapter file ``<results_dir>/<chapter>.json`` that exists (a missing file = not run).

    A file that exists but does not match its record raises :class:`RecordError` naming it and the field.
    """
    d = Path(results_dir)
    files = {nb: read_chapter(d / f"{nb}.json", nb) for nb in CHAPTER_RESULTS if (d / f"{nb}.json").is_file()}
    return StudyResults.from_files(files)


def series(rows: Sequence[RobustnessRow], x: str, entry: str, **where) -> List[Tuple[float, Accuracy]]:
    """[(row.<x>, accuracy)] of the rows whose fields equal ``where``; entry: 'clean', 'fgsm_wb', 'pgd_wb', 'pgd_bb'."""
    out = []
    for r in rows:
        if all(getattr(r, k) == v for k, v in where.items()):
            out.append((getattr(r, x), r.entry(entry)))
    return out
