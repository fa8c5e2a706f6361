"""Independent, reproducible random streams derived from one named seed.

One user-facing seed (an attack's ``seed``, an evaluation's ``eval_seed``) drives several random draws: a random
start, the Poisson spikes, dropout masks.  Seeding them all with the same number makes the streams *identical*
(PGD's random-start uniforms would be the very numbers of the first Poisson step).  Here every draw gets its own
stream, derived from ``(seed, purpose, *keys)`` with :class:`numpy.random.SeedSequence`: the purpose string is
hashed (SHA-256) into the sequence's spawn key together with the integer keys (an image id, a draw index), so
different purposes or keys give statistically independent streams and the same arguments always give the same one.

Purposes used by snnlib (any non-empty string works):

* ``"attack.noise"``   — an attack's random start / random step (PGD, R-FGSM);
* ``"attack.encoder"`` — the source SNN's Poisson spikes while crafting;
* ``"attack.dropout"`` — the source's dropout masks while crafting in train mode;
* ``"eval.encoder"``   — the Poisson spikes of one image in one evaluation draw (keys: image id, draw index);
* ``"data.validation"`` — which training images the study holds out for validation (``study.pipeline``);
* ``"train.validation"`` — the evaluation seed of SNN-BP's per-epoch validation accuracy (``study.pipeline``).
"""
from __future__ import annotations

import hashlib
import numbers
from typing import Iterable, Tuple, Union

import numpy as np
import torch

__all__ = ["ATTACK_NOISE", "ATTACK_ENCODER", "ATTACK_DROPOUT", "EVAL_ENCODER", "derive_seed", "derive_seeds",
           "generator"]

ATTACK_NOISE = "attack.noise"
ATTACK_ENCODER = "attack.encoder"
ATTACK_DROPOUT = "attack.dropout"
EVAL_ENCODER = "eval.encoder"

_SEED_BITS = 63  # derived seeds fit a signed int64 tensor and torch.Generator.manual_seed


def _check_nonnegative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value}; use e.g. abs(seed) or seed % 2**63")
    return int(value)


def _purpose_words(purpose) -> Tuple[int, ...]:
    if not isinstance(purpose, str) or not purpose:
        raise ValueError(f"purpose must be a non-empty string such as 'attack.noise', got {purpose!r}")
    digest = hashlib.sha256(purpose.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))


def derive_seed(seed: int, purpose: str, *keys: int) -> int:
    """A seed in [0, 2**63) for the stream ``purpose`` (and integer ``keys``) of the user seed ``seed``.

    seed, keys: non-negative ints; purpose: a non-empty string.  Deterministic: same arguments, same result;
    distinct purposes or keys give independent streams.
    """
    seed = _check_nonnegative_int("seed", seed)
    words = _purpose_words(purpose)
    keys = tuple(_check_nonnegative_int(f"keys[{i}]", k) for i, k in enumerate(keys))
    state = np.random.SeedSequence(entropy=seed, spawn_key=words + keys).generate_state(2, np.uint64)
    return int(state[0]) >> (64 - _SEED_BITS)


def derive_seeds(seed: int, purpose: str, ids: Union[torch.Tensor, Iterable[int]], *keys: int) -> torch.Tensor:
    """Seeds (N,) int64, one per id: ``derive_seed(seed, purpose, id, *keys)`` (e.g. ids = image ids, keys = draw)."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(f"ids must be a 1-D integer tensor, got dtype {ids.dtype} and shape {tuple(ids.shape)}")
        ids = ids.tolist()
    return torch.tensor([derive_seed(seed, purpose, i, *keys) for i in ids], dtype=torch.int64)


def generator(seed: int, purpose: str, *keys: int, device: Union[str, torch.device] = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` ``(seed, purpose, *keys)``."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(derive_seed(seed, purpose, *keys))
    return g
