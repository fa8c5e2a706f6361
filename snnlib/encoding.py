"""Input encoders: images (B, C, H, W) in [0, 1] pixel units -> input sequences (T, B, C, H, W).

* ``PoissonEncoder`` — the papers' signed rate code: with ``x_norm = (x - 0.5) / 0.5`` in [-1, 1],
  ``s_t = sign(x_norm) * 1[r_t <= |x_norm|]``, ``r_t ~ U(0, 1)`` i.i.d. per pixel and step, so E[s_t] = x_norm.
  Random numbers come from the encoder's own ``torch.Generator`` (seeded), never from the global RNG; with
  per-sample seeds (``set_sample_seeds``) each image draws from its own generator instead, so an image's spikes do
  not depend on the other images of its batch.
* ``DirectEncoder`` — the analog ``x_norm`` repeated at every step (a control without discretisation).
* ``quantize(x, bits)`` — input pre-quantisation of pixels to ``2**bits`` levels before encoding.

Gradient modes (``grad``): ``"none"`` (the spikes are constants: no gradient reaches the pixels) or ``"ste"``
(straight-through on the expected value: backward treats ds_t/dx_norm as the identity, so
dL/dx_norm = sum_t dL/ds_t, which is what the papers' Algorithm 1 computes).
"""
from __future__ import annotations

import numbers
from typing import List, Optional

import torch
from torch import Tensor, nn

__all__ = ["normalize", "quantize", "PoissonEncoder", "DirectEncoder", "make_encoder", "GRAD_MODES",
           "check_timesteps"]

GRAD_MODES = ("none", "ste")


def check_timesteps(T) -> int:
    """Validate a number of timesteps: an int >= 1."""
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"T (timesteps) must be an int >= 1, got {type(T).__name__} {T!r}")
    if T < 1:
        raise ValueError(f"T (timesteps) must be >= 1, got {T}")
    return T


def normalize(x: Tensor) -> Tensor:
    """Pixels in [0, 1] -> the papers' normalised input ``(x - 0.5) / 0.5`` in [-1, 1]."""
    return (x - 0.5) / 0.5


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, levels):
        return torch.round(x * levels) / levels

    @staticmethod
    def backward(ctx, g):
        return g, None


def quantize(x: Tensor, bits: Optional[int]) -> Tensor:
    """Quantise pixels in [0, 1] to ``2**bits`` evenly spaced levels (None = unchanged); straight-through gradient."""
    if bits is None:
        return x
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"quantisation bits must be an int in 1..8 or None, got {bits!r}")
    return _RoundSTE.apply(x, float(2 ** bits - 1))


def _check_grad(grad: str) -> str:
    if grad not in GRAD_MODES:
        raise ValueError(f"unknown encoder gradient mode {grad!r}; choose one of {GRAD_MODES}")
    return grad


class PoissonEncoder(nn.Module):
    """Signed Bernoulli ("Poisson") rate encoder of the released code.

    seed: seeds the encoder's generator (``reseed`` resets it); rate: the ``inp_rate`` factor (1.0 in the papers);
    bits: optional input pre-quantisation; grad: "none" | "ste".
    forward(x (B, C, H, W) in [0, 1], T) -> spikes (T, B, C, H, W) with values in {-1, 0, +1}.

    Per-sample streams: after ``set_sample_seeds(seeds (B,))`` image b's uniforms (T, C, H, W) come from its own
    generator seeded with ``seeds[b]``, which continues from call to call (time chunks); the batch generator is
    neither used nor moved.  ``set_sample_seeds(None)`` returns to the batch generator.
    """

    kind = "poisson"

    def __init__(self, seed: int = 0, rate: float = 1.0, bits: Optional[int] = None, grad: str = "ste"):
        super().__init__()
        if not 0.0 < float(rate) <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        quantize(torch.zeros(1), bits)  # validates bits
        self.rate, self.bits, self.grad = float(rate), bits, _check_grad(grad)
        self.seed = int(seed)
        self._generators = {}
        self.sample_seeds: Optional[List[int]] = None
        self._sample_generators = {}

    def reseed(self, seed: Optional[int] = None) -> None:
        """Restart the (batch) spike stream from ``seed`` (default: the constructor's seed)."""
        if seed is not None:
            self.seed = int(seed)
        self._generators = {}

    def set_sample_seeds(self, seeds: Optional[Tensor]) -> None:
        """Draw image b's spikes from its own generator seeded with ``seeds[b]`` (a 1-D integer tensor or list, one
        seed per image of the next batches); None = back to the one batch generator.  Setting restarts the streams."""
        if seeds is None:
            self.sample_seeds, self._sample_generators = None, {}
            return
        if isinstance(seeds, Tensor):
            if seeds.dim() != 1 or seeds.is_floating_point() or seeds.dtype == torch.bool:
                raise ValueError(f"sample seeds must be a 1-D integer tensor (one seed per image), got dtype "
                                 f"{seeds.dtype} and shape {tuple(seeds.shape)}")
            seeds = seeds.tolist()
        seeds = list(seeds)
        if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in seeds):
            raise ValueError("sample seeds must be ints (one per image), e.g. snnlib.seeding.derive_seeds(...)")
        self.sample_seeds, self._sample_generators = [int(v) for v in seeds], {}

    def sample_generators(self, device) -> List[torch.Generator]:
        """The per-image generators on ``device`` (created from ``sample_seeds`` on first use)."""
        if self.sample_seeds is None:
            raise RuntimeError("no per-sample seeds set; call set_sample_seeds(seeds) first")
        device = torch.device(device)
        key = str(device)
        if key not in self._sample_generators:
            gens = []
            for v in self.sample_seeds:
                g = torch.Generator(device=device)
                g.manual_seed(v)
                gens.append(g)
            self._sample_generators[key] = gens
        return self._sample_generators[key]

    def generator(self, device) -> torch.Generator:
        device = torch.device(device)
        key = str(device)
        if key not in self._generators:
            g = torch.Generator(device=device)
            g.manual_seed(self.seed)
            self._generators[key] = g
        return self._generators[key]

    def get_state(self, device="cpu") -> Tensor:
        return self.generator(device).get_state()

    def set_state(self, state: Tensor, device="cpu") -> None:
        self.generator(device).set_state(state)

    def forward(self, x: Tensor, T: int) -> Tensor:
        check_timesteps(T)
        xn = normalize(quantize(x, self.bits)) * self.rate
        if self.sample_seeds is None:
            r = torch.rand((T,) + tuple(x.shape), generator=self.generator(x.device), device=x.device, dtype=x.dtype)
        else:
            r = self._per_sample_uniforms(x, T)
        with torch.no_grad():
            s = torch.sign(xn) * (r <= xn.abs()).to(x.dtype)
        if self.grad == "ste" and xn.requires_grad:
            return xn.unsqueeze(0) + (s - xn.unsqueeze(0)).detach()
        return s

    def _per_sample_uniforms(self, x: Tensor, T: int) -> Tensor:
        """Uniforms (T, B, C, H, W), image b's from its own generator."""
        if x.shape[0] != len(self.sample_seeds):
            raise ValueError(f"the encoder has {len(self.sample_seeds)} per-sample seeds but the batch has "
                             f"{x.shape[0]} images; call set_sample_seeds with one seed per image (or None)")
        shape = (T,) + tuple(x.shape[1:])
        gens = self.sample_generators(x.device)
        if not gens:
            return x.new_empty((T,) + tuple(x.shape))
        return torch.stack([torch.rand(shape, generator=g, device=x.device, dtype=x.dtype) for g in gens], dim=1)

    def extra_repr(self) -> str:
        return f"seed={self.seed}, rate={self.rate:g}, bits={self.bits}, grad={self.grad}"


class DirectEncoder(nn.Module):
    """Analog control: the normalised image repeated over T steps, (T, B, C, H, W); exact gradient."""

    kind = "direct"

    def __init__(self, bits: Optional[int] = None, grad: str = "ste"):
        super().__init__()
        quantize(torch.zeros(1), bits)
        self.bits, self.grad = bits, _check_grad(grad)

    def reseed(self, seed: Optional[int] = None) -> None:
        """No randomness; kept for a uniform encoder interface."""

    def forward(self, x: Tensor, T: int) -> Tensor:
        check_timesteps(T)
        xn = normalize(quantize(x, self.bits))
        if self.grad == "none":
            xn = xn.detach()
        return xn.unsqueeze(0).expand((T,) + tuple(xn.shape))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, grad={self.grad}"


def make_encoder(kind: str = "poisson", seed: int = 0, bits: Optional[int] = None, grad: str = "ste") -> nn.Module:
    """Encoder by name: "poisson" (the papers') or "direct" (analog control)."""
    if kind == "poisson":
        return PoissonEncoder(seed=seed, bits=bits, grad=grad)
    if kind == "direct":
        return DirectEncoder(bits=bits, grad=grad)
    raise ValueError(f"unknown encoder {kind!r}; choose 'poisson' or 'direct'")
