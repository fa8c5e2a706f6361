import pytest
import torch
from torch import nn

from snnlib.encoding import DirectEncoder, PoissonEncoder
from snnlib.models import ARCHS, VGG, SpikingVGG, build_ann
from snnlib.neurons import lif_multistep




@pytest.fixture(scope="module")
def vgg5():
    return build_ann("vgg5", seed=0)


def _x(n=2, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ architecture
def test_vgg5_layers_exactly_as_released(vgg5):
    convs = [m for m in vgg5.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding, c.stride) for c in convs] == [
        (3, 64, (3, 3), (1, 1), (1, 1)), (64, 128, (3, 3), (1, 1), (1, 1)), (128, 128, (3, 3), (1, 1), (1, 1))]
    kinds = [type(m).__name__ for m in vgg5.features]
    assert kinds == ["Conv2d", "AvgPool2d", "Conv2d", "Dropout", "Conv2d", "AvgPool2d"]
    assert all(m.kernel_size == 2 and m.stride == 2 for m in vgg5.features if isinstance(m, nn.AvgPool2d))
    assert [(lin.in_features, lin.out_features) for lin in vgg5.classifier] == [(8192, 1024), (1024, 1024)]
    assert (vgg5.output.in_features, vgg5.output.out_features) == (1024, 10)
    assert all(getattr(m, "bias", None) is None for m in vgg5.weight_layers())
    assert vgg5.num_spiking == 5
    assert not any(isinstance(m, (nn.MaxPool2d, nn.BatchNorm2d)) for m in vgg5.modules())
    assert sum(p.numel() for p in vgg5.parameters()) == 3 * 64 * 9 + 64 * 128 * 9 + 128 * 128 * 9 + 8192 * 1024 \
        + 1024 * 1024 + 1024 * 10


def test_he_init_scale(vgg5):
    w = vgg5.weight_layers()[2].weight  # conv 128 -> 128
    assert abs(w.std().item() - (2.0 / (9 * 128)) ** 0.5) < 0.002


@pytest.mark.parametrize("arch,classes", [("vgg9", 10), ("vgg9", 100), ("vgg11", 10), ("vgg11", 100)])
def test_other_archs_build_and_run(arch, classes):
    net = build_ann(arch, num_classes=classes)
    assert net(_x(2)).shape == (2, classes)
    snn = SpikingVGG(net, [1.0] * net.num_spiking, T=2)
    with torch.no_grad():
        assert snn(_x(1)).shape == (1, classes)


def test_default_classes():
    assert build_ann("vgg11").num_classes == 100
    assert build_ann("vgg5").num_classes == 10
    assert build_ann("VGG5").arch == "vgg5"


def test_ann_record_gives_one_activation_per_spiking_layer(vgg5):
    out, acts = vgg5(_x(2), record=True)
    assert out.shape == (2, 10)
    assert [tuple(a.shape[1:]) for a in acts] == [(64, 32, 32), (128, 16, 16), (128, 16, 16), (1024,), (1024,)]
    assert all(torch.all(a >= 0) for a in acts)


# ------------------------------------------------------------------ weight sharing
def test_ann_and_snn_share_parameters():
    net = build_ann("vgg5", seed=1)
    snn = SpikingVGG(net, [0.5, 0.3, 0.3, 0.1, 0.1], T=9).eval()
    assert snn.net is net
    snn_params = {id(p) for p in snn.parameters()}
    assert snn_params == {id(p) for p in net.parameters()}
    x = _x(2)
    with torch.no_grad():
        before = snn(x)
    assert torch.count_nonzero(before) > 0
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    loss = nn.functional.cross_entropy(net(x), torch.tensor([1, 2]))
    loss.backward()
    opt.step()
    snn.encoder.reseed()
    with torch.no_grad():
        after = snn(x)
    assert not torch.equal(before, after)


# ------------------------------------------------------------------ simulation semantics
def test_delay_output_zero_for_T_up_to_5(vgg5):
    snn = SpikingVGG(vgg5, [0.01] * 5, T=5).eval()
    x = _x(2)
    with torch.no_grad():
        for T in range(1, 6):
            assert torch.count_nonzero(snn(x, T)) == 0, T
        assert torch.count_nonzero(snn(x, 8)) > 0


def test_no_delay_output_nonzero_at_T1(vgg5):
    snn = SpikingVGG(vgg5, [0.01] * 5, T=1, delay=False).eval()
    with torch.no_grad():
        assert torch.count_nonzero(snn(_x(2))) > 0


def test_chunked_inference_equals_one_shot(vgg5):
    x = _x(2)
    full = SpikingVGG(vgg5, [1.0, 0.5, 0.5, 0.2, 0.2], T=13, leak=0.95).eval()
    chunked = full.twin(time_chunk=4).eval()
    with torch.no_grad():
        a = full(x)
        b = chunked(x)
    assert torch.count_nonzero(a) > 0
    assert torch.allclose(a, b, atol=1e-6, rtol=1e-6)


def test_inplace_inference_equals_graph_path(vgg5):
    """The no-grad simulation (spikes written over the currents, time chunks) equals the autograd path."""
    x = _x(2)
    snn = SpikingVGG(vgg5, [1.0, 0.5, 0.5, 0.2, 0.2], T=11, leak=0.95).eval()
    chunked = snn.twin(time_chunk=3).eval()  # a copy of the unused seeded encoder: the same spikes
    with torch.no_grad():
        a = snn(x)
        b = chunked(x)
    snn.encoder.reseed()
    with torch.enable_grad():
        c = snn(x)
    assert c.requires_grad and torch.count_nonzero(a) > 0
    assert torch.allclose(a, c.detach(), atol=1e-6, rtol=1e-6)
    assert torch.allclose(b, c.detach(), atol=1e-6, rtol=1e-6)


def test_record_rates_with_time_chunk(vgg5):
    snn = SpikingVGG(vgg5, [1.0, 0.5, 0.5, 0.2, 0.2], T=6, time_chunk=2).eval()
    snn.record = True
    with torch.no_grad():
        out = snn(_x(2))
    snn.record = False
    assert len(snn.last_rates) == 5
    snn.encoder.reseed()
    with torch.no_grad():
        assert torch.allclose(out, snn(_x(2)), atol=1e-6)


def test_walk_with_relu_is_the_ann(vgg5):
    """VGG.walk (the layer walker every SNN simulation uses) with ReLU as the activation is the ANN forward."""
    import torch.nn.functional as F
    from snnlib.encoding import normalize
    x = _x(3)
    vgg5.eval()
    with torch.no_grad():
        out = vgg5.output(vgg5.walk(normalize(x), lambda cur, i: F.relu(cur)))
        assert torch.allclose(out, vgg5(x), atol=1e-5)
        seen = []
        assert vgg5.walk(normalize(x), lambda cur, i: seen.append(i) or (None if i == 2 else F.relu(cur))) is None
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_time_chunk_validated(vgg5, bad):
    with pytest.raises(ValueError, match="time_chunk"):
        SpikingVGG(vgg5, [1.0] * 5, T=4, time_chunk=bad)


def test_logits_are_accumulator_readout(vgg5):
    """logits == fc_out(mean over time of the last hidden layer's spikes), rebuilt layer by layer."""
    th = [1.0, 0.6, 0.5, 0.2, 0.2]
    T = 9
    snn = SpikingVGG(vgg5, th, T=T, leak=0.97, encoder=PoissonEncoder(seed=11)).eval()
    x = _x(2)
    with torch.no_grad():
        logits = snn(x)
        h = PoissonEncoder(seed=11)(x, T)
        li = 0
        for m in vgg5.features:  # time folded into the batch, channels-last, as the model (same conv arithmetic)
            if isinstance(m, nn.Conv2d):
                cur = m(h.flatten(0, 1).contiguous(memory_format=torch.channels_last)).unflatten(0, (T, -1))
                h = lif_multistep(cur, th[li], 0.97)
                li += 1
            elif isinstance(m, nn.AvgPool2d):
                h = m(h.flatten(0, 1)).unflatten(0, (T, -1))
        h = h.flatten(2)
        for lin in vgg5.classifier:
            h = lif_multistep(lin(h), th[li], 0.97)
            li += 1
        ref = vgg5.output(h.mean(0))
    assert torch.count_nonzero(ref) > 0
    assert torch.allclose(logits, ref, atol=1e-5)


def test_snn_deterministic_given_encoder_seed(vgg5):
    x = _x(2)
    a = SpikingVGG(vgg5, [1.0, 0.5, 0.5, 0.2, 0.2], T=8, encoder=PoissonEncoder(seed=3)).eval()
    b = SpikingVGG(vgg5, [1.0, 0.5, 0.5, 0.2, 0.2], T=8, encoder=PoissonEncoder(seed=3)).eval()
    with torch.no_grad():
        ya = a(x)
        assert torch.equal(ya, b(x))
        a.encoder.reseed()
        assert torch.equal(a(x), ya)
        c = a.twin(encoder=PoissonEncoder(seed=4))
        assert not torch.equal(c(x), ya)


def test_direct_encoder_snn_is_deterministic(vgg5):
    snn = SpikingVGG(vgg5, [1.0] * 5, T=6, encoder=DirectEncoder()).eval()
    with torch.no_grad():
        assert torch.equal(snn(_x(1)), snn(_x(1)))


def test_snn_gradient_reaches_weights_and_pixels(vgg5):
    net = build_ann("vgg5", seed=2)
    snn = SpikingVGG(net, [0.5, 0.3, 0.3, 0.1, 0.1], T=10, leak=0.99).train()
    x = _x(2).requires_grad_()
    loss = nn.functional.cross_entropy(snn(x), torch.tensor([0, 1]))
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_dropout_masks_fixed_over_time_and_off_in_eval(vgg5):
    snn = SpikingVGG(vgg5, [1.0] * 5, T=4).train()
    masks = snn.dropout_masks(_x(3))
    assert len(masks) == 1 and masks[0].shape == (3, 128, 16, 16)
    assert set(torch.unique(masks[0]).tolist()) <= {0.0, 1.25}
    snn.eval()
    assert snn.dropout_masks(_x(3)) is None


def test_record_rates(vgg5):
    snn = SpikingVGG(vgg5, [1.0, 0.5, 0.5, 0.2, 0.2], T=6).eval()
    snn.record = True
    with torch.no_grad():
        snn(_x(2))
    assert len(snn.last_rates) == 5
    assert all(torch.all((r >= 0) & (r <= 1)) for r in snn.last_rates)


def test_config_and_twin(vgg5):
    snn = SpikingVGG(vgg5, [1.0, 0.5, 0.5, 0.2, 0.2], T=6, leak=0.99)
    cfg = snn.config()
    assert cfg["T"] == 6 and cfg["leak"] == 0.99 and cfg["thresholds"] == [1.0, 0.5, 0.5, 0.2, 0.2]
    t = snn.twin(T=10)
    assert t.net is vgg5 and t.T == 10 and t.leak == 0.99


# ------------------------------------------------------------------ errors
def test_clear_errors(vgg5):
    with pytest.raises(ValueError, match="unknown model"):
        build_ann("resnet18")
    with pytest.raises(ValueError, match="unknown model"):
        VGG("vgg7")
    with pytest.raises(ValueError, match="5 spiking layers, got 4 thresholds"):
        SpikingVGG(vgg5, [1.0] * 4, T=5)
    with pytest.raises(ValueError, match="thresholds must be > 0"):
        SpikingVGG(vgg5, [1.0, 1.0, 0.0, 1.0, 1.0], T=5)
    with pytest.raises(ValueError, match="T \\(timesteps\\)"):
        SpikingVGG(vgg5, [1.0] * 5, T=0)
    with pytest.raises(TypeError, match="T \\(timesteps\\)"):
        SpikingVGG(vgg5, [1.0] * 5, T=2.5)
    with pytest.raises(ValueError, match="leak must be in"):
        SpikingVGG(vgg5, [1.0] * 5, T=5, leak=1.01)
    with pytest.raises(ValueError, match="num_classes"):
        VGG("vgg5", num_classes=1)
    with pytest.raises(TypeError, match="wraps a snnlib VGG"):
        SpikingVGG(nn.Linear(2, 2), [1.0] * 5, T=5)
    snn = SpikingVGG(vgg5, [1.0] * 5, T=5)
    with pytest.raises(ValueError, match="T \\(timesteps\\)"):
        snn(_x(1), T=-1)


def test_arch_table():
    assert set(ARCHS) >= {"vgg5", "vgg9", "vgg11"}


def test_compiled_lif_backend_is_bit_identical():
    """The optional fused ``torch.compile`` LIF update gives exactly the eager numbers (forward and BPTT)."""
    import warnings

    import snnlib.neurons as neurons

    torch.manual_seed(0)
    x = (torch.randn(6, 2, 8, 5, 5) * 0.6 + 0.3).contiguous()
    w = torch.randn_like(x)
    out = {}
    for backend in ("eager", "compile"):
        xx = x.clone().requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = lif_multistep(xx, 0.7, 0.9, backend=backend)
            (g,) = torch.autograd.grad((s * w).sum(), xx)
        out[backend] = (s.detach(), g)
    if neurons._compile_broken is not None:
        pytest.skip(f"torch.compile unavailable here: {neurons._compile_broken[:200]}")
    assert torch.equal(out["eager"][0], out["compile"][0])
    assert torch.equal(out["eager"][1], out["compile"][1])
    assert out["eager"][1].abs().sum() > 0
    with pytest.raises(ValueError, match="unknown LIF backend"):
        lif_multistep(x, 0.7, 0.9, backend="fast")
    # per-channel thresholds, channels-last currents, an initial state and the final state used downstream
    from snnlib.neurons import LIFParameters, LIFState, lif_sequence
    xc = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (6, 2))
    u0 = torch.rand(2, 8, 5, 5, generator=torch.Generator().manual_seed(1))
    params = LIFParameters(torch.linspace(0.3, 1.2, 8), 0.9)
    res = {}
    for backend in ("eager", "compile"):
        xx, uu = xc.clone().requires_grad_(), u0.clone().requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s, st = lif_sequence(xx, LIFState(uu), params, backend=backend)
            grads = torch.autograd.grad((s * w).sum() + st.u.sum(), (xx, uu))
        res[backend] = (s.detach(), st.u.detach()) + grads
    assert all(torch.equal(a, b) for a, b in zip(res["eager"], res["compile"]))


def test_compile_failure_falls_back_to_eager(monkeypatch):
    import snnlib.neurons as neurons

    def broken(fn, **kw):
        def run(*a, **k):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(neurons, "_compiled", {})
    monkeypatch.setattr(neurons, "_compile_broken", None)
    x = (torch.randn(5, 2, 3) + 0.5).requires_grad_()
    with pytest.warns(RuntimeWarning, match="falls? back|eager"):
        s = lif_multistep(x, 0.8, 0.9, backend="compile")
    (g,) = torch.autograd.grad(s.sum(), x)
    assert neurons._compile_broken is not None
    x2 = x.detach().clone().requires_grad_()
    s2 = lif_multistep(x2, 0.8, 0.9, backend="eager")
    (g2,) = torch.autograd.grad(s2.sum(), x2)
    assert torch.equal(s, s2) and torch.equal(g, g2)


# ------------------------------------------------------------------ neurons as modules
TH5 = [1.0, 0.5, 0.5, 0.2, 0.2]


def test_spiking_layers_are_registered_lif_modules(vgg5):
    from snnlib.neurons import LIF
    snn = SpikingVGG(vgg5, TH5, T=4, leak=0.97, surrogate="arctan", reset="zero")
    names = [n for n, m in snn.named_modules() if isinstance(m, LIF)]
    assert names == [f"neurons.{i}" for i in range(5)]
    assert all(n.leak == 0.97 and n.reset == "zero" and n.surrogate.name == "arctan" for n in snn.neurons)
    # the state_dict is unchanged by the neuron modules (their thresholds are views of snn.thresholds)
    assert not any(k.startswith("neurons.") for k in snn.state_dict())
    snn.leak = 0.9
    snn.surrogate = "linear"
    assert all(n.leak == 0.9 and n.surrogate.name == "linear" for n in snn.neurons)
    with pytest.raises(ValueError, match="leak must be in"):
        snn.leak = 1.5


@pytest.mark.parametrize("grad", [False, True])
def test_forward_hook_on_a_spiking_layer_sees_its_spikes(vgg5, grad):
    snn = SpikingVGG(vgg5, TH5, T=7).eval()
    x = _x(2)
    seen = {}

    def hook(mod, inp, out):
        seen.setdefault("out", []).append(out[0].detach().clone())
        seen["state_shape"] = tuple(out[1].u.shape)

    h = snn.neurons[1].register_forward_hook(hook)
    try:
        with torch.set_grad_enabled(grad):
            snn(x)
    finally:
        h.remove()
    (s,) = seen["out"]
    assert s.shape == (7, 2, 128, 16, 16) and seen["state_shape"] == (2, 128, 16, 16)
    assert set(torch.unique(s).tolist()) <= {0.0, 1.0} and s.sum() > 0
    # the same spikes as the rates the model records
    snn.record = True
    snn.encoder.reseed()
    with torch.no_grad():
        snn(x)
    snn.record = False
    assert torch.allclose(snn.last_rates[1], s.mean(0))


def test_thresholds_are_shared_with_the_neurons(vgg5):
    import copy
    snn = SpikingVGG(vgg5, TH5, T=4)
    snn.set_thresholds([2.0, 1.0, 1.0, 0.5, 0.25])
    assert [float(n.threshold) for n in snn.neurons] == [2.0, 1.0, 1.0, 0.5, 0.25]
    snn.neurons[3].set_threshold(0.75)  # a scalar set on the neuron lands in snn.thresholds
    assert snn.thresholds[3].item() == 0.75
    state = {k: v.clone() for k, v in snn.state_dict().items()}
    state["thresholds"] = torch.tensor([3.0, 2.0, 2.0, 1.0, 1.0])
    snn.load_state_dict(state)
    assert [float(n.threshold) for n in snn.neurons] == [3.0, 2.0, 2.0, 1.0, 1.0]
    snn.double()
    assert snn.thresholds.dtype == torch.float64
    snn.thresholds.mul_(2)
    assert [float(n.threshold) for n in snn.neurons] == [6.0, 4.0, 4.0, 2.0, 2.0]
    snn.float()
    twin = copy.deepcopy(snn)
    twin.thresholds.fill_(1.5)
    assert all(float(n.threshold) == 1.5 for n in twin.neurons)
    assert float(snn.neurons[0].threshold) == 6.0
    snn.thresholds = torch.full((5,), 0.5)  # replacing the buffer re-links the neurons
    assert all(float(n.threshold) == 0.5 for n in snn.neurons)


def test_per_channel_thresholds_refused_by_spikingvgg(vgg5):
    snn = SpikingVGG(vgg5, TH5, T=4).eval()
    with pytest.raises(ValueError, match="per-channel thresholds are not supported"):
        snn.set_thresholds([[1.0] * 64, [1.0] * 128, [1.0] * 128, [1.0] * 1024, [1.0] * 1024])
    with pytest.raises(ValueError, match="per-channel thresholds are not supported"):
        SpikingVGG(vgg5, [torch.ones(64), 1.0, 1.0, 1.0, 1.0], T=4)
    snn.neurons[0].set_threshold(torch.ones(64))  # allowed on a LIF, not inside a SpikingVGG
    with pytest.raises(ValueError, match="per-channel thresholds are not supported"):
        with torch.no_grad():
            snn(_x(1))
    with pytest.raises(ValueError, match="per-channel thresholds are not supported"):
        snn(_x(1))
    with pytest.raises(ValueError, match="thresholds must be > 0"):
        snn.set_thresholds([1.0, -1.0, 1.0, 1.0, 1.0])


def test_lif_backend_is_per_model(vgg5):
    from snnlib import neurons
    a = SpikingVGG(vgg5, TH5, T=4, lif_backend="eager")
    b = SpikingVGG(vgg5, TH5, T=4, lif_backend="compile")
    assert all(n.backend == "eager" for n in a.neurons) and all(n.backend == "compile" for n in b.neurons)
    assert SpikingVGG(vgg5, TH5, T=4).lif_backend == neurons.get_lif_backend()
    assert a.twin().lif_backend == "eager"
    a.lif_backend = "auto"
    assert all(n.backend == "auto" for n in a.neurons)
    with pytest.raises(ValueError, match="unknown LIF backend"):
        SpikingVGG(vgg5, TH5, T=4, lif_backend="gpu")


# ------------------------------------------------------------------ faithful layout, threshold rounding
def test_layouts_agree(vgg5):
    """NCHW (the released code's) and channels-last convolutions sum in different orders: in float64 the spikes are
    identical, in float32 the logits are close (a spike can flip where a membrane is within rounding of threshold)."""
    x = _x(2, seed=5)
    nhwc = SpikingVGG(vgg5, TH5, T=12, leak=0.99, encoder=PoissonEncoder(seed=2)).eval()
    nchw = nhwc.twin(layout="nchw").eval()
    assert nhwc.channels_last and not nchw.channels_last and nchw.config()["layout"] == "nchw"
    assert "layout" not in nhwc.config()
    nhwc.record = nchw.record = True
    with torch.no_grad():
        a, b = nhwc(x), nchw(x)
    assert torch.count_nonzero(a) > 0
    assert torch.allclose(a, b, atol=2e-2, rtol=0), (a - b).abs().max()
    for ra, rb in zip(nhwc.last_rates, nchw.last_rates):  # spike counts agree up to rare flips
        assert (ra != rb).float().mean() < 1e-3
    net64 = build_ann("vgg5", seed=0).double()
    counts = {}
    for layout in ("nhwc", "nchw"):
        snn = SpikingVGG(net64, TH5, T=12, leak=0.99, encoder=PoissonEncoder(seed=2), layout=layout).double().eval()
        snn.record = True
        with torch.no_grad():
            out = snn(x.double())
        counts[layout] = (out, [r.clone() for r in snn.last_rates])
    assert torch.equal(counts["nhwc"][1][0], counts["nchw"][1][0])
    assert all(torch.equal(r1, r2) for r1, r2 in zip(counts["nhwc"][1], counts["nchw"][1]))
    assert torch.allclose(counts["nhwc"][0], counts["nchw"][0], atol=1e-9)
    with pytest.raises(ValueError, match="unknown layout"):
        SpikingVGG(vgg5, TH5, T=4, layout="NHWC")
    nchw.channels_last = True  # the older switch maps onto the layout
    assert nchw.layout == "nhwc"


def test_threshold_decimals_round_as_released(vgg5):
    from snnlib.models import round_thresholds
    snn = SpikingVGG(vgg5, [20.764, 2.687, 2.3349, 0.281, 0.004], T=4, threshold_decimals=2)
    assert snn.thresholds.tolist() == pytest.approx([20.76, 2.69, 2.33, 0.28, 0.01], abs=1e-6)
    snn.set_thresholds([1.005 + 0.001, 1.0, 1.0, 1.0, 1.0])
    assert snn.thresholds[0].item() == pytest.approx(1.01, abs=1e-6)
    assert snn.config()["threshold_decimals"] == 2 and snn.twin().threshold_decimals == 2
    plain = SpikingVGG(vgg5, [1.2345] * 5, T=4)
    assert plain.thresholds[0].item() == pytest.approx(1.2345, abs=1e-6) and "threshold_decimals" not in plain.config()
    assert round_thresholds([1.23456, 0.001], None) == [1.23456, 0.001]
    with pytest.raises(ValueError, match="decimals"):
        SpikingVGG(vgg5, TH5, T=4, threshold_decimals=-1)


# ------------------------------------------------------------------ dropout generator
def test_dropout_generator_is_used_when_set(vgg5):
    net = build_ann("vgg5", seed=0, fc_dropout=0.3)
    snn = SpikingVGG(net, TH5, T=4).train()
    x = _x(3)
    # default: the global RNG, exactly as drawn by torch.bernoulli on x's device
    torch.manual_seed(7)
    m_global = snn.dropout_masks(x)
    torch.manual_seed(7)
    ref = torch.bernoulli(torch.full((3, 128, 16, 16), 0.8)) / 0.8
    assert torch.equal(m_global[0], ref) and len(m_global) == 3
    # with a generator: reproducible from its seed, and the global RNG is not touched
    snn.dropout_generator = torch.Generator().manual_seed(11)
    before = torch.get_rng_state()
    m1 = snn.dropout_masks(x)
    assert torch.equal(torch.get_rng_state(), before)
    snn.dropout_generator = torch.Generator().manual_seed(11)
    m2 = snn.dropout_masks(x)
    assert all(torch.equal(a, b) for a, b in zip(m1, m2))
    assert not torch.equal(m1[0], m_global[0])
    assert set(torch.unique(m1[1]).tolist()) <= {0.0, torch.tensor(1 / 0.7).item()}
    twin = snn.twin()  # a copy of the generator: the same next draws
    assert all(torch.equal(a, b) for a, b in zip(twin.dropout_masks(x), snn.dropout_masks(x)))


# ------------------------------------------------------------------ precision (bf16 option)
@pytest.fixture(scope="module")
def calibrated(vgg5):
    from snnlib.bench.compare import calibrate_thresholds
    return calibrate_thresholds(vgg5, seed=0)


def test_bf16_precision_runs_the_layers_in_bf16_with_float32_membranes_and_readout(vgg5, calibrated):
    fp = SpikingVGG(vgg5, calibrated, T=12, leak=0.99, delay=False).eval()
    bf = fp.twin(precision="bf16")
    seen = []
    hook = bf.neurons[1].register_forward_hook(lambda m, inp, out: seen.append((inp[0].dtype, out[0].dtype,
                                                                                out[1].u.dtype)))
    x = _x(4)
    with torch.no_grad():
        a, b = fp(x), bf(x)
    hook.remove()
    assert seen == [(torch.bfloat16, torch.bfloat16, torch.float32)] and b.dtype == torch.float32
    assert a.abs().sum() > 0 and not torch.equal(a, b)          # a deviation, not the same numbers ...
    fp.record = bf.record = True
    with torch.no_grad():
        fp(x), bf(x)
    fp.record = bf.record = False
    counts = [(float(ra.sum()) * 12, float(rb.sum()) * 12) for ra, rb in zip(fp.last_rates, bf.last_rates)]
    assert all(rb.dtype == torch.float32 for rb in bf.last_rates)
    for na, nb in counts:                                        # ... but few spikes move (bf16: 8 significant bits)
        assert abs(nb - na) <= 0.05 * max(na, 500.0), counts
    assert abs(sum(nb for _, nb in counts) / sum(na for na, _ in counts) - 1) < 0.01, counts
    assert fp.config().get("precision") is None and bf.config()["precision"] == "bf16"
    assert bf.twin().precision == "bf16" and fp.precision == "fp32"


def test_bf16_chunked_inference_equals_one_shot_and_gradients_follow_fp32(vgg5, calibrated):
    bf = SpikingVGG(vgg5, calibrated, T=12, leak=0.99, delay=False, precision="bf16").eval()
    chunked = bf.twin(time_chunk=5)
    x = _x(3, seed=1)
    with torch.no_grad():
        assert torch.equal(bf(x), chunked(x))                     # pieces with carried membranes: the same bits
    grads = []
    for model in (bf, bf.twin(precision="fp32")):
        xx = x.clone().requires_grad_()
        model.encoder.reseed(0)
        torch.nn.functional.cross_entropy(model(xx), torch.tensor([1, 2, 3])).backward()
        grads.append(xx.grad.flatten())
    assert grads[0].dtype == torch.float32 and grads[0].abs().sum() > 0
    assert float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)) > 0.9


@pytest.mark.parametrize("bad", ["fp16", "float32", None, 16])
def test_unknown_precision_is_refused_with_the_choices(vgg5, bad):
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16'\)"):
        SpikingVGG(vgg5, [1.0] * 5, T=8, precision=bad)


@pytest.mark.parametrize("mode", ["bptt", "algorithm1"])
def test_attack_gradients_of_a_bf16_model_follow_fp32(vgg5, calibrated, mode):
    from snnlib.attacks.gradients import gradient
    fp = SpikingVGG(vgg5, calibrated, T=12, leak=0.99).eval()
    x, y = _x(3, seed=2), torch.tensor([4, 5, 6])
    grads = []
    for model in (fp, fp.twin(precision="bf16")):
        model.encoder.reseed(0)
        g, _ = gradient(model, x, y, mode=mode)
        grads.append(g.flatten())
    assert grads[1].dtype == torch.float32 and grads[1].abs().sum() > 0
    assert float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)) > 0.9


# ------------------------------------------------------------------ activation checkpointing over time
def test_checkpointed_time_pieces_give_the_whole_sequence_gradients():
    """grad_time_chunk: the sequence in checkpointed pieces, membranes carried across (and the gradient back
    through them); in float64 the logits, the input gradient and the weight gradients are those of one piece, with
    dropout masks (train mode) too."""
    net = build_ann("vgg5", seed=0).double()
    whole = SpikingVGG(net, [1.0, 0.5, 0.5, 0.2, 0.2], T=14, leak=0.99, encoder=PoissonEncoder(seed=3)).double()
    pieces = whole.twin(grad_time_chunk=4)
    x = _x(2).double()
    y = torch.tensor([1, 2])
    for train in (False, True):
        got = []
        for model in (whole, pieces):
            model.train(train)
            model.encoder.reseed(3)
            model.dropout_generator = torch.Generator().manual_seed(8)
            xx = x.clone().requires_grad_()
            for p in net.parameters():
                p.grad = None
            out = model(xx)
            torch.nn.functional.cross_entropy(out, y).backward()
            got.append((out.detach(), xx.grad, net.features[0].weight.grad.clone(), net.output.weight.grad.clone()))
        assert pieces.checkpoints_time(14) and not whole.checkpoints_time(14)
        assert got[0][1].abs().sum() > 0 and got[0][2].abs().sum() > 0
        for a, b in zip(*got):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        assert not pieces.checkpoints_time(14)            # inference has its own pieces (time_chunk)
    assert not pieces.checkpoints_time(4)


def test_algorithm1_of_a_checkpointed_model_is_the_bptt_gradient():
    from snnlib.attacks.gradients import gradient
    net = build_ann("vgg5", seed=0).double()
    model = SpikingVGG(net, [1.0, 0.5, 0.5, 0.2, 0.2], T=10, leak=0.99, encoder=PoissonEncoder(seed=1)).double().eval()
    x, y = _x(2).double(), torch.tensor([3, 4])
    model.encoder.reseed(1)
    ref, _ = gradient(model, x, y, mode="algorithm1")
    chunked = model.twin(grad_time_chunk=3)
    chunked.encoder.reseed(1)
    got, _ = gradient(chunked, x, y, mode="algorithm1")
    assert ref.abs().sum() > 0 and chunked.first_current is None
    torch.testing.assert_close(got, ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_grad_time_chunk_validated(vgg5, bad):
    with pytest.raises(ValueError, match="grad_time_chunk must be None or an int >= 1"):
        SpikingVGG(vgg5, [1.0] * 5, T=8, grad_time_chunk=bad)
