"""The two papers' claims and the verdict this study derives for each from its own typed results records.

A comparison "A > B" between two accuracies (each with its 95 % Clopper-Pearson interval) is **supported** when A's
interval lies entirely above B's, **contradicted** when it lies entirely below, and **inconclusive** when the
intervals overlap (non-overlap of two 95 % intervals is a conservative test).  For an inconclusive comparison the
verdict also says roughly how many images would separate the intervals if the observed difference were real:
n ≈ (2 · 1.96)² p(1 − p) / d².  Claims are taken from reference/papers.md §1.13 (ECCV 2020) and §2.7 (IJCNN 2019).
When the gradient-masking chapter has run, robustness claims are also judged on the per-image worst case over all
attacks (the study's headline robust accuracy).

The claims read :class:`snnlib.study.records.StudyResults` only: a chapter that has not run gives "not run"; a
results file that does not match its record raises :class:`snnlib.study.records.RecordError` (never a silent
"not run").
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..stats import Accuracy
from .records import ClaimRow, StudyResults, load_study, series
from .formatting import format_accuracy

__all__ = ["PAPER_TABLE_I", "VERDICTS", "compare", "verdict_greater", "images_needed", "trend", "evaluate_claims",
           "count_verdicts", "chance_level_models", "CLAIMS"]

#: IJCNN 2019 Table I (VGG-9, full CIFAR-10): the paper's clean accuracies, in percent. Not measured here.
PAPER_TABLE_I = {"ANN": 89.5, "SNN-conv": 85.6, "SNN-BP": 87.1}

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_RUN = "supported", "contradicted", "inconclusive", "not run"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_RUN)


def images_needed(a: Accuracy, b: Accuracy) -> Optional[int]:
    """Images per model that would make two 95 % intervals stop overlapping if the observed gap were real."""
    d = abs(a.value - b.value)
    if d == 0:
        return None
    p = (a.value + b.value) / 2
    p = min(max(p, 0.01), 0.99)
    return int(math.ceil((2 * 1.96) ** 2 * p * (1 - p) / d ** 2))


def compare(a: Accuracy, b: Accuracy) -> str:
    """'greater' if a's interval is above b's, 'less' if below, else 'overlap'."""
    if a.low > b.high:
        return "greater"
    if a.high < b.low:
        return "less"
    return "overlap"


def verdict_greater(a: Accuracy, b: Accuracy, name_a: str, name_b: str) -> Tuple[str, str]:
    """(verdict, measured text) of the claim "a > b"."""
    c = compare(a, b)
    text = f"{name_a} {format_accuracy(a)} vs {name_b} {format_accuracy(b)}"
    if c == "greater":
        return SUPPORTED, text
    if c == "less":
        return CONTRADICTED, text
    n = images_needed(a, b)
    more = f"; about {n} images per model would decide it if the gap is real" if n else "; no difference observed"
    return INCONCLUSIVE, text + more



def trend(points: Sequence[Tuple[float, Accuracy]]) -> Dict[str, Any]:
    """Direction of accuracy from the smallest to the largest x: 'falls', 'rises' or 'flat' (intervals overlap)."""
    pts = sorted(points, key=lambda p: p[0])
    if len(pts) < 2:
        return dict(direction="n/a", text="fewer than two points", first=None, last=None)
    (x0, a0), (x1, a1) = pts[0], pts[-1]
    c = compare(a1, a0)
    direction = {"greater": "rises", "less": "falls", "overlap": "flat"}[c]
    text = (f"{format_accuracy(a0)} at {x0:g} → {format_accuracy(a1)} at {x1:g} "
            f"({'no significant change' if direction == 'flat' else direction})")
    return dict(direction=direction, text=text, first=(x0, a0), last=(x1, a1))


# ----------------------------------------------------------------------------------------------------- lookups
def _tm(S: StudyResults, kind: str, attack: str, setting: str, eps: float = 8.0) -> Optional[Accuracy]:
    """Adversarial accuracy from the training-method chapter (04); None when not run or not measured."""
    return None if S.training_method is None else S.training_method.adversarial(kind, attack, setting, eps)


def _clean(S: StudyResults, kind: str) -> Optional[Accuracy]:
    return None if S.models is None else S.models.clean_accuracy(kind)


def _worst(S: StudyResults, kind: str) -> Optional[Accuracy]:
    gm = S.gradient_masking
    return gm.worst_case[kind].worst_case if gm is not None and kind in gm.worst_case else None


def _need(*xs):
    return all(x is not None for x in xs)


def _with_worst(S: StudyResults, verdict: str, text: str, kind_a: str = "SNN-BP",
                kind_b: str = "ANN") -> Tuple[str, str]:
    """Re-judge a robustness comparison on the per-image worst case over all attacks (chapter 6), if it ran."""
    wa, wb = _worst(S, kind_a), _worst(S, kind_b)
    if not _need(wa, wb):
        return verdict, text + " (adaptive attacks not run)"
    v2, t2 = verdict_greater(wa, wb, f"{kind_a} worst case over all attacks", kind_b)
    return v2, f"papers' attack: {text} [{verdict}]; judged on the worst case: {t2}"


# ----------------------------------------------------------------------------------------------------- claims
def _c_bb(attack: str, eps: float = 8.0):
    def fn(S):
        a, b = _tm(S, "SNN-BP", attack, "black-box", eps), _tm(S, "ANN", attack, "black-box", eps)
        if not _need(a, b):
            return NOT_RUN, "chapter 4 has no black-box result at this budget"
        return _with_worst(S, *verdict_greater(a, b, f"SNN-BP black-box {attack} {eps:g}/255", "ANN"))
    return fn


def _c_wb(S):
    a, b = _tm(S, "SNN-BP", "PGD", "white-box"), _tm(S, "ANN", "PGD", "white-box")
    if not _need(a, b):
        return NOT_RUN, "chapter 4 has no white-box PGD result at 8/255"
    return _with_worst(S, *verdict_greater(a, b, "SNN-BP white-box PGD 8/255", "ANN"))


def _c_conv_not_more(S):
    parts, verdicts = [], []
    for setting in ("white-box", "black-box"):
        a, b = _tm(S, "SNN-conv", "PGD", setting), _tm(S, "ANN", "PGD", setting)
        if not _need(a, b):
            continue
        c = compare(a, b)
        verdicts.append(CONTRADICTED if c == "greater" else SUPPORTED)
        parts.append(f"{setting} PGD 8/255: SNN-conv {format_accuracy(a)} vs ANN {format_accuracy(b)}")
    if not verdicts:
        return NOT_RUN, "chapter 4 has no PGD result"
    v = CONTRADICTED if CONTRADICTED in verdicts else SUPPORTED
    text = "; ".join(parts) + (" (not more robust: intervals overlap or lie below)" if v == SUPPORTED else "")
    wa, wb = _worst(S, "SNN-conv"), _worst(S, "ANN")
    if _need(wa, wb):
        c = compare(wa, wb)
        v = CONTRADICTED if c == "greater" else SUPPORTED
        text += f"; worst case over all attacks: SNN-conv {format_accuracy(wa)} vs ANN {format_accuracy(wb)}"
    return v, text


def _discretization_rows(S):
    return [] if S.discretization is None else S.discretization.rows


#: verdict of a claim that accuracy falls along a sweep
_FALLS = {"falls": SUPPORTED, "rises": CONTRADICTED, "flat": INCONCLUSIVE}
#: verdict of a claim that accuracy does not change along a sweep
_FLAT = {"falls": CONTRADICTED, "rises": CONTRADICTED, "flat": SUPPORTED}


def _trend_claim(s, verdicts: Mapping[str, str], missing: str, label: str, note: str = "") -> Tuple[str, str]:
    """Verdict from the trend of a sweep s = [(x, accuracy)] (``verdicts`` maps falls/rises/flat)."""
    if len(s) < 2:
        return NOT_RUN, missing
    t = trend(s)
    return verdicts[t["direction"]], f"{label}: {t['text']}{note}"


def _c_T_bp(S):
    s = series(_discretization_rows(S), "T", "pgd_wb", kind="SNN-BP", sweep="T")
    return _trend_claim(s, _FALLS, "chapter 2 has fewer than two T values", "SNN-BP white-box PGD accuracy against T")


def _c_quant(kind: str):
    def fn(S):
        rows = _discretization_rows(S)
        base = [r for r in rows if r.kind == kind and r.sweep == "T"]
        q = [r for r in rows if r.kind == kind and r.sweep == "bits"]
        if not q or not base:
            return NOT_RUN, "chapter 2 has no quantisation sweep"
        full = [r for r in base if r.T == q[0].T]
        if not full:
            return NOT_RUN, "no unquantised point at the same T"
        coarsest = min(q, key=lambda r: r.bits)
        return verdict_greater(coarsest.pgd_wb.adversarial, full[0].pgd_wb.adversarial,
                               f"{kind} {coarsest.bits}-bit input, white-box PGD", "8-bit input")
    return fn


def _c_T_conv(S):
    s = series(_discretization_rows(S), "T", "pgd_wb", kind="SNN-conv", sweep="T")
    return _trend_claim(s, _FLAT, "chapter 2 has fewer than two T values", "SNN-conv white-box PGD accuracy against T",
                        " (claim: insensitive to T)")


def _c_leak(S):
    s = [] if S.leak is None else series(S.leak.rows, "leak", "pgd_wb")  # smallest leak to largest (1.0 = IF)
    return _trend_claim(s, _FALLS, "chapter 3 has fewer than two leak values",
                        "SNN-BP white-box PGD accuracy from the strongest leak to IF")


def _c_layers(S):
    pert = {} if S.leak is None else S.leak.perturbation
    ann = pert.get("ANN")
    snn = {k: v for k, v in pert.items() if k != "ANN"}
    if not ann or not snn:
        return NOT_RUN, "chapter 3 has no layer-wise perturbation"
    a = ann[-1]
    others = {k: v[-1] for k, v in snn.items()}
    f = lambda d: f"{d.mean:.3f} [{d.low:.3f}, {d.high:.3f}]"
    text = (f"relative perturbation at the last spiking layer (mean, 95% interval over images): ANN {f(a)}; "
            + ", ".join(f"{k} {f(v)}" for k, v in others.items()))
    vals = [a] + list(others.values())
    if any(math.isnan(v.mean) or math.isnan(v.low) for v in vals):
        return INCONCLUSIVE, text + "; a layer is silent (no spikes) or has one active image, so it is undefined"
    if all(v.high < a.low for v in others.values()):
        return SUPPORTED, text
    if all(v.low > a.high for v in others.values()):
        return CONTRADICTED, text
    return INCONCLUSIVE, text


def _c_source(S):
    m = S.attack_source
    snn = None if m is None else m.adversarial("PGD", "SNN-BP (twin)", "SNN-BP")
    ann = None if m is None else m.adversarial("PGD", "ANN (twin)", "SNN-BP")
    if not _need(snn, ann):
        return NOT_RUN, "chapter 5 has no twin-crafted PGD on SNN-BP"
    v, t = verdict_greater(ann, snn, "SNN-BP under ANN-crafted PGD", "under SNN-crafted PGD")
    return v, t + " (claim: SNN-crafted is stronger, i.e. lower accuracy)"


def _c_clean_order(S):
    a, c, b = _clean(S, "ANN"), _clean(S, "SNN-conv"), _clean(S, "SNN-BP")
    if not _need(a, c, b):
        return NOT_RUN, "chapter 1 has not run"
    v1, t1 = verdict_greater(a, c, "ANN", "SNN-conv")
    v2, t2 = verdict_greater(b, c, "SNN-BP", "SNN-conv")
    v = SUPPORTED if (v1, v2) == (SUPPORTED, SUPPORTED) else CONTRADICTED if CONTRADICTED in (v1, v2) else INCONCLUSIVE
    return v, f"{t1}; {t2} (paper, VGG-9 on full CIFAR-10: ANN 89.5 > SNN-BP 87.1 > SNN-conv 85.6)"


def _c_bb_all_eps(S):
    out, vs = [], []
    for eps in (8.0, 16.0, 32.0):
        a, b = _tm(S, "SNN-BP", "FGSM", "black-box", eps), _tm(S, "ANN", "FGSM", "black-box", eps)
        if _need(a, b):
            v, t = verdict_greater(a, b, f"{eps:g}/255: SNN-BP", "ANN")
            vs.append(v)
            out.append(t)
    if not vs:
        return NOT_RUN, "chapter 4 has no black-box FGSM at 8, 16 or 32/255"
    v = SUPPORTED if all(x == SUPPORTED for x in vs) else CONTRADICTED if CONTRADICTED in vs else INCONCLUSIVE
    return v, "; ".join(out)


def _c_bp_vs_conv(S):
    vs, out = [], []
    for attack in ("FGSM", "PGD"):
        for setting in ("white-box", "black-box"):
            a, b = _tm(S, "SNN-BP", attack, setting), _tm(S, "SNN-conv", attack, setting)
            if _need(a, b):
                v, t = verdict_greater(a, b, f"{setting} {attack} 8/255: SNN-BP", "SNN-conv")
                vs.append(v)
                out.append(t)
    if not vs:
        return NOT_RUN, "chapter 4 has not run"
    v = SUPPORTED if SUPPORTED in vs and CONTRADICTED not in vs else CONTRADICTED if CONTRADICTED in vs else INCONCLUSIVE
    return v, "; ".join(out)


#: (id, paper, claim, chapter, function of the StudyResults -> (verdict, measured))
CLAIMS: List[Tuple[str, str, str, str, Callable]] = [
    ("E1", "ECCV 2020", "SNN-BP is more robust than the ANN under black-box FGSM (8/255)", "04_training_method",
     _c_bb("FGSM")),
    ("E2", "ECCV 2020", "SNN-BP is more robust than the ANN under black-box PGD (8/255)", "04_training_method",
     _c_bb("PGD")),
    ("E4", "ECCV 2020", "Under white-box attacks SNN-BP is at least as robust as the ANN", "04_training_method", _c_wb),
    ("E5", "ECCV 2020", "The converted SNN is not more robust than the ANN", "04_training_method", _c_conv_not_more),
    ("E6", "ECCV 2020", "SNN-BP's adversarial accuracy rises as the number of timesteps falls", "02_discretization",
     _c_T_bp),
    ("E7", "ECCV 2020", "Quantising the input to fewer levels raises SNN-BP's adversarial accuracy",
     "02_discretization", _c_quant("SNN-BP")),
    ("E8a", "ECCV 2020", "SNN-conv's adversarial accuracy is insensitive to the number of timesteps",
     "02_discretization", _c_T_conv),
    ("E8b", "ECCV 2020", "Quantising the input raises SNN-conv's adversarial accuracy", "02_discretization",
     _c_quant("SNN-conv")),
    ("E9", "ECCV 2020", "SNN-BP's adversarial accuracy rises as the leak grows (λ falls below 1)", "03_leak", _c_leak),
    ("E10", "ECCV 2020", "Spiking layers attenuate an input perturbation that ReLU layers pass on", "03_leak",
     _c_layers),
    ("E11", "ECCV 2020 / IJCNN 2019", "SNN-crafted attacks are stronger against SNN-BP than ANN-crafted ones",
     "05_attack_source", _c_source),
    ("I1", "IJCNN 2019", "Clean accuracy: ANN > SNN-BP > SNN-conv (Table I: 89.5 / 87.1 / 85.6 %)", "01_models",
     _c_clean_order),
    ("I2", "IJCNN 2019", "SNN-BP beats the ANN under black-box FGSM at 8, 16 and 32/255", "04_training_method",
     _c_bb_all_eps),
    ("I3", "IJCNN 2019", "SNN-BP is more robust than SNN-conv in several white-box and black-box settings",
     "04_training_method", _c_bp_vs_conv),
]


def chance_level_models(S: StudyResults) -> List[str]:
    """Model kinds whose clean accuracy interval includes chance (1 / classes): their robustness says nothing."""
    out: List[str] = []
    for r in ([] if S.models is None else S.models.clean):
        if r.accuracy.low <= 1.0 / S.num_classes and r.kind not in out:
            out.append(r.kind)
    return out


def evaluate_claims(results: Union[StudyResults, str, os.PathLike]) -> List[ClaimRow]:
    """One :class:`~snnlib.study.records.ClaimRow` per claim, from the typed results (or a results folder).

    When a model's clean accuracy is not above chance (its interval includes 1/classes), every verdict that is not
    "not run" becomes "inconclusive": robustness of a model that does not classify says nothing.  A results file
    that does not match its record raises :class:`~snnlib.study.records.RecordError`.
    """
    S = results if isinstance(results, StudyResults) else load_study(results)
    chance = chance_level_models(S)
    rows = []
    for cid, paper, text, nb, fn in CLAIMS:
        verdict, measured = fn(S)
        if chance and verdict in (SUPPORTED, CONTRADICTED):
            measured = f"{measured}; would be {verdict}, but {', '.join(chance)} classify at chance level"
            verdict = INCONCLUSIVE
        rows.append(ClaimRow(id=cid, paper=paper, claim=text, chapter=nb, verdict=verdict, measured=measured,
                             scale=S.scale_notes.get(nb)))
    return rows


def count_verdicts(rows: Sequence[ClaimRow]) -> Dict[str, int]:
    """{verdict: number of claims} for every verdict (zeros included), in :data:`VERDICTS` order."""
    return {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
