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

import abc
import math
import os
import types
import warnings
from typing import Callable, Dict, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor, nn

__all__ = [
    "Surrogate", "SURROGATES", "get_surrogate", "register_surrogate", "spike",
    "LIFState", "lif_step", "lif_multistep", "LIF", "IF", "check_neuron_args", "set_lif_backend", "get_lif_backend",
    "LIF_BACKENDS",
]


# ----------------------------------------------------------------------------------------------- surrogate registry
class Surrogate(abc.ABC):
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

    @abc.abstractmethod
    def grad(self, v: Tensor) -> Tensor:
        """dS/dv at the normalised membrane v (same shape as v)."""

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
# Backends of the per-step elementwise update in ``multistep_forward`` and ``_LIFMultiStep.backward``:
#   "eager"   — in-place ATen ops on preallocated buffers laid out like the input current;
#   "compile" — each step is one fused ``torch.compile`` (inductor) kernel that reads the membrane and the input
#               once and writes the spikes, the membrane and (for BPTT) the normalised membrane in one pass; the
#               backward step is one kernel too.  Same arithmetic in the same order (inductor keeps
#               -ffp-contract=off), so the numbers are identical: checked bit for bit against "eager" for every
#               reset/delay/leak/surrogate combination (tests/test_models.py guards one);
#   "auto"    — (default) "compile" for float32 sequences with at least ``_COMPILE_MIN_NUMEL`` neurons per step
#               (VGG5 conv layers at batch >= 16), "eager" for smaller ones, so that tests and tiny batches never
#               pay the compilation.
# Measured on this project's shared 2-core CPU (VGG5, T=25, batch 64; snnlib/bench.py): the fused kernel halves the
# cost of the LIF update; on a quiet machine a whole forward is on par with "eager" (convolution bound) and BPTT
# gains ~20 %; under load (other jobs on the cores) fewer, larger kernels win by 50-80 % for both.  Compilation
# costs 5-25 s once per process and kernel variant (less with inductor's on-disk cache).  Any compilation failure
# (no C++ compiler, unsupported platform, ...) warns once and falls back to "eager" for the rest of the process.
# Select with ``set_lif_backend`` or the environment variable SNNLIB_LIF_BACKEND (eager | compile | auto).
LIF_BACKENDS = ("auto", "eager", "compile")
_COMPILE_MIN_NUMEL = 1 << 20
_backend = os.environ.get("SNNLIB_LIF_BACKEND", "auto").strip().lower() or "auto"
if _backend not in LIF_BACKENDS:
    warnings.warn(f"SNNLIB_LIF_BACKEND={_backend!r} is not one of {LIF_BACKENDS}; using 'auto'")
    _backend = "auto"
_compiled: Dict[tuple, Callable] = {}
_compile_broken: Optional[str] = None


def set_lif_backend(backend: str = "auto") -> str:
    """Choose how LIF layers update their neurons each step: "auto" (default), "eager" or "compile".

    Returns the previous setting.  The result of a simulation does not depend on the backend, only its speed.
    """
    global _backend
    if backend not in LIF_BACKENDS:
        raise ValueError(f"unknown LIF backend {backend!r}; choose one of {LIF_BACKENDS}")
    old, _backend = _backend, backend
    return old


def get_lif_backend() -> str:
    """The current LIF backend setting ("auto", "eager" or "compile")."""
    return _backend


def _fwd_step(u: Tensor, cur: Tensor, s_out: Tensor, v_out: Optional[Tensor], th: Tensor, leak: Tensor,
              subtract: bool, delay: bool) -> None:
    """One step in place, as pure tensor expressions (the body that ``torch.compile`` fuses)."""
    if delay:
        if v_out is not None:
            v_out.copy_(u / th - 1.0)
        fired = u > th
        s = fired.to(u.dtype)
        s_out.copy_(s)
        if subtract:
            u.copy_(u * leak + cur - s * th)
        else:
            u.copy_(torch.where(fired, torch.zeros_like(u), u) * leak + cur)
    else:
        up = u * leak + cur
        if v_out is not None:
            v_out.copy_(up / th - 1.0)
        fired = up > th
        s = fired.to(u.dtype)
        s_out.copy_(s)
        u.copy_(up - s * th if subtract else torch.where(fired, torch.zeros_like(up), up))


def _bwd_step(a: Tensor, g: Tensor, v: Tensor, out: Tensor, th: Tensor, leak: Tensor, sg: "Surrogate",
              subtract: bool) -> None:
    """One step of the BPTT recursion in place: ``out = a * leak [* 1[v <= 0]] + g * sg'(v) / th``.

    ``a`` is the carried gradient, ``g`` the gradient of this step's spikes, ``v`` its normalised membrane; the
    factor 1[v <= 0] (the neuron did not fire) appears only for the zero reset (see ``_LIFMultiStep.backward``).
    """
    da = g * sg.grad(v) / th
    carried = a * leak if subtract else a * leak * (v <= 0).to(a.dtype)
    out.copy_(carried + da)


def _bwd_step_eager(a: Tensor, g: Tensor, v: Tensor, out: Tensor, th: float, leak: float, sg: "Surrogate",
                    subtract: bool) -> None:
    """``_bwd_step`` with in-place ATen ops (same operations in the same order, so the same bits)."""
    da = sg.grad(v)  # a fresh tensor for the built-in surrogates
    da = da.mul_(g) if da.shape == g.shape and da.dtype == g.dtype else g * da
    da.div_(th)
    if leak != 1.0:
        torch.mul(a, leak, out=out)
        src = out
    else:
        src = a
    if not subtract:
        torch.mul(src, (v <= 0), out=out)
        src = out
    torch.add(src, da, out=out)


def _get_compiled(fn: Callable, key: tuple) -> Callable:
    """``torch.compile(fn)`` for one variant; each variant gets its own code object, hence its own dynamo cache
    (so the variants never crowd each other out of dynamo's per-function recompile limit)."""
    if key not in _compiled:
        if not _compiled:  # its import logs a "No CUDA runtime" warning on CPU-only machines: keep notebooks clean
            import importlib
            import logging
            log = logging.getLogger("torch.utils.cpp_extension")
            level = log.level
            log.setLevel(logging.ERROR)
            try:
                importlib.import_module("torch.utils.cpp_extension")
            finally:
                log.setLevel(level)
        tag = "_".join(str(k).replace(".", "_") for k in key)
        code = fn.__code__.replace(co_name=f"{fn.__name__}__{tag}")
        clone = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
        _compiled[key] = torch.compile(clone, dynamic=True, fullgraph=True)
    return _compiled[key]


def _use_compiled(x: Tensor) -> bool:
    """Whether this (T, ...) sequence gets the compiled update."""
    if _compile_broken is not None or _backend == "eager":
        return False
    if _backend == "compile":
        return True
    return x.dtype == torch.float32 and x[0].numel() >= _COMPILE_MIN_NUMEL


def _compile_failed(exc: BaseException) -> None:
    global _compile_broken
    _compile_broken = f"{type(exc).__name__}: {exc}"
    warnings.warn(f"snnlib: torch.compile of the LIF update failed ({_compile_broken.splitlines()[0][:300]}); "
                  "using the eager loop from now on (same results, slower)", RuntimeWarning, stacklevel=3)


def _forward_loop_eager(current, th, leak, reset, delay, u, spikes, vs, step_buf=None) -> None:
    subtract = reset == "subtract"
    fired = None if subtract else torch.empty_like(u, dtype=torch.bool)
    for t in range(current.shape[0]):
        s = spikes[t] if step_buf is None else step_buf
        if delay:
            if vs is not None:
                torch.div(u, th, out=vs[t]).sub_(1.0)
            if subtract:
                torch.gt(u, th, out=s)
                if leak != 1.0:
                    u.mul_(leak)
                u.add_(current[t]).sub_(s, alpha=th)
            else:
                torch.gt(u, th, out=fired)
                s.copy_(fired)
                u.masked_fill_(fired, 0.0)
                if leak != 1.0:
                    u.mul_(leak)
                u.add_(current[t])
        else:
            if leak != 1.0:
                u.mul_(leak)
            u.add_(current[t])
            if vs is not None:
                torch.div(u, th, out=vs[t]).sub_(1.0)
            if subtract:
                torch.gt(u, th, out=s)
                u.sub_(s, alpha=th)
            else:
                torch.gt(u, th, out=fired)
                s.copy_(fired)
                u.masked_fill_(fired, 0.0)
        if step_buf is not None:
            spikes[t].copy_(step_buf)


def multistep_forward(current: Tensor, threshold, leak: float, reset: str, delay: bool,
                  u0: Optional[Tensor], keep_v: bool, inplace: bool = False):
    """In-place simulation loop. Returns (spikes (T, B, ...), final membrane, normalised membranes or None).

    The normalised membrane v_t (the surrogate's argument) is stored only when ``keep_v``.  All buffers take the
    memory layout of ``current`` (channels-last convolution outputs stay channels-last).  ``inplace``: write the
    spikes over ``current`` (step t after its current is consumed), so inference holds one (T, B, ...) tensor per
    layer instead of two; ``current`` must then not be needed afterwards and must not require grad.
    """
    th = float(threshold)
    leak = float(leak)
    u = torch.zeros_like(current[0]) if u0 is None else u0.clone()
    spikes = current if inplace else torch.empty_like(current)
    step_buf = torch.empty_like(current[0]) if inplace else None
    vs = torch.empty_like(current) if keep_v else None
    if _use_compiled(current):
        try:
            subtract = reset == "subtract"
            step = _get_compiled(_fwd_step, ("fwd", current.dtype, current.dim(), keep_v, subtract, delay))
            th_t = torch.tensor(th, dtype=current.dtype, device=current.device)
            leak_t = torch.tensor(leak, dtype=current.dtype, device=current.device)
            for t in range(current.shape[0]):
                out = spikes[t] if step_buf is None else step_buf
                step(u, current[t], out, None if vs is None else vs[t], th_t, leak_t, subtract, delay)
                if step_buf is not None:
                    spikes[t].copy_(step_buf)
            return spikes, u, vs
        except Exception as exc:  # pragma: no cover - depends on the machine's compiler
            _compile_failed(exc)
            u = torch.zeros_like(current[0]) if u0 is None else u0.clone()
    # without the delay, step t reads current[t] before it writes the spike: no staging buffer needed
    _forward_loop_eager(current, th, leak, reset, delay, u, spikes, vs, step_buf if delay else None)
    return spikes, u, vs


_BUILTIN_SURROGATES = (Linear, FastSigmoid, ArcTan, Rectangle)


class _LIFMultiStep(torch.autograd.Function):
    """Whole-sequence LIF layer; backward is the exact BPTT of ``lif_step`` with a detached reset.

    Saves only the normalised membrane v_t per step.  With a_t = dL/du_t (membrane after step t) the recursion is
    delay:    a_{t-1} = leak * keep_t * a_t + g_t * sg'(v_t) / th  (t = T-1 .. 1), dL/dI_t = a_t, a_{T-1} = 0;
    no delay: dL/dI_t = leak * keep_t * dL/dI_{t+1} + g_t * sg'(v_t) / th  (t = T-1 .. 0), dL/dI_T = 0;
    keep_t = 1 for the subtractive reset and 1[v_t <= 0] (no spike) for the reset to zero.  The gradient is written
    straight into the (T, ...) result, one step at a time, in place.
    """

    @staticmethod
    def forward(ctx, current, threshold, leak, surrogate, reset, delay):
        spikes, u, vs = multistep_forward(current, threshold, leak, reset, delay, None, keep_v=True)
        ctx.save_for_backward(vs, threshold)
        ctx.cfg = (leak, surrogate, reset, delay)
        return spikes

    @staticmethod
    def backward(ctx, g):
        vs, threshold = ctx.saved_tensors
        leak, sg, reset, delay = ctx.cfg
        T = g.shape[0]
        subtract = reset == "subtract"
        th = float(threshold)
        grad_in = torch.empty_like(vs)  # the layout of the current (channels-last for convolutions)
        zero = torch.zeros_like(grad_in[0])
        if delay:  # out, carried gradient, step index
            plan = [(grad_in[t - 1], grad_in[t], t) for t in range(T - 1, 0, -1)]
            grad_in[T - 1].zero_()
        else:
            plan = [(grad_in[t], grad_in[t + 1] if t + 1 < T else zero, t) for t in range(T - 1, -1, -1)]
        step = None
        if _use_compiled(vs):
            try:
                step = _get_compiled(_bwd_step, ("bwd", vs.dtype, vs.dim(), subtract, type(sg).__name__))
                th_c = torch.tensor(th, dtype=vs.dtype, device=vs.device)
                leak_c = torch.tensor(leak, dtype=vs.dtype, device=vs.device)
                for out, a, t in plan:
                    step(a, g[t], vs[t], out, th_c, leak_c, sg, subtract)
            except Exception as exc:  # pragma: no cover - depends on the machine's compiler
                _compile_failed(exc)
                step = None
        if step is None:
            inplace_ok = type(sg) in _BUILTIN_SURROGATES
            for out, a, t in plan:
                if inplace_ok:
                    _bwd_step_eager(a, g[t], vs[t], out, th, leak, sg, subtract)
                else:
                    out.copy_((a * leak if subtract else a * leak * (vs[t] <= 0).to(a.dtype))
                              + g[t] * sg.grad(vs[t]) / th)
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
    spikes, _, _ = multistep_forward(current, th, float(leak), reset, bool(delay), None, keep_v=False)
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
