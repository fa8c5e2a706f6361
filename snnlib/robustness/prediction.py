"""Evaluation: batched predictions and accuracy with a 95 % Clopper-Pearson interval.

Models take pixels in [0, 1].  Predictions run under ``torch.inference_mode`` with the model in eval mode; an SNN's
Poisson encoder is reseeded from ``seed`` first, so the same seed gives the same numbers.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ..data import Split, to_float
from ..stats import Accuracy, accuracy_from_counts

__all__ = ["predict", "accuracy", "as_tensors"]


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


@torch.inference_mode()
def predict(model: nn.Module, x: Tensor, batch_size: int = 256, seed: Optional[int] = 0,
            device: Union[str, torch.device, None] = None) -> Tensor:
    """Predicted labels (N,) for pixels x (N, 3, 32, 32); model in eval mode, encoder reseeded from ``seed``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was = model.training
    model.eval()
    _reseed(model, seed)
    out = [model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, x.shape[0], batch_size)]
    model.train(was)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, data: Union[Split, Tuple[Tensor, Tensor]], batch_size: int = 256,
             seed: Optional[int] = 0, confidence: float = 0.95, device=None) -> Accuracy:
    """Top-1 accuracy with its Clopper-Pearson interval on a Split or an (x, y) pair."""
    x, y = as_tensors(data)
    pred = predict(model, x, batch_size, seed, device)
    return accuracy_from_counts(int((pred == y).sum()), int(y.numel()), confidence)
