"""ANN -> SNN conversion by threshold balancing (Sengupta et al. 2019, as in Rathi's ``find_threshold``).

Layer by layer, with the earlier layers already balanced, the IF network runs on a batch of training images with
Poisson input for ``T`` steps; the layer's threshold is the maximum input current (pre-activation) seen over
neurons, timesteps and images.  ``scale`` multiplies all thresholds afterwards (1.0 for the converted SNN, 0.7 before
BPTT fine-tuning) and the released code stores them rounded to 2 decimals.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from .encoding import PoissonEncoder, check_timesteps
from .models import LAYOUTS, VGG, SpikingVGG, round_thresholds
from .neurons import IF

__all__ = ["balance_thresholds", "convert", "scale_thresholds"]


@torch.no_grad()
def balance_thresholds(net: VGG, images: Tensor, T: int, seed: int = 0, time_chunk: int = 16,
                       batch_size: int = 128, delay: bool = True, layout: str = "nhwc",
                       lif_backend: Optional[str] = None) -> List[float]:
    """Per-layer thresholds (max pre-activation) for the IF twin of ``net``.

    images: (N, 3, 32, 32) training pixels in [0, 1]; T: balancing timesteps (1000 in the papers' code);
    seed: Poisson encoder seed (layer l uses seed + l); delay: the neurons' one-step delay;
    layout: convolution layout as ``SpikingVGG`` ("nhwc" fast | "nchw" the released code's);
    lif_backend: the IF layers' compute backend (None = default).
    Returns ``net.num_spiking`` thresholds (current units), unscaled.
    """
    check_timesteps(T)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"images must be a (N, 3, 32, 32) tensor in [0, 1], got {getattr(images, 'shape', images)}")
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    weights = net.weight_layers()[:-1]
    L = len(weights)
    th: List[float] = []
    for layer in range(L):
        peak = torch.tensor(0.0, device=device)
        enc = PoissonEncoder(seed=seed + layer)
        # the layers below, already balanced, as IF neurons (the membranes carried over the time chunks)
        neurons = [IF(torch.tensor(th[i], dtype=torch.float64), delay=delay, backend=lif_backend).to(device)
                   for i in range(layer)]  # float64 keeps th[i] exact whatever the network's dtype
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size].to(device)
            states: dict = {}  # layer -> LIFState

            def spike(cur: Tensor, i: int) -> Optional[Tensor]:
                nonlocal peak
                if i == layer:  # the layer being balanced: record its peak input current and stop
                    peak = torch.maximum(peak, cur.max())
                    return None
                s, states[i] = neurons[i](cur, states.get(i), inplace=True)
                return s

            done = 0
            while done < T:
                n = min(time_chunk, T - done)
                net.walk(enc(x, n), spike, channels_last=layout == "nhwc")
                done += n
        if not peak > 0:
            raise RuntimeError(
                f"threshold balancing found no positive input current at spiking layer {layer + 1} within T={T} "
                f"timesteps on {images.shape[0]} images: the earlier layers never made it fire. Increase the "
                f"balancing timesteps (each spiking layer adds one step of delay) or train the ANN longer.")
        th.append(float(peak))
    net.train(was_training)
    return th


def scale_thresholds(thresholds, scale: float = 1.0, decimals: Optional[int] = 2) -> List[float]:
    """thresholds * scale, rounded to ``decimals`` as the released code stores them (None = no rounding; see
    ``snnlib.models.round_thresholds``, which ``SpikingVGG(threshold_decimals=...)`` applies too)."""
    if not scale > 0:
        raise ValueError(f"threshold scale must be > 0, got {scale}")
    return round_thresholds([float(t) * float(scale) for t in thresholds], decimals)


def convert(net: VGG, images: Tensor, T: int, balance_T: int = 1000, scale: float = 1.0, leak: float = 1.0,
            seed: int = 0, decimals: Optional[int] = 2, **snn_kwargs) -> SpikingVGG:
    """Converted SNN over the same weights: balanced thresholds x scale, IF neurons (leak 1) by default.

    images: balancing images (N, 3, 32, 32) in [0, 1]; T: simulation timesteps of the returned SNN;
    balance_T: timesteps used for balancing.  Extra keyword arguments go to ``SpikingVGG``.
    """
    check_timesteps(T)
    th = balance_thresholds(net, images, balance_T, seed=seed, delay=snn_kwargs.get("delay", True),
                            layout=snn_kwargs.get("layout", "nhwc"), lif_backend=snn_kwargs.get("lif_backend"))
    return SpikingVGG(net, scale_thresholds(th, scale, decimals), T=T, leak=leak, **snn_kwargs)
