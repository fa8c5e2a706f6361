"""The attack base class, the input-gradient estimators ("gradient modes") and argument validation.

Every attack works in [0, 1] pixel space with an L-infinity budget ``eps`` (the book quotes eps * 255).  An attack
gets the input gradient through :func:`gradient`, which looks the mode up in :data:`GRAD_MODES`; adding an
estimator is one registry entry ``GRAD_MODES["name"] = fn`` with ``fn(model, x, y, targeted) -> (grad, objective)``.

The *objective* an attack ascends is the per-image cross-entropy for untargeted attacks and minus the
cross-entropy of the target class for targeted ones (the given labels are the targets), so every step is
``x + alpha * sign(grad)`` and "higher objective" always means "more successful".  Gradients are taken of the
objective summed over the batch, so one image's gradient does not depend on the batch it sits in (the released
code takes the batch mean; the sign, which is all FGSM/PGD use, is the same).
"""
from __future__ import annotations

import abc
import contextlib
import math
import numbers
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Attack", "gradient", "GRAD_MODES", "is_spiking", "resolve_grad_mode", "attack_objective",
           "check_eps", "check_steps", "check_step_size", "check_grad_mode", "check_eot", "check_inputs"]

GradFn = Callable[[nn.Module, Tensor, Tensor, bool], Tuple[Tensor, Tensor]]


# ----------------------------------------------------------------------------------------------- helpers
def is_spiking(model: nn.Module) -> bool:
    """True for models with an input encoder (snnlib's ``SpikingVGG``), False for ANNs."""
    return getattr(model, "encoder", None) is not None


def attack_objective(logits: Tensor, y: Tensor, targeted: bool = False) -> Tensor:
    """Per-image objective to *ascend*: CE(logits, y), or -CE(logits, target) when targeted."""
    ce = F.cross_entropy(logits, y, reduction="none")
    return -ce if targeted else ce


def _model_device(model: nn.Module, fallback) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device(fallback)


# ----------------------------------------------------------------------------------------------- gradient modes
def _grad_autograd(model: nn.Module, x: Tensor, y: Tensor, targeted: bool) -> Tuple[Tensor, Tensor]:
    """Plain autograd input gradient (for an SNN: whatever its encoder's ``grad`` setting lets through)."""
    with torch.enable_grad():
        xr = x.detach().clone().requires_grad_(True)
        obj = attack_objective(model(xr), y, targeted)
        g = None
        if obj.requires_grad:
            (g,) = torch.autograd.grad(obj.sum(), xr, allow_unused=True)
    if g is None:  # the output does not depend on the pixels: a masked (zero) gradient
        g = torch.zeros_like(x)
    return g.detach(), obj.detach()


@contextlib.contextmanager
def _encoder_grad(model: nn.Module, grad: str):
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


def _grad_bptt(model: nn.Module, x: Tensor, y: Tensor, targeted: bool) -> Tuple[Tensor, Tensor]:
    """BPTT through the surrogate with a straight-through Poisson encoder (encoder grad forced to "ste")."""
    with _encoder_grad(model, "ste"):
        return _grad_autograd(model, x, y, targeted)


def _grad_algorithm1(model: nn.Module, x: Tensor, y: Tensor, targeted: bool) -> Tuple[Tensor, Tensor]:
    """The papers' Algorithm 1: dL/d(first conv current), summed over time, mapped back by the transposed conv1.

    The spikes enter as constants (no autograd path to the pixels); the result is sum_t dL/ds_t, the gradient
    with respect to the normalised input, chained to pixels by d x_norm / d x = 2 * rate.
    """
    if not hasattr(model, "capture_first_current") or not hasattr(model, "net"):
        raise ValueError("grad_mode 'algorithm1' needs a snnlib SpikingVGG (it hooks the first conv layer's current)")
    conv = model.net.features[0]
    if not isinstance(conv, nn.Conv2d):
        raise ValueError("grad_mode 'algorithm1' needs a first layer that is a Conv2d")
    B = x.shape[0]
    old_cap, old_rg = model.capture_first_current, conv.weight.requires_grad
    model.capture_first_current = True
    conv.weight.requires_grad_(True)  # so the current is part of a graph even for frozen weights
    try:
        with torch.enable_grad():
            obj = attack_objective(model(x.detach()), y, targeted)
            cur = model.first_current
            (gcur,) = torch.autograd.grad(obj.sum(), cur, allow_unused=True)
        if gcur is None:
            gcur = torch.zeros_like(cur)
        G = gcur.reshape((-1, B) + tuple(gcur.shape[-3:])).sum(0)  # (T, B, ...) or (T*B, ...) -> sum over time
        g_norm = F.conv_transpose2d(G, conv.weight.detach(), stride=conv.stride, padding=conv.padding,
                                    dilation=conv.dilation)
        scale = 2.0 * float(getattr(model.encoder, "rate", 1.0))
        return (g_norm * scale).contiguous(), obj.detach()
    finally:
        model.capture_first_current = old_cap
        model.first_current = None
        conv.weight.requires_grad_(old_rg)


#: name -> fn(model, x, y, targeted) -> (grad (B, C, H, W), objective (B,)); extend with new estimators.
GRAD_MODES: Dict[str, GradFn] = {"autograd": _grad_autograd, "bptt": _grad_bptt, "algorithm1": _grad_algorithm1}


def resolve_grad_mode(model: nn.Module, mode: str) -> str:
    """"auto" -> "bptt" for spiking models, "autograd" for ANNs; other names are checked against the registry."""
    check_grad_mode(mode)
    if mode == "auto":
        return "bptt" if is_spiking(model) else "autograd"
    return mode


def gradient(model: nn.Module, x: Tensor, y: Tensor, mode: str = "auto", eot: int = 1,
             targeted: bool = False) -> Tuple[Tensor, Tensor]:
    """Input gradient of the attack objective, averaged over ``eot`` forward/backward passes.

    x: (B, C, H, W) pixels in [0, 1]; y: (B,) labels (targets when ``targeted``).  Each pass draws fresh Poisson
    spikes (the encoder's generator just continues) and, in train mode, a fresh dropout mask.
    Returns (grad (B, C, H, W), objective per image (B,), both averaged over the passes).
    The model's mode and encoder state are used as they are (``Attack`` sets them up).
    """
    fn = GRAD_MODES[resolve_grad_mode(model, mode)]
    eot = check_eot(eot)
    g_sum, o_sum = fn(model, x, y, bool(targeted))
    for _ in range(eot - 1):
        g, o = fn(model, x, y, bool(targeted))
        g_sum, o_sum = g_sum + g, o_sum + o
    if eot > 1:
        g_sum, o_sum = g_sum / eot, o_sum / eot
    return g_sum, o_sum


# ----------------------------------------------------------------------------------------------- validation
def check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps (epsilon) must be a number in [0, 1] pixel units, e.g. 8/255; got "
                        f"{type(eps).__name__} {eps!r}")
    eps = float(eps)
    if math.isnan(eps) or not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps: epsilon must be in [0, 1] pixel units, e.g. 8/255; got {eps!r}"
                         + (f" (did you mean {eps:g}/255 = {eps / 255:.5f}?)" if 1.0 < eps <= 255.0 else ""))
    return eps


def check_steps(steps, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1, got {type(steps).__name__} {steps!r}")
    if steps < 1:
        raise ValueError(f"{name} must be an int >= 1, got {steps}")
    return int(steps)


def check_step_size(alpha, name: str = "alpha (step size)", allow_zero: bool = False) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"{name} must be a positive number in pixel units, got {type(alpha).__name__} {alpha!r}")
    alpha = float(alpha)
    if math.isnan(alpha) or math.isinf(alpha) or alpha < 0 or (alpha == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} (pixel units, e.g. 2/255), got {alpha!r}")
    return alpha


def check_grad_mode(mode) -> str:
    if mode != "auto" and mode not in GRAD_MODES:
        raise ValueError(f"unknown grad_mode {mode!r}; choose 'auto' or one of {sorted(GRAD_MODES)}")
    return mode


def check_eot(eot) -> int:
    if isinstance(eot, bool) or not isinstance(eot, numbers.Integral):
        raise TypeError(f"eot (gradient passes averaged per step) must be an int >= 1, got {type(eot).__name__} {eot!r}")
    if eot < 1:
        raise ValueError(f"eot (gradient passes averaged per step) must be an int >= 1, got {eot}")
    return int(eot)


def _check_int(name: str, v, minimum: Optional[int] = None, allow_none: bool = False):
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


# ----------------------------------------------------------------------------------------------- the base class
class Attack(abc.ABC):
    """Base of the L-infinity attacks, in the style of torchattacks: ``x_adv = attack(x, y)``.

    model: the *source* model that crafts the examples (the target itself for a white-box attack);
    eps: L-infinity budget in [0, 1] pixel units (8/255 = the papers' "8");
    grad_mode: "auto" (autograd for ANNs, "bptt" for SNNs), "autograd", "bptt", "algorithm1" or any name added to
    ``GRAD_MODES``; eot: gradient passes averaged per step (expectation over the Poisson draws);
    targeted: the labels given to ``attack`` are targets, and the steps descend their loss;
    seed: every random draw of one ``attack`` call (random starts, the source's Poisson spikes, dropout masks in
    train mode) comes from this seed, so the same seed gives identical adversarial images;
    source_train_mode: craft with the source in train mode (active dropout, as the released code does), instead
    of eval mode; batch_size: craft in batches of this many images (None = all at once).

    Determinism: at the start of ``attack`` the source's Poisson encoder is reseeded from ``seed`` and, in train
    mode, the global RNG (dropout masks) is seeded inside ``torch.random.fork_rng``.  Within one call the
    encoder's stream just continues, so every gradient evaluation (every step, every EOT pass) sees fresh spikes.
    After the call the encoder's seed and generator state, the global RNG and the model's train/eval mode are
    restored, so an attack leaves the model exactly as it found it.
    """

    name = "Attack"

    def __init__(self, model: nn.Module, eps: float, *, grad_mode: str = "auto", eot: int = 1,
                 targeted: bool = False, seed: int = 0, source_train_mode: bool = False,
                 batch_size: Optional[int] = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.eps = check_eps(eps)
        self.grad_mode = check_grad_mode(grad_mode)
        self.eot = check_eot(eot)
        if not isinstance(targeted, bool):
            raise TypeError(f"targeted must be True or False, got {targeted!r}")
        if not isinstance(source_train_mode, bool):
            raise TypeError(f"source_train_mode must be True or False, got {source_train_mode!r}")
        self.targeted, self.source_train_mode = targeted, source_train_mode
        self.seed = _check_int("seed", seed)
        self.batch_size = _check_int("batch_size", batch_size, minimum=1, allow_none=True)

    # -- the part subclasses write
    @abc.abstractmethod
    def _attack_batch(self, x: Tensor, y: Tensor, gen: torch.Generator) -> Tensor:
        """Adversarial examples for one batch x (B, 3, H, W) in [0, 1]; random draws only from ``gen``."""

    def params(self) -> dict:
        """The attack's own hyper-parameters (subclasses add theirs)."""
        return {}

    # -- shared machinery
    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Clip into the eps-ball around x, then into [0, 1]."""
        return torch.clamp(torch.min(torch.max(x_adv, x - self.eps), x + self.eps), 0.0, 1.0)

    def gradient(self, x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
        """Input gradient of the objective with this attack's mode/eot/targeting (source already set up)."""
        return gradient(self.model, x, y, self.grad_mode, self.eot, self.targeted)

    def _noise(self, shape, gen: torch.Generator, device, kind: str = "uniform") -> Tensor:
        """Random draws on the CPU generator (device-independent), moved to ``device``."""
        r = torch.rand(shape, generator=gen) if kind == "uniform" else torch.randn(shape, generator=gen)
        return r.to(device)

    @contextlib.contextmanager
    def _source(self, device):
        """Set the source up for crafting (mode, seeded encoder and RNG) and restore everything afterwards."""
        model = self.model
        was_training = model.training
        enc = getattr(model, "encoder", None)
        saved = None
        if enc is not None and hasattr(enc, "reseed") and hasattr(enc, "get_state"):
            saved = (enc.seed, enc.get_state(device))
        devices = []
        if device.type == "cuda":
            devices = [device.index if device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=devices):
            torch.default_generator.manual_seed(self.seed)  # dropout masks in train mode
            if device.type == "cuda":
                torch.cuda.manual_seed(self.seed)
            model.train(self.source_train_mode)
            if enc is not None and hasattr(enc, "reseed"):
                enc.reseed(self.seed)
            try:
                yield
            finally:
                model.train(was_training)
                if saved is not None:
                    enc.reseed(saved[0])
                    enc.set_state(saved[1], device)

    def _batched(self, x: Tensor, y: Tensor, fn) -> list:
        check_inputs(x, y)
        device = _model_device(self.model, x.device)
        bs = self.batch_size or max(int(x.shape[0]), 1)
        out = []
        with self._source(device):
            gen = torch.Generator().manual_seed(self.seed)
            for i in range(0, x.shape[0], bs):
                out.append(fn(x[i:i + bs].detach().to(device), y[i:i + bs].to(device, torch.long), gen))
        return out

    def attack(self, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial images for pixels x (B, C, H, W) in [0, 1] and labels y (B,) (targets if targeted).

        The result is within ``eps`` of x (L-infinity) and in [0, 1]; x itself is not modified.
        """
        parts = self._batched(x, y, lambda xb, yb, gen: self.project(self._attack_batch(xb, yb, gen), xb).detach())
        if not parts:
            return x.clone()
        return torch.cat(parts).to(x.device, x.dtype)

    __call__ = attack

    def input_gradient(self, x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
        """One gradient call at x with the attack's source setup (mode, seed, eot): (grad, objective)."""
        parts = self._batched(x, y, lambda xb, yb, gen: self.gradient(xb, yb))
        if not parts:
            return torch.zeros_like(x), x.new_zeros(0)
        return (torch.cat([p[0] for p in parts]).to(x.device),
                torch.cat([p[1] for p in parts]).to(x.device))

    def config(self) -> dict:
        """JSON-able description: attack name, eps (also x255), gradient mode and all hyper-parameters."""
        return dict(attack=self.name, eps=self.eps, eps_255=round(self.eps * 255, 6), grad_mode=self.grad_mode,
                    grad_mode_resolved=resolve_grad_mode(self.model, self.grad_mode), eot=self.eot,
                    targeted=self.targeted, seed=self.seed, source_train_mode=self.source_train_mode,
                    batch_size=self.batch_size, **self.params())

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v * 255:.4g}/255" if k == "alpha" else f", {k}={v}"
                        for k, v in self.params().items() if not k.endswith("_255"))
        return (f"{self.name}(eps={self.eps * 255:g}/255{extra}, grad_mode={self.grad_mode}, eot={self.eot}, "
                f"targeted={self.targeted}, seed={self.seed})")
