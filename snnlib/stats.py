"""Statistics over per-image 0/1 outcomes (an image classified correctly or not), on top of ``scipy.stats``.

All accuracies, differences, margins and rates are fractions in [0, 1] (a difference in [-1, 1]); counts are
numbers of images. Outcome vectors are ``(N,)`` bool arrays (numpy, torch or lists; 0/1 integers accepted), one
entry per image, and two vectors compared with each other must score the *same* images in the same order.

What is here, and the test behind each:

- ``clopper_pearson`` / ``accuracy_from_counts`` / ``accuracy_from_outcomes``: exact binomial interval of one
  accuracy (Clopper-Pearson, via beta quantiles).
- ``above_chance``: exact one-sided binomial test that an accuracy exceeds chance.
- ``paired_table`` / ``paired_comparison``: two models on the same images. Exact McNemar test (two-sided binomial
  test of the discordant pairs) and Tango's score interval for the difference of accuracies.
- ``equivalence_tost``: two one-sided Tango score tests that the difference lies within +-margin.
- ``mde_paired`` / ``images_needed``: Connor's (1987) power formula for the paired design.
- ``trend_test``: a trend in accuracy over ordered levels (T, leak) with the image as stratum (Mantel's extension
  of the Cochran-Armitage test; with two levels it is McNemar's test).
- ``pooled_paired``: several model seeds, each a paired table, pooled as Mantel-Haenszel strata.
- ``holm``: Holm-Bonferroni adjusted p-values.

Every result has ``to_dict()`` (JSON-able; infinite or undefined values become ``None``): the new results are frozen
dataclasses, ``clopper_pearson`` returns an ``Interval`` named tuple (it still unpacks as ``low, high``), and
``Accuracy`` is the same dataclass as before.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import optimize
from scipy import stats as sps

__all__ = ["Interval", "clopper_pearson", "Accuracy", "accuracy_from_counts", "accuracy_from_outcomes",
           "AboveChance", "above_chance", "PairedTable", "paired_table", "PairedComparison", "paired_comparison",
           "compare_paired_table", "tango_interval", "Equivalence", "equivalence_tost", "equivalence_from_table",
           "DetectableDifference", "mde_paired", "ImagesNeeded", "images_needed", "Trend", "trend_test",
           "PooledPaired", "pooled_paired", "holm", "decide_difference"]


# --------------------------------------------------------------------------------------------------- checks
def _check_int(name: str, v, minimum: Optional[int] = None) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {type(v).__name__} {v!r}")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {v}")
    return v


def _check_fraction(name: str, v, open_low: bool = True, open_high: bool = True) -> float:
    """A real number in (0, 1) (or with a closed end where asked)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
    v = float(v)
    ok_low = v > 0.0 if open_low else v >= 0.0
    ok_high = v < 1.0 if open_high else v <= 1.0
    if not (ok_low and ok_high):
        lo, hi = "(" if open_low else "[", ")" if open_high else "]"
        raise ValueError(f"{name} must be in {lo}0, 1{hi}, got {v}")
    return v


def _check_confidence(confidence) -> float:
    return _check_fraction("confidence", confidence)


def _check_alpha(alpha, name: str = "alpha") -> float:
    return _check_fraction(name, alpha)


def _outcomes(name: str, x, ndim: int = 1) -> np.ndarray:
    """Per-image 0/1 outcomes as a bool numpy array of the given rank (torch tensors and lists accepted)."""
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != ndim:
        shape = "(N,)" if ndim == 1 else "(L, N)"
        raise ValueError(f"{name} must have shape {shape} (one 0/1 outcome per image), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: it needs at least one image")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be bool (e.g. predictions == labels) or 0/1 integers, got dtype {arr.dtype}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1 (correct or not), got values {np.unique(arr)[:5]}")
    return arr.astype(bool)


def _json_ready(obj):
    """Nested dicts/tuples/lists with numpy scalars turned into Python ones, +-inf and nan into None."""
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


class _Record:
    """Mixin: ``to_dict()`` of a dataclass, JSON-able."""

    def to_dict(self) -> dict:
        """JSON-able dict of all fields (nan and +-inf become None)."""
        return _json_ready(asdict(self))


# ------------------------------------------------------------------------------------------ one accuracy
class Interval(NamedTuple):
    """A confidence interval (low, high) in the units of its estimate; unpacks as a plain tuple."""

    low: float
    high: float

    def to_dict(self) -> dict:
        """{'low': ..., 'high': ...}."""
        return {"low": float(self.low), "high": float(self.high)}


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Exact two-sided Clopper-Pearson interval (low, high) for a binomial proportion k/n (fractions in [0, 1]).

    low = Beta^-1(alpha/2; k, n-k+1) (0 when k = 0), high = Beta^-1(1-alpha/2; k+1, n-k) (1 when k = n),
    with alpha = 1 - confidence; quantiles from ``scipy.stats.beta.ppf``. Each tail holds at most alpha/2, so the
    interval covers the true proportion with probability at least ``confidence``.
    """
    k, n = _check_int("k", k), _check_int("n", n)
    confidence = _check_confidence(confidence)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must satisfy 0 <= k <= n, got k={k}, n={n}")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(sps.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(sps.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return Interval(low, high)


@dataclass
class Accuracy:
    """An accuracy with its exact binomial interval; value/low/high are fractions in [0, 1]."""

    correct: int
    total: int
    value: float
    low: float
    high: float
    confidence: float

    def __str__(self) -> str:
        return (f"{100 * self.value:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] "
                f"(n={self.total})")

    def to_dict(self) -> dict:
        """JSON-able dict of all fields."""
        return asdict(self)


def accuracy_from_counts(correct: int, total: int, confidence: float = 0.95) -> Accuracy:
    """Accuracy ``correct/total`` with its Clopper-Pearson interval at ``confidence``."""
    low, high = clopper_pearson(correct, total, confidence)
    correct, total = int(correct), int(total)
    return Accuracy(correct=correct, total=total, value=correct / total, low=low, high=high,
                    confidence=float(confidence))


def accuracy_from_outcomes(correct, confidence: float = 0.95) -> Accuracy:
    """Accuracy of per-image outcomes ``correct`` ((N,) bool) with its Clopper-Pearson interval."""
    c = _outcomes("correct", correct)
    return accuracy_from_counts(int(c.sum()), int(c.size), confidence)


@dataclass(frozen=True)
class AboveChance(_Record):
    """Exact one-sided binomial test of H0: accuracy <= chance against H1: accuracy > chance."""

    correct: int
    total: int
    accuracy: float
    chance: float
    p_value: float
    alpha: float
    above: bool


def above_chance(k: int, n: int, chance: float, alpha: float = 0.05) -> AboveChance:
    """Is the accuracy k/n above ``chance`` (e.g. 0.1 for 10 classes)? ``scipy.stats.binomtest``, one-sided.

    p = P(X >= k) for X ~ Binomial(n, chance); ``above`` is p < alpha.
    """
    k, n = _check_int("k", k), _check_int("n", n, minimum=1)
    if not 0 <= k <= n:
        raise ValueError(f"k must satisfy 0 <= k <= n, got k={k}, n={n}")
    chance = _check_fraction("chance", chance)
    alpha = _check_alpha(alpha)
    p = float(sps.binomtest(k, n, chance, alternative="greater").pvalue)
    return AboveChance(correct=k, total=n, accuracy=k / n, chance=chance, p_value=p, alpha=alpha, above=p < alpha)


# ------------------------------------------------------------------------------------- two paired models
@dataclass(frozen=True)
class PairedTable(_Record):
    """Counts of images by the outcomes of model a and model b on the same images (n_ab, 1 = correct).

    n11: both correct; n10: a correct, b wrong; n01: a wrong, b correct; n00: both wrong.
    """

    n11: int
    n10: int
    n01: int
    n00: int

    def __post_init__(self):
        for name in ("n11", "n10", "n01", "n00"):
            _check_int(name, getattr(self, name), minimum=0)
        if self.n < 1:
            raise ValueError("a PairedTable needs at least one image (n11 + n10 + n01 + n00 >= 1), got all zeros")

    @property
    def n(self) -> int:
        """Number of images."""
        return self.n11 + self.n10 + self.n01 + self.n00

    @property
    def discordant(self) -> int:
        """Images on which the two models disagree (n10 + n01)."""
        return self.n10 + self.n01

    @property
    def accuracy_a(self) -> float:
        return (self.n11 + self.n10) / self.n

    @property
    def accuracy_b(self) -> float:
        return (self.n11 + self.n01) / self.n

    @property
    def difference(self) -> float:
        """accuracy_a - accuracy_b = (n10 - n01) / n."""
        return (self.n10 - self.n01) / self.n

    @classmethod
    def from_dict(cls, d: Mapping[str, int]) -> "PairedTable":
        """Inverse of ``to_dict``: needs keys n11, n10, n01, n00."""
        missing = [k for k in ("n11", "n10", "n01", "n00") if k not in d]
        if missing:
            raise ValueError(f"a paired table needs the counts n11, n10, n01, n00; missing {missing}")
        return cls(n11=d["n11"], n10=d["n10"], n01=d["n01"], n00=d["n00"])


def paired_table(a, b) -> PairedTable:
    """The 2x2 table of two models' per-image outcomes a, b ((N,) bool each, the same images in the same order)."""
    a, b = _outcomes("a", a), _outcomes("b", b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must score the same images: got {a.size} and {b.size} outcomes")
    return PairedTable(n11=int((a & b).sum()), n10=int((a & ~b).sum()), n01=int((~a & b).sum()),
                       n00=int((~a & ~b).sum()))


def _tango_z(table: PairedTable, delta: float) -> float:
    """Tango's (1998) score statistic for H0: accuracy_a - accuracy_b = delta.

    Z = (n10 - n01 - n delta) / sqrt(n (2 q + delta (1 - delta))), q the maximum-likelihood estimate of the
    n01 cell probability under the constraint p10 - p01 = delta (the root of a quadratic). Decreasing in delta.
    At delta = 0 it is McNemar's z, (n10 - n01) / sqrt(n10 + n01).
    """
    n, b, c = table.n, table.n10, table.n01
    num = b - c - n * delta
    if abs(num) <= 1e-9 * n:
        return 0.0
    qa = 2.0 * n
    qb = -b - c + (2.0 * n - b + c) * delta
    qc = -c * delta * (1.0 - delta)
    q = (math.sqrt(max(qb * qb - 4.0 * qa * qc, 0.0)) - qb) / (2.0 * qa)
    var = n * (2.0 * q + delta * (1.0 - delta))
    if var <= 0.0:
        return math.copysign(math.inf, num)
    return num / math.sqrt(var)


def tango_interval(table: PairedTable, confidence: float = 0.95) -> Interval:
    """Tango's score interval for accuracy_a - accuracy_b on paired images: {delta : |Z(delta)| < z_(1-alpha/2)}.

    An asymptotic score interval (not exact) with close-to-nominal coverage even for small or zero discordance
    (Tango 1998, Stat Med 17:891; Fagerland et al. 2014 recommend it). With no discordant pairs it is
    +-z^2 / (n + z^2), so its width is governed by the number of images n. Endpoints by ``scipy.optimize.brentq``.
    """
    confidence = _check_confidence(confidence)
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    est, edge = table.difference, 1.0 - 1e-12

    def solve(target: float, lo: float, hi: float) -> float:
        return float(optimize.brentq(lambda d: _tango_z(table, d) - target, lo, hi, xtol=1e-12, rtol=1e-12))

    low = -1.0 if est <= -edge or _tango_z(table, -edge) <= z else solve(z, -edge, est)
    high = 1.0 if est >= edge or _tango_z(table, edge) >= -z else solve(-z, est, edge)
    return Interval(low, high)


@dataclass(frozen=True)
class PairedComparison(_Record):
    """Two models on the same images: accuracies, their difference (a - b) with an interval, and McNemar's test.

    ``p_value``: exact McNemar test, two-sided (H0: p10 = p01, i.e. equal accuracies), 1 when no image is
    discordant. ``low``/``high``: Tango score interval of the difference at ``confidence``. ``z``: McNemar's z
    (n10 - n01) / sqrt(n10 + n01), 0 without discordance. The exact p and the score interval can disagree at the
    margin (p just below alpha with 0 just inside the interval); decide on ``p_value``.
    """

    n: int
    n10: int
    n01: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    low: float
    high: float
    confidence: float
    z: float
    p_value: float
    test: str = "exact McNemar (two-sided binomial test of n10 vs n01)"
    interval: str = "Tango score interval"


def compare_paired_table(table: PairedTable, confidence: float = 0.95) -> PairedComparison:
    """``paired_comparison`` from a ``PairedTable`` (counts instead of per-image outcomes)."""
    if not isinstance(table, PairedTable):
        raise ValueError(f"table must be a PairedTable (see paired_table), got {type(table).__name__}")
    d = table.discordant
    p = 1.0 if d == 0 else float(sps.binomtest(table.n10, d, 0.5, alternative="two-sided").pvalue)
    low, high = tango_interval(table, confidence)
    return PairedComparison(n=table.n, n10=table.n10, n01=table.n01, accuracy_a=table.accuracy_a,
                            accuracy_b=table.accuracy_b, difference=table.difference, low=low, high=high,
                            confidence=float(confidence), z=_tango_z(table, 0.0), p_value=min(p, 1.0))


def paired_comparison(a, b, confidence: float = 0.95) -> PairedComparison:
    """Compare two models scored on the same images (a, b: (N,) bool, True = correct).

    Exact McNemar test on the discordant images (H0: the two accuracies are equal; two-sided binomial test of n10
    successes in n10 + n01 trials at 1/2) and Tango's score interval for accuracy_a - accuracy_b. Because it
    uses only the images on which the models disagree, it can detect a difference that two overlapping
    Clopper-Pearson intervals cannot (e.g. 13/100 vs 4/100 with 9 images discordant all one way: p = 0.0039).
    """
    return compare_paired_table(paired_table(a, b), confidence)


def decide_difference(cmp: PairedComparison, alpha: float = 0.05) -> str:
    """'greater' (a more accurate than b), 'less', or 'undecided', from McNemar's exact p at level alpha."""
    alpha = _check_alpha(alpha)
    if cmp.p_value >= alpha:
        return "undecided"
    return "greater" if cmp.difference > 0 else "less"


@dataclass(frozen=True)
class Equivalence(_Record):
    """Two one-sided tests (TOST) of H0: |accuracy_a - accuracy_b| >= margin against H1: |difference| < margin.

    ``p_lower``: test of H0 difference <= -margin; ``p_upper``: of H0 difference >= +margin; ``p_value`` is the
    larger; ``equivalent`` is p_value < alpha, the same as the (1 - 2 alpha) Tango interval (low, high) lying
    inside (-margin, +margin).
    """

    n: int
    n10: int
    n01: int
    difference: float
    margin: float
    alpha: float
    low: float
    high: float
    p_lower: float
    p_upper: float
    p_value: float
    equivalent: bool


def equivalence_from_table(table: PairedTable, margin: float, alpha: float = 0.05) -> Equivalence:
    """``equivalence_tost`` from a ``PairedTable``."""
    if not isinstance(table, PairedTable):
        raise ValueError(f"table must be a PairedTable (see paired_table), got {type(table).__name__}")
    margin = _check_fraction("margin", margin)
    alpha = _check_fraction("alpha", alpha, open_high=True)
    if alpha >= 0.5:
        raise ValueError(f"alpha must be below 0.5 for a (1 - 2 alpha) interval, got {alpha}")
    p_lower = float(sps.norm.sf(_tango_z(table, -margin)))
    p_upper = float(sps.norm.cdf(_tango_z(table, margin)))
    low, high = tango_interval(table, 1.0 - 2.0 * alpha)
    p = max(p_lower, p_upper)
    return Equivalence(n=table.n, n10=table.n10, n01=table.n01, difference=table.difference, margin=margin,
                       alpha=alpha, low=low, high=high, p_lower=p_lower, p_upper=p_upper, p_value=p,
                       equivalent=p < alpha)


def equivalence_tost(a, b, margin: float, alpha: float = 0.05) -> Equivalence:
    """Are two models' accuracies on the same images within +-margin (a fraction, e.g. 0.03)? Paired TOST.

    Each one-sided test uses Tango's score statistic at delta = -margin and delta = +margin (normal reference).
    Identical outcomes give equivalence once n > z_(1-alpha)^2 (1 - margin) / margin images (88 at 0.03, 5 %).
    """
    return equivalence_from_table(paired_table(a, b), margin, alpha)


# ----------------------------------------------------------------------------------------- power, images
def _discordance(discordance) -> float:
    """psi from a discordance rate or from two accuracies (p_a, p_b) assumed to err independently."""
    if isinstance(discordance, (tuple, list)):
        if len(discordance) != 2:
            raise ValueError(f"discordance as accuracies must be a pair (p_a, p_b), got {discordance!r}")
        pa = _check_fraction("p_a", discordance[0], open_low=False, open_high=False)
        pb = _check_fraction("p_b", discordance[1], open_low=False, open_high=False)
        return pa * (1 - pb) + pb * (1 - pa)
    return _check_fraction("discordance", discordance, open_low=False, open_high=False)


def _connor_n(delta: float, psi0: float, alpha: float, power: float) -> float:
    """Connor (1987) images needed: n = (z_a sqrt(psi) + z_b sqrt(psi - delta^2))^2 / delta^2, psi >= delta."""
    za, zb = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)
    psi = max(psi0, delta)
    return (za * math.sqrt(psi) + zb * math.sqrt(max(psi - delta * delta, 0.0))) ** 2 / (delta * delta)


@dataclass(frozen=True)
class DetectableDifference(_Record):
    """Minimal detectable difference |accuracy_a - accuracy_b| (a fraction) of the paired design.

    ``mde`` is None when not even a difference of 1 is detectable with n images at this power.
    """

    n: int
    discordance: float
    alpha: float
    power: float
    mde: Optional[float]
    method: str = "Connor 1987 (McNemar, normal approximation), discordance >= difference"


def mde_paired(n: int, discordance: Union[float, Tuple[float, float]], alpha: float = 0.05,
               power: float = 0.8) -> DetectableDifference:
    """Smallest accuracy difference that McNemar's two-sided test detects with probability ``power`` on n images.

    Solves Connor's (1987) formula sqrt(n) delta = z_(1-alpha/2) sqrt(psi) + z_power sqrt(psi - delta^2) for
    delta, where psi is the discordance rate (fraction of images on which the models disagree): either given, e.g.
    the observed (n10 + n01) / n, or computed from two accuracies (p_a, p_b) as if their errors were independent,
    psi = p_a (1 - p_b) + p_b (1 - p_a) (an upper end for models that err on the same images). A difference delta
    needs at least a fraction delta of discordant images, so psi is raised to delta where smaller; with no observed
    discordance this floor gives mde ~ (z_(1-alpha/2) + z_power)^2 / n (about 7.8 / n at 5 %, 80 %).
    A normal approximation: the exact McNemar test is a little less powerful with few discordant images.
    """
    n = _check_int("n", n, minimum=1)
    psi0 = _discordance(discordance)
    alpha, power = _check_alpha(alpha), _check_fraction("power", power)
    if _connor_n(1.0, psi0, alpha, power) > n:
        return DetectableDifference(n=n, discordance=psi0, alpha=alpha, power=power, mde=None)
    # n needed falls as delta grows, so the root of n_needed(delta) = n is unique
    mde = optimize.brentq(lambda d: _connor_n(d, psi0, alpha, power) - n, 1e-12, 1.0, xtol=1e-14, rtol=1e-12)
    return DetectableDifference(n=n, discordance=psi0, alpha=alpha, power=power, mde=float(mde))


@dataclass(frozen=True)
class ImagesNeeded(_Record):
    """Images needed (paired design) to detect ``difference`` with ``power``; may exceed the available test set."""

    difference: float
    discordance: float
    alpha: float
    power: float
    n_needed: int
    available: Optional[int]
    enough: Optional[bool]
    method: str = "Connor 1987 (McNemar, normal approximation), discordance >= difference"


def images_needed(difference: float, discordance: Union[float, Tuple[float, float]], alpha: float = 0.05,
                  power: float = 0.8, available: Optional[int] = None) -> ImagesNeeded:
    """Images needed so McNemar's two-sided test detects an accuracy difference with probability ``power``.

    n = ceil((z_(1-alpha/2) sqrt(psi) + z_power sqrt(psi - d^2))^2 / d^2) (Connor 1987), d = |difference|,
    psi = max(discordance rate, d) (see ``mde_paired`` for ``discordance``). Not capped: when ``available`` (the
    test-set size) is given, ``enough`` says whether it suffices.
    """
    if isinstance(difference, bool) or not isinstance(difference, numbers.Real) or not 0 < abs(difference) <= 1:
        raise ValueError(f"difference must be a nonzero accuracy difference in [-1, 1], got {difference!r}")
    d = abs(float(difference))
    psi0 = _discordance(discordance)
    alpha, power = _check_alpha(alpha), _check_fraction("power", power)
    if available is not None:
        available = _check_int("available", available, minimum=1)
    need = int(math.ceil(_connor_n(d, psi0, alpha, power) - 1e-9))
    return ImagesNeeded(difference=d, discordance=psi0, alpha=alpha, power=power, n_needed=need,
                        available=available, enough=None if available is None else need <= available)


# ------------------------------------------------------------------------------------------------- trend
@dataclass(frozen=True)
class Trend(_Record):
    """Trend of accuracy over ordered levels, the image as stratum (Mantel 1963 / stratified Cochran-Armitage).

    ``slope``: least-squares slope of accuracy against level (accuracy per unit of level); ``direction``:
    'rises', 'falls' or 'flat' (the sign of z, significant or not); ``z`` and two-sided ``p_value`` of H0: within
    each image, the outcome does not depend on the level (``p_method`` says whether p is the normal approximation
    or a seeded Monte Carlo permutation p); ``informative``: images whose outcome changes across levels (the others
    carry no information about a trend).
    """

    levels: Tuple[float, ...]
    accuracies: Tuple[float, ...]
    n: int
    informative: int
    slope: float
    direction: str
    z: float
    p_value: float
    p_method: str


def _permutation_p(y: np.ndarray, xc: np.ndarray, u_obs: float, permutations: int, seed: int) -> float:
    """Monte Carlo p of |U| >= |u_obs|, permuting each image's outcomes across levels; (1 + hits) / (1 + draws)."""
    rng = np.random.default_rng(seed)
    L, K = y.shape
    m = y.sum(axis=0)
    hits, done, chunk = 0, 0, max(1, 2_000_000 // (K * L))
    tol = 1e-9 * (1.0 + abs(u_obs))
    while done < permutations:
        r = min(chunk, permutations - done)
        ranks = rng.random((r, K, L)).argsort(axis=2).argsort(axis=2)  # a uniform permutation per image and draw
        u = ((ranks < m[None, :, None]) * xc).sum(axis=(1, 2))         # its first m_i levels hold the corrects
        hits += int((np.abs(u) >= abs(u_obs) - tol).sum())
        done += r
    return (hits + 1) / (permutations + 1)


def trend_test(outcomes, levels: Sequence[float], permutations: int = 0, seed: Optional[int] = None) -> Trend:
    """Does accuracy change monotonically over ordered levels? outcomes: (L, N) bool (level x image); levels: (L,).

    Statistic U = sum_l sum_i (x_l - mean x) y_li. Under H0 the L outcomes of each image are exchangeable across
    levels, so conditionally on image i's number of correct outcomes m_i, E[U] = 0 and
    Var[U] = sum_i m_i (L - m_i) / (L (L - 1)) * sum_l (x_l - mean x)^2 (a permutation within each image);
    z = U / sqrt(Var U), two-sided normal p. With ``permutations`` > 0 (and an integer ``seed``), p is instead the
    Monte Carlo permutation p over that many within-image permutations (the normal p is somewhat small with a few
    dozen informative images). Scores are the levels as given (pass log2(T) for a log scale); an affine change of
    them leaves z and p unchanged. With two levels this is McNemar's test. No informative image gives z = 0, p = 1.
    """
    y = _outcomes("outcomes", outcomes, ndim=2)
    L, N = y.shape
    x = np.asarray(levels, dtype=float)
    if x.shape != (L,):
        raise ValueError(f"levels must have one value per row of outcomes ({L}), got shape {x.shape}")
    if L < 2 or not np.isfinite(x).all() or len(np.unique(x)) != L:
        raise ValueError(f"levels must be at least two distinct finite numbers, got {x.tolist()}")
    permutations = _check_int("permutations", permutations, minimum=0)
    if permutations and (seed is None or isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ValueError(f"seed must be an integer when permutations > 0 (every random draw is seeded), got {seed!r}")
    xc = x - x.mean()
    sxx = float((xc ** 2).sum())
    acc = y.mean(axis=1)
    m = y.sum(axis=0)
    informative = (m > 0) & (m < L)
    var = float((m * (L - m)).sum() / (L * (L - 1)) * sxx)
    u = float(N * (xc * acc).sum())
    method = "normal approximation"
    if var <= 0.0 or abs(u) <= 1e-9 * math.sqrt(var):
        z, p = 0.0, 1.0
    else:
        z = u / math.sqrt(var)
        p = float(2.0 * sps.norm.sf(abs(z)))
        if permutations:
            p = _permutation_p(y[:, informative], xc, u, permutations, int(seed))
            method = f"Monte Carlo permutation within images ({permutations} draws, seed {int(seed)})"
    slope = float((xc * acc).sum() / sxx) if z != 0.0 else 0.0
    direction = "rises" if z > 0 else "falls" if z < 0 else "flat"
    return Trend(levels=tuple(float(v) for v in x), accuracies=tuple(float(v) for v in acc), n=int(N),
                 informative=int(informative.sum()), slope=slope, direction=direction, z=float(z),
                 p_value=min(p, 1.0), p_method=method)


# ------------------------------------------------------------------------------------------ seeds pooled
@dataclass(frozen=True)
class PooledPaired(_Record):
    """Paired comparisons of several model seeds (each its own table) and their Mantel-Haenszel pooling.

    ``per_seed``: each seed's comparison, keyed by label. Pooled over all (seed, image) pairs: ``difference`` =
    sum(n10 - n01) / sum(n) (the Mantel-Haenszel risk difference for matched pairs) with Tango's interval on the
    summed table; ``p_value``: exact McNemar test on the summed discordant counts (the Mantel-Haenszel test with
    each pair a stratum); ``odds_ratio`` = sum n10 / sum n01 (the Mantel-Haenszel matched-pairs odds ratio) with
    its exact conditional interval (Clopper-Pearson on n10 of n10 + n01, mapped by p / (1 - p)).
    ``p_heterogeneity``: chi-square test that the seeds split their discordant images alike (None with fewer than
    two seeds having discordant images). ``seeds_agree``: every seed's difference has the pooled sign.
    """

    per_seed: Dict[str, PairedComparison]
    n: int
    n10: int
    n01: int
    difference: float
    low: float
    high: float
    confidence: float
    p_value: float
    odds_ratio: float
    odds_ratio_low: float
    odds_ratio_high: float
    p_heterogeneity: Optional[float]
    seeds_agree: bool


def pooled_paired(tables: Union[Mapping[str, PairedTable], Sequence[PairedTable]],
                  confidence: float = 0.95) -> PooledPaired:
    """Pool paired tables of several model seeds (a mapping label -> PairedTable, or a sequence labelled 0, 1, ...).

    Treats every (seed, image) pair as its own stratum, so it assumes pairs independent across seeds; the seeds
    score the same images, so when they agree image by image the pooled p overstates the evidence. Read it with
    ``per_seed`` and ``seeds_agree``.
    """
    items = list(tables.items()) if isinstance(tables, Mapping) else [(str(i), t) for i, t in enumerate(tables)]
    if not items:
        raise ValueError("tables is empty: pass at least one PairedTable (one per model seed)")
    for label, t in items:
        if not isinstance(t, PairedTable):
            raise ValueError(f"tables[{label!r}] must be a PairedTable (see paired_table), got {type(t).__name__}")
    confidence = _check_confidence(confidence)
    per_seed = {str(k): compare_paired_table(t, confidence) for k, t in items}
    total = PairedTable(**{f: sum(getattr(t, f) for _, t in items) for f in ("n11", "n10", "n01", "n00")})
    pooled = compare_paired_table(total, confidence)
    b, c = total.n10, total.n01
    if b + c == 0:
        odds, or_low, or_high = math.nan, 0.0, math.inf
    else:
        lo, hi = clopper_pearson(b, b + c, confidence)
        odds = math.inf if c == 0 else b / c
        or_low = lo / (1 - lo) if lo < 1 else math.inf
        or_high = math.inf if hi >= 1 else hi / (1 - hi)
    rows = [(t.n10, t.n01) for _, t in items if t.discordant > 0]
    p_het = None
    if len(rows) >= 2 and all(sum(col) > 0 for col in zip(*rows)):
        p_het = float(sps.chi2_contingency(np.array(rows), correction=False)[1])
    elif len(rows) >= 2:
        p_het = 1.0  # every seed's discordant images all go the same way: identical splits
    sign = np.sign(pooled.difference)
    agree = all(np.sign(c.difference) == sign for c in per_seed.values())
    return PooledPaired(per_seed=per_seed, n=total.n, n10=b, n01=c, difference=pooled.difference, low=pooled.low,
                        high=pooled.high, confidence=confidence, p_value=pooled.p_value, odds_ratio=odds,
                        odds_ratio_low=or_low, odds_ratio_high=or_high, p_heterogeneity=p_het, seeds_agree=agree)


# ---------------------------------------------------------------------------------- multiple comparisons
def holm(pvalues: Mapping[str, float]) -> Dict[str, float]:
    """Holm-Bonferroni adjusted p-values, same keys: sort ascending p_(1) <= ... <= p_(m); the adjusted
    p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). Rejecting adjusted p < alpha controls the family-wise error."""
    if not isinstance(pvalues, Mapping):
        raise ValueError(f"pvalues must be a mapping name -> p-value, got {type(pvalues).__name__}")
    for k, p in pvalues.items():
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"pvalues[{k!r}] must be a p-value in [0, 1], got {p!r}")
    keys = sorted(pvalues, key=lambda k: float(pvalues[k]))
    m, running, adjusted = len(keys), 0.0, {}
    for i, k in enumerate(keys):
        running = max(running, min(1.0, (m - i) * float(pvalues[k])))
        adjusted[k] = running
    return {k: adjusted[k] for k in pvalues}
