"""VGG networks as an ANN and as an SNN that share one set of weights.

``VGG`` holds the weights and is the ANN (ReLU, average pooling, no bias, normalisation inside the model, so it
takes pixels in [0, 1]).  ``SpikingVGG`` wraps the *same* ``VGG`` module (no copy) and runs it as a spiking network:
encoder -> (conv | pool | dropout | linear) layers on time folded into the batch -> LIF layers over time -> a
non-spiking accumulating output layer whose membrane, divided by T, gives the logits (as in the released code,
https://github.com/ssharmin/spikingNN-adversarial-attack, of Sharmin, Rathi, Panda and Roy, "Inherent Adversarial
Robustness of Deep Spiking Neural Networks: Effects of Discrete Input Encoding and Non-Linear Activations",
ECCV 2020, LNCS 12374, doi:10.1007/978-3-030-58526-6_24, arXiv:2003.10399).
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .encoding import PoissonEncoder, check_timesteps, normalize, quantize
from .neurons import (LIF, LIFState, Surrogate, check_lif_backend, check_neuron_args, get_surrogate,
                      membrane_dtype)

__all__ = ["ARCHS", "LAYOUTS", "PRECISIONS", "VGG", "SpikingVGG", "build_ann", "check_arch", "check_precision",
           "round_thresholds", "spiking_layers"]

# feature configs: int = 3x3 conv (pad 1, no bias) + activation, "A" = 2x2 average pool, "D" = dropout
ARCHS: Dict[str, dict] = {
    # exactly the released VGG5 (Sharmin et al. 2020, nn_models.py)
    "vgg5": dict(features=[64, "A", 128, "D", 128, "A"], hidden=[1024, 1024], dataset="cifar10"),
    # Lee et al. 2020 VGG9 (the likely IJCNN 2019 network): 7 conv + 2 FC
    "vgg9": dict(features=[64, "D", 64, "A", 128, "D", 128, "A", 256, "D", 256, "D", 256, "A"], hidden=[1024],
                 dataset="cifar10"),
    # Rathi et al.'s CIFAR-100 spiking VGG11 (512*4*4 = 8192 -> 1024 -> 1024 -> 100)
    "vgg11": dict(features=[64, "A", 128, "D", 256, "D", 256, "A", 512, "D", 512, "D", 512, "A", 512, "D", 512],
                  hidden=[1024, 1024], dataset="cifar100"),
}


def check_arch(arch) -> str:
    if not isinstance(arch, str) or arch.lower() not in ARCHS:
        raise ValueError(f"unknown model {arch!r}; choose one of {sorted(ARCHS)}")
    return arch.lower()


def spiking_layers(arch) -> int:
    """Number of spiking layers of an architecture (its conv and hidden linear layers): ``VGG(arch).num_spiking``,
    without building the weights.  With the released code's one-step-per-layer delay (``SpikingVGG(delay=True)``,
    the study's setting) the output layer first receives a spike at step ``spiking_layers(arch) + 1``, so an SNN
    simulated for ``T <= spiking_layers(arch)`` steps outputs identically zero logits (VGG5: 5)."""
    cfg = ARCHS[check_arch(arch)]
    return sum(1 for item in cfg["features"] if isinstance(item, int)) + len(cfg["hidden"])


class VGG(nn.Module):
    """VGG weights and ANN forward. x: (B, 3, 32, 32) pixels in [0, 1] -> logits (B, num_classes).

    dropout: p of the "D" layers (0.2 in the released VGG5); fc_dropout: p after each hidden linear layer.
    seed: seeds the weight initialisation (He-normal on fan-in, as the released code).
    """

    def __init__(self, arch: str = "vgg5", num_classes: int = 10, dropout: float = 0.2, fc_dropout: float = 0.0,
                 seed: Optional[int] = 0):
        super().__init__()
        self.arch = check_arch(arch)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        for name, p in (("dropout", dropout), ("fc_dropout", fc_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        cfg = ARCHS[self.arch]
        self.num_classes, self.dropout_p, self.fc_dropout_p = num_classes, float(dropout), float(fc_dropout)
        self.features = nn.ModuleList()
        c, size = 3, 32
        for item in cfg["features"]:
            if item == "A":
                self.features.append(nn.AvgPool2d(2, 2))
                size //= 2
            elif item == "D":
                self.features.append(nn.Dropout(dropout))
            else:
                self.features.append(nn.Conv2d(c, item, 3, padding=1, bias=False))
                c = item
        dims = [c * size * size] + list(cfg["hidden"])
        self.classifier = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:]))
        self.output = nn.Linear(dims[-1], num_classes, bias=False)
        self.fc_dropout = nn.Dropout(fc_dropout)
        self.reset_parameters(seed)

    def reset_parameters(self, seed: Optional[int] = 0) -> None:
        g = None
        if seed is not None:
            g = torch.Generator().manual_seed(int(seed))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.in_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n), generator=g)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / m.in_features), generator=g)

    def weight_layers(self) -> List[nn.Module]:
        """Conv and linear layers in order; all but the last carry a spiking threshold in the SNN."""
        return [m for m in self.features if isinstance(m, nn.Conv2d)] + list(self.classifier) + [self.output]

    @property
    def num_spiking(self) -> int:
        return len(self.weight_layers()) - 1

    def forward(self, x: Tensor, record: bool = False, bits: Optional[int] = None):
        """ANN forward; record=True also returns the list of post-ReLU activations of each spiking layer."""
        h = normalize(quantize(x, bits))
        acts = []
        for m in self.features:
            h = m(h)
            if isinstance(m, nn.Conv2d):
                h = F.relu(h)
                acts.append(h)
        h = h.flatten(1)
        for lin in self.classifier:
            h = self.fc_dropout(F.relu(lin(h)))
            acts.append(h)
        out = self.output(h)
        return (out, acts) if record else out

    def config(self) -> dict:
        return dict(arch=self.arch, num_classes=self.num_classes, dropout=self.dropout_p,
                    fc_dropout=self.fc_dropout_p)

    def walk(self, h: Tensor, spike: Callable[[Tensor, int], Optional[Tensor]],
             masks: Optional[List[Tensor]] = None, channels_last: bool = False) -> Optional[Tensor]:
        """Run the hidden layers on h with ``spike`` as the activation; the SNN simulations are built on this.

        h: an image batch (B, C, H, W) or a time-major sequence (n, B, C, H, W) (time folded into the batch for the
        convolutions and pools).  spike(current, i) -> the output of spiking layer i = 0 .. num_spiking-1 for its
        input current (same leading dims as h); returning None stops the walk, and walk returns None.
        masks: dropout masks fixed over time (one per "D" layer, then one per hidden linear layer when
        fc_dropout > 0), multiplied in; None = no dropout.  channels_last: NHWC layout for the first convolution.
        Returns the input of the output layer, (B, F) or (n, B, F).
        """
        li = di = 0
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                h = spike(_per_frame(m, h, channels_last and li == 0), li)
                if h is None:
                    return None
                li += 1
            elif isinstance(m, nn.AvgPool2d):
                h = _per_frame(m, h)
            elif isinstance(m, nn.Dropout):
                if masks is not None:
                    h = h * masks[di]
                di += 1
        h = h.flatten(-3)
        for lin in self.classifier:
            h = spike(lin(h), li)
            if h is None:
                return None
            li += 1
            if masks is not None and self.fc_dropout_p > 0:
                h = h * masks[di]
                di += 1
        return h


def build_ann(arch: str = "vgg5", num_classes: Optional[int] = None, seed: int = 0, **kw) -> VGG:
    """An ANN of the named architecture; num_classes defaults to the architecture's dataset (10 or 100)."""
    arch = check_arch(arch)
    if num_classes is None:
        num_classes = 100 if ARCHS[arch]["dataset"] == "cifar100" else 10
    return VGG(arch, num_classes, seed=seed, **kw)


def _fold(x: Tensor) -> Tensor:
    return x.reshape((x.shape[0] * x.shape[1],) + tuple(x.shape[2:]))


def _unfold(x: Tensor, T: int) -> Tensor:
    return x.reshape((T, x.shape[0] // T) + tuple(x.shape[1:]))


def _per_frame(m: nn.Module, h: Tensor, channels_last: bool = False) -> Tensor:
    """Apply an image layer (conv or pool) to (B, C, H, W) or, time folded into the batch, to (n, B, C, H, W)."""
    if h.dim() == 4:
        return m(h.contiguous(memory_format=torch.channels_last) if channels_last else h)
    inp = _fold(h)
    if channels_last:
        inp = inp.contiguous(memory_format=torch.channels_last)
    return _unfold(m(inp), h.shape[0])


#: convolution memory layouts of SpikingVGG: "nhwc" (channels-last, fast on CPUs) | "nchw" (the released code's)
LAYOUTS = ("nhwc", "nchw")
#: arithmetic of SpikingVGG's convolutions and linear layers: "fp32" (the papers') | "bf16" (bfloat16 autocast, the
#: membranes stay float32: see ``snnlib.neurons.membrane_dtype``)
PRECISIONS = ("fp32", "bf16")


def check_precision(precision) -> str:
    """A valid precision name (see :data:`PRECISIONS`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} ('fp32': float32 throughout, as the papers; 'bf16': "
                         f"bfloat16 convolutions and linear layers with float32 membranes), got {precision!r}")
    return precision


def _float_sum(h: Tensor) -> Tensor:
    """h summed over time (dim 0), a bf16 / fp16 h in float32 (bf16 spike counts above 256 would not be exact)."""
    wide = membrane_dtype(h.dtype)
    return h.sum(0) if wide == h.dtype else h.sum(0, dtype=wide)


def round_thresholds(thresholds: Sequence[float], decimals: Optional[int] = 2) -> List[float]:
    """Thresholds rounded to ``decimals`` as the released code stores them, never below ``10**-decimals`` (so none
    becomes 0); ``decimals=None`` leaves them unchanged.  Returns plain floats."""
    if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0):
        raise ValueError(f"threshold decimals must be None or an int >= 0, got {decimals!r}")
    out = [float(t) for t in thresholds]
    if decimals is not None:
        out = [max(round(t, decimals), 10.0 ** -decimals) for t in out]
    return out


class SpikingVGG(nn.Module):
    """The SNN twin of a ``VGG``: shares its weights (``self.net is net``).

    thresholds: one firing threshold per spiking layer (``net.num_spiking`` values, > 0; one per layer, as the released
        code: per-channel thresholds are refused); kept as the buffer ``thresholds`` (num_spiking,);
    T: timesteps; leak: lambda in (0, 1] (1.0 = IF for the converted SNN, 0.99 = LIF for the BPTT SNN);
    encoder: PoissonEncoder (default, seed 0) or DirectEncoder; surrogate: registry name or Surrogate;
    reset: "subtract" | "zero"; delay: the released code's one-step-per-layer delay;
    time_chunk: under no_grad, simulate at most this many steps at once (memory bound for large T);
    grad_time_chunk: with gradients, simulate the sequence in checkpointed pieces of this many steps (activation
        checkpointing over time, ``torch.utils.checkpoint``): the graph of one piece and the membranes at the piece
        boundaries are kept instead of the whole sequence's activations, for one more forward pass in the backward
        (a BPTT gradient at T=2000 needs ~1.5 MB per image-timestep without it); the same gradients up to float
        rounding.  None (default): the whole sequence at once.  Not with ``record`` (rates of one piece) or the
        first-current capture of Algorithm 1 (``snnlib.attacks`` computes that gradient by BPTT then, the same);
    layout: "nhwc" (default: channels-last convolutions, ~1.4x faster on CPUs) or "nchw" (faithful: the released
        code's layout and summation order; the two differ by float rounding, which can flip a spike whose membrane
        lands within rounding of its threshold);
    threshold_decimals: round the thresholds to this many decimals as the released code stores them (2), also when
        set later (None = as given);
    lif_backend: compute backend of the neurons' loop, "auto" | "eager" | "compile" (speed only; None =
        ``snnlib.neurons.get_lif_backend()`` at construction);
    precision: "fp32" (default, the papers') or "bf16": convolutions and linear layers under bfloat16 autocast
        (about 2x the fp32 arithmetic rate on CPUs with AVX512-BF16 or AMX, and on GPUs), currents rounded to bf16,
        membranes and the readout kept in float32; a deviation that changes the numbers (a few spikes per thousand):
        measure its accuracy effect before using it for a study.
    The spiking layers are ``LIF`` modules, ``self.neurons[i]`` (i = 0 .. num_spiking-1), each called once per
    simulated piece of the sequence with currents (n, B, ...) and returning (spikes (n, B, ...), state): forward hooks
    on them see the spikes.  Their thresholds are views of ``self.thresholds``.
    ``dropout_generator``: None (default: dropout masks from the global RNG) or a torch.Generator (CPU) they are drawn
    with.  forward(x (B, 3, 32, 32) in [0, 1]) -> logits (B, C) = output membrane after T steps / T.
    """

    def __init__(self, net: VGG, thresholds: Sequence[float], T: int, leak: float = 1.0,
                 encoder: Optional[nn.Module] = None, surrogate: Union[str, Surrogate] = "linear",
                 reset: str = "subtract", delay: bool = True, time_chunk: Optional[int] = None,
                 layout: str = "nhwc", threshold_decimals: Optional[int] = None, lif_backend: Optional[str] = None,
                 precision: str = "fp32", grad_time_chunk: Optional[int] = None):
        super().__init__()
        if not isinstance(net, VGG):
            raise TypeError(f"SpikingVGG wraps a snnlib VGG, got {type(net).__name__}")
        self.net = net
        check_neuron_args(leak, reset)
        self.T = check_timesteps(T)
        self.encoder = encoder if encoder is not None else PoissonEncoder(seed=0)
        if time_chunk is not None and (isinstance(time_chunk, bool) or not isinstance(time_chunk, int)
                                       or time_chunk < 1):
            raise ValueError(f"time_chunk must be None or an int >= 1 (timesteps simulated at once), got {time_chunk!r}")
        self.time_chunk = time_chunk
        if grad_time_chunk is not None and (isinstance(grad_time_chunk, bool) or not isinstance(grad_time_chunk, int)
                                            or grad_time_chunk < 1):
            raise ValueError(f"grad_time_chunk must be None or an int >= 1 (timesteps per checkpointed piece), got "
                             f"{grad_time_chunk!r}")
        self.grad_time_chunk = grad_time_chunk
        self.layout = layout
        self.precision = check_precision(precision)
        round_thresholds([], threshold_decimals)  # validates
        self.threshold_decimals = threshold_decimals
        backend, sg = check_lif_backend(lif_backend), get_surrogate(surrogate)
        self.register_buffer("thresholds", torch.ones(net.num_spiking))
        self.neurons = nn.ModuleList(LIF(1.0, leak, sg, reset, delay, backend) for _ in range(net.num_spiking))
        self._share_thresholds()
        self.set_thresholds(thresholds)
        self.capture_first_current = False  # Algorithm 1: keep the first layer's input current and its gradient
        self.first_current: Optional[Tensor] = None
        self.record = False
        self.last_rates: List[Tensor] = []
        self.dropout_generator: Optional[torch.Generator] = None

    # ---------------------------------------------------------------- settings shared by all spiking layers
    @property
    def layout(self) -> str:
        return self._layout

    @layout.setter
    def layout(self, value: str) -> None:
        if value not in LAYOUTS:
            raise ValueError(f"unknown layout {value!r}; choose 'nhwc' (channels-last, fast) or 'nchw' (the released "
                             f"code's, faithful)")
        self._layout = value

    @property
    def channels_last(self) -> bool:
        """True for the "nhwc" layout (the setter switches between "nhwc" and "nchw")."""
        return self.layout == "nhwc"

    @channels_last.setter
    def channels_last(self, value: bool) -> None:
        self.layout = "nhwc" if value else "nchw"

    @property
    def leak(self) -> float:
        return self.neurons[0].leak

    @leak.setter
    def leak(self, value: float) -> None:
        check_neuron_args(value)
        for n in self.neurons:
            n.leak = float(value)

    @property
    def surrogate(self) -> Surrogate:
        return self.neurons[0].surrogate

    @surrogate.setter
    def surrogate(self, value: Union[str, Surrogate]) -> None:
        sg = get_surrogate(value)
        for n in self.neurons:
            n.surrogate = sg

    @property
    def reset(self) -> str:
        return self.neurons[0].reset

    @reset.setter
    def reset(self, value: str) -> None:
        check_neuron_args(1.0, value)
        for n in self.neurons:
            n.reset = value

    @property
    def delay(self) -> bool:
        return self.neurons[0].delay

    @delay.setter
    def delay(self, value: bool) -> None:
        for n in self.neurons:
            n.delay = bool(value)

    @property
    def lif_backend(self) -> str:
        return self.neurons[0].backend

    @lif_backend.setter
    def lif_backend(self, value: Optional[str]) -> None:
        backend = check_lif_backend(value)
        for n in self.neurons:
            n.backend = backend

    # ---------------------------------------------------------------- thresholds
    def set_thresholds(self, thresholds: Sequence[float]) -> None:
        """Set the ``num_spiking`` per-layer thresholds (> 0; rounded to ``threshold_decimals`` when set); the neurons
        see them at once (their thresholds are views of ``self.thresholds``)."""
        try:
            th = torch.as_tensor(thresholds, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"SpikingVGG takes one threshold per spiking layer ({self.net.num_spiking} numbers); "
                             f"per-channel thresholds are not supported here (they are in snnlib.neurons.LIF). "
                             f"Got {thresholds!r:.200}") from exc
        if th.dim() > 1:
            raise ValueError(f"SpikingVGG takes one threshold per spiking layer ({self.net.num_spiking} numbers), got "
                             f"a tensor of shape {tuple(th.shape)}; per-channel thresholds are not supported here "
                             f"(they are in snnlib.neurons.LIF)")
        th = th.flatten()
        if th.numel() != self.net.num_spiking:
            raise ValueError(f"{self.net.arch} has {self.net.num_spiking} spiking layers, got {th.numel()} thresholds")
        if not bool(torch.all(torch.isfinite(th) & (th > 0))):
            raise ValueError(f"thresholds must be > 0 and finite, got {th.tolist()}")
        if self.threshold_decimals is not None:
            th = torch.tensor(round_thresholds(th.tolist(), self.threshold_decimals), dtype=torch.float32)
        self.thresholds.copy_(th.to(self.thresholds.device))

    def _share_thresholds(self) -> None:
        """Make each neuron's threshold the view ``self.thresholds[i]``."""
        for i, n in enumerate(self.neurons):
            n.share_threshold(self.thresholds[i])

    def _check_neuron_thresholds(self) -> None:
        """Refuse a neuron whose threshold was replaced instead of set in place (e.g. by a per-channel one)."""
        base = self.thresholds
        for i, n in enumerate(self.neurons):
            th = n.threshold
            if th.dim() != 0 or th.data_ptr() != base[i].data_ptr():
                raise ValueError(
                    f"SpikingVGG keeps one threshold per spiking layer in snn.thresholds, but "
                    f"snn.neurons[{i}].threshold was replaced by a tensor of shape {tuple(th.shape)}; per-channel "
                    f"thresholds are not supported by SpikingVGG: set thresholds with snn.set_thresholds([...]) or "
                    f"snn.neurons[i].set_threshold(number)")

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "thresholds" and "neurons" in self.__dict__.get("_modules", {}):  # the buffer itself was replaced
            self._share_thresholds()

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)  # .to() / .double() / .cuda() convert each buffer on its own
        self._share_thresholds()
        return out

    # ---------------------------------------------------------------- simulation
    def _lif(self, current: Tensor, i: int) -> Tensor:
        return self.neurons[i](current)[0]

    def run(self, seq: Tensor, masks: Optional[List[Tensor]] = None) -> Tensor:
        """Simulate the spiking layers on an input sequence (T, B, 3, 32, 32); returns the summed output current (B, C).

        Without gradients (and no recording) the sequence is simulated ``time_chunk`` steps at a time (all at once
        when None) with the membranes carried over and the spikes written over the currents: the same numbers
        with memory bounded by the chunk.
        """
        T = seq.shape[0]
        if self._inference_only():
            chunk = min(self.time_chunk or T, T)
            return self.run_pieces((seq[i:i + chunk] for i in range(0, T, chunk)), masks)
        self._check_neuron_thresholds()
        if self.checkpoints_time(T):
            return self._run_checkpointed(seq, masks)
        rates = []

        def spike(cur: Tensor, i: int) -> Tensor:
            if i == 0 and self.capture_first_current and torch.is_grad_enabled():
                cur.retain_grad()  # Algorithm 1 reads dL/dI_1 (T, B, C, H, W)
                self.first_current = cur
            s = self._lif(cur, i)
            if self.record:
                wide = membrane_dtype(s.dtype)
                rates.append(s.mean(0) if wide == s.dtype else s.mean(0, dtype=wide))
            return s

        with self._arithmetic(seq):
            h = self.net.walk(seq, spike, masks, self.channels_last)
        if self.record:
            self.last_rates = rates
        return self.net.output(_float_sum(h))

    def checkpoints_time(self, T: int) -> bool:
        """Whether a graph-building simulation of T steps runs in checkpointed pieces (see ``grad_time_chunk``)."""
        return (self.grad_time_chunk is not None and T > self.grad_time_chunk and torch.is_grad_enabled()
                and not self.record and not self.capture_first_current)

    def _run_checkpointed(self, seq: Tensor, masks: Optional[List[Tensor]]) -> Tensor:
        """``run`` in pieces of ``grad_time_chunk`` steps, each under ``torch.utils.checkpoint``, the membranes of
        every spiking layer carried from piece to piece (and the gradient back through them)."""
        from torch.utils.checkpoint import checkpoint

        n_layers, chunk = self.net.num_spiking, int(self.grad_time_chunk)

        def piece(part: Tensor, *membranes: Optional[Tensor]):
            new: List[Optional[Tensor]] = [None] * n_layers

            def spike(cur: Tensor, i: int) -> Tensor:
                u = membranes[i]
                s, state = self.neurons[i](cur, None if u is None else LIFState(u))
                new[i] = state.u
                return s

            with self._arithmetic(part):
                h = self.net.walk(part, spike, masks, self.channels_last)
            return (_float_sum(h), *new)

        membranes: tuple = (None,) * n_layers
        total = None
        for i in range(0, seq.shape[0], chunk):
            out, *membranes = checkpoint(piece, seq[i:i + chunk], *membranes, use_reentrant=False,
                                         preserve_rng_state=False)
            total = out if total is None else total + out
        return self.net.output(total)

    def _arithmetic(self, x: Tensor):
        """The autocast context of ``precision`` on x's device (disabled for "fp32")."""
        return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def dropout_masks(self, x: Tensor) -> Optional[List[Tensor]]:
        """One mask per dropout layer, drawn once per forward call and fixed over time (None in eval mode).

        Drawn from ``self.dropout_generator`` (on the CPU, then moved to x's device) when it is set, else from the
        global RNG on x's device.  x: the pixels (B, 3, H, W); masks (B, C, H', W') or (B, F), values 0 or 1/(1-p).
        """
        if not self.training:
            return None
        gen = self.dropout_generator

        def keep_mask(shape, p):
            if gen is None:
                return torch.bernoulli(torch.full(shape, 1 - p, device=x.device))
            return torch.bernoulli(torch.full(shape, 1 - p), generator=gen).to(x.device)

        masks, size, c = [], x.shape[-1], x.shape[1]
        for m in self.net.features:
            if isinstance(m, nn.Conv2d):
                c = m.out_channels
            elif isinstance(m, nn.AvgPool2d):
                size //= 2
            elif isinstance(m, nn.Dropout):
                p = m.p
                keep = keep_mask((x.shape[0], c, size, size), p)
                masks.append(keep / (1 - p) if p > 0 else keep)
        if self.net.fc_dropout_p > 0:
            p = self.net.fc_dropout_p
            for lin in self.net.classifier:
                keep = keep_mask((x.shape[0], lin.out_features), p)
                masks.append(keep / (1 - p))
        return masks

    def forward(self, x: Tensor, T: Optional[int] = None) -> Tensor:
        T = self.T if T is None else check_timesteps(T)
        masks = self.dropout_masks(x)
        chunk = self.time_chunk
        if chunk is not None and chunk < T and self._inference_only():
            return self._chunked(x, T, chunk, masks)  # encodes chunk by chunk: the full sequence never exists
        return self.run(self.encoder(x, T), masks) / T

    def _inference_only(self) -> bool:
        """No graph, no recording, no Algorithm-1 hook: the in-place, chunked simulation applies."""
        return not torch.is_grad_enabled() and not self.record and not self.capture_first_current

    @torch.no_grad()
    def _chunked(self, x: Tensor, T: int, chunk: int, masks) -> Tensor:
        """Inference in time chunks with the membranes carried over (same numbers as one long run)."""
        def pieces():
            done = 0
            while done < T:
                n = min(chunk, T - done)
                yield self.encoder(x, n)
                done += n

        return self.run_pieces(pieces(), masks) / T

    @torch.no_grad()
    def run_pieces(self, pieces: Iterable[Tensor], masks: Optional[List[Tensor]] = None,
                   on_layer: Optional[Callable[[int, Tensor, Tensor], None]] = None) -> Tensor:
        """Simulate consecutive pieces (n, B, 3, 32, 32) of one input sequence without a graph, the membranes carried
        from piece to piece; returns the summed output current (B, C) (divide by T for the logits).

        on_layer(i, current, spikes): called for spiking layer i with its input current and output spikes of each
        piece, (n, B, ...) each; without it the spikes are written over the currents (one tensor per layer).
        """
        self._check_neuron_thresholds()
        states: Dict[int, LIFState] = {}

        def spike(cur: Tensor, i: int) -> Tensor:
            s, states[i] = self.neurons[i](cur, states.get(i), inplace=on_layer is None)
            if on_layer is not None:
                on_layer(i, cur, s)
            return s

        total = None
        for h in pieces:
            with self._arithmetic(h):
                out = self.net.walk(h, spike, masks, self.channels_last)
            s = _float_sum(out)
            total = s if total is None else total + s
        return self.net.output(total)

    def config(self) -> dict:
        enc = self.encoder
        out = dict(net=self.net.config(), T=self.T, leak=self.leak,
                   thresholds=[round(float(t), 6) for t in self.thresholds],
                   surrogate=self.surrogate.name, surrogate_width=self.surrogate.width, reset=self.reset,
                   delay=self.delay, encoder=getattr(enc, "kind", type(enc).__name__),
                   encoder_bits=getattr(enc, "bits", None), encoder_grad=getattr(enc, "grad", None))
        # settings added later appear only when not at their default, so earlier configurations keep their keys
        if self.layout != "nhwc":
            out["layout"] = self.layout
        if self.threshold_decimals is not None:
            out["threshold_decimals"] = self.threshold_decimals
        if self.precision != "fp32":
            out["precision"] = self.precision
        return out

    def twin(self, **changes) -> "SpikingVGG":
        """A SpikingVGG over the same weights with some settings changed (T, leak, encoder, surrogate, layout, ...);
        the encoder and the dropout generator are copies (same state, drawn independently from then on)."""
        kw = dict(net=self.net, thresholds=self.thresholds.tolist(), T=self.T, leak=self.leak,
                  encoder=copy.deepcopy(self.encoder), surrogate=self.surrogate, reset=self.reset,
                  delay=self.delay, time_chunk=self.time_chunk, grad_time_chunk=self.grad_time_chunk,
                  layout=self.layout, threshold_decimals=self.threshold_decimals, lif_backend=self.lif_backend,
                  precision=self.precision)
        kw.update(changes)
        out = SpikingVGG(**kw)
        out.dropout_generator = copy.deepcopy(self.dropout_generator)
        out.train(self.training)
        return out
