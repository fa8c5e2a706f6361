"""The attack base class (torchattacks style): ``x_adv = attack(x, y)`` within an L-infinity ball.

Every attack works in [0, 1] pixel space with an L-infinity budget ``eps`` (the book quotes eps * 255).  An attack
gets the input gradient through :func:`snnlib.attacks.gradients.gradient`; :meth:`Attack.get_logits` is the one
forward hook a subclass may override.
"""
from __future__ import annotations

import abc
import contextlib
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .checks import check_eot, check_eps, check_inputs, check_int
from .gradients import check_grad_mode, gradient, resolve_grad_mode
from .objective import model_device

__all__ = ["Attack"]


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
        self.seed = check_int("seed", seed)
        self.batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True)

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
        device = model_device(self.model, x.device)
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
