"""Rate-based and ANN-proxy input gradients of an SNN (the adaptive attacks' estimators).

The papers attack an SNN with one gradient estimator (Algorithm 1: BPTT through the linear surrogate, a
straight-through Poisson encoder, one spike sample per step, 7 PGD steps).  If that estimator is poor, the SNN
*looks* robust without being so (gradient masking: Athalye, Carlini and Wagner, "Obfuscated Gradients Give a False
Sense of Security", ICML 2018, arXiv:1802.00420).  Later work attacks with several estimators and takes the
per-image worst case (Bu, Ding, Hao and Yu, "Rate Gradient Approximation Attack Threats Deep Spiking Neural
Networks", CVPR 2023, doi:10.1109/CVPR52729.2023.00763; Özdenizci and Legenstein, "Adversarially Robust Spiking
Neural Networks Through Conversion", TMLR 2024, arXiv:2311.09266).  This module holds those estimators;
:data:`snnlib.attacks.gradients.GRAD_MODES` lists them, so every attack accepts them as ``grad_mode``:

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
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..encoding import normalize, quantize
from ..models import VGG, SpikingVGG
from .objective import input_gradient

__all__ = ["RATE_RULES", "rate_forward", "grad_rate", "grad_rga", "grad_ann_proxy", "require_snn"]


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
def require_snn(model: nn.Module, what: str) -> SpikingVGG:
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
    membranes over (``SpikingVGG.run_pieces``), so memory does not grow with T."""
    T = snn.T
    chunk = min(snn.time_chunk or T, T)
    sums: Dict[int, List[Tensor]] = {}
    in_sum: Optional[Tensor] = None

    def pieces():
        nonlocal in_sum
        done = 0
        while done < T:
            n = min(chunk, T - done)
            h = snn.encoder(x, n)
            in_sum = h.sum(0) if in_sum is None else in_sum + h.sum(0)
            yield h
            done += n

    def on_layer(li: int, cur: Tensor, s: Tensor) -> None:
        c, r = cur.sum(0), s.sum(0)
        sums[li] = [c, r] if li not in sums else [sums[li][0] + c, sums[li][1] + r]

    snn.run_pieces(pieces(), masks, on_layer)
    return in_sum / T, [(sums[i][0] / T, sums[i][1] / T) for i in range(len(sums))]


def rate_forward(snn: SpikingVGG, x: Tensor, rule: str = "bptr") -> Tensor:
    """Logits (B, classes) of the real SNN on pixels x (B, 3, 32, 32), differentiable through the rate path.

    One encoder draw and (in train mode) one set of dropout masks, as ``snn(x)``; the value equals ``snn(x)``
    for the same draw up to float rounding.  rule: a key of :data:`RATE_RULES` ("bptr" or "rga").  The graph
    holds only time-averaged tensors (B, ...), and ``snn.time_chunk`` bounds the simulation memory.
    """
    require_snn(snn, "rate_forward")
    if rule not in RATE_RULES:
        raise ValueError(f"unknown rate rule {rule!r}; choose one of {sorted(RATE_RULES)}")
    slope, net = RATE_RULES[rule], snn.net
    masks = snn.dropout_masks(x)
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
def grad_rate(model: nn.Module, x: Tensor, y: Tensor, targeted: bool):
    """GRAD_MODES["rate"]: BPTR rate gradient (see the module docstring)."""
    require_snn(model, "grad_mode 'rate'")
    return input_gradient(lambda xr: rate_forward(model, xr, "bptr"), x, y, targeted)


def grad_rga(model: nn.Module, x: Tensor, y: Tensor, targeted: bool):
    """GRAD_MODES["rga"]: RGA rate gradient (see the module docstring)."""
    require_snn(model, "grad_mode 'rga'")
    return input_gradient(lambda xr: rate_forward(model, xr, "rga"), x, y, targeted)


def grad_ann_proxy(model: nn.Module, x: Tensor, y: Tensor, targeted: bool):
    """GRAD_MODES["ann_proxy"]: autograd through ``model.net`` (the ANN twin); an ANN is its own proxy."""
    net = getattr(model, "net", model) if getattr(model, "encoder", None) is not None else model
    bits = getattr(getattr(model, "encoder", None), "bits", None)
    fwd = (lambda xr: net(xr, bits=bits)) if isinstance(net, VGG) else net
    return input_gradient(fwd, x, y, targeted)


