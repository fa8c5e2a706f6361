"""The attack base class (torchattacks style): ``x_adv = attack(x, y)`` within an L-infinity ball.

Every attack works in [0, 1] pixel space with an L-infinity budget ``eps`` (the book quotes eps * 255).  An attack
gets the input gradient through :func:`snnlib.attacks.gradients.gradient`; :meth:`Attack.get_logits` is the one
forward hook a subclass may override (as torchattacks' ``get_logits``): every gradient evaluation and every scoring
pass of the attack goes through it.
"""
from __future__ import annotations

import abc
import contextlib
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..seeding import ATTACK_DROPOUT, ATTACK_ENCODER, ATTACK_NOISE, derive_seed, generator
from .checks import check_eot, check_eps, check_inputs, check_int
from .gradients import accepts_forward, check_grad_mode, gradient, resolve_grad_mode
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

    Determinism and independent streams (:mod:`snnlib.seeding`): at the start of ``attack`` each random draw gets
    its own stream derived from ``seed``: the random start / random step from ``"attack.noise"``, the source's
    Poisson encoder is reseeded with ``derive_seed(seed, "attack.encoder")``, and dropout masks (train mode) come
    from ``"attack.dropout"``: the global RNG (an ANN's ``nn.Dropout``) is seeded with key 0 inside
    ``torch.random.fork_rng`` and a ``SpikingVGG.dropout_generator`` is set to the key-1 stream.  Within one call the
    encoder's stream just continues, so every gradient evaluation (every step, every EOT pass) sees fresh spikes.
    After the call the encoder's seed and generator state, the dropout generator, the global RNG and the model's
    train/eval mode are restored, so an attack leaves the model exactly as it found it.

    get_logits(x) -> logits: the forward the attack differentiates and scores with (default ``self.model(x)``);
    override it in a subclass to attack a transformed model.  Gradient modes that differentiate a forward of their
    own ("rate", "rga", "ann_proxy") cannot use an overridden get_logits and are refused with a ValueError.
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
        self.seed = check_int("seed", seed, minimum=0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True)
        if self.overrides_get_logits() and not accepts_forward(resolve_grad_mode(model, self.grad_mode)):
            raise ValueError(f"{type(self).__name__} overrides get_logits, but grad_mode "
                             f"{resolve_grad_mode(model, self.grad_mode)!r} differentiates a forward of its own; use "
                             f"'autograd', 'bptt' or 'algorithm1'")

    # -- the part subclasses write
    @abc.abstractmethod
    def _attack_batch(self, x: Tensor, y: Tensor, gen: torch.Generator) -> Tensor:
        """Adversarial examples for one batch x (B, 3, H, W) in [0, 1]; random draws only from ``gen``."""

    def params(self) -> dict:
        """The attack's own hyper-parameters (subclasses add theirs)."""
        return {}

    # -- the forward hook
    def get_logits(self, x: Tensor) -> Tensor:
        """Logits (B, classes) of the source at pixels x (B, C, H, W) in [0, 1]; every gradient evaluation and every
        scoring pass of the attack calls this (override it to attack a transformed model)."""
        return self.model(x)

    def overrides_get_logits(self) -> bool:
        """True when a subclass replaced :meth:`get_logits`."""
        return type(self).get_logits is not Attack.get_logits

    # -- shared machinery
    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Clip into the eps-ball around x, then into [0, 1]."""
        return torch.clamp(torch.min(torch.max(x_adv, x - self.eps), x + self.eps), 0.0, 1.0)

    def gradient(self, x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
        """Input gradient of the objective of :meth:`get_logits` with this attack's mode/eot/targeting (source
        already set up): (grad (B, C, H, W), objective (B,))."""
        mode = resolve_grad_mode(self.model, self.grad_mode)
        forward = self.get_logits if accepts_forward(mode) else None
        return gradient(self.model, x, y, mode, self.eot, self.targeted, forward=forward)

    def _noise(self, shape, gen: torch.Generator, device, kind: str = "uniform",
               dtype: torch.dtype = torch.float32) -> Tensor:
        """Random draws of ``dtype`` on the CPU generator (device-independent), moved to ``device``."""
        if kind == "uniform":
            r = torch.rand(shape, generator=gen, dtype=dtype)
        else:
            r = torch.randn(shape, generator=gen, dtype=dtype)
        return r.to(device)

    @contextlib.contextmanager
    def _source(self, device):
        """Set the source up for crafting (mode, seeded encoder, dropout streams) and restore everything afterwards."""
        model = self.model
        was_training = model.training
        enc = getattr(model, "encoder", None)
        saved = None
        if enc is not None and hasattr(enc, "reseed") and hasattr(enc, "get_state"):
            saved = (enc.seed, enc.get_state(device))
        has_dropout_generator = hasattr(model, "dropout_generator")
        old_dropout_generator = getattr(model, "dropout_generator", None)
        devices = []
        if device.type == "cuda":
            devices = [device.index if device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=devices):
            global_seed = derive_seed(self.seed, ATTACK_DROPOUT, 0)  # an ANN's nn.Dropout in train mode
            torch.default_generator.manual_seed(global_seed)
            for index in devices:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(global_seed)
            model.train(self.source_train_mode)
            if has_dropout_generator:  # a SpikingVGG's dropout masks
                model.dropout_generator = generator(self.seed, ATTACK_DROPOUT, 1)
            if enc is not None and hasattr(enc, "reseed"):
                enc.reseed(derive_seed(self.seed, ATTACK_ENCODER))
            try:
                yield
            finally:
                model.train(was_training)
                if has_dropout_generator:
                    model.dropout_generator = old_dropout_generator
                if saved is not None:
                    enc.reseed(saved[0])
                    enc.set_state(saved[1], device)

    def _batched(self, x: Tensor, y: Tensor, fn) -> list:
        check_inputs(x, y)
        device = model_device(self.model, x.device)
        bs = self.batch_size or max(int(x.shape[0]), 1)
        out = []
        with self._source(device):
            gen = generator(self.seed, ATTACK_NOISE)
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
