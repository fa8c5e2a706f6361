"""Adaptive attacks: rate (BPTR/RGA) and ANN-proxy gradients, surrogate sweep, worst case, the suite.

Small on purpose (2 CPU cores): a tiny VGG-style architecture registered for this module (2 conv + 1 hidden
layer), as random-weight SNNs with low thresholds and ``delay=False`` (every layer fires) for the exact checks, and
trained for ~5 s then converted (IF, T = 8) for the attack-strength comparisons.
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnlib import VGG, DirectEncoder, PoissonEncoder, SpikingVGG, data, neurons
from snnlib.attacks import RATE_RULES, adaptive_suite, default_alpha, rate_forward, surrogate_variants
from snnlib.robustness.worst_case import WorstCaseResult, evaluate_worst_case, worst_case
from snnlib.attacks import GRAD_MODES, PGD, gradient
from snnlib.convert import convert
from snnlib.robustness.prediction import predict
from snnlib.robustness.masking import zero_gradients
from snnlib.train import train_ann

EPS = 8 / 255
from tiny_models import tiny_arch as use_tiny_arch  # noqa: E402

TINY = "tiny_adaptive_test"


@pytest.fixture(scope="module", autouse=True)
def tiny_arch_and_eager_lif():
    """A tiny VGG-style architecture (3 spiking layers) for this module, eager LIF loop (see conftest.tiny_arch)."""
    with use_tiny_arch(TINY, features=[16, "A", 32, "D", "A"], hidden=[128]):
        yield


def _inputs(n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def _snn(T=4, seed=0, surrogate="linear", encoder=None, **kw):
    """Tiny SNN with random weights that fires in every layer (low thresholds, no per-layer delay)."""
    return SpikingVGG(VGG(TINY, seed=seed), [0.5] * 3, T=T, delay=False, surrogate=surrogate,
                      encoder=encoder if encoder is not None else PoissonEncoder(seed=0), **kw).eval()


@pytest.fixture(scope="module")
def trained():
    """The tiny ANN trained ~5 s on 512 shipped images, converted to an IF SNN (T = 8, no delay).

    Returns (snn, ann, x, y): 32 training images that both classify correctly (attack strength is compared on
    images there is something to attack).
    """
    train = data.load("cifar10", "train", n=512, source="subset")
    ann = VGG(TINY, seed=0, dropout=0.0)
    train_ann(ann, train, 5, lr=0.02, milestones=(), augment=False, progress=False)
    ann.eval()
    x_all, y_all = data.to_float(train.images), train.labels
    snn = convert(ann, x_all[:64], T=8, balance_T=8, scale=0.5, delay=False).eval()
    ok = (predict(snn, x_all[:160]) == y_all[:160]) & (predict(ann, x_all[:160]) == y_all[:160])
    idx = ok.nonzero().flatten()[:32]
    assert idx.numel() == 32, "the tiny model should fit 32 of its first 160 training images"
    return snn, ann, x_all[idx], y_all[idx]


# ------------------------------------------------------------------------------------ the rate path
@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "dropout"])
def test_rate_forward_is_the_real_snn_forward(train_mode):
    snn = _snn(T=4).train(train_mode)
    x, _ = _inputs()
    torch.manual_seed(3)
    snn.encoder.reseed(5)
    ref = snn(x)
    for rule in RATE_RULES:
        torch.manual_seed(3)
        snn.encoder.reseed(5)
        torch.testing.assert_close(rate_forward(snn, x, rule), ref, rtol=1e-5, atol=1e-6)
    assert float(ref.detach().abs().max()) > 0


def test_rate_forward_in_time_chunks_is_the_same():
    """With ``time_chunk`` the simulation runs in pieces (bounded memory): same draw, same logits and gradient."""
    x, y = _inputs()
    full, chunked = _snn(T=5), _snn(T=5, time_chunk=2)
    out = []
    for m in (full, chunked):
        m.encoder.reseed(4)
        out.append(gradient(m, x, y, "rate"))
    torch.testing.assert_close(out[0][1], out[1][1])
    torch.testing.assert_close(out[0][0], out[1][0])
    chunked.encoder.reseed(4)
    full.encoder.reseed(4)
    with torch.no_grad():
        torch.testing.assert_close(rate_forward(chunked, x), full(x), rtol=1e-5, atol=1e-6)


def test_rate_gradient_is_the_masked_linear_network_gradient():
    """BPTR: dL/dx = J^T dL/dlogits with J the Jacobian of x -> 2 x_n -> (W_l . / theta_l * 1[rate_l > 0])_l."""
    snn = _snn(T=4)
    x, y = _inputs()
    snn.record = True
    snn.encoder.reseed(7)
    with torch.no_grad():
        logits = snn(x)
    rates = [r.clone() for r in snn.last_rates]
    snn.record = False
    snn.encoder.reseed(7)
    g, obj = gradient(snn, x, y, "rate")
    torch.testing.assert_close(obj, F.cross_entropy(logits, y, reduction="none"))
    # the same derivative by hand: a linear network whose units are masked by the recorded rates
    xr = x.clone().requires_grad_(True)
    h, li = (xr - 0.5) / 0.5, 0
    for m in snn.net.features:
        if isinstance(m, nn.Conv2d):
            h = m(h) * (rates[li] > 0) / snn.thresholds[li]
            li += 1
        elif isinstance(m, nn.AvgPool2d):
            h = m(h)
    h = h.flatten(1)
    for lin in snn.net.classifier:
        h = lin(h) * (rates[li] > 0) / snn.thresholds[li]
        li += 1
    lin_logits = snn.net.output(h)
    dlogits = logits.softmax(1) - F.one_hot(y, 10)  # d CE / d logits at the *real* logits
    (ref,) = torch.autograd.grad(lin_logits, xr, grad_outputs=dlogits)
    assert float(ref.abs().max()) > 0
    torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max()))


def test_rga_rule_values():
    th = torch.tensor(2.0)
    u = torch.tensor([-0.5, 0.0, 0.05, 0.5, 1.5, 2.0, 2.5])
    rga = RATE_RULES["rga"]
    # IF (leak 1): 0.5 / theta on 0 <= u <= 2, else 0
    torch.testing.assert_close(rga(u, u, th, 1.0), torch.tensor([0, .5, .5, .5, .5, .5, 0]) / 2)
    # LIF (leak 0.9): gamma = 0.2 on [0, 0.1], (1 - 0.2 + 0.18) / 1.9 on [0.1, 2]
    hi = (1 - 0.2 + 0.2 * 0.9) / 1.9
    torch.testing.assert_close(rga(u, u, th, 0.9), torch.tensor([0, .2, .2, hi, hi, hi, 0]) / 2)
    # BPTR: mask by the real rate, not by the current
    torch.testing.assert_close(RATE_RULES["bptr"](u, torch.tensor([0, 0, .1, 0, 1, .5, 0.]), th, 1.0),
                               torch.tensor([0, 0, .5, 0, .5, .5, 0]))


def test_rate_gradient_survives_a_vanishing_surrogate():
    """A surrogate that is zero almost everywhere masks BPTT completely; the rate gradient is unaffected."""
    snn = _snn(T=4, surrogate=neurons.get_surrogate("rectangle", 1e-6))
    x, y = _inputs(4)
    snn.encoder.reseed(1)
    g_bptt, _ = gradient(snn, x, y, "bptt")
    snn.encoder.reseed(1)
    g_rate, _ = gradient(snn, x, y, "rate")
    snn.encoder.reseed(1)
    g_rga, _ = gradient(snn, x, y, "rga")
    assert torch.count_nonzero(g_bptt) == 0
    assert not zero_gradients(g_bptt).ok
    for g in (g_rate, g_rga):
        assert bool((g.flatten(1).abs().amax(1) > 0).all())
        assert zero_gradients(g).ok
    # the surrogate does not enter the rate gradient at all
    snn2 = snn.twin(surrogate="arctan")
    snn2.encoder.reseed(1)
    torch.testing.assert_close(gradient(snn2, x, y, "rate")[0], g_rate)


def test_rate_modes_handle_dropout_and_direct_encoder():
    snn = _snn(T=3, encoder=DirectEncoder()).train()
    x, y = _inputs(2)
    torch.manual_seed(0)
    g1, _ = gradient(snn, x, y, "rate")
    torch.manual_seed(0)
    g2, _ = gradient(snn, x, y, "rate")
    torch.manual_seed(1)
    g3, _ = gradient(snn, x, y, "rate")
    torch.testing.assert_close(g1, g2)
    assert not torch.allclose(g1, g3), "a different dropout mask must give a different gradient"


# ------------------------------------------------------------------------------------ ANN proxy
def test_ann_proxy_equals_the_ann_gradient():
    snn = _snn(T=3)
    x, y = _inputs()
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(F.cross_entropy(snn.net(xr), y, reduction="sum"), xr)
    g, obj = gradient(snn, x, y, "ann_proxy")
    torch.testing.assert_close(g, ref)
    torch.testing.assert_close(obj, F.cross_entropy(snn.net(x), y, reduction="none"))
    # targeted: the negated target loss; an ANN is its own proxy
    g_t, _ = gradient(snn, x, y, "ann_proxy", targeted=True)
    torch.testing.assert_close(g_t, -ref)
    torch.testing.assert_close(gradient(snn.net, x, y, "ann_proxy")[0], gradient(snn.net, x, y, "autograd")[0])
    # the encoder's input quantisation is part of the proxy (straight-through rounding)
    q = _snn(T=3, encoder=PoissonEncoder(bits=2))
    xq = x.clone().requires_grad_(True)
    (ref_q,) = torch.autograd.grad(F.cross_entropy(q.net(xq, bits=2), y, reduction="sum"), xq)
    torch.testing.assert_close(gradient(q, x, y, "ann_proxy")[0], ref_q)


def test_new_modes_are_registered_and_need_an_snn():
    assert {"rate", "rga", "ann_proxy"} <= set(GRAD_MODES)
    x, y = _inputs(2)
    with pytest.raises(TypeError, match="SpikingVGG"):
        gradient(VGG(TINY), x, y, "rate")
    with pytest.raises(ValueError, match="rule"):
        rate_forward(_snn(), x, "nope")
    snn = _snn(T=3)
    a = PGD(snn, eps=EPS, alpha=2 / 255, steps=2, grad_mode="rate", seed=4)(x, y)
    b = PGD(snn, eps=EPS, alpha=2 / 255, steps=2, grad_mode="rate", seed=4)(x, y)
    assert torch.equal(a, b) and float((a - x).abs().max()) <= EPS + 1e-7
    assert snn.encoder.seed == 0 and not snn.training


# ------------------------------------------------------------------------------------ surrogate sweep
def test_surrogate_variants_share_weights_and_forward():
    snn = _snn(T=3)
    x, y = _inputs(2)
    twins = surrogate_variants(snn, widths={"arctan": [1.0, 4.0]})
    assert list(twins) == ["linear(width=0.3)", "fast_sigmoid(width=10)", "arctan(width=1)", "arctan(width=4)",
                           "rectangle(width=1)"]
    grads = {}
    for name, tw in twins.items():
        assert tw.net is snn.net and tw.T == snn.T and torch.equal(tw.thresholds, snn.thresholds)
        tw.encoder.reseed(2)
        snn.encoder.reseed(2)
        torch.testing.assert_close(tw(x), snn(x))
        tw.encoder.reseed(2)
        grads[name] = gradient(tw, x, y, "bptt")[0]
    assert not torch.allclose(grads["arctan(width=1)"], grads["arctan(width=4)"])
    assert snn.surrogate.name == "linear"
    with pytest.raises(ValueError, match="unknown surrogate"):
        surrogate_variants(snn, ("nope",))
    assert list(surrogate_variants(snn, "arctan")) == ["arctan(width=2)"]


# ------------------------------------------------------------------------------------ worst case
def test_worst_case_is_an_and_over_attacks():
    a = torch.tensor([1, 1, 0, 1, 1], dtype=torch.bool)
    b = torch.tensor([1, 0, 1, 1, 1], dtype=torch.bool)
    c = torch.tensor([1, 1, 1, 0, 1], dtype=torch.bool)
    wc = worst_case({"a": a, "b": b, "c": c})
    assert wc.tolist() == [True, False, False, False, True]
    for v in (a, b, c):
        assert int(wc.sum()) <= int(v.sum())
    with pytest.raises(ValueError, match="at least one"):
        worst_case({})
    with pytest.raises(ValueError, match="length"):
        worst_case({"a": a, "b": b[:3]})


def test_worst_case_is_never_above_any_attack_random():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        res = {str(i): torch.rand(50, generator=g) < 0.7 for i in range(4)}
        wc = worst_case(res)
        assert all(int(wc.sum()) <= int(v.sum()) for v in res.values())


# ------------------------------------------------------------------------------------ the suite
def test_adaptive_suite_names_and_settings():
    snn = _snn(T=3)
    suite = adaptive_suite(snn, EPS, steps=50, restarts=2, eot=8)
    assert list(suite) == ["PGD-7 Alg.1 (paper)", "PGD-50 EOT-8", "PGD-50 rate (BPTR)", "PGD-50 rate (RGA)",
                           "PGD-50 ANN proxy (BPDA)", "PGD-50 surrogate fast_sigmoid(width=10)",
                           "PGD-50 surrogate arctan(width=2)", "PGD-50 surrogate rectangle(width=1)",
                           "PGD-50x2 BPTT"]
    cfg = {k: a.config() for k, a in suite.items()}
    paper = cfg["PGD-7 Alg.1 (paper)"]
    assert paper["grad_mode"] == "algorithm1" and paper["steps"] == 7 and paper["alpha_255"] == 2 and paper["eot"] == 1
    assert cfg["PGD-50 EOT-8"]["eot"] == 8 and cfg["PGD-50 EOT-8"]["grad_mode"] == "bptt"
    assert cfg["PGD-50 rate (BPTR)"]["grad_mode"] == "rate" and cfg["PGD-50 rate (RGA)"]["grad_mode"] == "rga"
    assert cfg["PGD-50 ANN proxy (BPDA)"]["grad_mode"] == "ann_proxy"
    assert cfg["PGD-50x2 BPTT"]["restarts"] == 2 and cfg["PGD-50x2 BPTT"]["steps"] == 50
    assert math.isclose(cfg["PGD-50x2 BPTT"]["alpha"], default_alpha(EPS, 50))
    assert math.isclose(default_alpha(EPS, 50), EPS / 10)
    assert suite["PGD-50 surrogate arctan(width=2)"].model.surrogate.name == "arctan"
    assert all(a.eps == EPS for a in suite.values())
    # the model's own surrogate is not repeated; the options reach every attack
    own = adaptive_suite(snn.twin(surrogate="arctan"), EPS, steps=5, surrogates=("arctan", "rectangle"),
                         rate_rules=("bptr",), batch_size=16)
    assert [k for k in own if "surrogate" in k] == ["PGD-5 surrogate rectangle(width=1)"]
    assert all(a.batch_size == 16 for a in own.values())
    with pytest.raises(TypeError, match="SpikingVGG"):
        adaptive_suite(snn.net, EPS)


# ------------------------------------------------------------------------------------ strength (trained model)
def _acc(res: WorstCaseResult, name: str) -> int:
    return res.per_attack[name].correct


def test_bptt_family_at_least_as_strong_as_plain_pgd(trained):
    """EOT, long PGD and the surrogate sweep against plain PGD with the same eps (and steps/alpha for EOT and
    the surrogates) on 32 images, each scored by the majority of 5 Poisson draws: "at least as strong" = at most
    1 image more survives.  A single other surrogate is a different estimator, not a stronger one (fast_sigmoid
    with width 10 is much flatter and leaves 5 more images here); the sweep's per-image worst case is what must
    not be weaker."""
    snn, _, x, y = trained
    kw = dict(eps=EPS, alpha=EPS / 2, steps=3, seed=0)
    attacks = {"pgd": PGD(snn, **kw), "eot": PGD(snn, eot=3, **kw),
               "long": PGD(snn, eps=EPS, alpha=EPS / 4, steps=6, restarts=2, seed=0)}
    sweep = surrogate_variants(snn, ("fast_sigmoid", "arctan", "rectangle"))
    attacks.update({name: PGD(twin, **kw) for name, twin in sweep.items()})
    res = evaluate_worst_case(snn, attacks, x, y, draws=5)   # majority of 5 Poisson draws per image
    plain = _acc(res, "pgd")
    assert plain <= res.clean.correct - 6, f"plain PGD should do something ({res})"
    assert _acc(res, "eot") <= plain + 1 and _acc(res, "long") <= plain + 1, str(res)
    for name in sweep:      # each surrogate alone fools images (some are flatter estimators: fast_sigmoid(10))
        assert _acc(res, name) <= res.clean.correct - 4, f"{name} fools (almost) nothing:\n{res}"
    assert int(worst_case({k: res.correct[k] for k in sweep}).sum()) <= plain + 1, str(res)
    _check_worst(res)


def test_rate_and_ann_proxy_attack_the_trained_snn(trained):
    """On the unmasked converted SNN (where BPTT through the linear surrogate works well) the rate and ANN-proxy
    attacks are comparable to plain PGD (within 3 of 32 images) and enter the worst case."""
    snn, ann, x, y = trained
    kw = dict(eps=EPS, alpha=EPS / 2, steps=3, seed=0)
    attacks = {m: PGD(snn, grad_mode=m, **kw) for m in ("bptt", "rate", "rga", "ann_proxy")}
    res = evaluate_worst_case(snn, attacks, x, y, draws=5)   # majority of 5 Poisson draws per image
    plain = _acc(res, "bptt")
    for name in attacks:
        assert _acc(res, name) <= plain + 3, f"{name} is much weaker than plain PGD:\n{res}"
    _check_worst(res)
    # crafting on the ANN and evaluating on the SNN (BPDA) also fools the ANN itself
    x_adv = attacks["ann_proxy"](x, y)
    assert int((predict(ann, x_adv) == y).sum()) <= 0.5 * y.numel()


def test_rate_and_ann_proxy_beat_a_masked_surrogate(trained):
    """The same trained SNN attacked through a too-narrow surrogate (a masking scenario, as with badly chosen
    surrogates): plain PGD barely moves, the rate and ANN-proxy gradients do not depend on the surrogate."""
    snn, _, x, y = trained
    masked = snn.twin(surrogate=neurons.get_surrogate("rectangle", 1e-4))
    kw = dict(eps=EPS, alpha=EPS / 2, steps=3, seed=0)
    attacks = {m: PGD(masked, grad_mode=m, **kw) for m in ("bptt", "rate", "rga", "ann_proxy")}
    res = evaluate_worst_case(masked, attacks, x, y)
    plain = _acc(res, "bptt")
    for name in ("rate", "rga", "ann_proxy"):
        assert _acc(res, name) <= plain - 6, f"{name} should be much stronger than the masked BPTT:\n{res}"
    g, _ = attacks["bptt"].input_gradient(x, y)
    assert not zero_gradients(g, max_share=0.5).ok
    _check_worst(res)


def _check_worst(res: WorstCaseResult):
    worst = res.worst.correct
    assert all(worst <= a.correct for a in res.per_attack.values()) and worst <= res.clean.correct
    assert res.weakest_gap >= 0
    fooled = res.n - worst
    assert sum(res.strongest.values()) == fooled
    assert sum(res.unique.values()) <= fooled
    d = json.loads(json.dumps(res.to_dict()))
    assert d["worst"]["correct"] == worst and sum(d["robust_per_image"]) == worst
    assert all(v <= EPS + 1e-6 for v in res.max_linf.values())
    assert "worst case" in str(res)


def test_evaluate_worst_case_small_suite_and_errors(trained):
    snn, _, x, y = trained
    x, y = x[:4], y[:4]
    suite = adaptive_suite(snn, EPS, steps=2, restarts=1, eot=2, paper_steps=2, surrogates=("arctan",))
    res = evaluate_worst_case(snn, suite, x, y, include_clean=False)
    assert set(res.per_attack) == set(suite) and res.n == 4 and not res.include_clean
    _check_worst(res)
    with pytest.raises(ValueError, match="targeted"):
        evaluate_worst_case(snn, {"t": PGD(snn, eps=EPS, steps=1, targeted=True)}, x, y)
    with pytest.raises(ValueError, match="at least one"):
        evaluate_worst_case(snn, {}, x, y)
    with pytest.raises(TypeError, match="Attack"):
        evaluate_worst_case(snn, {"x": object()}, x, y)
