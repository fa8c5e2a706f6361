"""Exact binomial (Clopper-Pearson) confidence intervals for accuracies; numpy/math only, no scipy."""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Tuple

__all__ = ["clopper_pearson", "Accuracy", "accuracy_from_counts", "betainc"]

_EPS = 1e-16
_FPMIN = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes ``betacf``)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    if abs(d) < _FPMIN:
        d = _FPMIN
    d = 1.0 / d
    h = d
    maxit = 10000 + int(10 * math.sqrt(max(a, b)))
    for m in range(1, maxit + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"betacf did not converge for a={a}, b={b}, x={x}")


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
           + a * math.log(x) + b * math.log1p(-x))
    bt = math.exp(lbt)
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * _betacf(a, b, x) / a
    return 1.0 - bt * _betacf(b, a, 1.0 - x) / b


def _beta_quantile(p: float, a: float, b: float) -> float:
    """x in [0, 1] with I_x(a, b) = p, by bisection (I_x is increasing in x)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if betainc(a, b, mid) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _check_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {type(v).__name__} {v!r}")
    return int(v)


def _check_confidence(confidence) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return confidence


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Tuple[float, float]:
    """Exact two-sided Clopper-Pearson interval (low, high) for a binomial proportion k/n.

    low = Beta^-1(alpha/2; k, n-k+1) (0 when k = 0), high = Beta^-1(1-alpha/2; k+1, n-k) (1 when k = n),
    with alpha = 1 - confidence.
    """
    k, n = _check_int("k", k), _check_int("n", n)
    confidence = _check_confidence(confidence)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must satisfy 0 <= k <= n, got k={k}, n={n}")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else _beta_quantile(alpha / 2, k, n - k + 1)
    high = 1.0 if k == n else _beta_quantile(1 - alpha / 2, k + 1, n - k)
    return low, high


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
