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
    old = neurons.get_lif_backend()
    try:
        for backend in ("eager", "compile"):
            neurons.set_lif_backend(backend)
            xx = x.clone().requires_grad_()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = lif_multistep(xx, 0.7, 0.9)
                (g,) = torch.autograd.grad((s * w).sum(), xx)
            out[backend] = (s.detach(), g)
    finally:
        neurons.set_lif_backend(old)
    if neurons._compile_broken is not None:
        pytest.skip(f"torch.compile unavailable here: {neurons._compile_broken[:200]}")
    assert torch.equal(out["eager"][0], out["compile"][0])
    assert torch.equal(out["eager"][1], out["compile"][1])
    assert out["eager"][1].abs().sum() > 0
    with pytest.raises(ValueError, match="unknown LIF backend"):
        neurons.set_lif_backend("fast")


def test_compile_failure_falls_back_to_eager(monkeypatch):
    import snnlib.neurons as neurons

    def broken(fn, **kw):
        def run(*a, **k):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(neurons, "_compiled", {})
    monkeypatch.setattr(neurons, "_compile_broken", None)
    monkeypatch.setattr(neurons, "_backend", "compile")
    x = (torch.randn(5, 2, 3) + 0.5).requires_grad_()
    with pytest.warns(RuntimeWarning, match="falls? back|eager"):
        s = lif_multistep(x, 0.8, 0.9)
    (g,) = torch.autograd.grad(s.sum(), x)
    assert neurons._compile_broken is not None
    monkeypatch.setattr(neurons, "_backend", "eager")
    x2 = x.detach().clone().requires_grad_()
    s2 = lif_multistep(x2, 0.8, 0.9)
    (g2,) = torch.autograd.grad(s2.sum(), x2)
    assert torch.equal(s, s2) and torch.equal(g, g2)
