"""Integrate-and-fire neurons: surrogate-gradient registry, a parameter record, pure step functions, modules.

Conventions (as in the released code, https://github.com/ssharmin/spikingNN-adversarial-attack at commit 57c7772, of
Sharmin, Rathi, Panda and Roy, "Inherent Adversarial Robustness of Deep Spiking Neural Networks: Effects of
Discrete Input Encoding and Non-Linear Activations", ECCV 2020, LNCS 12374, doi:10.1007/978-3-030-58526-6_24,
arXiv:2003.10399):

* membrane potential ``u`` and threshold ``threshold`` are in the same (arbitrary) current units;
* the surrogate acts on the *normalised* membrane ``v = u / threshold - 1``, so dS/du = sg'(v) / threshold;
* ``delay=True`` (default, faithful): the spike of step t is decided on the membrane left after step t-1,
  ``S_t = H(u_{t-1} - threshold)`` then ``u_t = leak * u_{t-1} + I_t - threshold * S_t``.  Every spiking layer
  therefore adds one timestep of latency.  ``delay=False`` is the common textbook order
  ``u' = leak * u + I; S = H(u' - threshold); u = u' - threshold * S``;
* ``reset="subtract"`` (default) removes the threshold and keeps the residue; ``reset="zero"`` sets the membrane
  to 0 after a spike.  The reset is detached from the graph, as in the released code.
* IF is the same neuron with ``leak = 1``.

API (in the style of Norse): ``LIFParameters`` (threshold, leak, reset, delay, surrogate) and ``LIFState``
(membrane ``u``) are small records; ``lif_step(current, state, params) -> (spikes, state)`` is one pure timestep and
``lif_sequence(current, state, params) -> (spikes, state)`` the same over a (T, B, ...) sequence (a fused loop whose
BPTT stores only the normalised membrane per step: one tensor per step and layer); the modules ``LIF``/``IF`` hold
the parameters (threshold as a buffer) and their ``forward(current, state=None)`` returns ``(spikes, state)``.
"""
from __future__ import annotations

import abc
import dataclasses
import math
import os
import types
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor, nn

__all__ = [
    "Surrogate", "SURROGATES", "get_surrogate", "register_surrogate", "spike",
    "LIFParameters", "LIFState", "lif_step", "lif_sequence", "lif_multistep", "LIF", "IF",
    "check_neuron_args", "check_threshold", "check_params", "check_lif_backend", "membrane_dtype", "set_lif_backend",
    "get_lif_backend",
    "LIF_BACKENDS", "BACKEND_ENV_VAR",
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


# ----------------------------------------------------------------------------------------------- parameters
RESETS = ("subtract", "zero")


def check_neuron_args(leak, reset: str = "subtract", threshold=None) -> None:
    """Raise a clear error for a leak outside (0, 1], an unknown reset mode or a bad threshold (see check_threshold)."""
    if isinstance(leak, bool) or not isinstance(leak, (int, float)):
        raise TypeError(f"leak must be a number in (0, 1], got {type(leak).__name__} {leak!r}")
    if not (0.0 < float(leak) <= 1.0):
        raise ValueError(f"leak must be in (0, 1] (1.0 = IF, 0.99 = the papers' LIF), got {leak}")
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; choose one of {RESETS}")
    if threshold is not None:
        check_threshold(threshold)


def check_threshold(threshold) -> None:
    """Raise a clear error unless ``threshold`` is a positive finite number, a 0-dim tensor, or a 1-D per-channel
    tensor (or list) of positive finite values."""
    if isinstance(threshold, bool):
        raise TypeError(f"threshold must be a positive number or a tensor of them, got the bool {threshold!r}")
    if isinstance(threshold, (int, float)):
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be > 0 and finite (a firing threshold in current units), got {threshold}")
        return
    if isinstance(threshold, (list, tuple)):
        threshold = torch.as_tensor(threshold, dtype=torch.float32)
    if not isinstance(threshold, Tensor):
        raise TypeError(f"threshold must be a number, a 0-dim tensor or a (C,) per-channel tensor, "
                        f"got {type(threshold).__name__}")
    if threshold.dim() > 1 or threshold.numel() == 0:
        raise ValueError(f"threshold must be a number, a 0-dim tensor or a 1-D (C,) tensor with one value per channel "
                         f"(dim 1 of each step's input (B, C, ...)), got shape {tuple(threshold.shape)}")
    if not bool(torch.all(torch.isfinite(threshold) & (threshold > 0))):
        raise ValueError(f"threshold must be > 0 and finite everywhere, got {threshold.tolist()}")


@dataclass(frozen=True, eq=False)
class LIFParameters:
    """Parameters of one layer of (leaky) integrate-and-fire neurons: a validated, immutable record.

    threshold: firing threshold in current units; a number (one per layer), a 0-dim tensor, or a (C,) tensor with
        one value per channel (channel = dim 1 of each step's input (B, C, ...)); all > 0.
    leak: lambda in (0, 1] (1.0 = IF, 0.99 = the papers' LIF).
    reset: "subtract" (keep the residue; the papers') | "zero".
    delay: True = the spike of step t comes from the membrane left by step t-1 (the released code's order).
    surrogate: a Surrogate or a registry name (kept as the Surrogate).
    ``replace(**changes)`` gives a copy with some fields changed.
    """

    threshold: Union[float, Tensor] = 1.0
    leak: float = 0.99
    reset: str = "subtract"
    delay: bool = True
    surrogate: Union[str, Surrogate] = "linear"

    def __post_init__(self):
        check_neuron_args(self.leak, self.reset, self.threshold)
        th = self.threshold
        if isinstance(th, (list, tuple)):
            th = torch.as_tensor(th, dtype=torch.float32)
        object.__setattr__(self, "threshold", th if isinstance(th, Tensor) else float(th))
        object.__setattr__(self, "leak", float(self.leak))
        object.__setattr__(self, "delay", bool(self.delay))
        object.__setattr__(self, "surrogate", get_surrogate(self.surrogate))

    def replace(self, **changes) -> "LIFParameters":
        return dataclasses.replace(self, **changes)


def check_params(params, where: str) -> "LIFParameters":
    if not isinstance(params, LIFParameters):
        raise TypeError(f"{where}: params must be a snnlib.neurons.LIFParameters record, e.g. "
                        f"LIFParameters(threshold=1.0, leak=0.99); got {type(params).__name__}")
    return params


def _channel_threshold(th: Tensor, step_shape: Tuple[int, ...]) -> Tensor:
    """A (C,) per-channel threshold reshaped to (C, 1, ..., 1) to broadcast over one step of shape (B, C, ...)."""
    if len(step_shape) < 2 or step_shape[1] != th.numel():
        raise ValueError(f"a per-channel threshold with {th.numel()} values needs steps shaped (B, {th.numel()}, ...) "
                         f"(one value per channel, dim 1), got steps of shape {tuple(step_shape)}")
    return th.reshape((-1,) + (1,) * (len(step_shape) - 2))


def _step_threshold(threshold, current: Tensor):
    """The threshold as ``lif_step`` uses it: numbers and 0-dim tensors unchanged, per-channel ones broadcastable."""
    if isinstance(threshold, Tensor):
        if threshold.dim() == 1 and threshold.numel() > 1:
            return _channel_threshold(threshold.to(current.device), tuple(current.shape))
        if threshold.dim() == 1:
            return threshold.reshape(())
    return threshold


def _loop_threshold(threshold, current: Tensor):
    """The threshold as the sequence loop uses it: a Python float (rounded to the membrane's dtype first) for one
    threshold per layer, else a (C, 1, ..., 1) tensor in the membrane's dtype (:func:`membrane_dtype`) and device."""
    th = torch.as_tensor(threshold, dtype=membrane_dtype(current.dtype), device=current.device)
    if th.numel() == 1:
        return float(th)
    return _channel_threshold(th, tuple(current.shape[1:]))


# ----------------------------------------------------------------------------------------------- single step
class LIFState(NamedTuple):
    """State of one layer of neurons: membrane potential ``u`` (the shape of one step's input current, (B, ...))."""

    u: Tensor


def lif_step(current: Tensor, state: Optional[LIFState], params: LIFParameters) -> Tuple[Tensor, LIFState]:
    """One timestep of a layer of LIF neurons: ``(current I_t (B, ...), state or None = zero membrane, params)``
    -> ``(spikes S_t in {0, 1} (B, ...), new state)``.  Pure: nothing is stored or changed."""
    p = check_params(params, "lif_step")
    threshold, leak, reset, sg = _step_threshold(p.threshold, current), p.leak, p.reset, p.surrogate
    u = torch.zeros_like(current) if state is None else state.u
    if p.delay:
        s = sg(u / threshold - 1.0)
        kept = u if reset == "subtract" else u * (1.0 - s.detach())
        rst = threshold * s.detach() if reset == "subtract" else 0.0
        u_new = leak * kept + current - rst
    else:
        u_pre = leak * u + current
        s = sg(u_pre / threshold - 1.0)
        u_new = u_pre - threshold * s.detach() if reset == "subtract" else u_pre * (1.0 - s.detach())
    return s, LIFState(u_new)


# ----------------------------------------------------------------------------------------------- compute backends
# Backends of the per-step elementwise update of the sequence loop (forward and BPTT):
#   "eager"   — in-place ATen ops on preallocated buffers laid out like the input current;
#   "compile" — each step is one fused ``torch.compile`` (inductor) kernel that reads the membrane and the input
#               once and writes the spikes, the membrane and (for BPTT) the normalised membrane in one pass; the
#               backward step is one kernel too.  Same arithmetic in the same order (inductor keeps
#               -ffp-contract=off), so the numbers are identical: checked bit for bit against "eager"
#               (tests/unit/test_models.py guards one);
#   "auto"    — "compile" for float32 sequences with at least ``_COMPILE_MIN_NUMEL`` neurons per step
#               (VGG5 conv layers at batch >= 16), "eager" for smaller ones, so that tests and tiny batches never
#               pay the compilation.
# Measured on this project's shared 2-core CPU (VGG5, T=25, batch 64; snnlib/bench): the fused kernel halves the
# cost of the LIF update; on a quiet machine a whole forward is on par with "eager" (convolution bound) and BPTT
# gains ~20 %; under load fewer, larger kernels win by 50-80 % for both.  Compilation costs 5-25 s once per process
# and kernel variant.  Any compilation failure (no C++ compiler, unsupported platform, ...) warns once and falls back
# to "eager" for the rest of the process (a fact about the machine, not a setting).
# The backend is a per-module setting: ``LIF(backend=...)``, ``SpikingVGG(lif_backend=...)``, or ``backend=`` of the
# functions.  Its default (None) is resolved when a module is built, or at each function call: the value given to
# ``set_lif_backend``, else the environment variable SNNLIB_LIF_BACKEND, else "auto".
LIF_BACKENDS = ("auto", "eager", "compile")
BACKEND_ENV_VAR = "SNNLIB_LIF_BACKEND"
_COMPILE_MIN_NUMEL = 1 << 20
_default_backend: Optional[str] = None  # set_lif_backend's value; None = from the environment
_compiled: Dict[tuple, Callable] = {}
_compile_broken: Optional[str] = None


def get_lif_backend() -> str:
    """The default LIF backend for modules built from now on: ``set_lif_backend``'s value, else $SNNLIB_LIF_BACKEND,
    else "auto"."""
    if _default_backend is not None:
        return _default_backend
    env = os.environ.get(BACKEND_ENV_VAR, "").strip().lower()
    if env and env not in LIF_BACKENDS:
        raise ValueError(f"{BACKEND_ENV_VAR}={env!r} is not one of {LIF_BACKENDS}; set it to one of them or unset it")
    return env or "auto"


def set_lif_backend(backend: Optional[str] = "auto") -> str:
    """Set the default LIF backend ("auto", "eager" or "compile") for modules built from now on and for function
    calls without ``backend=``; None goes back to $SNNLIB_LIF_BACKEND (else "auto").  Returns the previous default.
    Modules already built keep their own setting.  The result of a simulation does not depend on the backend, only
    its speed.
    """
    global _default_backend
    old = get_lif_backend()
    _default_backend = None if backend is None else check_lif_backend(backend)
    return old


def check_lif_backend(backend: Optional[str]) -> str:
    """A valid backend name; None = the default (``get_lif_backend()``)."""
    if backend is None:
        return get_lif_backend()
    if backend not in LIF_BACKENDS:
        raise ValueError(f"unknown LIF backend {backend!r}; choose one of {LIF_BACKENDS}")
    return backend


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


def _bwd_step_eager(a: Tensor, g: Tensor, v: Tensor, out: Tensor, th, leak: float, sg: "Surrogate",
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
        if not _compiled:
            # the first compilation imports torch's C++ toolchain module, whose import logs a "No CUDA runtime"
            # warning on CPU-only machines: import it once here with that logger quietened, then restore the level
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


def _use_compiled(x: Tensor, backend: str) -> bool:
    """Whether this (T, ...) sequence gets the compiled update under ``backend``."""
    if _compile_broken is not None or backend == "eager":
        return False
    if backend == "compile":
        return True
    return x.dtype in (torch.float32, torch.bfloat16) and x[0].numel() >= _COMPILE_MIN_NUMEL


#: currents of these dtypes (mixed precision) are integrated in a float32 membrane: a bfloat16 membrane keeps 8
#: significant bits, so a leaky sum over T steps would drift by whole thresholds; the spikes (0 or 1, exact in any
#: float type) come out in the current's dtype, ready for the next bf16 layer
_LOW_PRECISION = (torch.bfloat16, torch.float16)


def membrane_dtype(current_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the membrane (and of the saved normalised membranes) for currents of ``current_dtype``: float32
    for bfloat16 / float16 currents, the current's own dtype otherwise."""
    return torch.float32 if current_dtype in _LOW_PRECISION else current_dtype


def _compile_failed(exc: BaseException) -> None:
    global _compile_broken
    _compile_broken = f"{type(exc).__name__}: {exc}"
    warnings.warn(f"snnlib: torch.compile of the LIF update failed ({_compile_broken.splitlines()[0][:300]}); "
                  "using the eager loop from now on (same results, slower)", RuntimeWarning, stacklevel=3)


# ----------------------------------------------------------------------------------------------- sequence loop
def _forward_loop_eager(current, th, leak, reset, delay, u, spikes, vs, step_buf=None) -> None:
    """The eager loop; ``th`` is a float (one threshold per layer) or a (C, 1, ..., 1) tensor (per channel)."""
    subtract = reset == "subtract"
    per_channel = isinstance(th, Tensor)
    fired = None if subtract else torch.empty_like(u, dtype=torch.bool)

    def subtract_threshold(s):
        if per_channel:
            u.addcmul_(s, th, value=-1.0)  # s in {0, 1}: s * th is exact, so this is u - s * th to the bit
        else:
            u.sub_(s, alpha=th)

    for t in range(current.shape[0]):
        s = spikes[t] if step_buf is None else step_buf
        if delay:
            if vs is not None:
                torch.div(u, th, out=vs[t]).sub_(1.0)
            if subtract:
                torch.gt(u, th, out=s)
                if leak != 1.0:
                    u.mul_(leak)
                u.add_(current[t])
                subtract_threshold(s)
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
                subtract_threshold(s)
            else:
                torch.gt(u, th, out=fired)
                s.copy_(fired)
                u.masked_fill_(fired, 0.0)
        if step_buf is not None:
            spikes[t].copy_(step_buf)


def _multistep_loop(current: Tensor, th, leak: float, reset: str, delay: bool, u0: Optional[Tensor],
                    keep_v: bool, inplace: bool, backend: str):
    """In-place simulation loop, no graph.  Returns (spikes (T, B, ...), final membrane, normalised membranes or None).

    th: float or (C, 1, ..., 1) tensor (see ``_loop_threshold``).  The normalised membrane v_t (the surrogate's
    argument) is stored only when ``keep_v``.  All buffers take the memory layout of ``current`` (channels-last
    convolution outputs stay channels-last).  ``inplace``: write the spikes over ``current`` (step t after its current
    is consumed), so inference holds one (T, B, ...) tensor per layer instead of two.
    """
    leak = float(leak)
    mdt = membrane_dtype(current.dtype)

    def initial_membrane():
        return torch.zeros_like(current[0], dtype=mdt) if u0 is None else u0.detach().to(mdt, copy=True)

    u = initial_membrane()
    spikes = current if inplace else torch.empty_like(current)
    step_buf = torch.empty_like(current[0]) if inplace else None
    vs = torch.empty_like(current, dtype=mdt) if keep_v else None
    if _use_compiled(current, backend):
        try:
            subtract = reset == "subtract"
            th_t = th.to(mdt) if isinstance(th, Tensor) else torch.tensor(th, dtype=mdt, device=current.device)
            step = _get_compiled(_fwd_step, ("fwd", current.dtype, current.dim(), th_t.dim(), keep_v, subtract, delay))
            leak_t = torch.tensor(leak, dtype=mdt, device=current.device)
            for t in range(current.shape[0]):
                out = spikes[t] if step_buf is None else step_buf
                step(u, current[t], out, None if vs is None else vs[t], th_t, leak_t, subtract, delay)
                if step_buf is not None:
                    spikes[t].copy_(step_buf)
            return spikes, u, vs
        except Exception as exc:  # pragma: no cover - depends on the machine's compiler
            _compile_failed(exc)
            u = initial_membrane()
    # without the delay, step t reads current[t] before it writes the spike: no staging buffer needed
    _forward_loop_eager(current, th, leak, reset, delay, u, spikes, vs, step_buf if delay else None)
    return spikes, u, vs


_BUILTIN_SURROGATES = (Linear, FastSigmoid, ArcTan, Rectangle)


class _LIFMultiStep(torch.autograd.Function):
    """Whole-sequence LIF layer from an initial membrane; backward is the exact BPTT of ``lif_step`` with a detached
    reset, to the currents and to the initial membrane.  Outputs (spikes (T, B, ...), final membrane (B, ...)).

    Saves only the normalised membrane v_t per step.  With a_t = dL/du_t (membrane after step t) the recursion is
    delay:    a_{t-1} = leak * keep_t * a_t + g_t * sg'(v_t) / th  (t = T-1 .. 0), dL/dI_t = a_t, a_{T-1} = dL/du_final;
    no delay: dL/dI_t = leak * keep_t * dL/dI_{t+1} + g_t * sg'(v_t) / th  (t = T-2 .. 0),
              dL/dI_{T-1} = keep_{T-1} * dL/du_final + g_{T-1} * sg'(v_{T-1}) / th, dL/du_{-1} = leak * dL/dI_0;
    keep_t = 1 for the subtractive reset and 1[v_t <= 0] (no spike) for the reset to zero, and u_{-1} the initial
    membrane.  The gradient is written straight into the (T, ...) result, one step at a time, in place.
    """

    @staticmethod
    def forward(ctx, current, u0, th, leak, surrogate, reset, delay, backend):
        spikes, u, vs = _multistep_loop(current, th, leak, reset, delay, u0, keep_v=True, inplace=False,
                                        backend=backend)
        ctx.set_materialize_grads(False)
        if isinstance(th, Tensor):
            ctx.save_for_backward(vs, th)
            ctx.th = None
        else:
            ctx.save_for_backward(vs)
            ctx.th = th
        ctx.cfg = (leak, surrogate, reset, delay, backend)
        return spikes, u

    @staticmethod
    def backward(ctx, g, g_u):
        saved = ctx.saved_tensors
        vs = saved[0]
        th = saved[1] if ctx.th is None else ctx.th
        leak, sg, reset, delay, backend = ctx.cfg
        if g is None:
            g = torch.zeros_like(vs)
        T = vs.shape[0]
        subtract = reset == "subtract"
        grad_in = torch.empty_like(vs)  # the layout of the current (channels-last for convolutions)
        zero = torch.zeros_like(grad_in[0])
        if delay:  # out, carried gradient, step index
            plan = [(grad_in[t - 1], grad_in[t], t) for t in range(T - 1, 0, -1)]
            if g_u is None:
                grad_in[T - 1].zero_()
            else:
                grad_in[T - 1].copy_(g_u)
        elif g_u is None:
            plan = [(grad_in[t], grad_in[t + 1] if t + 1 < T else zero, t) for t in range(T - 1, -1, -1)]
        else:  # the last step carries dL/du_final itself (no leak: nothing follows it)
            v = vs[T - 1]
            grad_in[T - 1].copy_((g_u if subtract else g_u * (v <= 0).to(g_u.dtype)) + g[T - 1] * sg.grad(v) / th)
            plan = [(grad_in[t], grad_in[t + 1], t) for t in range(T - 2, -1, -1)]
        step = None
        if _use_compiled(vs, backend):
            try:
                th_c = th if isinstance(th, Tensor) else torch.tensor(th, dtype=vs.dtype, device=vs.device)
                step = _get_compiled(_bwd_step, ("bwd", vs.dtype, vs.dim(), th_c.dim(), subtract, type(sg).__name__))
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
        grad_u0 = None
        if ctx.needs_input_grad[1]:
            if delay:
                keep = 1.0 if subtract else (vs[0] <= 0).to(vs.dtype)
                grad_u0 = grad_in[0] * leak * keep + g[0] * sg.grad(vs[0]) / th
            else:
                grad_u0 = grad_in[0] * leak
        return grad_in, grad_u0, None, None, None, None, None, None


def _run_sequence(current: Tensor, state: Optional[LIFState], threshold, leak: float, surrogate: Surrogate,
                  reset: str, delay: bool, backend: str, inplace: bool) -> Tuple[Tensor, LIFState]:
    """The sequence simulation behind ``lif_sequence`` and ``LIF.forward`` (arguments already validated)."""
    if not isinstance(current, Tensor) or current.dim() < 2:
        raise ValueError(f"current must be a tensor of shape (T, B, ...), got {tuple(getattr(current, 'shape', ()))}")
    u0 = None
    if state is not None:
        u0 = state.u if isinstance(state, LIFState) else None
        if u0 is None or not isinstance(u0, Tensor):
            raise TypeError(f"state must be a LIFState (or None for a zero membrane), got {type(state).__name__}")
        if tuple(u0.shape) != tuple(current.shape[1:]):
            raise ValueError(f"state.u has shape {tuple(u0.shape)} but each step of the current has shape "
                             f"{tuple(current.shape[1:])}; pass the state this layer returned for the same batch")
    th = _loop_threshold(threshold, current)
    if torch.is_grad_enabled() and (current.requires_grad or (u0 is not None and u0.requires_grad)):
        if inplace:
            raise ValueError("inplace=True writes the spikes over the current, so it needs a current without a graph: "
                             "run under torch.no_grad() or pass inplace=False")
        spikes, u = _LIFMultiStep.apply(current, u0, th, float(leak), surrogate, reset, bool(delay), backend)
        return spikes, LIFState(u)
    spikes, u, _ = _multistep_loop(current, th, leak, reset, bool(delay), u0, keep_v=False, inplace=inplace,
                                   backend=backend)
    return spikes, LIFState(u)


def lif_sequence(current: Tensor, state: Optional[LIFState], params: LIFParameters, backend: Optional[str] = None,
                 inplace: bool = False) -> Tuple[Tensor, LIFState]:
    """A layer of LIF neurons over a whole sequence: ``(current (T, B, ...), state or None = zero membrane, params)``
    -> ``(spikes (T, B, ...), final state)``; the same numbers as T calls of ``lif_step``.

    With gradients enabled and a current (or ``state.u``) that requires grad, it is differentiable (the exact BPTT of
    ``lif_step`` with a detached reset, to the currents, the initial and from the final membrane; no gradient to the
    threshold) and stores one normalised membrane per step.  Otherwise it runs a plain in-place loop.
    backend: "auto" | "eager" | "compile" (speed only; None = ``get_lif_backend()``).
    inplace: write the spikes over ``current`` (no graph only), halving the memory of inference.
    """
    p = check_params(params, "lif_sequence")
    return _run_sequence(current, state, p.threshold, p.leak, p.surrogate, p.reset, p.delay,
                         check_lif_backend(backend), bool(inplace))


def lif_multistep(current: Tensor, threshold: Union[float, Tensor], leak: float = 1.0,
                  surrogate: Union[str, Surrogate] = "linear", reset: str = "subtract",
                  delay: bool = True, backend: Optional[str] = None) -> Tensor:
    """Spikes (T, B, ...) of a LIF layer over a sequence of currents (T, B, ...) from a zero membrane.

    Shorthand for ``lif_sequence(current, None, LIFParameters(threshold, leak, reset, delay, surrogate))[0]``.
    """
    params = LIFParameters(threshold, leak, reset, delay, surrogate)
    return lif_sequence(current, None, params, backend)[0]


# ----------------------------------------------------------------------------------------------- modules
def _threshold_buffer(threshold) -> Tensor:
    """A validated threshold as a floating tensor (float32 for numbers and lists): 0-dim (one per layer) or (C,)."""
    check_threshold(threshold)
    if isinstance(threshold, Tensor):
        th = threshold.detach().to(torch.float32) if not threshold.is_floating_point() else threshold.detach().clone()
        return th.reshape(()) if th.numel() == 1 else th
    if isinstance(threshold, (list, tuple)):
        th = torch.as_tensor(threshold, dtype=torch.float32)
        return th.reshape(()) if th.numel() == 1 else th
    return torch.as_tensor(float(threshold), dtype=torch.float32)


class LIF(nn.Module):
    """A layer of leaky integrate-and-fire neurons over time.

    ``forward(current (T, B, ...), state=None, inplace=False) -> (spikes (T, B, ...), LIFState)``: the layer over a
    whole sequence from ``state`` (None = zero membrane), as ``lif_sequence``; pass the returned state to continue
    the same sequence in a later call.  ``step(current (B, ...), state=None)`` is one timestep (``lif_step``).
    threshold: firing threshold in current units: a number, or one value per channel ((C,) tensor or list; channel =
        dim 1 of each step (B, C, ...)); kept as the buffer ``threshold`` (``set_threshold`` changes it).
    leak: lambda in (0, 1] (default 0.99, the papers' LIF); surrogate: registry name or Surrogate;
    reset: "subtract" | "zero"; delay: spike from the previous membrane (the released code's order).
    backend: compute backend of the sequence loop, "auto" | "eager" | "compile" (results identical, speed only);
        None (default) = ``get_lif_backend()`` when the layer is built ($SNNLIB_LIF_BACKEND, else "auto").
    ``params`` gives the settings as a ``LIFParameters`` record.
    """

    def __init__(self, threshold: Union[float, Tensor] = 1.0, leak: float = 0.99,
                 surrogate: Union[str, Surrogate] = "linear", reset: str = "subtract", delay: bool = True,
                 backend: Optional[str] = None):
        super().__init__()
        params = LIFParameters(threshold, leak, reset, delay, surrogate)  # validates
        self.register_buffer("threshold", _threshold_buffer(params.threshold))
        self.leak, self.surrogate, self.reset, self.delay = params.leak, params.surrogate, params.reset, params.delay
        self.backend = check_lif_backend(backend)

    @classmethod
    def from_params(cls, params: LIFParameters, backend: Optional[str] = None) -> "LIF":
        p = check_params(params, "LIF.from_params")
        return LIF(p.threshold, p.leak, p.surrogate, p.reset, p.delay, backend)

    @property
    def params(self) -> LIFParameters:
        return LIFParameters(self.threshold, self.leak, self.reset, self.delay, self.surrogate)

    def set_threshold(self, threshold: Union[float, Tensor]) -> None:
        """Validate and set the threshold; in place when its shape is unchanged, so a shared threshold (see
        ``share_threshold``) stays shared."""
        th = _threshold_buffer(threshold)
        if th.shape == self.threshold.shape:
            self.threshold.copy_(th.to(self.threshold.device, self.threshold.dtype))
        else:
            self.threshold = th.to(self.threshold.device)

    def share_threshold(self, threshold: Tensor) -> None:
        """Use ``threshold`` itself (e.g. a view of a container's buffer, as ``SpikingVGG`` does) as this layer's
        threshold, so that changes in place to either are seen by both; it is left out of this layer's state_dict
        (its owner saves it)."""
        if not isinstance(threshold, Tensor):
            raise TypeError(f"share_threshold needs a tensor, got {type(threshold).__name__}")
        self.register_buffer("threshold", threshold, persistent=False)

    def forward(self, current: Tensor, state: Optional[LIFState] = None,
                inplace: bool = False) -> Tuple[Tensor, LIFState]:
        return _run_sequence(current, state, self.threshold, self.leak, self.surrogate, self.reset, self.delay,
                             self.backend, bool(inplace))

    def step(self, current: Tensor, state: Optional[LIFState] = None) -> Tuple[Tensor, LIFState]:
        return lif_step(current, state, self.params)

    def extra_repr(self) -> str:
        th = self.threshold
        th_txt = f"{float(th):.4g}" if th.numel() == 1 else f"per-channel ({th.numel()})"
        return (f"threshold={th_txt}, leak={self.leak:g}, surrogate={self.surrogate!r}, reset={self.reset}, "
                f"delay={self.delay}, backend={self.backend}")


class IF(LIF):
    """A layer of integrate-and-fire neurons: a LIF with leak = 1."""

    def __init__(self, threshold: Union[float, Tensor] = 1.0, surrogate: Union[str, Surrogate] = "linear",
                 reset: str = "subtract", delay: bool = True, backend: Optional[str] = None):
        super().__init__(threshold, 1.0, surrogate, reset, delay, backend)
