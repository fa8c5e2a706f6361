"""Per-image outcomes of one evaluation: which images a model got right, for every evaluation draw.

Two models scored on the same images are compared image by image (paired tests in :mod:`snnlib.stats`), so every
accuracy the study reports keeps the outcomes it was computed from.  An SNN's prediction is random (Poisson input),
so each image is scored over ``K`` independent draws: ``correct`` is a (K, N) bool array.  The per-image summary a
paired test uses is the **majority vote** over the draws (ties, possible for even K, count as wrong); the mean
correctness is kept too.

JSON form (compact): image ids as ``[start, stop)`` ranges, the (K, N) bits packed row-major with
``numpy.packbits`` and base64-encoded.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

__all__ = ["Outcomes", "pack_bits", "unpack_bits", "ids_to_ranges", "ranges_to_ids"]


def pack_bits(bits: np.ndarray) -> str:
    """Base64 text of a bool array packed row-major (the shape is stored separately)."""
    return base64.b64encode(np.packbits(np.asarray(bits, dtype=bool).ravel()).tobytes()).decode("ascii")


def unpack_bits(text: str, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`pack_bits`: a bool array of ``shape``."""
    n = int(np.prod(shape))
    raw = np.frombuffer(base64.b64decode(text.encode("ascii")), dtype=np.uint8)
    if raw.size * 8 < n:
        raise ValueError(f"packed outcomes hold {raw.size * 8} bits, expected {n} for shape {tuple(shape)}")
    return np.unpackbits(raw)[:n].astype(bool).reshape(tuple(shape))


def ids_to_ranges(ids: Sequence[int]) -> List[List[int]]:
    """Sorted-order-preserving run-length form: [[start, stop), ...] for consecutive runs of ``ids``."""
    out: List[List[int]] = []
    for i in (int(v) for v in ids):
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def ranges_to_ids(ranges: Sequence[Sequence[int]]) -> np.ndarray:
    """Inverse of :func:`ids_to_ranges`: (N,) int64 image ids."""
    if not ranges:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(int(a), int(b), dtype=np.int64) for a, b in ranges])


@dataclass(frozen=True)
class Outcomes:
    """Correctness of one model on N images over K evaluation draws.

    image_ids: (N,) global dataset indices of the images; correct: (K, N) bool; eval_seed: the seed the draws
    were derived from (None for a deterministic model, where K = 1); attack_seed: the seed of the attack that made
    the inputs (None for clean images).
    """

    image_ids: np.ndarray
    correct: np.ndarray
    eval_seed: Optional[int] = None
    attack_seed: Optional[int] = None
    meta: Dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        ids = np.asarray(self.image_ids, dtype=np.int64).ravel()
        c = np.asarray(self.correct, dtype=bool)
        if c.ndim == 1:
            c = c[None, :]
        if c.ndim != 2 or c.shape[1] != ids.size:
            raise ValueError(f"correct must be (draws K, images N) with N = {ids.size} image ids, "
                             f"got shape {tuple(c.shape)}")
        if c.shape[0] < 1:
            raise ValueError("outcomes need at least one evaluation draw")
        object.__setattr__(self, "image_ids", ids)
        object.__setattr__(self, "correct", c)

    @property
    def n(self) -> int:
        """Number of images N."""
        return int(self.image_ids.size)

    @property
    def draws(self) -> int:
        """Number of evaluation draws K."""
        return int(self.correct.shape[0])

    def majority(self) -> np.ndarray:
        """(N,) bool: right in more than half of the draws (a tie counts as wrong)."""
        return self.correct.sum(0) * 2 > self.draws

    def mean(self) -> np.ndarray:
        """(N,) float: share of draws in which the image was classified right."""
        return self.correct.mean(0)

    def accuracy(self) -> float:
        """Majority-vote accuracy (fraction)."""
        return float(self.majority().mean()) if self.n else float("nan")

    def mean_accuracy(self) -> float:
        """Accuracy averaged over images and draws (fraction)."""
        return float(self.correct.mean()) if self.n else float("nan")

    def subset(self, image_ids: Sequence[int]) -> "Outcomes":
        """The outcomes of the given images (each must be present), in the given order."""
        pos = {int(i): k for k, i in enumerate(self.image_ids)}
        missing = [int(i) for i in image_ids if int(i) not in pos]
        if missing:
            raise KeyError(f"images not in these outcomes: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        idx = np.array([pos[int(i)] for i in image_ids], dtype=np.int64)
        return Outcomes(self.image_ids[idx], self.correct[:, idx], self.eval_seed, self.attack_seed, dict(self.meta))

    def aligned(self, other: "Outcomes") -> bool:
        """True when both hold the same images in the same order (a paired comparison is then image by image)."""
        return self.n == other.n and bool(np.array_equal(self.image_ids, other.image_ids))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able form: ids as ranges, bits packed; see the module docstring."""
        return dict(image_ids=ids_to_ranges(self.image_ids), draws=self.draws, n=self.n,
                    correct=pack_bits(self.correct), eval_seed=self.eval_seed, attack_seed=self.attack_seed,
                    majority_accuracy=round(self.accuracy(), 6), mean_accuracy=round(self.mean_accuracy(), 6),
                    **({"meta": dict(self.meta)} if self.meta else {}))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Outcomes":
        """Inverse of :meth:`to_dict`; a missing field is a KeyError naming it."""
        for key in ("image_ids", "draws", "n", "correct"):
            if key not in d:
                raise KeyError(f"outcomes record lacks the field {key!r}")
        ids = ranges_to_ids(d["image_ids"])
        if ids.size != int(d["n"]):
            raise ValueError(f"outcomes record: {ids.size} image ids but n = {d['n']}")
        bits = unpack_bits(d["correct"], (int(d["draws"]), int(d["n"])))
        return cls(ids, bits, d.get("eval_seed"), d.get("attack_seed"), dict(d.get("meta") or {}))

    @staticmethod
    def all_correct(parts: Sequence["Outcomes"]) -> np.ndarray:
        """(N,) bool: the image survives every one of ``parts`` (majority vote of each); parts must be aligned."""
        if not parts:
            raise ValueError("need at least one set of outcomes")
        first = parts[0]
        for p in parts[1:]:
            if not first.aligned(p):
                raise ValueError("outcomes cover different images; take .subset(ids) of each first")
        return np.logical_and.reduce([p.majority() for p in parts])
