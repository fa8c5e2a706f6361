"""L-infinity attacks on ANNs and SNNs in [0, 1] pixel space: FGSM, R-FGSM, BIM and PGD (torchattacks style).

Usage::

    from snnlib.attacks import PGD
    atk = PGD(snn, eps=8/255, alpha=2/255, steps=7, grad_mode="bptt", eot=1, seed=0)
    x_adv = atk(x, y)          # |x_adv - x|_inf <= eps, x_adv in [0, 1]

``eps`` is in pixel units (the book quotes it as eps * 255, e.g. "8/255").  White-box: ``atk.model`` is the
evaluated model.  Black-box / transfer: craft on one model (ANN, converted SNN, BPTT SNN) and evaluate on another;
:mod:`snnlib.robustness` does both and fills the source-by-target matrix.

Gradient modes
--------------
An SNN's input layer is a Poisson sampler, ``s_t = sign(x_n) * 1[r_t <= |x_n|]`` with ``x_n = (x - 0.5) / 0.5``:
a random, piecewise-constant function of the pixels whose true derivative is zero almost everywhere.  An attack
therefore needs an *estimator* of dL/dx.  :data:`GRAD_MODES` holds them (``gradient(model, x, y, mode, eot,
targeted)`` is the one entry point all attacks use, and new estimators are registered there):

``"autograd"``
    Plain autograd input gradient.  Exact for an ANN.  For an SNN it gives whatever the encoder lets through:
    with the encoder's ``grad="ste"`` this is BPTT; with ``grad="none"`` the spikes are constants and the
    gradient is exactly zero (a masked gradient: the attack cannot move and robustness is overstated; the
    ``zero_grad_share`` flag in :mod:`snnlib.robustness` catches this).
``"bptt"``
    Back-propagation through time through the surrogate spike derivative, with the encoder switched to the
    straight-through estimator for the duration of the call (``ds_t/dx_n := 1``, so ``dL/dx_n = sum_t dL/ds_t``)
    and restored afterwards.  ``"auto"`` means ``"bptt"`` for SNNs and ``"autograd"`` for ANNs.
``"algorithm1"``
    The papers' Algorithm 1, on its own code path: run the SNN with the spikes as constants, keep the first conv
    layer's input current ``I_1[t] = W_1 * s_t`` (hook ``capture_first_current``), take dL/dI_1[t], sum it over
    t and map it back with the transposed first convolution (``conv_transpose2d(G, W_1, padding=1)``).
    Because ``W_1`` does not depend on t, ``conv_transpose(sum_t dL/dI_1[t]) = sum_t W_1^T dL/dI_1[t] =
    sum_t dL/ds_t``: exactly the straight-through gradient of ``"bptt"`` for the same spike draws (and the same
    dropout mask), which the tests check to float precision.  It is kept separate as the faithful reproduction
    and as an independent check of the STE path.  Both chain to pixels by ``dx_n/dx = 2`` (times the encoder
    rate).

Every mode takes fresh Poisson draws at each gradient evaluation (the encoder's generator just continues, as in
the released code, one sample path per step).  ``eot=k`` averages the gradient over k forward/backward passes
(expectation over transformation, Athalye et al. 2018), i.e. over k independent spike samples.

Randomness and determinism: random starts (PGD), the random step (R-FGSM), the source's Poisson spikes and, with
``source_train_mode=True``, its dropout masks each draw from their own stream derived from the attack's ``seed``
(:mod:`snnlib.seeding`: "attack.noise", "attack.encoder", "attack.dropout") at the start of every ``attack`` call,
so the same seed gives identical adversarial images and the streams are independent of each other.  The call
restores the encoder's state, the dropout generator, the global RNG and the model's train/eval mode afterwards.
``Attack.get_logits`` is the one forward hook a subclass may override (as in torchattacks).
"""
from .base import Attack  # noqa: F401
from .bim import BIM, kurakin_steps  # noqa: F401
from .checks import check_eps, check_eot, check_inputs, check_step_size, check_steps  # noqa: F401
from .fgsm import FGSM  # noqa: F401
from .gradients import GRAD_MODES, check_grad_mode, gradient, register_grad_mode, resolve_grad_mode  # noqa: F401
from .objective import attack_objective, is_spiking  # noqa: F401
from .pgd import PGD  # noqa: F401
from .rate import RATE_RULES, rate_forward  # noqa: F401
from .rfgsm import RFGSM  # noqa: F401
from .suite import PAPER_ALPHA, adaptive_suite, default_alpha, surrogate_variants  # noqa: F401

#: attack name -> class (the names the study's profiles use).
ATTACKS = {"fgsm": FGSM, "rfgsm": RFGSM, "bim": BIM, "pgd": PGD}

__all__ = ["Attack", "FGSM", "RFGSM", "BIM", "PGD", "ATTACKS", "GRAD_MODES", "gradient", "register_grad_mode",
           "resolve_grad_mode", "check_grad_mode", "attack_objective", "is_spiking", "kurakin_steps", "RATE_RULES",
           "rate_forward", "PAPER_ALPHA", "adaptive_suite", "default_alpha", "surrogate_variants", "check_eps",
           "check_eot", "check_inputs", "check_step_size", "check_steps"]
