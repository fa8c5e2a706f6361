"""Integrate-and-fire neurons: surrogate-gradient registry, pure step functions, multi-step modules.

Conventions (as in the released code of Sharmin et al. 2020, reference/papers.md 1.5 and 1.14):

* membrane potential ``u`` and threshold ``threshold`` are in the same (arbitrary) current units;
* the surrogate acts on the *normalised* membrane ``v = u / threshold - 1``, so dS/du = sg'(v) / threshold;
* ``delay=True`` (default, faithful): the spike of step t is decided on the membrane left after step t-1,
  ``S_t = H(u_{t-1} - threshold)`` then ``u_t = leak * u_{t-1} + I_t - threshold * S_t``.  Every spiking layer
  therefore adds one timestep of latency.  ``delay=False`` is the common textbook order
  ``u' = leak * u + I; S = H(u' - threshold); u = u' - threshold * S``;
* ``reset="subtract"`` (default) removes the threshold and keeps the residue; ``reset="zero"`` sets the membrane
  to 0 after a spike.  The reset is detached from the graph, as in the released code.
* IF is the same neuron with ``leak = 1``.

Tensors over time are (T, B, ...).  The fused multi-step function stores only the normalised membrane per step for
the backward pass, so BPTT memory is one tensor per step and layer.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor, nn

__all__ = [
    "Surrogate", "SURROGATES", "get_surrogate", "register_surrogate", "spike",
    "LIFState", "lif_step", "lif_multistep", "LIF", "IF", "check_neuron_args",
]


# ----------------------------------------------------------------------------------------------- surrogate registry
class Surrogate:
    """A spike function: Heaviside forward ``H(v) = 1[v > 0]``, smooth derivative ``grad(v)`` backward.

    ``v`` is the normalised membrane ``u / threshold - 1``.  ``width`` is the one shape parameter
    (the papers' linear surrogate: ``gamma * max(0, 1 - |v|)`` with ``gamma = 0.3``).
    """

    name = "base"
    default_width = 1.0

    def __init__(self, width: Optional[float] = None):
        width = self.default_width if width is None else width
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0 or math.isinf(width):
            raise ValueError(f"surrogate '{self.name}': width must be a positive finite number, got {width!r}")
        self.width = float(width)

    def grad(self, v: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, v: Tensor) -> Tensor:
        return _SpikeFn.apply(v, self)

    def __repr__(self) -> str:
        return f"{self.name}(width={self.width:g})"


class Linear(Surrogate):
    """Bellec et al. 2018, used by Sharmin/Rathi: ``gamma * max(0, 1 - |v|)``, gamma = width (default 0.3)."""

    name, default_width = "linear", 0.3

    def grad(self, v):
        return self.width * torch.clamp(1.0 - v.abs(), min=0.0)


class FastSigmoid(Surrogate):
    """SuperSpike / fast sigmoid: ``1 / (1 + k |v|)^2`` with slope k = width (default 10)."""

    name, default_width = "fast_sigmoid", 10.0

    def grad(self, v):
        return 1.0 / (1.0 + self.width * v.abs()) ** 2


class ArcTan(Surrogate):
    """Fang et al. 2021: derivative of ``atan(pi/2 * a * v) / pi + 1/2``, i.e. ``a/2 / (1 + (pi/2 a v)^2)``."""

    name, default_width = "arctan", 2.0

    def grad(self, v):
        a = self.width
        return (a / 2.0) / (1.0 + (math.pi / 2.0 * a * v) ** 2)


class Rectangle(Surrogate):
    """Straight-through rectangle: ``1/w`` for ``|v| < w/2``, else 0 (unit area), width w (default 1)."""

    name, default_width = "rectangle", 1.0

    def grad(self, v):
        return (v.abs() < self.width / 2.0).to(v.dtype) / self.width


SURROGATES: Dict[str, type] = {}


def register_surrogate(cls: type) -> type:
    """Add a Surrogate subclass to the registry under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Surrogate)):
        raise TypeError("register_surrogate expects a Surrogate subclass")
    SURROGATES[cls.name] = cls
    return cls


for _cls in (Linear, FastSigmoid, ArcTan, Rectangle):
    register_surrogate(_cls)


def get_surrogate(spec: Union[str, Surrogate, None] = "linear", width: Optional[float] = None) -> Surrogate:
    """Return a Surrogate from a registry name (``linear``, ``fast_sigmoid``, ``arctan``, ``rectangle``) or pass one through."""
    if spec is None:
        spec = "linear"
    if isinstance(spec, Surrogate):
        return spec if width is None else type(spec)(width)
    if not isinstance(spec, str):
        raise TypeError(f"surrogate must be a name or a Surrogate, got {type(spec).__name__}")
    if spec not in SURROGATES:
        raise ValueError(f"unknown surrogate {spec!r}; choose one of {sorted(SURROGATES)}")
    return SURROGATES[spec](width)


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, surrogate):
        ctx.save_for_backward(v)
        ctx.surrogate = surrogate
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        return g * ctx.surrogate.grad(v), None


def spike(v: Tensor, surrogate: Union[str, Surrogate] = "linear") -> Tensor:
    """Heaviside of the normalised membrane ``v`` with the named surrogate gradient."""
    return get_surrogate(surrogate)(v)


# ----------------------------------------------------------------------------------------------- argument checks
RESETS = ("subtract", "zero")


def check_neuron_args(leak, reset: str = "subtract", threshold=None) -> None:
    """Raise a clear error for a leak outside (0, 1], an unknown reset mode or a non-positive threshold."""
    if isinstance(leak, bool) or not isinstance(leak, (int, float)):
        raise TypeError(f"leak must be a number in (0, 1], got {type(leak).__name__} {leak!r}")
    if not (0.0 < float(leak) <= 1.0):
        raise ValueError(f"leak must be in (0, 1] (1.0 = IF, 0.99 = the papers' LIF), got {leak}")
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; choose one of {RESETS}")
    if threshold is not None:
        th = torch.as_tensor(threshold)
        if not torch.all(th > 0):
            raise ValueError(f"threshold must be > 0, got {threshold}")


# ----------------------------------------------------------------------------------------------- single step
class LIFState(NamedTuple):
    """State of one layer of neurons: membrane potential ``u`` (same shape as the input current)."""

    u: Tensor


def lif_step(current: Tensor, state: Optional[LIFState], threshold: Union[float, Tensor], leak: float = 1.0,
             surrogate: Union[str, Surrogate] = "linear", reset: str = "subtract",
             delay: bool = True) -> Tuple[Tensor, LIFState]:
    """One timestep of a leaky integrate-and-fire layer.

    current: input current I_t, shape (B, ...); state: previous membrane (None = zeros);
    threshold: firing threshold (scalar or broadcastable); leak: lambda in (0, 1], 1 = IF.
    Returns (spikes S_t in {0, 1}, new state).
    """
    sg = get_surrogate(surrogate)
    u = torch.zeros_like(current) if state is None else state.u
    if delay:
        s = sg(u / threshold - 1.0)
        kept = u if reset == "subtract" else u * (1.0 - s.detach())
        rst = threshold * s.detach() if reset == "subtract" else 0.0
        u_new = leak * kept + current - rst
    else:
        u_pre = leak * u + current
        s = sg(u_pre / threshold - 1.0)
        u_new = u_pre - threshold * s.detach() if reset == "subtract" else u_pre * (1.0 - s.detach())
    return s, LIFState(u_new)


# ----------------------------------------------------------------------------------------------- fused multi-step
def _forward_loop(current: Tensor, threshold, leak: float, reset: str, delay: bool,
                  u0: Optional[Tensor], keep_v: bool):
    """Plain in-place simulation loop. Returns (spikes (T, B, ...), final membrane, normalised membranes or None).

    The normalised membrane v_t (the surrogate's argument) is stored only when ``keep_v``.
    """
    T = current.shape[0]
    th = float(threshold)
    u = torch.zeros_like(current[0]) if u0 is None else u0.clone()
    spikes = torch.empty_like(current)
    vs = torch.empty_like(current) if keep_v else None
    fired = torch.empty(current.shape[1:], dtype=torch.bool, device=current.device)
    for t in range(T):
        s = spikes[t]
        if delay:
            if keep_v:
                torch.div(u, th, out=vs[t]).sub_(1.0)
            torch.gt(u, th, out=fired)
            s.copy_(fired)
            if reset == "subtract":
                if leak != 1.0:
                    u.mul_(leak)
                u.add_(current[t]).sub_(s, alpha=th)
            else:
                u.masked_fill_(fired, 0.0)
                if leak != 1.0:
                    u.mul_(leak)
                u.add_(current[t])
        else:
            if leak != 1.0:
                u.mul_(leak)
            u.add_(current[t])
            if keep_v:
                torch.div(u, th, out=vs[t]).sub_(1.0)
            torch.gt(u, th, out=fired)
            s.copy_(fired)
            if reset == "subtract":
                u.sub_(s, alpha=th)
            else:
                u.masked_fill_(fired, 0.0)
    return spikes, u, vs


class _LIFMultiStep(torch.autograd.Function):
    """Whole-sequence LIF layer; backward is the exact BPTT of ``lif_step`` with a detached reset."""

    @staticmethod
    def forward(ctx, current, threshold, leak, surrogate, reset, delay):
        spikes, u, vs = _forward_loop(current, threshold, leak, reset, delay, None, keep_v=True)
        ctx.save_for_backward(vs, threshold)
        ctx.cfg = (leak, surrogate, reset, delay)
        return spikes

    @staticmethod
    def backward(ctx, g):
        vs, threshold = ctx.saved_tensors
        leak, sg, reset, delay = ctx.cfg
        T = g.shape[0]
        grad_in = torch.empty_like(g)
        a = torch.zeros_like(g[0])  # dL/du_t (membrane after step t)
        if delay:
            # u_t = leak * u_{t-1} * keep_t + I_t - rst_t ; S_t = H(u_{t-1}/th - 1)
            for t in range(T - 1, -1, -1):
                grad_in[t] = a
                if t > 0:
                    v = vs[t]
                    da = g[t] * sg.grad(v) / threshold
                    if reset == "subtract":
                        a = leak * a + da
                    else:
                        a = leak * a * (v <= 0).to(a.dtype) + da
        else:
            # u'_t = leak * u_{t-1} + I_t ; S_t = H(u'_t/th - 1) ; u_t = u'_t - rst (or u'_t * (1 - S_t))
            for t in range(T - 1, -1, -1):
                v = vs[t]
                if reset == "subtract":
                    a_pre = a
                else:
                    a_pre = a * (v <= 0).to(a.dtype)
                a_pre = a_pre + g[t] * sg.grad(v) / threshold
                grad_in[t] = a_pre
                a = leak * a_pre
        return grad_in, None, None, None, None, None


def lif_multistep(current: Tensor, threshold: Union[float, Tensor], leak: float = 1.0,
                  surrogate: Union[str, Surrogate] = "linear", reset: str = "subtract",
                  delay: bool = True) -> Tensor:
    """Run a LIF layer over a whole sequence. current: (T, B, ...) input currents; returns spikes (T, B, ...).

    Starts from a zero membrane.  Under ``torch.no_grad``/inference it runs a plain loop with no saved state.
    """
    check_neuron_args(leak, reset)
    sg = get_surrogate(surrogate)
    th = torch.as_tensor(threshold, dtype=current.dtype, device=current.device)
    if current.dim() < 2:
        raise ValueError(f"current must have shape (T, B, ...), got {tuple(current.shape)}")
    if torch.is_grad_enabled() and current.requires_grad:
        return _LIFMultiStep.apply(current, th, float(leak), sg, reset, bool(delay))
    spikes, _, _ = _forward_loop(current, th, float(leak), reset, bool(delay), None, keep_v=False)
    return spikes


# ----------------------------------------------------------------------------------------------- modules
class LIF(nn.Module):
    """Leaky integrate-and-fire layer over a (T, B, ...) sequence of input currents.

    threshold: firing threshold (float or per-layer scalar buffer); leak: lambda in (0, 1];
    surrogate: registry name or Surrogate; reset: "subtract" | "zero"; delay: spike from the previous membrane.
    ``step(current, state)`` gives the single-step mode over the same parameters.
    """

    def __init__(self, threshold: float = 1.0, leak: float = 0.99, surrogate: Union[str, Surrogate] = "linear",
                 reset: str = "subtract", delay: bool = True):
        super().__init__()
        check_neuron_args(leak, reset, threshold)
        self.register_buffer("threshold", torch.as_tensor(float(threshold)))
        self.leak = float(leak)
        self.surrogate = get_surrogate(surrogate)
        self.reset = reset
        self.delay = bool(delay)

    def forward(self, current: Tensor) -> Tensor:
        return lif_multistep(current, self.threshold, self.leak, self.surrogate, self.reset, self.delay)

    def step(self, current: Tensor, state: Optional[LIFState] = None) -> Tuple[Tensor, LIFState]:
        return lif_step(current, state, self.threshold, self.leak, self.surrogate, self.reset, self.delay)

    def extra_repr(self) -> str:
        return (f"threshold={float(self.threshold):.4g}, leak={self.leak:g}, surrogate={self.surrogate!r}, "
                f"reset={self.reset}, delay={self.delay}")


class IF(LIF):
    """Integrate-and-fire layer: a LIF with leak = 1."""

    def __init__(self, threshold: float = 1.0, surrogate: Union[str, Surrogate] = "linear",
                 reset: str = "subtract", delay: bool = True):
        super().__init__(threshold, 1.0, surrogate, reset, delay)
