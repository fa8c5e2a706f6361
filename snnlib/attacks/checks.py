"""Argument checks shared by the attacks: budgets, step counts, step sizes, EOT passes, inputs."""
from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
from torch import Tensor

__all__ = ["check_eps", "check_steps", "check_step_size", "check_eot", "check_int", "check_inputs"]


def check_eps(eps) -> float:
    """eps as a float in [0, 1] pixel units, or a clear error (hints x/255 for values in (1, 255])."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps (epsilon) must be a number in [0, 1] pixel units, e.g. 8/255; got "
                        f"{type(eps).__name__} {eps!r}")
    eps = float(eps)
    if math.isnan(eps) or not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps: epsilon must be in [0, 1] pixel units, e.g. 8/255; got {eps!r}"
                         + (f" (did you mean {eps:g}/255 = {eps / 255:.5f}?)" if 1.0 < eps <= 255.0 else ""))
    return eps


def check_steps(steps, name: str = "steps") -> int:
    """An int >= 1."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1, got {type(steps).__name__} {steps!r}")
    if steps < 1:
        raise ValueError(f"{name} must be an int >= 1, got {steps}")
    return int(steps)


def check_step_size(alpha, name: str = "alpha (step size)", allow_zero: bool = False) -> float:
    """A finite step size > 0 (>= 0 with allow_zero) in pixel units."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"{name} must be a positive number in pixel units, got {type(alpha).__name__} {alpha!r}")
    alpha = float(alpha)
    if math.isnan(alpha) or math.isinf(alpha) or alpha < 0 or (alpha == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} (pixel units, e.g. 2/255), got {alpha!r}")
    return alpha


def check_eot(eot) -> int:
    """EOT passes per step: an int >= 1."""
    if isinstance(eot, bool) or not isinstance(eot, numbers.Integral):
        raise TypeError(f"eot (gradient passes averaged per step) must be an int >= 1, got {type(eot).__name__} {eot!r}")
    if eot < 1:
        raise ValueError(f"eot (gradient passes averaged per step) must be an int >= 1, got {eot}")
    return int(eot)


def check_int(name: str, v, minimum: Optional[int] = None, allow_none: bool = False):
    """An int (not a bool) >= minimum, or None when allowed."""
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


def check_inputs(x, y) -> None:
    """x: float tensor (B, C, H, W) with values in [0, 1]; y: integer tensor (B,)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of pixels in [0, 1], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be float pixels in [0, 1] (use snnlib.data.to_float for uint8), got {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must hold pixels in [0, 1], got values in [{float(x.min()):g}, {float(x.max()):g}]")
    if not isinstance(y, Tensor):
        raise TypeError(f"y (labels) must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"y (labels) must be an integer tensor of class indices, got {y.dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y (labels) must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    if y.numel() and y.min() < 0:
        raise ValueError("y (labels) must be non-negative class indices")


