"""AutoAttack's APGD and Square attacks from torchattacks, as snnlib :class:`~snnlib.attacks.base.Attack` objects.

``APGD(model, eps, steps=100, loss="ce", eot=1, restarts=1, seed=0)(x, y)`` and ``Square(model, eps,
queries=5000, p_init=0.8, restarts=1, seed=0)(x, y)`` run ``torchattacks.APGD`` / ``torchattacks.Square`` (imported
lazily: ``pip install torchattacks``) on snnlib ANNs and SNNs with snnlib's conventions:

* pixels in [0, 1], L-infinity budget ``eps`` in pixel units; the output is projected into the eps-ball and [0, 1]
  (by :meth:`Attack.attack`); torchattacks' input normalisation stays off (snnlib models normalise inside);
* the source runs in eval mode; an SNN's Poisson encoder is reseeded from ``seed`` (by :class:`Attack`) and, for
  APGD, switched to the straight-through gradient (``encoder.grad = "ste"``, i.e. BPTT, as grad mode "bptt") for
  the duration of the call and restored afterwards.  Square only queries the model's outputs (gradient-free: the
  masking check);
* torchattacks draws its random numbers (APGD's random start, Square's squares) from the *global* torch RNG and
  seeds it itself.  Every batch runs inside ``torch.random.fork_rng`` with torchattacks' seed set to
  ``snnlib.seeding.derive_seed(seed, "attack.noise", batch_index)``, so the caller's RNG state is untouched, the
  same seed gives the same images, and the noise stream is independent of the source's spike stream.
* the forward torchattacks sees is :meth:`Attack.get_logits` (override it to attack a transformed model).
"""
from __future__ import annotations

import abc
import contextlib
import importlib
import math
import numbers

import torch
from torch import Tensor, nn

from ..seeding import ATTACK_NOISE, derive_seed
from .base import Attack
from .checks import check_steps
from .gradients import encoder_grad

__all__ = ["APGD", "Square", "require_torchattacks", "APGD_LOSSES", "SQUARE_LOSSES", "APGD_KEEP"]

APGD_LOSSES = ("ce", "dlr")
SQUARE_LOSSES = ("margin", "ce")
#: what APGD returns per image: "fooled" (torchattacks: the first iterate that fooled the source, else the clean
#: image) or "best_loss" (the highest-loss iterate over all restarts, fooled or not)
APGD_KEEP = ("fooled", "best_loss")


def require_torchattacks():
    """The ``torchattacks`` module, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("torchattacks")
    except ImportError as err:
        raise ImportError("snnlib.attacks.external (APGD, Square) needs torchattacks: "
                          "pip install torchattacks (tested with 3.5.1)") from err


def check_choice(name: str, value, choices) -> str:
    """``value`` if it is one of ``choices``, else a ValueError naming the parameter and the choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


class AttackLogits(nn.Module):
    """The forward torchattacks calls: the snnlib attack's :meth:`Attack.get_logits` (default ``model(x)``).

    Holds the source model as a submodule, so torchattacks finds its parameters (device) and its train/eval switch.
    """

    def __init__(self, attack: Attack):
        super().__init__()
        self.source = attack.model
        self.attack_ref = attack  # a plain attribute: an Attack is not an nn.Module

    def forward(self, x: Tensor) -> Tensor:
        return self.attack_ref.get_logits(x)




@contextlib.contextmanager
def seeded_global_rng(seed: int):
    """Fork the global CPU (and every CUDA device's) RNG, seed it with ``seed``, restore it on exit."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)  # CPU and, lazily, all CUDA devices
        yield


class TorchattacksAttack(Attack):
    """Shared part of the torchattacks wrappers: the adapter, the seeding per batch and the batch counter."""

    #: set the source's encoder to the straight-through gradient while attacking (gradient-based attacks)
    needs_input_gradient = True

    def attack(self, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial images for x (B, C, H, W) in [0, 1] and labels y (B,); see :meth:`Attack.attack`."""
        self.batch_index = 0
        return super().attack(x, y)

    __call__ = attack

    def torchattacks_seed(self) -> int:
        """torchattacks' seed for the current batch: ``derive_seed(seed, "attack.noise", batch_index)``."""
        return derive_seed(self.seed, ATTACK_NOISE, getattr(self, "batch_index", 0))

    @abc.abstractmethod
    def build(self, forward: nn.Module, seed: int):
        """The torchattacks attack object over ``forward`` with torchattacks' ``seed`` (each wrapper defines it)."""

    def run(self, ta_attack, x: Tensor, y: Tensor) -> Tensor:
        """Run the torchattacks object on one batch (default: its ``__call__``)."""
        return ta_attack(x, y)

    def _attack_batch(self, x: Tensor, y: Tensor, gen: torch.Generator) -> Tensor:
        seed = self.torchattacks_seed()
        self.batch_index = getattr(self, "batch_index", 0) + 1
        if self.eps == 0:
            return x.clone()
        forward = AttackLogits(self)
        ta_attack = self.build(forward, seed)
        grad_setting = encoder_grad(self.model, "ste") if self.needs_input_gradient else contextlib.nullcontext()
        grad_context = torch.enable_grad() if self.needs_input_gradient else torch.no_grad()
        self.model.eval()  # torchattacks also switches to eval; the base class restores the caller's mode
        with seeded_global_rng(seed), grad_setting, grad_context:
            x_adv = self.run(ta_attack, x, y)
        return x_adv.detach().to(x.device, x.dtype)


class APGD(TorchattacksAttack):
    """Auto-PGD (Croce & Hein 2020), L-infinity, untargeted, over ``torchattacks.APGD``.

    steps: iterations per restart; loss: "ce" (cross-entropy) or "dlr" (difference of logits ratio, needs >= 3
    classes); eot: gradient passes averaged per step (torchattacks' ``eot_iter``; fresh Poisson spikes each pass);
    restarts: random restarts (torchattacks' ``n_restarts``; each restart attacks the images not yet fooled);
    rho: step-size decrease threshold; keep: "fooled" (torchattacks' output: an image the source was never fooled
    on comes back unperturbed) or "best_loss" (the highest-loss iterate of every image, fooled or not: the better
    choice against a stochastic target scored over other spike draws); seed, batch_size: as in :class:`Attack`.
    """

    name = "APGD"

    def __init__(self, model: nn.Module, eps: float = 8 / 255, steps: int = 100, loss: str = "ce", eot: int = 1,
                 restarts: int = 1, rho: float = 0.75, keep: str = "fooled", *, seed: int = 0, batch_size=None):
        super().__init__(model, eps, grad_mode="auto", eot=eot, seed=seed, batch_size=batch_size)
        self.steps = check_steps(steps)
        self.loss = check_choice("loss", loss, APGD_LOSSES)
        self.restarts = check_steps(restarts, "restarts")
        if isinstance(rho, bool) or not isinstance(rho, numbers.Real) or not 0.0 < float(rho) < 1.0 \
                or math.isnan(float(rho)):
            raise ValueError(f"rho (APGD's step-size decrease threshold) must be in (0, 1), got {rho!r}")
        self.rho = float(rho)
        self.keep = check_choice("keep", keep, APGD_KEEP)

    def params(self) -> dict:
        return dict(steps=self.steps, loss=self.loss, restarts=self.restarts, rho=self.rho, keep=self.keep,
                    backend="torchattacks")

    def build(self, forward: nn.Module, seed: int):
        ta = require_torchattacks()
        return ta.APGD(forward, norm="Linf", eps=self.eps, steps=self.steps, n_restarts=self.restarts, seed=seed,
                       loss=self.loss, eot_iter=self.eot, rho=self.rho, verbose=False)

    def run(self, ta_attack, x: Tensor, y: Tensor) -> Tensor:
        if self.keep == "fooled":
            return ta_attack(x, y)
        # torchattacks does not seed its best-loss branch; the global RNG is already seeded with its seed here
        _, x_adv = ta_attack.perturb(x.clone().detach(), y.clone().detach(), best_loss=True)
        return x_adv


class Square(TorchattacksAttack):
    """Square attack (Andriushchenko et al. 2020), L-infinity, untargeted, over ``torchattacks.Square``.

    Gradient-free random search on the source's outputs (the check for gradient masking).  queries: model queries
    per restart (torchattacks' ``n_queries``); p_init: initial share of pixels changed per square; restarts:
    torchattacks' ``n_restarts``; loss: "margin" or "ce"; seed, batch_size: as in :class:`Attack`.  An image the
    source is never fooled on comes back unperturbed (torchattacks' convention).
    """

    name = "Square"
    needs_input_gradient = False

    def __init__(self, model: nn.Module, eps: float = 8 / 255, queries: int = 5000, p_init: float = 0.8,
                 restarts: int = 1, loss: str = "margin", *, seed: int = 0, batch_size=None):
        super().__init__(model, eps, grad_mode="auto", seed=seed, batch_size=batch_size)
        self.queries = check_steps(queries, "queries")
        if isinstance(p_init, bool) or not isinstance(p_init, numbers.Real) or math.isnan(float(p_init)) \
                or not 0.0 < float(p_init) <= 1.0:
            raise ValueError(f"p_init (initial share of pixels per square) must be in (0, 1], got {p_init!r}")
        self.p_init = float(p_init)
        self.restarts = check_steps(restarts, "restarts")
        self.loss = check_choice("loss", loss, SQUARE_LOSSES)

    def params(self) -> dict:
        return dict(queries=self.queries, p_init=self.p_init, restarts=self.restarts, loss=self.loss,
                    gradient_free=True, backend="torchattacks")

    def build(self, forward: nn.Module, seed: int):
        ta = require_torchattacks()
        return ta.Square(forward, norm="Linf", eps=self.eps, n_queries=self.queries, n_restarts=self.restarts,
                         p_init=self.p_init, loss=self.loss, resc_schedule=True, seed=seed, verbose=False)
