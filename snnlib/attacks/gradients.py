"""Input-gradient estimators ("gradient modes") of an SNN or ANN, and the one entry point :func:`gradient`.

:data:`GRAD_MODES` maps a name to ``fn(model, x, y, targeted) -> (grad (B, C, H, W), objective (B,))``.  The
registry is filled once, here: "autograd", "bptt", "algorithm1" (this module) and the rate-based "rate", "rga" and
"ann_proxy" (:mod:`snnlib.attacks.rate`).  Add an estimator with :func:`register_grad_mode`.

Custom forward: an estimator that differentiates the model's own forward accepts a keyword ``forward`` (a callable
pixels (B, C, H, W) -> logits (B, classes), default ``model``); :class:`snnlib.attacks.Attack` passes its
``get_logits`` there.  "autograd", "bptt" and "algorithm1" take it; the rate and ANN-proxy modes differentiate a
forward of their own and do not (:func:`accepts_forward`).
"""
from __future__ import annotations

import contextlib
import inspect
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_eot
from .objective import attack_objective, input_gradient, is_spiking
from .rate import grad_ann_proxy, grad_rate, grad_rga

__all__ = ["GRAD_MODES", "GradFn", "Forward", "register_grad_mode", "resolve_grad_mode", "check_grad_mode",
           "accepts_forward", "encoder_grad", "gradient"]

GradFn = Callable[..., Tuple[Tensor, Tensor]]
#: pixels (B, C, H, W) in [0, 1] -> logits (B, classes)
Forward = Callable[[Tensor], Tensor]


def _grad_autograd(model: nn.Module, x: Tensor, y: Tensor, targeted: bool,
                   forward: Optional[Forward] = None) -> Tuple[Tensor, Tensor]:
    """Plain autograd input gradient of ``forward`` (default the model; for an SNN: whatever its encoder's ``grad``
    setting lets through)."""
    return input_gradient(model if forward is None else forward, x, y, targeted)


@contextlib.contextmanager
def encoder_grad(model: nn.Module, grad: str):
    """Set the model's input encoder ``grad`` ("ste" | "none") for the duration; models without one are left as is."""
    enc = getattr(model, "encoder", None)
    if enc is None or not hasattr(enc, "grad"):
        yield
        return
    old = enc.grad
    enc.grad = grad
    try:
        yield
    finally:
        enc.grad = old


def _grad_bptt(model: nn.Module, x: Tensor, y: Tensor, targeted: bool,
               forward: Optional[Forward] = None) -> Tuple[Tensor, Tensor]:
    """BPTT through the surrogate with a straight-through Poisson encoder (encoder grad forced to "ste")."""
    with encoder_grad(model, "ste"):
        return _grad_autograd(model, x, y, targeted, forward)


def _grad_algorithm1(model: nn.Module, x: Tensor, y: Tensor, targeted: bool,
                     forward: Optional[Forward] = None) -> Tuple[Tensor, Tensor]:
    """The papers' Algorithm 1: dL/d(first conv current), summed over time, mapped back by the transposed conv1.

    The spikes enter as constants (no autograd path to the pixels); the result is sum_t dL/ds_t, the gradient
    with respect to the normalised input, chained to pixels by d x_norm / d x = 2 * rate.  ``forward`` (default the
    model) must run ``model`` once on its input (that is where the first layer's current is captured).
    """
    if not hasattr(model, "capture_first_current") or not hasattr(model, "net"):
        raise ValueError("grad_mode 'algorithm1' needs a snnlib SpikingVGG (it hooks the first conv layer's current)")
    conv = model.net.features[0]
    if not isinstance(conv, nn.Conv2d):
        raise ValueError("grad_mode 'algorithm1' needs a first layer that is a Conv2d")
    chunk = getattr(model, "grad_time_chunk", None)
    if chunk is not None and getattr(model, "T", 0) > chunk:
        # a model simulated in checkpointed time pieces cannot hand out its first current over the whole sequence;
        # BPTT with the straight-through encoder is the same gradient (tests/unit/test_attacks.py checks it)
        return _grad_bptt(model, x, y, targeted, forward)
    B = x.shape[0]
    old_cap, old_rg = model.capture_first_current, conv.weight.requires_grad
    model.capture_first_current = True
    conv.weight.requires_grad_(True)  # so the current is part of a graph even for frozen weights
    try:
        with torch.enable_grad():
            obj = attack_objective((model if forward is None else forward)(x.detach()), y, targeted)
            cur = model.first_current
            if cur is None:
                raise RuntimeError("grad_mode 'algorithm1': the forward did not run the SNN (no first-layer current "
                                   "was captured); get_logits must call the attack's model")
            (gcur,) = torch.autograd.grad(obj.sum(), cur, allow_unused=True)
        if gcur is None:
            gcur = torch.zeros_like(cur)
        # (T, B, ...) or (T*B, ...) -> sum over time, in the weights' dtype (a bf16 model's current is bf16)
        G = gcur.reshape((-1, B) + tuple(gcur.shape[-3:])).to(conv.weight.dtype).sum(0)
        g_norm = F.conv_transpose2d(G, conv.weight.detach(), stride=conv.stride, padding=conv.padding,
                                    dilation=conv.dilation)
        scale = 2.0 * float(getattr(model.encoder, "rate", 1.0))
        return (g_norm * scale).contiguous(), obj.detach()
    finally:
        model.capture_first_current = old_cap
        model.first_current = None
        conv.weight.requires_grad_(old_rg)


#: name -> fn(model, x, y, targeted[, forward=None]) -> (grad (B, C, H, W), objective (B,)); extend with
#: :func:`register_grad_mode`.
GRAD_MODES: Dict[str, GradFn] = {"autograd": _grad_autograd, "bptt": _grad_bptt, "algorithm1": _grad_algorithm1,
                                 "rate": grad_rate, "rga": grad_rga, "ann_proxy": grad_ann_proxy}


def register_grad_mode(name: str, fn: GradFn) -> GradFn:
    """Add an estimator ``fn(model, x, y, targeted) -> (grad, objective)`` under ``name`` (not "auto"); give it a
    keyword parameter ``forward=None`` if it differentiates a forward an attack may replace (see the module doc)."""
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"a gradient mode needs a non-empty name other than 'auto', got {name!r}")
    if not callable(fn):
        raise TypeError(f"gradient mode {name!r} must be callable, got {type(fn).__name__}")
    GRAD_MODES[name] = fn
    return fn


def accepts_forward(mode: str) -> bool:
    """True when the registered estimator ``mode`` takes a ``forward`` keyword (differentiates a given forward)."""
    fn = GRAD_MODES[check_grad_mode(mode)] if mode != "auto" else _grad_autograd
    try:
        return "forward" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # callables without a signature
        return False


def check_grad_mode(mode) -> str:
    """"auto" or a registered gradient mode name."""
    if mode != "auto" and mode not in GRAD_MODES:
        raise ValueError(f"unknown grad_mode {mode!r}; choose 'auto' or one of {sorted(GRAD_MODES)}")
    return mode



def resolve_grad_mode(model: nn.Module, mode: str) -> str:
    """"auto" -> "bptt" for spiking models, "autograd" for ANNs; other names are checked against the registry."""
    check_grad_mode(mode)
    if mode == "auto":
        return "bptt" if is_spiking(model) else "autograd"
    return mode


def gradient(model: nn.Module, x: Tensor, y: Tensor, mode: str = "auto", eot: int = 1,
             targeted: bool = False, forward: Optional[Forward] = None) -> Tuple[Tensor, Tensor]:
    """Input gradient of the attack objective, averaged over ``eot`` forward/backward passes.

    x: (B, C, H, W) pixels in [0, 1]; y: (B,) labels (targets when ``targeted``).  Each pass draws fresh Poisson
    spikes (the encoder's generator just continues) and, in train mode, a fresh dropout mask.
    forward: the logits function to differentiate (pixels -> logits, default ``model`` itself), e.g. an attack's
    ``get_logits``; only modes that :func:`accepts_forward` take one (others raise ValueError).
    Returns (grad (B, C, H, W), objective per image (B,), both averaged over the passes).
    The model's mode and encoder state are used as they are (``Attack`` sets them up).
    """
    name = resolve_grad_mode(model, mode)
    fn = GRAD_MODES[name]
    eot = check_eot(eot)
    kw = {}
    if forward is not None:
        if not accepts_forward(name):
            raise ValueError(f"grad_mode {name!r} differentiates a forward of its own and cannot use a custom forward "
                             f"(an overridden get_logits); use 'autograd', 'bptt' or 'algorithm1', or register an "
                             f"estimator with a 'forward' keyword")
        kw["forward"] = forward
    g_sum, o_sum = fn(model, x, y, bool(targeted), **kw)
    for _ in range(eot - 1):
        g, o = fn(model, x, y, bool(targeted), **kw)
        g_sum, o_sum = g_sum + g, o_sum + o
    if eot > 1:
        g_sum, o_sum = g_sum / eot, o_sum / eot
    return g_sum, o_sum


