"""Replication: the study's claims judged by two independent runs of the same profile, side by side.

Two runs of one profile on two kinds of CPU train other weights from the same recipe and seeds (float rounding,
amplified by SGD), so they are two independent training runs attacked on the same images.  A verdict that flips
between them hangs on the training run; one that holds in both does not.  :func:`compare_runs` pairs the claims
of two results folders (or two lists of :class:`~snnlib.study.records.ClaimRow`) by id.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

from .records import ClaimRow

__all__ = ["Replication", "compare_runs"]


@dataclass(frozen=True)
class Replication:
    """One claim in run A and in run B (None: the claim is missing from that run's summary)."""

    id: str
    claim: str
    primary: bool
    a: Optional[ClaimRow]
    b: Optional[ClaimRow]

    @property
    def same_verdict(self) -> bool:
        """Both runs reached the same verdict."""
        return self.a is not None and self.b is not None and self.a.verdict == self.b.verdict

    @property
    def effects_agree(self) -> Optional[bool]:
        """Each run's effect (points) lies inside the other's 95 % interval; None when either has no interval."""
        if self.a is None or self.b is None:
            return None
        rows = (self.a, self.b)
        if any(r.effect is None or r.ci_low is None or r.ci_high is None for r in rows):
            return None
        return all(o.ci_low <= r.effect <= o.ci_high for r, o in (rows, rows[::-1]))


def _claims(run: Union[str, os.PathLike, Sequence[ClaimRow]]) -> List[ClaimRow]:
    if isinstance(run, (str, os.PathLike)):
        from .claims import evaluate_claims
        return evaluate_claims(run)
    rows = list(run)
    bad = [type(r).__name__ for r in rows if not isinstance(r, ClaimRow)]
    if bad:
        raise TypeError(f"a run is a results folder or a list of ClaimRow, got a list holding {bad[0]}")
    return rows


def compare_runs(run_a: Union[str, os.PathLike, Sequence[ClaimRow]],
                 run_b: Union[str, os.PathLike, Sequence[ClaimRow]]) -> List[Replication]:
    """Every claim of either run, in run A's order (then B's extra ones), with both runs' rows.

    run_a, run_b: a results folder (its claims are judged afresh by
    :func:`snnlib.study.claims.evaluate_claims`) or the claim rows of a summary."""
    a, b = _claims(run_a), _claims(run_b)
    by_b = {r.id: r for r in b}
    by_a = {r.id: r for r in a}
    out = [Replication(r.id, r.claim, r.primary, r, by_b.get(r.id)) for r in a]
    out += [Replication(r.id, r.claim, r.primary, None, r) for r in b if r.id not in by_a]
    return out
