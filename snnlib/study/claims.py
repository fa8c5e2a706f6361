"""The two papers' claims and the verdict this study derives for each: a statistical test on paired per-image outcomes.

Every robustness number of the study keeps its per-image outcomes (:class:`snnlib.robustness.outcomes.Outcomes`),
and two models are compared on the *same* images, image by image, using each image's majority vote over the
evaluation draws.  Each claim has one rule of :data:`VERDICT_RULES` (printed by the summary); in short:

- "A more robust than B": exact McNemar test (p < alpha, by direction);
- "A at least as robust as B" / "A not more robust than B": a non-inferiority / non-superiority score test
  against the profile's ``equivalence_margin`` (accuracy points), contradicted by a significant McNemar test the
  other way;
- "no difference along a sweep": paired TOST equivalence of every pair of sweep points, contradicted by a
  significant trend test; overlapping intervals never support it;
- "accuracy rises / falls along a sweep": stratified Cochran-Armitage trend test over the images;
- several target seeds: Mantel-Haenszel pooling (:func:`snnlib.stats.pooled_paired`), each seed's direction shown;
- the primary claims (:data:`PRIMARY`) are Holm-adjusted together.

Guards (:data:`GUARDS`): a model variant whose clean accuracy on the compared images is not above chance, or whose
white-box zero-gradient share exceeds 0.5, is excluded and named; a pairwise claim that loses a model, or a sweep
left with fewer than two points, is "not testable".  Units: effects, intervals, margins and MDEs are accuracy
points (percent); ``alpha`` is a fraction.  A chapter that has not run gives "not run"; a results file that does
not match its record raises :class:`snnlib.study.records.RecordError`.  The claims are those of Sharmin et al.,
"Inherent adversarial robustness of deep spiking neural networks" (ECCV 2020, arXiv:2003.10399) and "A comprehensive
analysis on adversarial robustness of spiking neural networks" (IJCNN 2019, arXiv:1905.02704).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import stats as sps

from ..robustness.outcomes import Outcomes
from ..stats import (Accuracy, PairedTable, above_chance, compare_paired_table, equivalence_from_table, holm,
                     mde_paired, paired_table, pooled_paired, trend_test)
from .formatting import format_accuracy
from .records import TRAINED_T, AttackRecord, AttackSourceResults, ClaimRow, StudyResults, load_study

__all__ = ["PAPER_TABLE_I", "VERDICTS", "SUPPORTED", "CONTRADICTED", "INCONCLUSIVE", "NOT_TESTABLE", "NOT_RUN",
           "VerdictRule", "VERDICT_RULES", "GUARDS", "PRIMARY", "NO_OUTCOMES", "CIFAR100_REASON", "DEFAULT_MARGIN",
           "DEFAULT_ALPHA", "POWER", "MAX_ZERO_GRAD", "Judgement", "judge_pair", "judge_sweep", "trend", "evaluate_claims", "count_verdicts",
           "chance_level_models", "CLAIMS", "layer_attenuation", "MIN_PERTURBATION_IMAGES", "AttackComparison",
           "FAMILY_COMPARISONS", "attack_family"]

#: IJCNN 2019 Table I (VGG-9, full CIFAR-10): the paper's clean accuracies, in percent. Not measured here.
PAPER_TABLE_I = {"ANN": 89.5, "SNN-conv": 85.6, "SNN-BP": 87.1}

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
NOT_TESTABLE, NOT_RUN = "not testable", "not run"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, NOT_RUN)

#: the claims Holm-adjusted together (the papers' headline robustness claims)
PRIMARY = ("E1", "E2", "E4", "E5", "E11")
#: equivalence margin (accuracy points) and test level when the run's parameters do not give them
DEFAULT_MARGIN, DEFAULT_ALPHA = 3.0, 0.05
#: power at which the minimal detectable difference (MDE) is stated
POWER = 0.8
#: reason of every claim whose records lack per-image outcomes
NO_OUTCOMES = "no per-image outcomes in these results (written before schema v1); re-run the chapter"
#: largest white-box zero-gradient share (fraction of images) of a model variant the claims still use
MAX_ZERO_GRAD = 0.5
#: a sweep's trend p is a Monte Carlo permutation p (seeded) when at most this many images are informative
PERMUTATION_BELOW, PERMUTATIONS = 200, 9999

CIFAR100_REASON = ("the shipped CIFAR-100 subset (1,117 images) cannot train VGG11; run "
                   "`python -m snnlib.study run --profile paper -p dataset=cifar100 -p arch=vgg11`")


# ------------------------------------------------------------------------------------------------ the rules
@dataclass(frozen=True)
class VerdictRule:
    """How one kind of claim is judged: its test, direction, margin, level and what each verdict means."""

    name: str
    claims: Tuple[str, ...]
    test: str
    direction: str
    margin: str
    alpha: str
    supported: str
    contradicted: str
    inconclusive: str
    not_testable: str


_HOLM = "0.05; Holm-adjusted over the tests of the primary claims (E1, E2, E4, E5, E11), raw p for the others"
_GUARDED = "a compared model excluded by the guards, or no per-image outcomes"

#: the verdict rule of every kind of claim (the summary prints this table)
VERDICT_RULES: List[VerdictRule] = [
    VerdictRule("A more robust than B", ("E1", "E2", "E11"),
                "exact McNemar test on the majority-vote per-image outcomes (several target seeds: "
                "Mantel-Haenszel pooling, each seed's direction shown)", "A − B > 0", "none", _HOLM,
                "p < alpha and A > B", "p < alpha and A < B",
                "p ≥ alpha; the MDE at 80 % power for this n and the observed discordance is stated", _GUARDED),
    VerdictRule("A at least as robust as B", ("E4",),
                "non-inferiority Tango score test of A − B > −margin (p = 2 × one-sided p, i.e. the 95 % paired "
                "interval's lower end above −margin) and exact McNemar", "A − B > −margin", "equivalence_margin "
                "(points, default 3)", _HOLM, "non-inferiority p < alpha (unless contradicted)",
                "McNemar p < alpha with A < B (checked first)", "neither; MDE stated", _GUARDED),
    VerdictRule("A not more robust than B", ("E5",),
                "non-superiority Tango score test of A − B < +margin (p = 2 × one-sided p, i.e. the 95 % paired "
                "interval's upper end below +margin) and exact McNemar", "A − B < +margin",
                "equivalence_margin (points, default 3)", _HOLM, "non-superiority p < alpha (unless contradicted)",
                "McNemar p < alpha with A > B (checked first)", "neither; MDE stated", _GUARDED),
    VerdictRule("no difference along a sweep", ("E8a",),
                "paired TOST equivalence (Tango score) of every pair of valid sweep points (all must pass: "
                "intersection-union, p = the largest), and the trend test", "|difference| < margin",
                "equivalence_margin (points, default 3)", "0.05 (raw)",
                "every pair equivalent and no significant trend (overlapping intervals never suffice)",
                "trend test p < alpha, either direction (checked first)", "otherwise",
                "fewer than two valid sweep points, or no per-image outcomes"),
    VerdictRule("accuracy changes along a sweep", ("E6", "E7", "E8b", "E9"),
                "stratified Cochran-Armitage trend test over the images (levels: log2 T, bits or the leak factor; "
                "a seeded permutation p when at most 200 images are informative)", "the claimed sign of the trend",
                "none", "0.05 (raw)", "p < alpha in the claimed direction", "p < alpha in the other direction",
                "p ≥ alpha; the informative images and the first-vs-last MDE are stated",
                "fewer than two valid sweep points, or no per-image outcomes"),
    VerdictRule("A more accurate / robust than B in every part", ("E6b", "I1", "I2"),
                "exact McNemar per part (pair of models, or budget), each at alpha (intersection-union, no "
                "adjustment needed; p = the largest)", "A − B > 0 in every part", "none", "0.05 (raw)",
                "every part significant with A > B", "any part significant with A < B", "otherwise", _GUARDED),
    VerdictRule("A more robust than B in several settings", ("I3",),
                "exact McNemar per setting, Holm-adjusted within the claim", "A − B > 0", "none",
                "0.05, Holm within the claim", "at least two settings significant with A > B and none with A < B",
                "any setting significant with A < B", "otherwise", _GUARDED),
    VerdictRule("layers attenuate a perturbation", ("E10",), "Wilcoxon signed-rank test, per attacked image, of "
                "q(SNN) − q(ANN), where q = a model's relative perturbation at its last spiking layer under the attack "
                "divided by the same under random-sign noise of the attack's L2 size; each SNN variant against the "
                "ANN, all must hold (intersection-union, p = the largest). Results without per-image values (older "
                "runs): descriptive, 95 % intervals of the mean", "median q(SNN) − q(ANN) < 0", "none", "0.05 (raw)",
                "every SNN p < alpha with median < 0", "every SNN p < alpha with median > 0",
                "otherwise; the smallest median difference detectable at 80 % power is stated",
                "a compared model excluded by the guards, or fewer than 10 images with every value defined"),
    VerdictRule("not testable at this scale", ("E3",), "none", "—", "—", "—", "—", "—", "—",
                "the shipped data cannot support the experiment"),
]

#: the guards every point passes before any test (the summary prints them under the rule table)
GUARDS = ("A model variant is excluded, and named in the claim's row, when its clean accuracy (majority vote, on "
          "the images the claim compares) is not above chance (exact one-sided binomial test at alpha, chance = "
          "1 / classes) or, for a robustness claim, when more than half of the images have an exactly zero "
          "white-box input gradient. Black-box claims use the per-image worst case over the transfer attacks "
          "crafted on the independently trained twins (chapter 5; chapter 4's black-box row without it); "
          "white-box claims the worst case over the attacks crafted on the target itself (chapter 6; chapter 4's "
          "papers' PGD without it). The row names the source it used.")


# ------------------------------------------------------------------------------------------------ judgements
@dataclass
class Judgement:
    """A claim's test result before its verdict (the verdict may depend on Holm-adjusted p-values).

    rule: a :data:`VERDICT_RULES` name; pvalues: {test: p} (the first is the claim's own test); sign: of A − B (a
    trend's statistic); claimed: the claimed sign of a trend; effect / ci_low / ci_high / mde in accuracy points;
    parts: sub-judgements of a compound claim (each with its ``label``); incomplete: a part was not measured.
    """

    rule: str
    pvalues: Dict[str, float]
    sign: int
    text: str
    test: str
    claimed: int = 1
    effect: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    mde: Optional[float] = None
    n_images: Optional[int] = None
    seeds: List[int] = field(default_factory=list)
    excluded: List[str] = field(default_factory=list)
    power: str = ""
    secondary: str = ""
    parts: List["Judgement"] = field(default_factory=list)
    label: str = ""
    incomplete: bool = False

    @property
    def p_value(self) -> Optional[float]:
        """p of the claim's own test (the first of ``pvalues``); a compound claim's deciding p."""
        return next(iter(self.pvalues.values()), None)

    def verdict(self, alpha: float = DEFAULT_ALPHA, adjusted: Optional[Mapping[str, float]] = None) -> str:
        """The verdict at level alpha; ``adjusted``: {test: Holm-adjusted p} replacing the raw p where given."""
        p = {k: (adjusted or {}).get(k, v) for k, v in self.pvalues.items()}
        sig = {k: v < alpha for k, v in p.items()}
        r = self.rule
        if r == "A more robust than B":
            return INCONCLUSIVE if not sig["McNemar"] else SUPPORTED if self.sign > 0 else CONTRADICTED
        if r == "A at least as robust as B":
            if sig["McNemar"] and self.sign < 0:
                return CONTRADICTED
            return SUPPORTED if sig["non-inferiority"] else INCONCLUSIVE
        if r == "A not more robust than B":
            if sig["McNemar"] and self.sign > 0:
                return CONTRADICTED
            return SUPPORTED if sig["non-superiority"] else INCONCLUSIVE
        if r == "no difference along a sweep":
            if sig["trend"]:
                return CONTRADICTED
            return SUPPORTED if sig["TOST"] else INCONCLUSIVE
        if r == "accuracy changes along a sweep":
            return INCONCLUSIVE if not sig["trend"] else SUPPORTED if self.sign == self.claimed else CONTRADICTED
        if r == "A more accurate / robust than B in every part":
            vs = [q.verdict(alpha) for q in self.parts]
            if CONTRADICTED in vs:
                return CONTRADICTED
            return SUPPORTED if all(v == SUPPORTED for v in vs) and not self.incomplete else INCONCLUSIVE
        if r == "layers attenuate a perturbation":
            ps = [q.pvalues["Wilcoxon"] < alpha for q in self.parts]
            if all(ps) and all(q.sign == q.claimed for q in self.parts):
                return SUPPORTED
            if all(ps) and all(q.sign == -q.claimed for q in self.parts):
                return CONTRADICTED
            return INCONCLUSIVE
        if r == "A more robust than B in several settings":
            vs = [q.verdict(alpha, {"McNemar": p[q.label]}) for q in self.parts]
            if CONTRADICTED in vs:
                return CONTRADICTED
            return SUPPORTED if vs.count(SUPPORTED) >= 2 else INCONCLUSIVE
        raise ValueError(f"unknown rule {r!r}")


class _NotTestable(Exception):
    """A claim that cannot be tested: ``reason``, and the excluded model variants."""

    def __init__(self, reason: str, excluded: Sequence[str] = ()):
        super().__init__(reason)
        self.reason, self.excluded = reason, list(excluded)


class _NotRun(Exception):
    """A claim whose chapter (or row) has not run."""


def _pts(x: float) -> float:
    """A fraction as accuracy points."""
    return 100.0 * float(x)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def _mde(n: int, discordant: int, alpha: float) -> Optional[float]:
    """Minimal detectable paired difference (points) at :data:`POWER`, for n images and the observed discordance."""
    m = mde_paired(int(n), min(max(discordant / n, 0.0), 1.0), alpha, POWER).mde
    return None if m is None else _pts(m)


def _mde_text(mde: Optional[float], n: int) -> str:
    return (f"MDE at 80 % power (n = {n}, observed discordance): {mde:.1f} points" if mde is not None
            else f"no difference is detectable at 80 % power with n = {n}")


# ----------------------------------------------------------------------------------------------- guards, arms
@dataclass
class _Arm:
    """One model variant under one threat model: robust (adversarial or worst-case) and clean outcomes."""

    name: str
    robust: Outcomes
    clean: Outcomes
    zero_grad: Optional[float] = None


def _outcomes_of(rec: AttackRecord) -> Tuple[Outcomes, Outcomes]:
    """(adversarial, clean) outcomes of an attack record; not testable without them."""
    o = rec.outcomes
    if not o or "adversarial" not in o or "clean" not in o:
        raise _NotTestable(NO_OUTCOMES)
    return o["adversarial"], o["clean"]


def _arm(name: str, rec: AttackRecord, zero_grad: Optional[float] = None) -> _Arm:
    adv, clean = _outcomes_of(rec)
    return _Arm(name, adv, clean, zero_grad)


def _align(outs: Sequence[Outcomes]) -> List[Outcomes]:
    """The outcomes restricted to the images all of them hold, in the first one's order."""
    first = outs[0]
    if all(first.aligned(o) for o in outs[1:]):
        return list(outs)
    common = set(first.image_ids.tolist())
    for o in outs[1:]:
        common &= set(o.image_ids.tolist())
    ids = [i for i in first.image_ids.tolist() if i in common]
    if not ids:
        raise _NotTestable("the compared outcomes share no image")
    return [o.subset(ids) for o in outs]


def _exclusion(arm: _Arm, chance: float, alpha: float, robustness: bool = True) -> Optional[str]:
    """'<name> (<why>)' when the guards exclude the arm, else None."""
    c = arm.clean.majority()
    k, n = int(c.sum()), int(c.size)
    if not above_chance(k, n, chance, alpha).above:
        return f"{arm.name} (clean {k}/{n}, not above chance)"
    if robustness and arm.zero_grad is not None and arm.zero_grad > MAX_ZERO_GRAD:
        return f"{arm.name} (white-box zero-gradient share {arm.zero_grad:.2f} > {MAX_ZERO_GRAD:g})"
    return None


def _excluded_text(excluded: Sequence[str]) -> str:
    return "excluded: " + "; ".join(excluded)


# ------------------------------------------------------------------------------------------- paired analysis
@dataclass
class _Paired:
    """Paired outcomes of arm A and arm B for every seed, pooled."""

    names: Tuple[str, str]
    seeds: List[int]
    tables: Dict[int, PairedTable]
    total: PairedTable
    text: str
    secondary: str

    def comparison(self):
        """The pooled comparison: :func:`snnlib.stats.pooled_paired` over the seeds (Mantel-Haenszel), or the one
        seed's :func:`snnlib.stats.compare_paired_table`; both carry difference, low, high and p_value."""
        if len(self.seeds) > 1:
            return pooled_paired({f"seed {s}": self.tables[s] for s in self.seeds})
        return compare_paired_table(self.total)


def _sum_tables(tables: Sequence[PairedTable]) -> PairedTable:
    return PairedTable(**{f: sum(getattr(t, f) for t in tables) for f in ("n11", "n10", "n01", "n00")})


def _paired(pairs: Mapping[int, Tuple[_Arm, _Arm]], chance: float, alpha: float, robustness: bool = True,
            names: Optional[Tuple[str, str]] = None) -> _Paired:
    """Guard every arm, align each seed's images and build the paired tables (A vs B), pooled over seeds."""
    if not pairs:
        raise _NotRun("no paired result")
    excluded: List[str] = []
    for a, b in pairs.values():
        for arm in (a, b):
            why = _exclusion(arm, chance, alpha, robustness)
            if why and why not in excluded:
                excluded.append(why)
    if excluded:
        raise _NotTestable(f"{_excluded_text(excluded)}; a compared model is excluded, so the comparison is not "
                           "testable at this scale", excluded)
    seeds = sorted(pairs)
    tables, both = {}, []
    clean_a = clean_b = n_all = 0
    for s in seeds:
        a, b = pairs[s]
        ra, ca, rb, cb = (o.majority() for o in _align([a.robust, a.clean, b.robust, b.clean]))
        tables[s] = paired_table(ra, rb)
        clean_a, clean_b, n_all = clean_a + int(ca.sum()), clean_b + int(cb.sum()), n_all + int(ca.size)
        mask = ca & cb
        if mask.any():
            both.append(paired_table(ra[mask], rb[mask]))
    total = _sum_tables(list(tables.values()))
    na, nb = names or (pairs[seeds[0]][0].name, pairs[seeds[0]][1].name)
    text = f"{na} {_pct(total.accuracy_a)} vs {nb} {_pct(total.accuracy_b)} on {total.n} images"
    if len(seeds) > 1:
        pooled = pooled_paired({f"seed {s}": tables[s] for s in seeds})
        per = ", ".join(f"seed {s} {_pts(tables[s].difference):+.1f}" for s in seeds)
        agree = "directions agree" if pooled.seeds_agree else "directions differ"
        text += (f" (target seeds {', '.join(map(str, seeds))}, Mantel-Haenszel pooled; per seed A − B: {per}; "
                 f"{agree})")
    else:
        text += f" (target seed {seeds[0]})"
    gap = _pts((clean_a - clean_b) / n_all)
    sec = f"clean gap {na} − {nb} {gap:+.1f} points on these images"
    if both:
        t = _sum_tables(both)
        c = compare_paired_table(t)
        sec += (f"; on the {t.n} images both classify correctly the attack succeeds on {_pct(1 - t.accuracy_a)} "
                f"({na}) vs {_pct(1 - t.accuracy_b)} ({nb}), McNemar p = {_fmt_p(c.p_value)}")
    else:
        sec += "; no image is classified correctly by both"
    return _Paired((na, nb), seeds, tables, total, text, sec)


def _pair_judgement(rule: str, P: _Paired, margin: float, alpha: float) -> Judgement:
    """The judgement of a pairwise rule on paired data P (margin in points)."""
    t = P.total
    cmp = P.comparison()
    pooled = " (Mantel-Haenszel over seeds)" if len(P.seeds) > 1 else ""
    eff, lo, hi = _pts(cmp.difference), _pts(cmp.low), _pts(cmp.high)
    mde = _mde(t.n, t.discordant, alpha)
    sign = int(np.sign(t.n10 - t.n01))
    text = (f"{P.text}: A − B {eff:+.1f} points [95% CI {lo:+.1f}, {hi:+.1f}], discordant images "
            f"{t.n10} (A right) vs {t.n01} (B right)")
    common = dict(rule=rule, sign=sign, text=text, effect=eff, ci_low=lo, ci_high=hi, mde=mde, n_images=t.n,
                  seeds=list(P.seeds), power=_mde_text(mde, t.n), secondary=P.secondary)
    if rule == "A more robust than B":
        return Judgement(pvalues={"McNemar": cmp.p_value}, test="exact McNemar" + pooled, **common)
    eq = equivalence_from_table(t, margin / 100.0, min(alpha, 0.49))
    if rule == "A at least as robust as B":
        p = min(1.0, 2.0 * eq.p_lower)
        return Judgement(pvalues={"non-inferiority": p, "McNemar": cmp.p_value},
                         test=f"non-inferiority (Tango score, margin {margin:g} points) + exact McNemar" + pooled,
                         **common)
    if rule == "A not more robust than B":
        p = min(1.0, 2.0 * eq.p_upper)
        return Judgement(pvalues={"non-superiority": p, "McNemar": cmp.p_value},
                         test=f"non-superiority (Tango score, margin {margin:g} points) + exact McNemar" + pooled,
                         **common)
    raise ValueError(f"{rule!r} is not a pairwise rule")


def judge_pair(rule: str, a, b, margin: float = DEFAULT_MARGIN, alpha: float = DEFAULT_ALPHA,
               names: Tuple[str, str] = ("A", "B")) -> Judgement:
    """Judge a pairwise claim on per-image outcomes, without guards.

    rule: "A more robust than B", "A at least as robust as B" or "A not more robust than B"; a, b: (N,) bool
    (True = correct), the same images in the same order, or {seed: (N,) bool} of the same seeds (pooled by
    Mantel-Haenszel); margin in accuracy points.  ``Judgement.verdict(alpha)`` gives the verdict.
    """
    if not isinstance(a, Mapping):
        a, b = {0: a}, {0: b}
    if set(a) != set(b):
        raise ValueError(f"a and b must hold the same seeds, got {sorted(a)} and {sorted(b)}")
    tables = {s: paired_table(a[s], b[s]) for s in sorted(a)}
    total = _sum_tables(list(tables.values()))
    text = f"{names[0]} {_pct(total.accuracy_a)} vs {names[1]} {_pct(total.accuracy_b)} on {total.n} images"
    return _pair_judgement(rule, _Paired(names, sorted(a), tables, total, text, ""), margin, alpha)


# --------------------------------------------------------------------------------------------------- sweeps
@dataclass
class _Point:
    """One sweep point: its level (T, bits, leak), its score in the trend test and its arm."""

    level: float
    score: float
    arm: _Arm


def _valid_points(points: Sequence[_Point], chance: float, alpha: float) -> Tuple[List[_Point], List[str]]:
    valid, excluded = [], []
    for p in points:
        why = _exclusion(p.arm, chance, alpha)
        if why:
            excluded.append(why)
        else:
            valid.append(p)
    return valid, excluded


def _sweep_outcomes(points: Sequence[_Point]) -> np.ndarray:
    """(L, N) majority outcomes of the points' robust outcomes on their common images, in the points' order."""
    return np.stack([o.majority() for o in _align([p.arm.robust for p in points])])


def judge_sweep(rule: str, outcomes, levels: Sequence[float], scores: Optional[Sequence[float]] = None,
                claimed: str = "falls", margin: float = DEFAULT_MARGIN, alpha: float = DEFAULT_ALPHA,
                labels: Optional[Sequence[str]] = None) -> Judgement:
    """Judge a sweep claim on (L, N) bool per-image outcomes (level x image, the same images), without guards.

    rule: "accuracy changes along a sweep" (``claimed``: "rises" or "falls" with the level) or "no difference
    along a sweep" (paired TOST of every pair of levels within ``margin`` points, and the trend test).
    scores: the trend test's scores of the levels (default: the levels).  Effect: last level − first (points).
    """
    y = np.asarray(outcomes, dtype=bool)
    lv = [float(v) for v in levels]
    order = sorted(range(len(lv)), key=lambda i: lv[i])
    y, lv = y[order], [lv[i] for i in order]
    sc = lv if scores is None else [float(scores[i]) for i in order]
    labels = [f"{v:g}" for v in lv] if labels is None else [labels[i] for i in order]
    L, N = y.shape
    informative = int(((y.sum(0) > 0) & (y.sum(0) < L)).sum())
    perm = PERMUTATIONS if 0 < informative <= PERMUTATION_BELOW else 0
    tr = trend_test(y, sc, permutations=perm, seed=0 if perm else None)
    ends = paired_table(y[-1], y[0])
    cmp = compare_paired_table(ends)
    mde = _mde(N, ends.discordant, alpha)
    accs = ", ".join(f"{lab} {_pct(a)}" for lab, a in zip(labels, tr.accuracies))
    sign = 1 if tr.z > 0 else -1 if tr.z < 0 else 0
    text = (f"{accs} on {N} images: last − first {_pts(cmp.difference):+.1f} points [95% CI {_pts(cmp.low):+.1f}, "
            f"{_pts(cmp.high):+.1f}]; trend z = {tr.z:+.2f} ({tr.direction})")
    power = (f"{tr.informative} of {N} images change outcome across the levels; first-vs-last difference "
             + _mde_text(mde, N))
    common = dict(sign=sign, effect=_pts(cmp.difference), ci_low=_pts(cmp.low), ci_high=_pts(cmp.high), mde=mde,
                  n_images=N, power=power)
    pm = "" if not perm else f", permutation p ({perm} draws, seed 0)"
    if rule == "accuracy changes along a sweep":
        claimed_sign = {"rises": 1, "falls": -1}[claimed]
        return Judgement(rule=rule, pvalues={"trend": tr.p_value}, claimed=claimed_sign, text=text,
                         test="stratified Cochran-Armitage trend over images" + pm, **common)
    if rule == "no difference along a sweep":
        worst, tost = None, []
        for i in range(L):
            for j in range(i + 1, L):
                eq = equivalence_from_table(paired_table(y[j], y[i]), margin / 100.0, min(alpha, 0.49))
                tost.append(eq.p_value)
                if worst is None or eq.p_value > worst[0]:
                    worst = (eq.p_value, labels[i], labels[j], eq)
        _, li, lj, eq = worst
        text += (f"; least equivalent pair {li} vs {lj}: {_pts(eq.difference):+.1f} points, 90% CI "
                 f"[{_pts(eq.low):+.1f}, {_pts(eq.high):+.1f}] vs ±{margin:g}")
        return Judgement(rule=rule, pvalues={"TOST": max(tost), "trend": tr.p_value}, text=text,
                         test=f"paired TOST ±{margin:g} points, every pair of levels + trend test" + pm, **common)
    raise ValueError(f"{rule!r} is not a sweep rule")


def _sweep(rule: str, points: Sequence[_Point], ctx: "_Ctx", claimed: str = "falls") -> Judgement:
    """Guard the points, then :func:`judge_sweep` on the valid ones."""
    if len(points) < 2:
        raise _NotRun("fewer than two sweep points were run")
    valid, excluded = _valid_points(points, ctx.chance, ctx.alpha)
    if len(valid) < 2:
        why = f"{_excluded_text(excluded)}; " if excluded else ""
        raise _NotTestable(f"{why}fewer than two valid sweep points: not testable at this scale", excluded)
    j = judge_sweep(rule, _sweep_outcomes(valid), [p.level for p in valid], [p.score for p in valid], claimed,
                    ctx.margin, ctx.alpha, [p.arm.name for p in valid])
    j.excluded = excluded
    if excluded:
        j.text += f"; {_excluded_text(excluded)}"
    return j


# ------------------------------------------------------------------------------------------------ lookups
@dataclass
class _Ctx:
    """What every claim function reads: the results, chance (fraction), margin (points) and alpha."""

    S: StudyResults
    chance: float
    margin: float
    alpha: float


def _zero_grad(S: StudyResults, kind: str, seed: int, eps: float = 8.0) -> Optional[float]:
    """White-box zero-gradient share of a model (chapter 4's white-box PGD, else any white-box row, else chapter
    5's diagonal cell); None when unknown."""
    tm = S.training_method
    if tm is not None:
        rows = [r for r in tm.rows if r.kind == kind and r.seed == seed and r.setting == "white-box"
                and r.result.zero_grad_share is not None]
        rows.sort(key=lambda r: (r.attack != "PGD", float(r.eps_255) != float(eps)))
        if rows:
            return rows[0].result.zero_grad_share
    src = S.attack_source
    if src is not None:
        for c in src.cells:
            if (c.source == kind and c.target == kind and c.target_seed == seed
                    and c.result.zero_grad_share is not None):
                return c.result.zero_grad_share
    return None


def _is_twin(cell) -> bool:
    return "(twin)" in cell.source or cell.source_seed != cell.target_seed


def _blackbox_arms(S: StudyResults, kind: str, attack: str, eps: float) -> Tuple[str, Dict[int, _Arm]]:
    """(source text, {target seed: arm}) of ``kind`` under black-box ``attack`` at eps: the per-image worst case
    (clean included) over chapter 5's twin-crafted cells, else chapter 4's black-box row."""
    src = S.attack_source
    if src is not None and float(src.eps_255) == float(eps):
        cells = [c for c in src.cells if c.attack == attack and c.target == kind and _is_twin(c)]
        if cells:
            arms = {}
            for seed in sorted({c.target_seed for c in cells}):
                mine = [c for c in cells if c.target_seed == seed]
                parts = [_outcomes_of(c.result) for c in mine]
                clean = parts[0][1]
                aligned = _align([clean] + [adv for adv, _ in parts])
                robust = Outcomes.all_correct(aligned)
                worst = Outcomes(aligned[0].image_ids, robust[None, :], clean.eval_seed, None,
                                 {"sources": [c.source for c in mine]})
                arms[seed] = _Arm(kind, worst, aligned[0], _zero_grad(S, kind, seed, eps))
            names = sorted({c.source for c in cells})
            return (f"worst case over the twin-crafted {attack} {eps:g}/255 ({', '.join(names)}; chapter 5)", arms)
    tm = S.training_method
    rows = [] if tm is None else [r for r in tm.rows if r.kind == kind and r.attack == attack
                                  and r.setting == "black-box" and float(r.eps_255) == float(eps)]
    if not rows:
        raise _NotRun(f"neither chapter 5 nor chapter 4 has black-box {attack} {eps:g}/255 on {kind}")
    why = "chapter 5 not run" if src is None else f"chapter 5 has no {attack} at {eps:g}/255"
    return (f"black-box {attack} {eps:g}/255 crafted on the twin (chapter 4; {why})",
            {r.seed: _arm(kind, r.result, _zero_grad(S, kind, r.seed, eps)) for r in rows})


def _whitebox_arms(S: StudyResults, kind: str, eps: float = 8.0) -> Tuple[str, Dict[int, _Arm]]:
    """(source text, {target seed: arm}) of ``kind`` under white-box attack: chapter 6's per-image worst case over
    the attacks crafted on the target itself (its cascades on every attacked image of each seed, else its full
    suite on the audit images), else chapter 4's white-box PGD."""
    gm = S.gradient_masking
    note = "chapter 6 not run"
    if gm is not None:
        mine = [c for c in gm.cascades if c.kind == kind and float(c.eps_255) == float(eps)
                and {"clean", "worst_case_whitebox"} <= set(c.outcomes)]
        if mine:
            return (f"cascade worst case over the attacks crafted on each target itself at {gm.eps_255:g}/255, "
                    f"every attacked image (chapter 6)",
                    {c.seed: _Arm(kind, c.outcomes["worst_case_whitebox"], c.outcomes["clean"],
                                  _zero_grad(S, kind, c.seed, eps)) for c in mine})
        rep = gm.worst_case.get(kind)
        o = None if rep is None else rep.outcomes
        if o and "worst_case_whitebox" in o and "clean" in o:
            seed = int((S.parameters.get("model_seeds") or [0])[0])
            return (f"worst case over the attacks crafted on each target itself at {gm.eps_255:g}/255 (chapter 6)",
                    {seed: _Arm(kind, o["worst_case_whitebox"], o["clean"], _zero_grad(S, kind, seed, eps))})
        note = "chapter 6 has no per-image outcomes of " + kind if rep is not None else f"chapter 6 has no {kind}"
    tm = S.training_method
    rows = [] if tm is None else [r for r in tm.rows if r.kind == kind and r.attack == "PGD"
                                  and r.setting == "white-box" and float(r.eps_255) == float(eps)]
    if not rows:
        raise _NotRun(f"neither chapter 6 nor chapter 4 has white-box PGD {eps:g}/255 on {kind}")
    return (f"the papers' white-box PGD {eps:g}/255 (chapter 4; {note})",
            {r.seed: _arm(kind, r.result, r.result.zero_grad_share) for r in rows})


def _pairs(arms_a: Mapping[int, _Arm], arms_b: Mapping[int, _Arm]) -> Dict[int, Tuple[_Arm, _Arm]]:
    seeds = sorted(set(arms_a) & set(arms_b))
    if not seeds:
        raise _NotRun("the two models have no target seed in common")
    return {s: (arms_a[s], arms_b[s]) for s in seeds}


def _with_source(j: Judgement, source: str) -> Judgement:
    j.text = f"judged on {source}: {j.text}"
    return j


# ----------------------------------------------------------------------------------------------------- claims
def _c_bb(attack: str, eps: float = 8.0):
    def fn(ctx: _Ctx) -> Judgement:
        src_a, a = _blackbox_arms(ctx.S, "SNN-BP", attack, eps)
        _, b = _blackbox_arms(ctx.S, "ANN", attack, eps)
        P = _paired(_pairs(a, b), ctx.chance, ctx.alpha)
        return _with_source(_pair_judgement("A more robust than B", P, ctx.margin, ctx.alpha), src_a)
    return fn


def _c_wb(rule: str, kind_a: str, kind_b: str):
    def fn(ctx: _Ctx) -> Judgement:
        src, a = _whitebox_arms(ctx.S, kind_a)
        _, b = _whitebox_arms(ctx.S, kind_b)
        P = _paired(_pairs(a, b), ctx.chance, ctx.alpha)
        return _with_source(_pair_judgement(rule, P, ctx.margin, ctx.alpha), src)
    return fn


def _source_judgement(ctx: _Ctx, attack: str) -> Judgement:
    """SNN-BP under ANN-crafted (A) vs SNN-crafted (B) twin ``attack`` of chapter 5; the claim is A > B."""
    P = _source_paired(ctx, attack)
    j = _pair_judgement("A more robust than B", P, ctx.margin, ctx.alpha)
    j.text = (f"SNN-BP's accuracy under twin-crafted {attack} {ctx.S.attack_source.eps_255:g}/255 (chapter 5), "
              f"A = ANN-crafted, B = SNN-crafted (claim: A > B): {j.text}")
    return j


def _source_paired(ctx: _Ctx, attack: str) -> _Paired:
    """The paired outcomes of :func:`_source_judgement`."""
    src = ctx.S.attack_source
    if src is None:
        raise _NotRun("chapter 5 has not run")
    pairs = {}
    for seed in sorted({c.target_seed for c in src.cells if c.target == "SNN-BP"}):
        arms = {}
        for c in src.cells:
            if (c.attack == attack and c.target == "SNN-BP" and c.target_seed == seed and _is_twin(c)
                    and c.source_kind in ("ANN", "SNN-BP")):
                arms[c.source_kind] = _arm(f"{c.source} → SNN-BP", c.result, _zero_grad(ctx.S, c.source_kind, seed))
        if len(arms) == 2:
            pairs[seed] = (arms["ANN"], arms["SNN-BP"])
    if not pairs:
        raise _NotRun(f"chapter 5 has no twin-crafted {attack} from the ANN and from SNN-BP on SNN-BP")
    return _paired(pairs, ctx.chance, ctx.alpha, names=("ANN-crafted", "SNN-crafted"))


def _c_source(ctx: _Ctx) -> Judgement:
    """E11: SNN-BP under ANN-crafted (A) vs SNN-crafted (B) twin PGD; the claim is A > B."""
    return _source_judgement(ctx, "PGD")


def _discretization_rows(ctx: _Ctx, kind: str, sweep: str):
    d = ctx.S.discretization
    if d is None:
        raise _NotRun("chapter 2 has not run")
    return d.select(kind, sweep)


def _disc_point(level: float, score: float, name: str, row) -> _Point:
    return _Point(level, score, _arm(name, row.pgd_wb, row.pgd_wb.zero_grad_share))


def _t_points(ctx: _Ctx, kind: str) -> List[_Point]:
    return [_disc_point(float(r.T), math.log2(r.T), f"{kind} T={r.T}", r)
            for r in _discretization_rows(ctx, kind, "T")]


def _c_T(kind: str, rule: str):
    def fn(ctx: _Ctx) -> Judgement:
        j = _sweep(rule, _t_points(ctx, kind), ctx, "falls")
        claim = "falls as T rises" if rule == "accuracy changes along a sweep" else f"within ±{ctx.margin:g} points"
        j.text = f"{kind} white-box PGD accuracy against T (scores log2 T; claim: {claim}): {j.text}"
        return j
    return fn


def _c_trained_T(ctx: _Ctx) -> Judgement:
    """E6b: SNN-BP fine-tuned at another T (chapter 2's "T trained" rows) vs SNN-BP fine-tuned at its own T_bp, under
    the papers' white-box PGD; in every pair the model with fewer timesteps (A) must be more robust."""
    trained = _discretization_rows(ctx, "SNN-BP", TRAINED_T)
    if not trained:
        raise _NotRun("chapter 2 trained no SNN-BP at another T (parameter T_bp_trained)")
    base_T = ctx.S.parameters.get("T_bp")
    base = [r for r in _discretization_rows(ctx, "SNN-BP", "T") if base_T is None or r.T == base_T]
    if not base:
        raise _NotRun("chapter 2 has no row of SNN-BP at its own T")
    b = base[-1] if base_T is None else base[0]
    parts, seed = [], int((ctx.S.parameters.get("model_seeds") or [0])[0])
    for r in sorted(trained, key=lambda r: r.T):
        if r.T == b.T:
            continue
        fewer, more = (r, b) if r.T < b.T else (b, r)
        P = _paired({seed: (_arm(f"SNN-BP trained at T={fewer.T}", fewer.pgd_wb, fewer.pgd_wb.zero_grad_share),
                            _arm(f"SNN-BP trained at T={more.T}", more.pgd_wb, more.pgd_wb.zero_grad_share))},
                    ctx.chance, ctx.alpha)
        parts.append(_part(f"T={fewer.T} vs T={more.T}",
                           _pair_judgement("A more robust than B", P, ctx.margin, ctx.alpha)))
    if not parts:
        raise _NotRun(f"chapter 2 trained SNN-BP at no T other than its own T={b.T}")
    j = _compound(parts, "A more accurate / robust than B in every part",
                  "exact McNemar per trained T (all must hold; chapter 2, white-box PGD)")
    j.text = (f"SNN-BP fine-tuned at different timesteps, A = fewer, B = more, white-box PGD (claim: A more "
              f"robust): {j.text}")
    return j


def _c_quant(kind: str):
    def fn(ctx: _Ctx) -> Judgement:
        q = _discretization_rows(ctx, kind, "bits")
        if not q:
            raise _NotRun("chapter 2 has no quantisation sweep")
        full = [r for r in _discretization_rows(ctx, kind, "T") if r.T == q[0].T]
        if not full:
            raise _NotRun("chapter 2 has no unquantised point at the quantisation sweep's T")
        pts = [_disc_point(8.0, 8.0, f"{kind} 8-bit input", full[0])]
        pts += [_disc_point(float(r.bits), float(r.bits), f"{kind} {r.bits}-bit input", r) for r in q]
        j = _sweep("accuracy changes along a sweep", pts, ctx, "falls")
        j.text = f"{kind} white-box PGD accuracy against input bits (claim: falls with the bits): {j.text}"
        return j
    return fn


def _c_leak(ctx: _Ctx) -> Judgement:
    lk = ctx.S.leak
    if lk is None:
        raise _NotRun("chapter 3 has not run")
    pts = [_Point(float(r.leak), float(r.leak), _arm(f"SNN-BP leak {r.leak:g}", r.pgd_wb, r.pgd_wb.zero_grad_share))
           for r in lk.rows]
    j = _sweep("accuracy changes along a sweep", pts, ctx, "falls")
    j.text = f"SNN-BP white-box PGD accuracy against the leak factor λ (claim: falls as λ rises to 1): {j.text}"
    return j


#: images with every value defined that a per-image test of E10 needs
MIN_PERTURBATION_IMAGES = 10


def _normalised(images) -> Dict[int, float]:
    """{image id: q = adversarial / noise perturbation} where both are defined and the noise one is > 0."""
    return {i: a / z for i, a, z in zip(images.image_ids, images.adversarial, images.noise)
            if a is not None and z is not None and z > 0 and math.isfinite(a) and math.isfinite(z)}


def layer_attenuation(leak) -> Dict[str, Dict[str, Any]]:
    """E10's per-image comparison, from chapter 3's :class:`~snnlib.study.records.LeakResults`: for every SNN variant,
    q = its relative perturbation at the last spiking layer under the attack / under random-sign noise of the same L2
    size, against the ANN's q on the same images.  {label: {n, median_q, median_q_ann, median_difference, p (two-sided
    Wilcoxon signed-rank of q(SNN) − q(ANN); 1 when every difference is 0), mde (about the smallest median
    difference detectable at 80 % power, alpha 0.05)}}; {} when the results hold no per-image values."""
    from scipy.stats import wilcoxon

    images = leak.perturbation_images if leak is not None else {}
    if "ANN" not in images:
        return {}
    ann = _normalised(images["ANN"])
    z = float(sps.norm.ppf(0.975) + sps.norm.ppf(POWER))   # alpha 0.05 two-sided, the claims' power
    out = {}
    for label, imgs in images.items():
        if label == "ANN":
            continue
        mine = _normalised(imgs)
        common = sorted(set(mine) & set(ann))
        d = np.array([mine[i] - ann[i] for i in common])
        n = len(d)
        p = 1.0 if n == 0 or not np.any(d) else float(wilcoxon(d).pvalue)
        # the signed-rank test's efficiency is 3/pi of the t test's: its MDE ~ z * sd * sqrt(pi/3) / sqrt(n)
        mde = z * float(np.std(d, ddof=1)) * math.sqrt(math.pi / 3.0) / math.sqrt(n) if n > 1 else float("nan")
        out[label] = dict(n=n, median_q=float(np.median([mine[i] for i in common])) if n else float("nan"),
                          median_q_ann=float(np.median([ann[i] for i in common])) if n else float("nan"),
                          median_difference=float(np.median(d)) if n else float("nan"), p=p, mde=mde)
    return out


def _c_layers(ctx: _Ctx):
    """E10: per image, each SNN's noise-normalised perturbation at its last spiking layer against the ANN's
    (Wilcoxon signed-rank, every SNN); results without per-image values are judged on the intervals."""
    leak = ctx.S.leak
    labels = [k for k in (leak.perturbation if leak is not None else {}) if k != "ANN"]
    att = layer_attenuation(leak)
    if not att or any(k not in att for k in labels):
        return _c_layers_descriptive(ctx)
    dead = chance_level_models(ctx.S, ctx.alpha)
    if dead:
        excluded = [f"{k} (clean accuracy in chapter 1 not above chance)" for k in dead]
        raise _NotTestable(f"{_excluded_text(excluded)}; not testable at this scale", excluded)
    parts = []
    for label in labels:
        a = att[label]
        if a["n"] < MIN_PERTURBATION_IMAGES:
            raise _NotTestable(f"{label}: only {a['n']} images with a defined perturbation under both the "
                               f"attack and the noise (at least {MIN_PERTURBATION_IMAGES} needed)")
        text = (f"{label}: median q(SNN) − q(ANN) {a['median_difference']:+.3f} (median q {a['median_q']:.3f} vs "
                f"ANN {a['median_q_ann']:.3f}) on {a['n']} images, Wilcoxon p = {_fmt_p(a['p'])}")
        parts.append(Judgement(rule="layers attenuate a perturbation", pvalues={"Wilcoxon": a["p"]},
                               sign=int(np.sign(a["median_difference"])), text=text, test="Wilcoxon signed-rank",
                               claimed=-1, n_images=a["n"], label=label,
                               power=f"{label}: smallest detectable median difference about {a['mde']:.3f}"))
    worst = max(parts, key=lambda q: q.pvalues["Wilcoxon"])
    text = ("q = relative perturbation at the last spiking layer under the twin-ANN PGD / under random-sign noise "
            "of the same L2 size, per image: " + "; ".join(q.text for q in parts))
    return Judgement(rule="layers attenuate a perturbation", pvalues={"largest (all SNNs)": worst.pvalues["Wilcoxon"]},
                     sign=worst.sign, claimed=-1, text=text,
                     test="Wilcoxon signed-rank per SNN vs the ANN (all must hold)", n_images=worst.n_images,
                     power="; ".join(q.power for q in parts), parts=parts)


def _c_layers_descriptive(ctx: _Ctx) -> Tuple[str, str]:
    """E10 for results without per-image values, descriptive: (verdict, measured) from the intervals of the mean
    relative perturbation."""
    pert = {} if ctx.S.leak is None else ctx.S.leak.perturbation
    ann = pert.get("ANN")
    snn = {k: v for k, v in pert.items() if k != "ANN"}
    if not ann or not snn:
        raise _NotRun("chapter 3 has no layer-wise perturbation")
    dead = chance_level_models(ctx.S, ctx.alpha)
    if dead:
        excluded = [f"{k} (clean accuracy in chapter 1 not above chance)" for k in dead]
        raise _NotTestable(f"{_excluded_text(excluded)}; not testable at this scale", excluded)
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


def _compound(parts: List[Judgement], rule: str, test: str, missing: Sequence[str] = ()) -> Judgement:
    """An 'every part' or 'several settings' judgement of pairwise McNemar parts.

    Every part: p = the largest part p (intersection-union); several settings: the parts' p Holm-adjusted within
    the claim, p = the second smallest (two settings must be significant).  The row's effect, interval and MDE are
    those of the part with the largest p.  ``missing``: parts not measured (an 'every part' claim then cannot be
    supported).
    """
    raw = {q.label: q.pvalues["McNemar"] for q in parts}
    several = rule == "A more robust than B in several settings"
    pvals = holm(raw) if several else dict(raw)
    if several:
        ranked = sorted(pvals.values())
        head = {"second smallest (Holm)": ranked[1] if len(ranked) > 1 else 1.0}
    else:
        head = {"largest (all parts)": max(pvals.values())}
    worst = max(parts, key=lambda q: raw[q.label])
    text = "; ".join(f"{q.label}: {q.text}, McNemar p = {_fmt_p(raw[q.label])}"
                     + (f" (Holm {_fmt_p(pvals[q.label])})" if several else "") for q in parts)
    if missing:
        text += f"; not measured: {', '.join(missing)}, so the claim cannot be supported"
    return Judgement(rule=rule, pvalues={**head, **pvals}, sign=worst.sign, text=text, test=test,
                     effect=worst.effect, ci_low=worst.ci_low, ci_high=worst.ci_high, mde=worst.mde,
                     n_images=worst.n_images, seeds=sorted({s for q in parts for s in q.seeds}),
                     power=f"weakest part {worst.label}: {worst.power}", parts=parts, incomplete=bool(missing))


def _part(label: str, j: Judgement) -> Judgement:
    j.label = label
    return j


def _c_clean_order(ctx: _Ctx) -> Judgement:
    """I1: ANN > SNN-BP and SNN-BP > SNN-conv in clean accuracy (chapter 1's test-set outcomes)."""
    m = ctx.S.models
    if m is None:
        raise _NotRun("chapter 1 has not run")
    arms: Dict[str, Dict[int, _Arm]] = {}
    for r in m.clean:
        if r.outcomes is None:
            raise _NotTestable(NO_OUTCOMES)
        arms.setdefault(r.kind, {})[r.seed] = _Arm(r.kind, r.outcomes, r.outcomes)
    if not all(k in arms for k in ("ANN", "SNN-BP", "SNN-conv")):
        raise _NotRun("chapter 1 lacks a model kind")
    parts = []
    for a, b in (("ANN", "SNN-BP"), ("SNN-BP", "SNN-conv")):
        P = _paired(_pairs(arms[a], arms[b]), ctx.chance, ctx.alpha, robustness=False)
        parts.append(_part(f"{a} > {b}", _pair_judgement("A more robust than B", P, ctx.margin, ctx.alpha)))
    j = _compound(parts, "A more accurate / robust than B in every part", "exact McNemar per pair (all must hold)")
    j.text += " (paper, VGG-9 on full CIFAR-10: ANN 89.5 > SNN-BP 87.1 > SNN-conv 85.6)"
    return j


def _c_bb_all_eps(ctx: _Ctx) -> Judgement:
    """I2: SNN-BP > ANN under black-box FGSM at 8, 16 and 32/255 (every budget)."""
    parts, missing = [], []
    for eps in (8.0, 16.0, 32.0):
        try:
            src, a = _blackbox_arms(ctx.S, "SNN-BP", "FGSM", eps)
            _, b = _blackbox_arms(ctx.S, "ANN", "FGSM", eps)
        except _NotRun:
            missing.append(f"{eps:g}/255")
            continue
        P = _paired(_pairs(a, b), ctx.chance, ctx.alpha, names=("SNN-BP", "ANN"))
        parts.append(_part(f"{eps:g}/255", _with_source(_pair_judgement("A more robust than B", P, ctx.margin,
                                                                        ctx.alpha), src)))
    if not parts:
        raise _NotRun("no black-box FGSM at 8, 16 or 32/255")
    return _compound(parts, "A more accurate / robust than B in every part",
                     "exact McNemar per budget (all must hold)", missing)


def _c_bp_vs_conv(ctx: _Ctx) -> Judgement:
    """I3: SNN-BP > SNN-conv in several of FGSM / PGD x white-box / black-box at 8/255 (chapter 4)."""
    tm = ctx.S.training_method
    if tm is None:
        raise _NotRun("chapter 4 has not run")
    parts = []
    for attack in ("FGSM", "PGD"):
        for setting in ("white-box", "black-box"):
            arms = {}
            for kind in ("SNN-BP", "SNN-conv"):
                arms[kind] = {r.seed: _arm(kind, r.result, _zero_grad(ctx.S, kind, r.seed)) for r in tm.rows
                              if r.kind == kind and r.attack == attack and r.setting == setting
                              and float(r.eps_255) == 8.0}
            if arms["SNN-BP"] and arms["SNN-conv"]:
                P = _paired(_pairs(arms["SNN-BP"], arms["SNN-conv"]), ctx.chance, ctx.alpha)
                parts.append(_part(f"{setting} {attack} 8/255",
                                   _pair_judgement("A more robust than B", P, ctx.margin, ctx.alpha)))
    if not parts:
        raise _NotRun("chapter 4 has no FGSM / PGD at 8/255 on SNN-BP and SNN-conv")
    return _compound(parts, "A more robust than B in several settings",
                     "exact McNemar per setting, Holm within the claim (chapter 4)")


def _c_cifar100(ctx: _Ctx):
    raise _NotTestable(CIFAR100_REASON)


#: (id, paper, claim, chapter, function of the claim context -> Judgement, or (verdict, measured) if descriptive)
CLAIMS: List[Tuple[str, str, str, str, Callable]] = [
    ("E1", "ECCV 2020", "SNN-BP is more robust than the ANN under black-box FGSM (8/255)", "04_training_method",
     _c_bb("FGSM")),
    ("E2", "ECCV 2020", "SNN-BP is more robust than the ANN under black-box PGD (8/255)", "04_training_method",
     _c_bb("PGD")),
    ("E3", "ECCV 2020", "The robustness findings hold on CIFAR-100 with VGG11", "04_training_method",
     _c_cifar100),
    ("E4", "ECCV 2020", "Under white-box attacks SNN-BP is at least as robust as the ANN", "04_training_method",
     _c_wb("A at least as robust as B", "SNN-BP", "ANN")),
    ("E5", "ECCV 2020", "The converted SNN is not more robust than the ANN", "04_training_method",
     _c_wb("A not more robust than B", "SNN-conv", "ANN")),
    ("E6", "ECCV 2020", "SNN-BP's adversarial accuracy rises as the number of timesteps falls", "02_discretization",
     _c_T("SNN-BP", "accuracy changes along a sweep")),
    ("E6b", "ECCV 2020", "An SNN-BP trained at fewer timesteps is more robust than one trained at more",
     "02_discretization", _c_trained_T),
    ("E7", "ECCV 2020", "Quantising the input to fewer levels raises SNN-BP's adversarial accuracy",
     "02_discretization", _c_quant("SNN-BP")),
    ("E8a", "ECCV 2020", "SNN-conv's adversarial accuracy is insensitive to the number of timesteps",
     "02_discretization", _c_T("SNN-conv", "no difference along a sweep")),
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


# ------------------------------------------------------------------------------------- per attack (chapter 5)
@dataclass
class AttackComparison:
    """One of E2's and E11's comparisons repeated under one attack of chapter 5 (a secondary, descriptive test).

    attack: the cells' name ("FGSM", "RFGSM", "BIM", "PGD"); comparison: what A and B are; measured: the two
    accuracies, images and seeds; judgement: the paired test (None when not testable or not run, ``reason`` says
    why); verdict: at the raw p (no multiplicity correction; the claims' verdicts use PGD and FGSM only).
    """

    attack: str
    comparison: str
    judgement: Optional[Judgement]
    verdict: str
    measured: str = ""
    reason: str = ""


#: the comparisons :func:`attack_family` repeats per attack: (label, claim the paper makes)
FAMILY_COMPARISONS = (("SNN-BP (A) vs ANN (B), worst case over the twin-crafted transfers", "A > B (E1, E2)"),
                      ("on SNN-BP: ANN-crafted (A) vs SNN-crafted (B) twin attack", "A > B (E11)"))


def attack_family(results: AttackSourceResults, num_classes: int = 10, margin: float = DEFAULT_MARGIN,
                  alpha: float = DEFAULT_ALPHA) -> List[AttackComparison]:
    """E2's black-box comparison (SNN-BP vs the ANN under the per-image worst case over the twin-crafted
    transfers) and E11's (ANN- vs SNN-crafted twin attacks on SNN-BP), repeated for every attack of chapter 5's
    ``results`` (e.g. the IJCNN paper's R-FGSM and BIM next to FGSM and PGD), each on the images its cells share,
    with the claims' guards and paired tests (McNemar at raw p: a check that the verdicts do not hang on the
    attack chosen, not a claim of its own).
    """
    S = StudyResults(attack_source=results, num_classes=num_classes)
    ctx = _Ctx(S, 1.0 / num_classes, float(margin), float(alpha))
    out: List[AttackComparison] = []
    for attack in results.attacks():
        def blackbox() -> _Paired:
            _, a = _blackbox_arms(S, "SNN-BP", attack, results.eps_255)
            _, b = _blackbox_arms(S, "ANN", attack, results.eps_255)
            return _paired(_pairs(a, b), ctx.chance, ctx.alpha)
        for (label, _), paired in zip(FAMILY_COMPARISONS, (blackbox, lambda: _source_paired(ctx, attack))):
            try:
                P = paired()
            except _NotRun as e:
                out.append(AttackComparison(attack, label, None, NOT_RUN, reason=str(e)))
                continue
            except _NotTestable as e:
                out.append(AttackComparison(attack, label, None, NOT_TESTABLE, reason=e.reason))
                continue
            j = _pair_judgement("A more robust than B", P, ctx.margin, ctx.alpha)
            out.append(AttackComparison(attack, label, j, j.verdict(ctx.alpha), measured=P.text))
    return out


# ------------------------------------------------------------------------------------------------- the verdicts
def trend(points: Sequence[Tuple[float, Accuracy]]) -> Dict[str, Any]:
    """Descriptive text of a sweep [(x, accuracy)] from the smallest to the largest x (no test: the verdicts'
    trend tests are in :func:`evaluate_claims`); direction 'rises', 'falls' or 'flat' by the point estimates."""
    pts = sorted(points, key=lambda p: p[0])
    if len(pts) < 2:
        return dict(direction="n/a", text="fewer than two points", first=None, last=None)
    (x0, a0), (x1, a1) = pts[0], pts[-1]
    direction = "rises" if a1.value > a0.value else "falls" if a1.value < a0.value else "flat"
    return dict(direction=direction, text=f"{format_accuracy(a0)} at {x0:g} → {format_accuracy(a1)} at {x1:g}",
                first=(x0, a0), last=(x1, a1))


def chance_level_models(S: StudyResults, alpha: float = DEFAULT_ALPHA) -> List[str]:
    """Model kinds (chapter 1) whose clean accuracy is not above chance (one-sided exact binomial test at alpha,
    chance = 1 / classes): their robustness says nothing."""
    out: List[str] = []
    for r in ([] if S.models is None else S.models.clean):
        k, n = int(r.accuracy.correct), int(r.accuracy.total)
        if not above_chance(k, n, 1.0 / S.num_classes, alpha).above and r.kind not in out:
            out.append(r.kind)
    return out


def _finite(x: Optional[float]) -> Optional[float]:
    return None if x is None or not math.isfinite(x) else float(x)


def evaluate_claims(results: Union[StudyResults, str, os.PathLike]) -> List[ClaimRow]:
    """One :class:`~snnlib.study.records.ClaimRow` per claim of :data:`CLAIMS`, judged by :data:`VERDICT_RULES`.

    ``results``: typed results or a results folder.  Margin (``equivalence_margin``, points) and alpha come from
    the run's parameters (defaults 3 points, 0.05).  The primary claims' tests are Holm-adjusted together.
    A results file that does not match its record raises :class:`~snnlib.study.records.RecordError`.
    """
    S = results if isinstance(results, StudyResults) else load_study(results)
    alpha = float(S.parameters.get("alpha", DEFAULT_ALPHA))
    ctx = _Ctx(S, 1.0 / S.num_classes, float(S.parameters.get("equivalence_margin", DEFAULT_MARGIN)), alpha)
    found: Dict[str, Any] = {}
    for cid, _, _, _, fn in CLAIMS:
        try:
            found[cid] = fn(ctx)
        except _NotRun as e:
            found[cid] = (NOT_RUN, str(e))
        except _NotTestable as e:
            found[cid] = (NOT_TESTABLE, e.reason, e.excluded)
    family = {f"{cid}/{k}": p for cid in PRIMARY if isinstance(found.get(cid), Judgement)
              for k, p in found[cid].pvalues.items()}
    adjusted = holm(family) if family else {}
    rows = []
    for cid, paper, text, nb, _ in CLAIMS:
        j = found[cid]
        primary = cid in PRIMARY
        base = dict(id=cid, paper=paper, claim=text, chapter=nb, scale=S.scale_notes.get(nb), primary=primary)
        if not isinstance(j, Judgement):
            test = "descriptive (not a paired test yet)" if cid == "E10" else None
            excluded = list(j[2]) if len(j) > 2 else []
            rows.append(ClaimRow(verdict=j[0], measured=j[1], test=test, excluded=excluded, **base))
            continue
        adj = {k: adjusted[f"{cid}/{k}"] for k in j.pvalues} if primary else None
        verdict = j.verdict(alpha, adj)
        ptext = ", ".join(f"{k} p = {_fmt_p(p)}" + (f" (Holm {_fmt_p(adj[k])})" if adj else "")
                          for k, p in j.pvalues.items()) if not j.parts else ""
        measured = "; ".join(x for x in (j.text, ptext, j.power if verdict == INCONCLUSIVE else "", j.secondary)
                             if x)
        main = next(iter(j.pvalues))
        rows.append(ClaimRow(verdict=verdict, measured=measured, test=j.test, effect=_finite(j.effect),
                             ci_low=_finite(j.ci_low), ci_high=_finite(j.ci_high), p_value=_finite(j.p_value),
                             p_adjusted=_finite(adj[main]) if adj else None, mde=_finite(j.mde),
                             n_images=j.n_images, seeds=list(j.seeds), excluded=list(j.excluded), **base))
    return rows


def count_verdicts(rows: Sequence[ClaimRow]) -> Dict[str, int]:
    """{verdict: number of claims} for every verdict (zeros included), in :data:`VERDICTS` order."""
    return {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
