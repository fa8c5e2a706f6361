"""How the book writes numbers: one accuracy format for tables, glued text, verdicts and figures."""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Tuple, Union

from ..stats import Accuracy

__all__ = ["accuracy_fractions", "format_accuracy", "format_percent", "percent_with_errors", "format_duration",
           "attack_label"]

#: how the book names an attack whose results record stores it in upper case without punctuation
ATTACK_LABELS = {"RFGSM": "R-FGSM"}


def attack_label(name: str) -> str:
    """The attack's name as the literature writes it: "RFGSM" -> "R-FGSM"; other names unchanged."""
    return ATTACK_LABELS.get(name, name)

AccuracyLike = Union[Accuracy, Mapping[str, Any]]


def accuracy_fractions(acc: AccuracyLike) -> Tuple[float, float, float]:
    """(value, low, high) as fractions in [0, 1] of an Accuracy or a mapping with those keys."""
    if isinstance(acc, Accuracy):
        return float(acc.value), float(acc.low), float(acc.high)
    if isinstance(acc, Mapping):
        missing = [k for k in ("value", "low", "high") if k not in acc]
        if missing:
            raise KeyError(f"accuracy mapping lacks {missing}; expected value, low and high (fractions)")
        return float(acc["value"]), float(acc["low"]), float(acc["high"])
    raise TypeError(f"expected a snnlib.stats.Accuracy or a mapping with value/low/high, got {type(acc).__name__}")


def format_accuracy(acc: AccuracyLike, unit: str = "%") -> str:
    """"56.6% [53.5, 59.7]": the accuracy and its interval in percent, one decimal (unit="" in a "(%)" column)."""
    v, lo, hi = accuracy_fractions(acc)
    return f"{100 * v:.1f}{unit} [{100 * lo:.1f}, {100 * hi:.1f}]"


def format_percent(acc: AccuracyLike) -> str:
    """"56.6%": the accuracy alone, in percent with one decimal."""
    return f"{100 * accuracy_fractions(acc)[0]:.1f}%"


def percent_with_errors(acc: AccuracyLike) -> Tuple[float, float, float]:
    """(value, value - low, high - value) in percent: a point and its asymmetric error bar."""
    v, lo, hi = (100 * f for f in accuracy_fractions(acc))
    return v, v - lo, hi - v


def format_duration(seconds: Optional[float]) -> str:
    """"12m 05s" (whole seconds); "–" when unknown (None or nan)."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    s = int(seconds)
    return f"{s // 60}m {s % 60:02d}s"
