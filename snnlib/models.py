"""VGG networks as an ANN and as an SNN that share one set of weights.

``VGG`` holds the weights and is the ANN (ReLU, average pooling, no bias, normalisation inside the model, so it
takes pixels in [0, 1]).  ``SpikingVGG`` wraps the *same* ``VGG`` module (no copy) and runs it as a spiking network:
encoder -> (conv | pool | dropout | linear) layers on time folded into the batch -> LIF layers over time -> a
non-spiking accumulating output layer whose membrane, divided by T, gives the logits (reference/papers.md 1.4-1.5).
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .encoding import PoissonEncoder, check_timesteps, make_encoder, normalize, quantize
from .neurons import Surrogate, multistep_forward, check_neuron_args, get_surrogate, lif_multistep

__all__ = ["ARCHS", "VGG", "SpikingVGG", "build_ann", "check_arch"]

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


class SpikingVGG(nn.Module):
    """The SNN twin of a ``VGG``: shares its weights (``self.net is net``).

    thresholds: one firing threshold per spiking layer (``net.num_spiking`` values);
    T: timesteps; leak: lambda in (0, 1] (1.0 = IF for the converted SNN, 0.99 = LIF for the BPTT SNN);
    encoder: PoissonEncoder (default, seed 0) or DirectEncoder; surrogate: registry name or Surrogate;
    reset: "subtract" | "zero"; delay: the released code's one-step-per-layer delay;
    time_chunk: under no_grad, simulate at most this many steps at once (memory bound for large T).
    forward(x (B, 3, 32, 32) in [0, 1]) -> logits (B, C) = output membrane after T steps / T.
    """

    def __init__(self, net: VGG, thresholds: Sequence[float], T: int, leak: float = 1.0,
                 encoder: Optional[nn.Module] = None, surrogate: Union[str, Surrogate] = "linear",
                 reset: str = "subtract", delay: bool = True, time_chunk: Optional[int] = None):
        super().__init__()
        if not isinstance(net, VGG):
            raise TypeError(f"SpikingVGG wraps a snnlib VGG, got {type(net).__name__}")
        self.net = net
        check_neuron_args(leak, reset)
        self.T = check_timesteps(T)
        self.leak = float(leak)
        self.surrogate = get_surrogate(surrogate)
        self.reset, self.delay = reset, bool(delay)
        self.encoder = encoder if encoder is not None else PoissonEncoder(seed=0)
        if time_chunk is not None and (isinstance(time_chunk, bool) or not isinstance(time_chunk, int)
                                       or time_chunk < 1):
            raise ValueError(f"time_chunk must be None or an int >= 1 (timesteps simulated at once), got {time_chunk!r}")
        self.time_chunk = time_chunk
        self.channels_last = True  # NHWC convolutions on the CPU are ~1.4x faster (reference/toolchain.md 4.3)
        self.register_buffer("thresholds", torch.zeros(net.num_spiking))
        self.set_thresholds(thresholds)
        self.capture_first_current = False  # Algorithm 1: keep the first layer's input current and its gradient
        self.first_current: Optional[Tensor] = None
        self.record = False
        self.last_rates: List[Tensor] = []

    def set_thresholds(self, thresholds: Sequence[float]) -> None:
        th = torch.as_tensor(thresholds, dtype=torch.float32).flatten()
        if th.numel() != self.net.num_spiking:
            raise ValueError(f"{self.net.arch} has {self.net.num_spiking} spiking layers, got {th.numel()} thresholds")
        if not torch.all(th > 0):
            raise ValueError(f"thresholds must be > 0, got {th.tolist()}")
        self.thresholds.copy_(th.to(self.thresholds.device))

    def _lif(self, current: Tensor, i: int) -> Tensor:
        return lif_multistep(current, self.thresholds[i], self.leak, self.surrogate, self.reset, self.delay)

    def run(self, seq: Tensor, masks: Optional[List[Tensor]] = None) -> Tensor:
        """Simulate the spiking layers on an input sequence (T, B, 3, 32, 32); returns the summed output current (B, C).

        Without gradients (and no recording) the sequence is simulated ``time_chunk`` steps at a time (all at once
        when None) with the membranes carried over and the spikes written over the currents: the same numbers
        with memory bounded by the chunk.
        """
        T = seq.shape[0]
        if self._inference_only():
            chunk = min(self.time_chunk or T, T)
            return self._run_chunks((seq[i:i + chunk] for i in range(0, T, chunk)), masks)
        rates = []

        def spike(cur: Tensor, i: int) -> Tensor:
            if i == 0 and self.capture_first_current and torch.is_grad_enabled():
                cur.retain_grad()  # Algorithm 1 reads dL/dI_1 (T, B, C, H, W)
                self.first_current = cur
            s = self._lif(cur, i)
            if self.record:
                rates.append(s.mean(0))
            return s

        h = self.net.walk(seq, spike, masks, self.channels_last)
        if self.record:
            self.last_rates = rates
        return self.net.output(h.sum(0))

    def dropout_masks(self, x: Tensor) -> Optional[List[Tensor]]:
        """One mask per dropout layer, drawn once per forward call (global RNG) and fixed over time."""
        if not self.training:
            return None
        masks, size, c = [], x.shape[-1], x.shape[1]
        for m in self.net.features:
            if isinstance(m, nn.Conv2d):
                c = m.out_channels
            elif isinstance(m, nn.AvgPool2d):
                size //= 2
            elif isinstance(m, nn.Dropout):
                p = m.p
                keep = torch.bernoulli(torch.full((x.shape[0], c, size, size), 1 - p, device=x.device))
                masks.append(keep / (1 - p) if p > 0 else keep)
        if self.net.fc_dropout_p > 0:
            p = self.net.fc_dropout_p
            for lin in self.net.classifier:
                keep = torch.bernoulli(torch.full((x.shape[0], lin.out_features), 1 - p, device=x.device))
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

        return self._run_chunks(pieces(), masks) / T

    @torch.no_grad()
    def _run_chunks(self, pieces, masks) -> Tensor:
        """Simulate consecutive pieces (n, B, ...) of one input sequence, carrying the membranes; summed output current."""
        states: Dict[int, Tensor] = {}

        def spike(cur: Tensor, i: int) -> Tensor:
            s, states[i], _ = multistep_forward(cur, self.thresholds[i], self.leak, self.reset, self.delay,
                                            states.get(i), keep_v=False, inplace=True)
            return s

        total = None
        for h in pieces:
            s = self.net.walk(h, spike, masks, self.channels_last).sum(0)
            total = s if total is None else total + s
        return self.net.output(total)

    def config(self) -> dict:
        enc = self.encoder
        return dict(net=self.net.config(), T=self.T, leak=self.leak, thresholds=[round(float(t), 6) for t in self.thresholds],
                    surrogate=self.surrogate.name, surrogate_width=self.surrogate.width, reset=self.reset,
                    delay=self.delay, encoder=getattr(enc, "kind", type(enc).__name__),
                    encoder_bits=getattr(enc, "bits", None), encoder_grad=getattr(enc, "grad", None))

    def twin(self, **changes) -> "SpikingVGG":
        """A SpikingVGG over the same weights with some settings changed (T, leak, encoder, surrogate, ...)."""
        kw = dict(net=self.net, thresholds=self.thresholds.tolist(), T=self.T, leak=self.leak,
                  encoder=copy.deepcopy(self.encoder), surrogate=self.surrogate, reset=self.reset,
                  delay=self.delay, time_chunk=self.time_chunk)
        kw.update(changes)
        out = SpikingVGG(**kw)
        out.train(self.training)
        return out
