"""Adaptive (stronger) attacks on SNNs: rate-based and ANN-proxy gradients, surrogate sweeps, the worst case.

The papers attack an SNN with one gradient estimator (Algorithm 1: BPTT through the linear surrogate, a
straight-through Poisson encoder, one spike sample per step, 7 PGD steps).  If that estimator is poor, the SNN
*looks* robust without being so (gradient masking).  Later work (reference/papers.md 3) attacks with several
estimators and takes the per-image worst case.  This module adds those estimators to the gradient-mode registry
:data:`snnlib.attacks.base.GRAD_MODES` at import time, so every attack accepts them as ``grad_mode``:

``"rate"``  (BPTR, Ding et al., SNN-RAT, NeurIPS 2022)
    Forward: the real SNN (the same encoder draw and the same spikes as ``snn(x)``, hence the same logits).
    Backward: through the time-averaged activity.  Each spiking layer l with mean input current
    ``I_l = mean_t I_l[t]`` (B, ...) and real mean output rate ``r_l = mean_t s_l[t]`` is treated as
    ``r_l ~= I_l / theta_l`` with the derivative masked where the neuron never fired::

        d r_l / d I_l = 1[r_l > 0] / theta_l

    (SNN-RAT's ``RateBp`` with its unit threshold generalised to theta_l).  Convolutions, pooling, dropout masks
    and linear layers are linear and time-invariant, so they act on the rates directly, and the Poisson encoder is
    the identity on its mean: ``d r_0 / d x_n = 1`` (``x_n = (x - 0.5) / 0.5 * rate``).  The logits are the
    output layer applied to the last rate, exactly the SNN's ``output(sum_t s_t) / T``.
``"rga"``  (RGA, Bu et al., CVPR 2023; code putshua/SNN_attack_RGA ``RateBp``)
    The same rate path with RGA's leak-aware derivative of the normalised mean current ``u = I_l / theta_l``
    (gamma = 0.2, ext = 1, leak lambda)::

        d r_l / d I_l = ( 1[1 - lambda <= u <= 1 + ext] * (1 - gamma + gamma * lambda) / (lambda + ext)
                          + 1[0 <= u < 1 - lambda] * gamma ) / theta_l

    For IF neurons (lambda = 1) this is ``0.5 / theta_l`` on ``0 <= u <= 2``.  (The released code has
    ``u <= 1 - lambda`` in the second term, which double-counts the single point ``u = 1 - lambda``.)
``"ann_proxy"``  (BPDA, Athalye, Carlini & Wagner, ICML 2018)
    The exact autograd gradient of the ANN over the SNN's own weights, ``snn.net(x)`` (with the encoder's input
    quantisation).  For a converted SNN this is the source ANN; for a BPTT-fine-tuned SNN it is the ANN that
    shares its weights.  The examples are crafted on the ANN and evaluated on the SNN.

Implementation of the rate modes: a custom forward over the SNN's layers first runs the spiking layers on the
spike sequence without a graph (in ``snn.time_chunk`` pieces when set), keeping each layer's mean input current
and mean output rate; then a differentiable rate path over the same weights takes the real rates as its forward
values through the straight-through trick ``r = path + (real - path).detach()``, so autograd gives the rate
gradient.  Memory is that of one ANN pass, whatever T.  EOT is the ``eot=k`` option of every attack and works with all of these modes.

Helpers: :func:`surrogate_variants` (twins with other surrogate shapes/widths to craft on), :func:`worst_case`
and :func:`evaluate_worst_case` (an image is robust only if it survives every attack), and
:func:`adaptive_suite` (the papers' attack next to the stronger ones, with readable names for a table).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .attacks.base import GRAD_MODES, Attack, attack_objective, check_eps, check_inputs
from .attacks.pgd import PGD
from .encoding import normalize, quantize
from .evaluate import predict
from .models import VGG, SpikingVGG
from .neurons import SURROGATES, _forward_loop, get_surrogate
from .stats import Accuracy, accuracy_from_counts

__all__ = ["RATE_RULES", "rate_forward", "surrogate_variants", "worst_case", "WorstCaseResult", "default_alpha",
           "evaluate_worst_case", "adaptive_suite", "PAPER_ALPHA"]

PAPER_ALPHA = 2 / 255  # the released code's PGD step (with 7 steps at eps = 8/255)


# ----------------------------------------------------------------------------------------------- rate rules
def _bptr_slope(u: Tensor, rate: Tensor, th: Tensor, leak: float) -> Tensor:
    """BPTR: 1[real mean rate > 0] / theta.  u: normalised mean current, rate: real mean output rate (B, ...)."""
    return (rate > 0).to(u.dtype) / th


def _rga_slope(u: Tensor, rate: Tensor, th: Tensor, leak: float, gamma: float = 0.2, ext: float = 1.0) -> Tensor:
    """RGA (putshua/SNN_attack_RGA ``RateBp.backward``) on u = mean current / theta, divided by theta."""
    lam = float(leak)
    upper = ((u >= 1 - lam) & (u <= 1 + ext)).to(u.dtype) * ((1 - gamma + gamma * lam) / (lam + ext))
    lower = ((u < 1 - lam) & (u >= 0)).to(u.dtype) * gamma
    return (upper + lower) / th


#: name -> slope(u, rate, theta, leak): d(mean output rate)/d(mean input current) of one spiking layer.
RATE_RULES: Dict[str, Callable[[Tensor, Tensor, Tensor, float], Tensor]] = {"bptr": _bptr_slope,
                                                                           "rga": _rga_slope}


# ----------------------------------------------------------------------------------------------- rate forward
def _require_snn(model: nn.Module, what: str) -> SpikingVGG:
    if not isinstance(model, SpikingVGG):
        raise TypeError(f"{what} needs a snnlib SpikingVGG, got {type(model).__name__}")
    return model


def _encoder_mean(enc: nn.Module, x: Tensor) -> Tensor:
    """E[s_t] of the encoder as a differentiable function of the pixels: x_n * rate, (B, C, H, W)."""
    return normalize(quantize(x, getattr(enc, "bits", None))) * float(getattr(enc, "rate", 1.0))


@torch.no_grad()
def _simulate_rates(snn: SpikingVGG, x: Tensor, masks: Optional[List[Tensor]]) -> Tuple[Tensor, List[tuple]]:
    """Run the real SNN (no graph) and keep time averages: (input rate (B, C, H, W), [(mean current, mean output
    rate) per spiking layer, each (B, ...)]).  Simulates at most ``snn.time_chunk`` steps at once, carrying the
    membranes over, so memory does not grow with T."""
    T, net = snn.T, snn.net
    chunk = min(snn.time_chunk or T, T)
    states: Dict[int, Tensor] = {}
    sums: Dict[int, List[Tensor]] = {}
    in_sum, done = None, 0

    def spiking(cur: Tensor, li: int) -> Tensor:
        s, states[li], _ = _forward_loop(cur, snn.thresholds[li], snn.leak, snn.reset, snn.delay,
                                         states.get(li), keep_v=False)
        c, r = cur.sum(0), s.sum(0)
        sums[li] = [c, r] if li not in sums else [sums[li][0] + c, sums[li][1] + r]
        return s

    while done < T:
        n = min(chunk, T - done)
        h = snn.encoder(x, n)
        in_sum = h.sum(0) if in_sum is None else in_sum + h.sum(0)
        net.walk(h, spiking, masks, snn.channels_last)
        done += n
    return in_sum / T, [(sums[i][0] / T, sums[i][1] / T) for i in range(len(sums))]


def rate_forward(snn: SpikingVGG, x: Tensor, rule: str = "bptr") -> Tensor:
    """Logits (B, classes) of the real SNN on pixels x (B, 3, 32, 32), differentiable through the rate path.

    One encoder draw and (in train mode) one set of dropout masks, as ``snn(x)``; the value equals ``snn(x)``
    for the same draw up to float rounding.  rule: a key of :data:`RATE_RULES` ("bptr" or "rga").  The graph
    holds only time-averaged tensors (B, ...), and ``snn.time_chunk`` bounds the simulation memory.
    """
    _require_snn(snn, "rate_forward")
    if rule not in RATE_RULES:
        raise ValueError(f"unknown rate rule {rule!r}; choose one of {sorted(RATE_RULES)}")
    slope, net = RATE_RULES[rule], snn.net
    masks = snn._dropout_masks(x)
    r_in, layers = _simulate_rates(snn, x.detach(), masks)
    xm = _encoder_mean(snn.encoder, x)
    r = xm + (r_in - xm).detach()  # the encoder: identity on its mean

    def spiking(path_cur: Tensor, li: int) -> Tensor:  # value: the real rate; gradient: slope * d(mean current)
        cur, real = layers[li]
        th = snn.thresholds[li]
        path = path_cur * slope(cur / th, real, th, snn.leak)
        return path + (real - path).detach()

    r = net.walk(r, spiking, masks)
    return net.output(r)


# ----------------------------------------------------------------------------------------------- grad modes
def _input_grad(forward: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, targeted: bool):
    """(grad (B, C, H, W), objective (B,)) of the attack objective of ``forward`` at x."""
    with torch.enable_grad():
        xr = x.detach().clone().requires_grad_(True)
        obj = attack_objective(forward(xr), y, targeted)
        (g,) = torch.autograd.grad(obj.sum(), xr, allow_unused=True)
    return (torch.zeros_like(x) if g is None else g.detach()), obj.detach()


def _grad_rate(model: nn.Module, x: Tensor, y: Tensor, targeted: bool):
    """GRAD_MODES["rate"]: BPTR rate gradient (see the module docstring)."""
    _require_snn(model, "grad_mode 'rate'")
    return _input_grad(lambda xr: rate_forward(model, xr, "bptr"), x, y, targeted)


def _grad_rga(model: nn.Module, x: Tensor, y: Tensor, targeted: bool):
    """GRAD_MODES["rga"]: RGA rate gradient (see the module docstring)."""
    _require_snn(model, "grad_mode 'rga'")
    return _input_grad(lambda xr: rate_forward(model, xr, "rga"), x, y, targeted)


def _grad_ann_proxy(model: nn.Module, x: Tensor, y: Tensor, targeted: bool):
    """GRAD_MODES["ann_proxy"]: autograd through ``model.net`` (the ANN twin); an ANN is its own proxy."""
    net = getattr(model, "net", model) if getattr(model, "encoder", None) is not None else model
    bits = getattr(getattr(model, "encoder", None), "bits", None)
    fwd = (lambda xr: net(xr, bits=bits)) if isinstance(net, VGG) else net
    return _input_grad(fwd, x, y, targeted)


GRAD_MODES["rate"] = _grad_rate
GRAD_MODES["rga"] = _grad_rga
GRAD_MODES["ann_proxy"] = _grad_ann_proxy


# ----------------------------------------------------------------------------------------------- surrogate sweep
def surrogate_variants(snn: SpikingVGG, names: Sequence[str] = ("linear", "fast_sigmoid", "arctan", "rectangle"),
                       widths: Optional[Mapping[str, Sequence[float]]] = None) -> Dict[str, SpikingVGG]:
    """Twins of ``snn`` (same weights, thresholds, forward) with other surrogate gradients, to craft on.

    names: surrogate registry names; widths: {name: [width, ...]} (names missing from it use their default width).
    Returns {"arctan(width=2)": twin, ...} in the given order.  The forward pass is unchanged, only BPTT differs.
    """
    _require_snn(snn, "surrogate_variants")
    if isinstance(names, str):
        names = (names,)
    widths = dict(widths or {})
    unknown = [n for n in list(names) + list(widths) if n not in SURROGATES]
    if unknown:
        raise ValueError(f"unknown surrogate(s) {unknown}; choose from {sorted(SURROGATES)}")
    out: Dict[str, SpikingVGG] = {}
    for name in names:
        for w in widths.get(name, [None]):
            sg = get_surrogate(name, w)
            out[repr(sg)] = snn.twin(surrogate=sg)
    return out


# ----------------------------------------------------------------------------------------------- worst case
def worst_case(results_per_attack: Mapping[str, Tensor]) -> Tensor:
    """Per-image robustness (N,) bool: correct under *every* attack.  Input: {name: per-image correct (N,) bool}."""
    if not results_per_attack:
        raise ValueError("worst_case needs at least one attack's per-image results")
    masks = [torch.as_tensor(v).to(torch.bool).flatten().cpu() for v in results_per_attack.values()]
    n = masks[0].numel()
    if any(m.numel() != n for m in masks):
        raise ValueError(f"per-image results differ in length: "
                         f"{ {k: int(torch.as_tensor(v).numel()) for k, v in results_per_attack.items()} }")
    return torch.stack(masks).all(0)


@dataclass
class WorstCaseResult:
    """Per-attack adversarial accuracy of one target and the per-image worst case over the attacks.

    per_attack: {name: Accuracy}; worst: Accuracy of images correct under every attack (and clean, when
    ``include_clean``); strongest: {name: images for which it is the first attack, in the given order, that
    fooled them}; unique: {name: images that only this attack fooled}; correct: {name: (N,) bool}.
    """

    n: int
    eps: Dict[str, float]
    clean: Accuracy
    per_attack: Dict[str, Accuracy]
    worst: Accuracy
    strongest: Dict[str, int]
    unique: Dict[str, int]
    robust: Tensor
    correct: Dict[str, Tensor] = field(repr=False, default_factory=dict)
    configs: Dict[str, dict] = field(repr=False, default_factory=dict)
    max_linf: Dict[str, float] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    include_clean: bool = True
    eval_seed: Optional[int] = 0

    @property
    def weakest_gap(self) -> float:
        """Best single attack's accuracy minus the worst case (fraction, >= 0): what the ensemble adds."""
        return min(a.value for a in self.per_attack.values()) - self.worst.value

    def to_dict(self) -> dict:
        """JSON-able dict (accuracies as dicts, eps also in /255, the per-image worst case as 0/1)."""
        return dict(n=self.n, eps=self.eps, eps_255={k: round(v * 255, 6) for k, v in self.eps.items()},
                    clean=self.clean.to_dict(), per_attack={k: v.to_dict() for k, v in self.per_attack.items()},
                    worst=self.worst.to_dict(), strongest=dict(self.strongest), unique=dict(self.unique),
                    robust_per_image=[int(b) for b in self.robust.tolist()], attacks=self.configs,
                    max_linf=self.max_linf, seconds={k: round(v, 3) for k, v in self.seconds.items()},
                    include_clean=self.include_clean, eval_seed=self.eval_seed)

    def __str__(self) -> str:
        rows = [f"  {k:<32} {v}" for k, v in self.per_attack.items()]
        return "\n".join([f"clean {self.clean}", *rows, f"  {'worst case':<32} {self.worst}"])


def _attribution(correct: Dict[str, Tensor]) -> Tuple[Dict[str, int], Dict[str, int]]:
    """(first attack in order that fooled each image: counts, images fooled by exactly one attack: counts)."""
    names = list(correct)
    fooled = torch.stack([~correct[k] for k in names])  # (A, N)
    any_fooled = fooled.any(0)
    first = fooled.to(torch.int8).argmax(0)
    strongest = {k: int(((first == i) & any_fooled).sum()) for i, k in enumerate(names)}
    only = fooled.sum(0) == 1
    unique = {k: int((fooled[i] & only).sum()) for i, k in enumerate(names)}
    return strongest, unique


def evaluate_worst_case(target: nn.Module, attacks: Mapping[str, Attack], x: Tensor, y: Tensor, *,
                        eval_seed: Optional[int] = 0, batch_size: int = 64,
                        include_clean: bool = True) -> WorstCaseResult:
    """Craft with every attack, evaluate ``target`` on each, and take the per-image worst case.

    x: (N, 3, 32, 32) pixels in [0, 1]; y: (N,) true labels; attacks: {name: untargeted Attack} (their ``model``
    is the crafting source: the target, a twin or another model).  Predictions use
    :func:`snnlib.evaluate.predict` with the target's encoder reseeded from ``eval_seed`` for every pass, so
    all attacks are scored on the same spike stream.  include_clean: an image misclassified without attack
    counts as not robust (the AutoAttack convention).  By construction the worst case is never above any
    single attack's accuracy.
    """
    check_inputs(x, y)
    if not attacks:
        raise ValueError("evaluate_worst_case needs at least one attack")
    for name, atk in attacks.items():
        if not isinstance(atk, Attack):
            raise TypeError(f"attack {name!r} must be a snnlib.attacks.Attack, got {type(atk).__name__}")
        if atk.targeted:
            raise ValueError(f"attack {name!r} is targeted; the worst case is over untargeted attacks")
    if include_clean and "clean" in attacks:
        raise ValueError("'clean' names the unattacked images; give the attack another name")
    y = y.cpu()
    n = int(y.numel())
    if n == 0:
        raise ValueError("no images to evaluate")
    clean_ok = predict(target, x, batch_size, eval_seed) == y
    correct, max_linf, seconds = {}, {}, {}
    for name, atk in attacks.items():
        t0 = time.time()
        x_adv = atk(x, y)
        correct[name] = predict(target, x_adv, batch_size, eval_seed) == y
        max_linf[name] = float((x_adv.detach().cpu().double() - x.detach().cpu().double()).abs().max())
        seconds[name] = time.time() - t0
    groups = ({"clean": clean_ok} if include_clean else {}) | correct
    robust = worst_case(groups)
    strongest, unique = _attribution(groups)
    acc = {k: accuracy_from_counts(int(v.sum()), n) for k, v in correct.items()}
    return WorstCaseResult(n=n, eps={k: a.eps for k, a in attacks.items()},
                           clean=accuracy_from_counts(int(clean_ok.sum()), n), per_attack=acc,
                           worst=accuracy_from_counts(int(robust.sum()), n), strongest=strongest, unique=unique,
                           robust=robust, correct=correct, configs={k: a.config() for k, a in attacks.items()},
                           max_linf=max_linf, seconds=seconds, include_clean=include_clean, eval_seed=eval_seed)


# ----------------------------------------------------------------------------------------------- the suite
def default_alpha(eps: float, steps: int) -> float:
    """Step size for long PGD: ``eps * max(2.5 / steps, 1/10)`` (Madry's 2.5 eps / steps, at least eps / 10)."""
    return eps * max(2.5 / steps, 0.1)


def adaptive_suite(snn: SpikingVGG, eps: float, *, steps: int = 50, restarts: int = 2, eot: int = 8,
                   alpha: Optional[float] = None, eot_steps: Optional[int] = None,
                   surrogates: Sequence[str] = ("fast_sigmoid", "arctan", "rectangle"),
                   rate_rules: Sequence[str] = ("bptr", "rga"), paper_steps: int = 7, seed: int = 0,
                   **attack_kw) -> Dict[str, Attack]:
    """The papers' attack next to the adaptive ones, as {table name: Attack} (all untargeted L-inf PGD at eps).

    * ``PGD-7 Alg.1 (paper)``: Algorithm 1 gradient, alpha 2/255, 7 steps, one Poisson draw per step;
    * ``PGD-{eot_steps} EOT-{eot}``: BPTT averaged over ``eot`` draws per step (one restart);
    * ``PGD-{steps} rate (BPTR)`` / ``PGD-{steps} rate (RGA)``: the rate gradients of ``rate_rules``;
    * ``PGD-{steps} ANN proxy (BPDA)``: the gradient of ``snn.net``;
    * ``PGD-{steps} surrogate <name(width=w)>``: BPTT on a twin with another surrogate (the model's own skipped);
    * ``PGD-{steps}x{restarts} BPTT``: long PGD with restarts through the model's own surrogate.

    alpha: step of the long attacks (default :func:`default_alpha`); eot_steps: steps of the EOT attack (default
    ``steps``); attack_kw: passed to every attack (e.g. ``batch_size``).  The long attacks use ``restarts``.
    """
    _require_snn(snn, "adaptive_suite")
    eps = check_eps(eps)
    alpha = default_alpha(eps, steps) if alpha is None else alpha
    eot_steps = steps if eot_steps is None else eot_steps
    eot_alpha = alpha if eot_steps == steps else default_alpha(eps, eot_steps)
    long = dict(eps=eps, alpha=alpha, steps=steps, restarts=restarts, seed=seed, **attack_kw)
    suite: Dict[str, Attack] = {
        f"PGD-{paper_steps} Alg.1 (paper)": PGD(snn, eps=eps, alpha=PAPER_ALPHA, steps=paper_steps,
                                                grad_mode="algorithm1", seed=seed, **attack_kw),
        f"PGD-{eot_steps} EOT-{eot}": PGD(snn, eps=eps, alpha=eot_alpha, steps=eot_steps, grad_mode="bptt",
                                          eot=eot, seed=seed, **attack_kw),
    }
    for rule in rate_rules:
        mode = "rate" if rule == "bptr" else rule
        if mode not in GRAD_MODES:
            raise ValueError(f"unknown rate rule {rule!r}; choose from {sorted(RATE_RULES)}")
        suite[f"PGD-{steps} rate ({rule.upper()})"] = PGD(snn, grad_mode=mode, **long)
    suite[f"PGD-{steps} ANN proxy (BPDA)"] = PGD(snn, grad_mode="ann_proxy", **long)
    own = repr(snn.surrogate)
    for key, twin in surrogate_variants(snn, tuple(surrogates)).items():
        if key != own:
            suite[f"PGD-{steps} surrogate {key}"] = PGD(twin, grad_mode="bptt", **long)
    suite[f"PGD-{steps}x{restarts} BPTT"] = PGD(snn, grad_mode="bptt", **long)
    return suite
