"""The same VGG5 LIF network in snnTorch and in SpikingJelly, for ``python -m snnlib.bench --compare``.

Three implementations of one network (same weights, same spike input, same thresholds, subtractive reset):

* **snnlib** — ``SpikingVGG(..., delay=False)``: time folded into the batch for the stateless layers,
  channels-last convolutions, fused multi-step LIF layers (``snnlib.neurons.lif_multistep``);
* **snnTorch** — the idiom of its tutorials: a Python loop over time that runs every layer for one step, with
  ``snntorch.Leaky(beta=leak, threshold=th)`` neurons (see ``SnnTorchVGG5`` for the reset);
* **plain PyTorch** — what a PyTorch user would write without an SNN library (``PlainTorchVGG5``): time folded
  into the batch for the convolutions, pooling and linear layers, a Python loop over time for each LIF layer, and
  autograd through a ``torch.autograd.Function`` spike with the surrogate; no custom kernels, no compilation;
* **SpikingJelly** — the multi-step mode (``step_mode="m"``) of ``spikingjelly.activation_based``: the stateless
  layers fold time into the batch, ``neuron.LIFNode(tau=1/(1-leak), decay_input=False, v_reset=None,
  detach_reset=True, backend="torch")``: with ``decay_input=False`` the membrane keeps 1 - 1/tau = leak of itself
  per step and takes the input unscaled, which is the leak of ``u = leak*u + I``.

All three compute the textbook LIF order ``u = leak*u + I; S = H(u - th); u -= th*S`` (snnlib's ``delay=False``;
its default ``delay=True`` is the released code's one-step-per-layer delay, which the other libraries do not have).
The readout is the non-spiking output layer summed over time and divided by T.  The surrogate gradient is the
papers' linear one, ``0.3 * max(0, 1 - |u/th - 1|) / th``, handed to snnTorch and SpikingJelly as a custom spike
function (both accept one), so BPTT computes the same gradients (all three detach the reset).

snnTorch's own subtractive reset (``reset_mechanism="subtract"``, either ``reset_delay``) is *not* the textbook
rule: with ``reset_delay=True`` the reset of step t lands at step t+1 unscaled by the leak, and with
``reset_delay=False`` a membrane that is still above threshold after its reset (an input of more than twice the
threshold in one step, common in the first layer under Poisson input) has the threshold subtracted once more
before the next spike decision, so it fires less (about 1 % fewer first-layer spikes here).  The twin therefore
uses ``Leaky(reset_mechanism="none")`` (leak, integrate and fire by snnTorch) and subtracts ``th * spike.detach()``
in its loop, which is exactly the textbook rule (``reset="native"`` selects snnTorch's subtract reset instead;
it does more elementwise work per step, so timing the exact twin does not favour snnlib).

Remaining measure-zero difference: SpikingJelly's inference path fires at ``u >= th`` (snnlib and snnTorch at
``u > th``); ``check_equivalence`` counts the spikes of every layer so any such event shows up.

``snntorch`` and ``spikingjelly`` are optional (``pip install -r requirements-compare.txt``); importing this module
does not need them, ``require_packages()`` raises ``CompareUnavailable`` with that instruction.
"""
from __future__ import annotations

import copy
import importlib
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import SpikingVGG, VGG, build_ann

__all__ = ["SYSTEMS", "ALL_SYSTEMS", "BF16", "bf16_native", "check_bf16", "is_snnlib", "PEERS", "PlainTorchVGG5", "CompareUnavailable", "require_packages", "package_versions", "VGG5_THRESHOLDS",
           "build_snnlib", "calibrate_thresholds", "make_input", "logits", "SnnTorchVGG5", "SpikingJellyVGG5", "build_systems", "check_equivalence", "LinearSpike"]

SYSTEMS = ("snnlib", "plain", "snntorch", "spikingjelly")
#: snnlib with ``precision="bf16"`` (bfloat16 convolutions, float32 membranes): not the same numbers as the others, so
#: it is checked by ``check_bf16`` (spike counts within a tolerance) instead of ``check_equivalence``, and timed next to
#: them only where the CPU computes bf16 natively (``bf16_native``)
BF16 = "snnlib_bf16"
#: every system ``build_systems`` knows
ALL_SYSTEMS = SYSTEMS + (BF16,)
#: the other libraries (optional packages); "plain" is the baseline a PyTorch user would write (no package)
PEERS = ("snntorch", "spikingjelly")
#: released model-1 thresholds x 0.7 (https://github.com/ssharmin/spikingNN-adversarial-attack, commit 57c7772,
#: stores round(th x 0.7, 2)), as in snnlib.bench; with the untrained (seeded) weights used here they silence
#: layers 2-5, so the comparison calibrates its own (``calibrate_thresholds``)
VGG5_THRESHOLDS = [14.53, 1.88, 1.63, 0.2, 0.8]
INSTALL_HINT = "pip install -r requirements-compare.txt   (snntorch, spikingjelly)"


class CompareUnavailable(RuntimeError):
    """snnTorch or SpikingJelly is not installed."""


def require_packages() -> Dict[str, str]:
    """Import snntorch and spikingjelly.activation_based; return their versions or raise CompareUnavailable."""
    missing = []
    for mod in ("snntorch", "spikingjelly.activation_based"):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            missing.append(f"{mod.split('.')[0]} ({exc})")
    if missing:
        raise CompareUnavailable(
            "the comparison needs the optional packages snntorch and spikingjelly, which are not installed: "
            + "; ".join(missing) + f".\nInstall them with:  {INSTALL_HINT}")
    return package_versions()


def package_versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {"torch": torch.__version__}
    for name in ("snntorch", "spikingjelly"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ------------------------------------------------------------------------------------------------ surrogate
class LinearSpike(torch.autograd.Function):
    """Heaviside of ``x = u - th`` (``x > 0``) with the papers' linear surrogate ``0.3*max(0, 1-|x/th|)/th``.

    This is snnlib's ``linear`` surrogate written on the shifted membrane that snnTorch and SpikingJelly pass to
    their spike functions (snnlib's normalised membrane is ``v = x / th``, and dS/du = sg'(v) / th).
    """

    @staticmethod
    def forward(ctx, x, th: float, gamma: float):
        ctx.save_for_backward(x)
        ctx.th, ctx.gamma = th, gamma
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        th = ctx.th
        return g * (ctx.gamma * torch.clamp(1.0 - (x / th).abs(), min=0.0) / th), None, None


class _SpikeFn(nn.Module):
    """A spike function module (SpikingJelly checks ``.spiking``; snnTorch only calls it)."""

    spiking = True

    def __init__(self, th: float, gamma: float = 0.3):
        super().__init__()
        self.th, self.gamma = float(th), float(gamma)

    def forward(self, x):
        return LinearSpike.apply(x, self.th, self.gamma)

    def extra_repr(self):
        return f"linear surrogate, th={self.th:g}, gamma={self.gamma:g}"


# ------------------------------------------------------------------------------------------------ the three systems
def calibrate_thresholds(net: VGG, q: float = 0.99, n: int = 64, seed: int = 0) -> List[float]:
    """Per-layer thresholds = the q-quantile of the ANN's post-ReLU activations on n uniform random images.

    A threshold-balancing rule of thumb that makes every layer of the untrained network spike (a few % to 30 % of
    neurons per step), so that the equivalence check exercises all five spiking layers.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g)
    with torch.no_grad():
        _, acts = net.eval()(x, record=True)
    return [float(a.flatten().kthvalue(max(1, int(q * a.numel()))).values) for a in acts]


def _thresholds(thresholds: Sequence[float]) -> List[float]:
    # float32-rounded, exactly the values snnlib keeps in its buffer
    return [float(t) for t in torch.as_tensor(list(thresholds), dtype=torch.float32)]


#: snnlib simulates inference in pieces of this many steps (``SpikingVGG.time_chunk``): the memory of T=4 at any T.
#: Measured on the 2-core CPU at batch 64 (T=32, 64): chunks of 4 peak at ~160-180 MB, 8 at ~260 MB, 16 at ~420 MB,
#: with throughput within the noise of a shared machine (larger chunks batch more convolution work per call)
INFER_TIME_CHUNK = 4


def build_snnlib(net: VGG, thresholds: Sequence[float] = VGG5_THRESHOLDS, leak: float = 0.99, T: int = 8,
                 time_chunk: Optional[int] = INFER_TIME_CHUNK, precision: str = "fp32") -> SpikingVGG:
    """snnlib's SNN over ``net`` in the textbook order (``delay=False``); call ``.run(seq) / T`` on a spike input.

    time_chunk: without gradients, simulate at most this many steps at once (bounded memory, same numbers);
    precision: "fp32" or "bf16" (``SpikingVGG``'s option).
    """
    return SpikingVGG(net, thresholds, T=T, leak=leak, delay=False, reset="subtract", surrogate="linear",
                      time_chunk=time_chunk, precision=precision)


def is_snnlib(name: str) -> bool:
    """Whether a system name is snnlib (fp32 or bf16)."""
    return name in ("snnlib", BF16)


def bf16_native() -> bool:
    """Whether this machine computes bfloat16 convolutions natively (oneDNN on a CPU with AVX512-BF16 or AMX); where
    it does not, bf16 is emulated and slower than fp32, so the comparison leaves the bf16 system out."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch builds without oneDNN
        return False


def _vgg5_layers(net: VGG):
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    if net.arch != "vgg5" or len(convs) != 3 or len(net.classifier) != 2:
        raise ValueError("the comparison twins implement VGG5 only")
    return convs, list(net.classifier), net.output


class SnnTorchVGG5(nn.Module):
    """VGG5 in snnTorch, stepping every layer one timestep at a time (the snnTorch tutorials' loop).

    forward(seq (T, B, 3, 32, 32) spikes) -> summed output current (B, C) (divide by T for snnlib's logits).
    ``counts`` (after a forward) holds the total spike count of each spiking layer.
    """

    def __init__(self, net: VGG, thresholds: Sequence[float] = VGG5_THRESHOLDS, leak: float = 0.99,
                 gamma: float = 0.3, reset: str = "exact"):
        super().__init__()
        import snntorch as snn
        if reset not in ("exact", "native"):
            raise ValueError(f"reset must be 'exact' or 'native', got {reset!r}")
        net = copy.deepcopy(net)
        (self.conv1, self.conv2, self.conv3), (self.fc1, self.fc2), self.out = _vgg5_layers(net)
        self.th = _thresholds(thresholds)
        self.exact = reset == "exact"
        mech = dict(reset_mechanism="none") if self.exact else dict(reset_mechanism="subtract", reset_delay=False)
        self.lifs = nn.ModuleList(
            snn.Leaky(beta=float(leak), threshold=t, spike_grad=_SpikeFn(t, gamma), **mech) for t in self.th)
        self.counts: Optional[Tensor] = None

    def _lif(self, i: int, cur: Tensor, mems: list, counts: list) -> Tensor:
        spk, mem = self.lifs[i](cur, mems[i])
        if self.exact:  # textbook subtractive reset, detached (snnlib, SpikingJelly detach_reset=True)
            mem = mem - spk.detach() * self.th[i]
        mems[i] = mem
        counts[i] = counts[i] + spk.detach().sum()
        return spk

    def forward(self, seq: Tensor) -> Tensor:
        mems = [lif.reset_mem() for lif in self.lifs]
        counts = [0.0] * 5
        acc = 0
        for t in range(seq.shape[0]):
            spk = self._lif(0, self.conv1(seq[t]), mems, counts)
            spk = self._lif(1, self.conv2(F.avg_pool2d(spk, 2)), mems, counts)
            spk = self._lif(2, self.conv3(spk), mems, counts)
            spk = self._lif(3, self.fc1(F.avg_pool2d(spk, 2).flatten(1)), mems, counts)
            spk = self._lif(4, self.fc2(spk), mems, counts)
            acc = acc + self.out(spk)  # the non-spiking output layer integrates its current
        self.counts = torch.stack([torch.as_tensor(c) for c in counts])
        return acc


class SpikingJellyVGG5(nn.Module):
    """VGG5 in SpikingJelly's multi-step mode (time folded into the batch for the stateless layers).

    forward(seq (T, B, 3, 32, 32) spikes) -> summed output current (B, C); resets the neurons before each call.
    """

    def __init__(self, net: VGG, thresholds: Sequence[float] = VGG5_THRESHOLDS, leak: float = 0.99,
                 gamma: float = 0.3):
        super().__init__()
        from spikingjelly.activation_based import layer, neuron
        convs, fcs, out = _vgg5_layers(net)
        th = _thresholds(thresholds)
        tau = 1.0 / (1.0 - float(leak))

        def conv(src):
            m = layer.Conv2d(src.in_channels, src.out_channels, 3, padding=1, bias=False, step_mode="m")
            m.weight.data.copy_(src.weight.data)
            return m

        def lin(src):
            m = layer.Linear(src.in_features, src.out_features, bias=False, step_mode="m")
            m.weight.data.copy_(src.weight.data)
            return m

        def lif(t):
            return neuron.LIFNode(tau=tau, decay_input=False, v_threshold=t, v_reset=None, detach_reset=True,
                                  surrogate_function=_SpikeFn(t, gamma), step_mode="m", backend="torch")

        self.lifs = [lif(t) for t in th]
        self.body = nn.Sequential(
            conv(convs[0]), self.lifs[0], layer.AvgPool2d(2, 2, step_mode="m"),
            conv(convs[1]), self.lifs[1],
            conv(convs[2]), self.lifs[2], layer.AvgPool2d(2, 2, step_mode="m"),
            layer.Flatten(step_mode="m"),
            lin(fcs[0]), self.lifs[3],
            lin(fcs[1]), self.lifs[4],
        )
        self.out = lin(out)
        self.counts: Optional[Tensor] = None
        self._record = False
        self._rec: List[Tensor] = []
        for i, m in enumerate(self.lifs):
            m.register_forward_hook(self._hook)

    def _hook(self, mod, inp, outp):
        if self._record:
            self._rec.append(outp.detach().sum())

    def forward(self, seq: Tensor, record: bool = False) -> Tensor:
        from spikingjelly.activation_based import functional
        functional.reset_net(self)
        self._record, self._rec = record, []
        h = self.body(seq)
        if record:
            self.counts = torch.stack(self._rec)
        self._record = False
        return self.out(h).sum(0)


class PlainTorchVGG5(nn.Module):
    """VGG5 as a PyTorch user would write it without an SNN library: the baseline of ``bench --compare``.

    The stateless layers run once on all timesteps (time folded into the batch); each LIF layer is a loop over time
    in the textbook order ``u = leak*u + I; S = H(u - th); u = u - th*S.detach()`` with ``LinearSpike`` (autograd
    through the papers' linear surrogate).  forward(seq (T, B, 3, 32, 32) spikes) -> summed output current (B, C);
    ``counts`` (after a forward) holds the total spike count of each spiking layer.
    """

    def __init__(self, net: VGG, thresholds: Sequence[float] = VGG5_THRESHOLDS, leak: float = 0.99,
                 gamma: float = 0.3):
        super().__init__()
        net = copy.deepcopy(net)
        (self.conv1, self.conv2, self.conv3), (self.fc1, self.fc2), self.out = _vgg5_layers(net)
        self.th = _thresholds(thresholds)
        self.leak, self.gamma = float(leak), float(gamma)
        self.counts: Optional[Tensor] = None

    def lif(self, i: int, current: Tensor) -> Tensor:
        """Spikes (T, B, ...) of LIF layer ``i`` driven by ``current`` (T, B, ...)."""
        th = self.th[i]
        u = torch.zeros_like(current[0])
        spikes = []
        for t in range(current.shape[0]):
            u = self.leak * u + current[t]
            s = LinearSpike.apply(u - th, th, self.gamma)
            u = u - th * s.detach()
            spikes.append(s)
        out = torch.stack(spikes)
        self._counts.append(out.detach().sum())
        return out

    def forward(self, seq: Tensor) -> Tensor:
        T, B = seq.shape[:2]

        def fold(layer, x):       # a stateless layer on every timestep at once
            return layer(x.flatten(0, 1)).unflatten(0, (T, B))

        self._counts = []
        s = self.lif(0, fold(self.conv1, seq))
        s = self.lif(1, fold(lambda x: self.conv2(F.avg_pool2d(x, 2)), s))
        s = self.lif(2, fold(self.conv3, s))
        s = self.lif(3, fold(lambda x: self.fc1(F.avg_pool2d(x, 2).flatten(1)), s))
        s = self.lif(4, fold(self.fc2, s))
        self.counts = torch.stack(self._counts)
        return self.out(s).sum(0)


def build_systems(net: Optional[VGG] = None, thresholds: Optional[Sequence[float]] = None, leak: float = 0.99,
                  systems: Sequence[str] = SYSTEMS, T: int = 8, seed: int = 0) -> Dict[str, nn.Module]:
    """{name: model}: each takes a spike sequence (T, B, 3, 32, 32) and returns logits (B, C) via ``logits()``.

    net: a VGG5 (default: ``build_ann("vgg5", seed=seed)``); thresholds: None = ``calibrate_thresholds(net)``.
    Every system holds its own copy of the weights (so that interleaved training steps do not interfere).
    """
    if net is None:
        net = build_ann("vgg5", seed=seed)
    if thresholds is None:
        thresholds = calibrate_thresholds(net, seed=seed)
    out: Dict[str, nn.Module] = {}
    for name in systems:
        if name == "snnlib":
            out[name] = build_snnlib(copy.deepcopy(net), thresholds, leak, T)
        elif name == BF16:
            out[name] = build_snnlib(copy.deepcopy(net), thresholds, leak, T, precision="bf16")
        elif name == "plain":
            out[name] = PlainTorchVGG5(net, thresholds, leak)
        elif name == "snntorch":
            out[name] = SnnTorchVGG5(net, thresholds, leak)
        elif name == "spikingjelly":
            out[name] = SpikingJellyVGG5(net, thresholds, leak)
        else:
            raise ValueError(f"unknown system {name!r}; choose from {ALL_SYSTEMS}")
    return out


def logits(name: str, model: nn.Module, seq: Tensor, record: bool = False) -> Tensor:
    """The logits of one system on a spike sequence (same definition for all: summed output current / T)."""
    T = seq.shape[0]
    if is_snnlib(name):
        model.record = record
        try:
            return model.run(seq) / T
        finally:
            model.record = False
    if name == "spikingjelly":
        return model(seq, record=record) / T
    return model(seq) / T


def spike_counts(name: str, model: nn.Module, T: int) -> Tensor:
    """Total spikes per spiking layer of the last forward (``record=True`` for snnlib and SpikingJelly)."""
    if is_snnlib(name):
        # last_rates are per-layer means over time of (B, ...) spike tensors: counts = rate * T, summed
        return torch.stack([(r * T).sum().round() for r in model.last_rates])
    return model.counts.detach().to(torch.float64).round()


def make_input(batch: int, T: int, seed: int = 0) -> Tensor:
    """A signed Poisson spike sequence (T, B, 3, 32, 32) from uniform random pixels (snnlib's encoder, seeded)."""
    from ..encoding import PoissonEncoder
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, 32, 32, generator=g)
    return PoissonEncoder(seed=seed)(x, T)


def check_equivalence(batch: int = 2, T: int = 6, seed: int = 0, leak: float = 0.99,
                      thresholds: Optional[Sequence[float]] = None, systems: Sequence[str] = SYSTEMS,
                      grad: bool = True, rtol: float = 1e-4, atol: float = 1e-5, channels_last: bool = True) -> dict:
    """Run the systems on the same input and weights; compare logits, spike counts and (optionally) input gradients.

    Returns {'ok': bool, 'systems': {name: {...}}, ...}; each entry has max_abs_diff of the logits vs snnlib,
    ``allclose``, the spike counts per layer and ``counts_equal``; with ``grad`` also the gradient of the summed
    logits w.r.t. the first layer's weights compared with snnlib (``grad_allclose``).
    channels_last: snnlib's default NHWC convolutions (as timed); False runs them NCHW like the other two.  The
    layouts use different convolution kernels whose float32 results differ in the last bits, which can flip a
    spike whose membrane lands within rounding of the threshold (about one in 10^6 at T >= 32); NCHW removes that.
    """
    torch.manual_seed(seed)
    net = build_ann("vgg5", seed=seed)
    if thresholds is None:
        thresholds = calibrate_thresholds(net, seed=seed)
    models = build_systems(net, thresholds, leak, systems, T, seed)
    if "snnlib" in models:
        models["snnlib"].channels_last = bool(channels_last)
    seq = make_input(batch, T, seed)
    res: Dict[str, dict] = {}
    ref_out = ref_counts = ref_grad = None
    for name, model in models.items():
        model.eval()
        with torch.no_grad():
            out = logits(name, model, seq, record=True)
        counts = spike_counts(name, model, T)
        entry = dict(logits=out, counts=[int(c) for c in counts])
        if grad:
            model.train()
            for p in model.parameters():
                p.grad = None
            with torch.enable_grad():
                outg = logits(name, model, seq)
                (outg * torch.linspace(-1, 1, outg.shape[1])).sum().backward()
            conv1 = model.net.features[0] if name == "snnlib" else (
                model.body[0] if name == "spikingjelly" else model.conv1)
            entry["grad"] = conv1.weight.grad.detach().clone()
            entry["train_logits_allclose"] = bool(torch.allclose(outg.detach(), out, rtol=rtol, atol=atol))
        if name == "snnlib":
            ref_out, ref_counts, ref_grad = out, entry["counts"], entry.get("grad")
        res[name] = entry
    ok = True
    for name, e in res.items():
        e["max_abs_diff"] = float((e["logits"] - ref_out).abs().max())
        e["allclose"] = bool(torch.allclose(e["logits"], ref_out, rtol=rtol, atol=atol))
        e["counts_equal"] = e["counts"] == ref_counts
        if grad:
            gd = (e["grad"] - ref_grad).abs().max()
            e["grad_rel_diff"] = float(gd / ref_grad.abs().max().clamp_min(1e-30))
            e["grad_allclose"] = bool(torch.allclose(e["grad"], ref_grad, rtol=1e-3, atol=1e-6))
            e.pop("grad")
        e["logits"] = e["logits"].tolist()
        ok = ok and e["allclose"] and e.get("train_logits_allclose", True)
    return dict(ok=ok, batch=batch, T=T, seed=seed, leak=leak, channels_last=bool(channels_last), thresholds=_thresholds(thresholds),
                total_spikes=sum(ref_counts), systems=res)


def check_bf16(batch: int = 4, T: int = 32, seed: int = 0, leak: float = 0.99, max_count_change: float = 0.02,
               min_count: int = 500) -> dict:
    """snnlib at ``precision="bf16"`` against fp32 on the same input and weights: the relative change of each
    spiking layer's total spike count and the largest logit difference (relative to the largest fp32 logit).

    bf16 rounds the currents to 8 significant bits, so a few spikes per thousand move; ``ok`` says that no layer's
    count moved by more than ``max_count_change`` of max(its fp32 count, ``min_count``) and that the logits are
    float32 (a wrong layer, dtype or readout moves far more).
    """
    torch.manual_seed(seed)
    net = build_ann("vgg5", seed=seed)
    thresholds = calibrate_thresholds(net, seed=seed)
    models = build_systems(net, thresholds, leak, ("snnlib", BF16), T, seed)
    seq = make_input(batch, T, seed)
    out, counts = {}, {}
    for name, model in models.items():
        model.eval()
        with torch.no_grad():
            out[name] = logits(name, model, seq, record=True)
        counts[name] = spike_counts(name, model, T)
    ref = counts["snnlib"].clamp_min(min_count)
    change = ((counts[BF16] - counts["snnlib"]).abs() / ref).tolist()
    rel = float((out[BF16] - out["snnlib"]).abs().max() / out["snnlib"].abs().max().clamp_min(1e-30))
    return dict(ok=all(c <= max_count_change for c in change) and out[BF16].dtype == torch.float32,
                batch=batch, T=T, seed=seed, counts_fp32=[int(c) for c in counts["snnlib"]],
                counts_bf16=[int(c) for c in counts[BF16]], count_change=[round(c, 5) for c in change],
                max_count_change=max_count_change, min_count=min_count, logits_rel_diff=round(rel, 5))
