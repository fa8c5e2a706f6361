"""Evaluation: batched predictions and accuracy with a 95 % Clopper-Pearson interval.

Models take pixels in [0, 1].  Predictions run under ``torch.inference_mode`` with the model in eval mode; an SNN's
Poisson encoder is reseeded from ``seed`` first, so the same seed gives the same numbers.

:func:`predict_draws` scores every image over K independent Poisson draws, each image's spikes from its own stream
``derive_seed(seed, "eval.encoder", image_id, draw)`` (:mod:`snnlib.seeding`), so a prediction depends only on
(seed, image id, draw index), not on the batch size or on the other images of its batch.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ..data import Split, to_float
from ..encoding import DirectEncoder
from ..seeding import EVAL_ENCODER, derive_seeds
from ..stats import Accuracy, accuracy_from_counts
from .outcomes import Outcomes

__all__ = ["predict", "predict_draws", "is_stochastic", "score", "accuracy", "as_tensors"]


def as_tensors(data: Union[Split, Tuple[Tensor, Tensor]]) -> Tuple[Tensor, Tensor]:
    """(x float (N, 3, 32, 32) in [0, 1], y int64 (N,)) from a Split or an (x, y) pair."""
    if isinstance(data, Split):
        return to_float(data.images), data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        if x.dtype == torch.uint8:
            raise TypeError("pass float pixels in [0, 1] (use snnlib.data.to_float), not uint8 images")
        return x, y
    raise TypeError(f"data must be a snnlib.data.Split or an (images, labels) pair, got {type(data).__name__}")


def _reseed(model: nn.Module, seed: Optional[int]) -> None:
    if seed is None:
        return
    enc = getattr(model, "encoder", None)
    if enc is not None and hasattr(enc, "reseed"):
        enc.reseed(seed)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


@torch.inference_mode()
def predict(model: nn.Module, x: Tensor, batch_size: int = 256, seed: Optional[int] = 0,
            device: Union[str, torch.device, None] = None) -> Tensor:
    """Predicted labels (N,) for pixels x (N, 3, 32, 32); model in eval mode, encoder reseeded from ``seed``.

    One batch stream: an SNN's predictions depend on the batch size (see :func:`predict_draws` for per-image
    streams)."""
    _check_batch_size(batch_size)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was = model.training
    model.eval()
    _reseed(model, seed)
    out = [model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, x.shape[0], batch_size)]
    model.train(was)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def _check_image_ids(image_ids, n: int) -> Tensor:
    if image_ids is None:
        return torch.arange(n)
    if not isinstance(image_ids, Tensor):
        image_ids = torch.as_tensor(image_ids)
    if image_ids.dim() != 1 or image_ids.shape[0] != n or image_ids.is_floating_point() or image_ids.dtype == torch.bool:
        raise ValueError(f"image_ids must be {n} non-negative integers (one per image, e.g. Split.indices), got dtype "
                         f"{image_ids.dtype} and shape {tuple(image_ids.shape)}")
    if n and int(image_ids.min()) < 0:
        raise ValueError("image_ids must be non-negative integers")
    return image_ids.cpu()


@torch.inference_mode()
def predict_draws(model: nn.Module, x: Tensor, draws: int = 1, seed: int = 0, image_ids=None,
                  batch_size: int = 256, device: Union[str, torch.device, None] = None) -> Tensor:
    """Predicted labels (draws, N) int64 for pixels x (N, 3, 32, 32) over ``draws`` independent Poisson draws.

    Image n's spikes in draw k come from its own generator seeded with ``derive_seed(seed, "eval.encoder",
    image_ids[n], k)``, so the result does not depend on ``batch_size`` nor on which images share a batch.
    image_ids: one non-negative int per image (default ``arange(N)``; pass the global data-set indices to make
    predictions comparable across subsets).  Model in eval mode (restored afterwards).  A model without randomness
    (an ANN, a DirectEncoder SNN) is run once and its predictions repeated over the draws.
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be an int >= 1 (independent Poisson draws per image), got {draws!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _check_batch_size(batch_size)
    n = int(x.shape[0])
    ids = _check_image_ids(image_ids, n)
    enc = getattr(model, "encoder", None)
    if not is_stochastic(model):
        return predict(model, x, batch_size, None, device).unsqueeze(0).expand(draws, n).clone()
    if not hasattr(enc, "set_sample_seeds"):
        raise TypeError(f"predict_draws needs an encoder with per-sample streams (set_sample_seeds), such as "
                        f"snnlib's PoissonEncoder; got {type(enc).__name__}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was = model.training
    model.eval()
    out = torch.empty(draws, n, dtype=torch.long)
    try:
        for k in range(draws):
            for i in range(0, n, batch_size):
                enc.set_sample_seeds(derive_seeds(seed, EVAL_ENCODER, ids[i:i + batch_size], k))
                out[k, i:i + batch_size] = model(x[i:i + batch_size].to(device)).argmax(1).cpu()
    finally:
        enc.set_sample_seeds(None)
        model.train(was)
    return out


def is_stochastic(model: nn.Module) -> bool:
    """True when the model's prediction is random (an SNN with a Poisson-like encoder); False for an ANN or a
    DirectEncoder SNN, whose K evaluation draws would all be equal."""
    enc = getattr(model, "encoder", None)
    return enc is not None and not isinstance(enc, DirectEncoder)


def score(model: nn.Module, x: Tensor, y: Tensor, *, draws: int = 1, seed: Optional[int] = 0, image_ids=None,
          attack_seed: Optional[int] = None, batch_size: int = 256, device=None) -> Outcomes:
    """Per-image correctness of ``model`` on pixels x (N, 3, 32, 32) with labels y (N,) as :class:`Outcomes`.

    A stochastic model is scored over ``draws`` Poisson draws from the evaluation stream of ``seed``
    (:func:`predict_draws`: independent of the batch size); a deterministic one once (K = 1, eval_seed None).
    ``seed=None`` keeps the legacy single pass with the encoder's current stream (no reseeding; K = 1).
    image_ids: global data-set indices (default 0..N-1); attack_seed: recorded with the outcomes (None: clean).
    """
    y = torch.as_tensor(y).cpu()
    ids = _check_image_ids(image_ids, int(x.shape[0]))
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must be (N,) labels for the N = {x.shape[0]} images, got shape {tuple(y.shape)}")
    if seed is None:
        pred, eval_seed = predict(model, x, batch_size, None, device).unsqueeze(0), None
    elif is_stochastic(model):
        pred, eval_seed = predict_draws(model, x, draws, seed, ids, batch_size, device), int(seed)
    else:
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws must be an int >= 1 (independent Poisson draws per image), got {draws!r}")
        pred, eval_seed = predict(model, x, batch_size, None, device).unsqueeze(0), None
    return Outcomes(ids.numpy(), (pred == y.unsqueeze(0)).numpy(), eval_seed, attack_seed)


def accuracy(model: nn.Module, data: Union[Split, Tuple[Tensor, Tensor]], batch_size: int = 256,
             seed: Optional[int] = 0, confidence: float = 0.95, device=None) -> Accuracy:
    """Top-1 accuracy with its Clopper-Pearson interval on a Split or an (x, y) pair."""
    x, y = as_tensors(data)
    pred = predict(model, x, batch_size, seed, device)
    return accuracy_from_counts(int((pred == y).sum()), int(y.numel()), confidence)
