"""Attacks: textbook references, budgets, gradient-mode agreement (Algorithm 1 == STE), EOT, determinism, errors."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnlib import VGG, PoissonEncoder, SpikingVGG, data
from snnlib.attacks import BIM, FGSM, GRAD_MODES, PGD, RFGSM, Attack, gradient, kurakin_steps
from snnlib.robustness.prediction import predict
from snnlib.seeding import derive_seed, generator
from snnlib.train import fit

EPS = 8 / 255


class TinyNet(nn.Module):
    """A small CNN (normalisation inside, like snnlib's VGG) for fast exact-reference tests."""

    def __init__(self, seed=0, width=16):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.f = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                               nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4),
                               nn.Flatten(), nn.Linear(2 * width * 16, 10))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / max(p[0].numel(), 1)) ** 0.5)

    def forward(self, x):
        return self.f((x - 0.5) / 0.5)


def _inputs(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g)
    x[0, :, :4] = 0.0  # pixels on the box edges
    x[1, :, :4] = 1.0
    return x, torch.randint(0, 10, (n,), generator=g)


def _snn(T=4, encoder_grad="ste", seed=0):
    """VGG5 SNN with random weights that fires in every layer (low thresholds, no per-layer delay)."""
    return SpikingVGG(VGG("vgg5", seed=seed), [0.5] * 5, T=T, delay=False,
                      encoder=PoissonEncoder(seed=0, grad=encoder_grad))


@pytest.fixture(scope="module")
def tiny():
    return TinyNet().eval()


@pytest.fixture(scope="module")
def trained():
    """TinyNet trained briefly on the shipped CIFAR-10 subset; returns (model, x_test, y_test)."""
    torch.manual_seed(0)
    model = TinyNet(seed=0)
    train = data.load("cifar10", "train", n=512, source="subset")
    fit(model, train, 6, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), lr=0.05, milestones=(),
        augment=False, progress=False)
    model.eval()
    test = data.load("cifar10", "test", n=96, source="subset")
    return model, data.to_float(test.images), test.labels


def _ref_grad(model, x, y, targeted=False):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(-loss if targeted else loss, x)
    return g


# ------------------------------------------------------------------------------------ textbook references (ANN)
def test_fgsm_matches_textbook(tiny):
    x, y = _inputs()
    ref = torch.clamp(x + EPS * _ref_grad(tiny, x, y).sign(), 0, 1)
    x0 = x.clone()
    out = FGSM(tiny, eps=EPS)(x, y)
    assert torch.equal(x, x0), "the caller's tensor must not be modified"
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-7)
    assert not torch.equal(out, x)


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_and_bim_match_textbook_loop(tiny, targeted):
    x, y = _inputs()
    alpha, steps = 2 / 255, 5
    ref = x.clone()
    for _ in range(steps):
        ref = ref + alpha * _ref_grad(tiny, ref, y, targeted).sign()
        ref = torch.clamp(torch.min(torch.max(ref, x - EPS), x + EPS), 0, 1)
    pgd = PGD(tiny, eps=EPS, alpha=alpha, steps=steps, random_start=False, targeted=targeted)(x, y)
    bim = BIM(tiny, eps=EPS, alpha=alpha, steps=steps, targeted=targeted)(x, y)
    torch.testing.assert_close(pgd, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(bim, ref, rtol=0, atol=1e-6)


def test_pgd_random_start_and_rfgsm_follow_their_formulas(tiny):
    x, y = _inputs()
    # PGD: x0 = clamp(x + 2 eps U - eps, 0, 1) with U from the attack seed's "attack.noise" stream
    u = torch.rand(x.shape, generator=generator(7, "attack.noise"))
    ref = torch.clamp(x + 2 * EPS * u - EPS, 0, 1)
    ref = torch.clamp(torch.min(torch.max(ref + (2 / 255) * _ref_grad(tiny, ref, y).sign(), x - EPS), x + EPS), 0, 1)
    torch.testing.assert_close(PGD(tiny, eps=EPS, alpha=2 / 255, steps=1, seed=7)(x, y), ref, rtol=0, atol=1e-6)
    # R-FGSM: x' = clip(x + a sign(N(0,1))); x' + (eps - a) sign(grad at x'), projected
    a = EPS / 2
    n = torch.randn(x.shape, generator=generator(7, "attack.noise"))
    x1 = torch.clamp(x + a * n.sign(), 0, 1)
    ref = torch.clamp(torch.min(torch.max(x1 + (EPS - a) * _ref_grad(tiny, x1, y).sign(), x - EPS), x + EPS), 0, 1)
    torch.testing.assert_close(RFGSM(tiny, eps=EPS, seed=7)(x, y), ref, rtol=0, atol=1e-6)


def test_kurakin_default_steps():
    assert kurakin_steps(8 / 255) == 10 and kurakin_steps(16 / 255) == 20 and kurakin_steps(2 / 255) == 2
    assert kurakin_steps(0.0) == 1
    assert BIM(TinyNet(), eps=8 / 255).steps == 10 and BIM(TinyNet(), eps=8 / 255).alpha == 1 / 255


# ------------------------------------------------------------------------------------ budgets
ATTACKS = [
    lambda m, e: FGSM(m, eps=e),
    lambda m, e: RFGSM(m, eps=e),
    lambda m, e: BIM(m, eps=e, alpha=2 / 255, steps=3),
    lambda m, e: PGD(m, eps=e, alpha=4 / 255, steps=3, restarts=2),
]


@pytest.mark.parametrize("make", ATTACKS, ids=["fgsm", "rfgsm", "bim", "pgd"])
@pytest.mark.parametrize("eps", [0.0, 8 / 255, 1.0])
def test_budget_every_attack(make, eps):
    model = TinyNet(seed=3).eval()
    x, y = _inputs(5, seed=4)
    out = make(model, eps)(x, y)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float((out - x).abs().max()) <= eps + 1e-7
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    if eps == 0:
        assert torch.equal(out, x)
    else:
        assert float((out - x).abs().max()) > 0


def test_budget_on_snn_with_batches():
    snn = _snn(T=3)
    x, y = _inputs(3)
    out = PGD(snn, eps=EPS, alpha=3 / 255, steps=2, batch_size=2)(x, y)
    assert float((out - x).abs().max()) <= EPS + 1e-7 and 0 <= float(out.min()) and float(out.max()) <= 1


# ------------------------------------------------------------------------------------ gradient modes
@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "dropout"])
def test_algorithm1_equals_straight_through(train_mode):
    snn = _snn(T=4).train(train_mode)
    x, y = _inputs(3)
    torch.manual_seed(11)
    snn.encoder.reseed(5)
    g1, o1 = gradient(snn, x, y, "algorithm1")
    torch.manual_seed(11)
    snn.encoder.reseed(5)
    g2, o2 = gradient(snn, x, y, "bptt")
    assert float(g2.abs().max()) > 0
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6 * float(g2.abs().max()))
    torch.testing.assert_close(o1, o2)
    assert snn.encoder.grad == "ste" and snn.first_current is None and not snn.capture_first_current
    if train_mode:  # the dropout mask really matters: eval-mode gradient is different
        snn.eval()
        snn.encoder.reseed(5)
        g3, _ = gradient(snn, x, y, "bptt")
        assert not torch.allclose(g3, g2)


def test_autograd_follows_encoder_setting_and_bptt_forces_ste():
    snn = _snn(T=3, encoder_grad="none").eval()
    x, y = _inputs(2)
    snn.encoder.reseed(2)
    g_none, _ = gradient(snn, x, y, "autograd")
    assert torch.count_nonzero(g_none) == 0
    snn.encoder.reseed(2)
    g_bptt, _ = gradient(snn, x, y, "bptt")
    assert snn.encoder.grad == "none", "bptt must restore the encoder's gradient setting"
    snn.encoder.grad = "ste"
    snn.encoder.reseed(2)
    g_ste, _ = gradient(snn, x, y, "autograd")
    assert torch.count_nonzero(g_bptt) > 0
    torch.testing.assert_close(g_bptt, g_ste)
    assert gradient(snn, x, y, "auto")[0].shape == x.shape


def test_eot_is_the_mean_of_single_draws():
    snn = _snn(T=3).eval()
    x, y = _inputs(2)
    snn.encoder.reseed(9)
    g_eot, o_eot = gradient(snn, x, y, "bptt", eot=3)
    snn.encoder.reseed(9)
    singles = [gradient(snn, x, y, "bptt", eot=1) for _ in range(3)]
    assert not torch.allclose(singles[0][0], singles[1][0]), "each pass must draw fresh spikes"
    torch.testing.assert_close(g_eot, torch.stack([s[0] for s in singles]).mean(0), rtol=1e-5, atol=1e-10)
    torch.testing.assert_close(o_eot, torch.stack([s[1] for s in singles]).mean(0))


def test_algorithm1_needs_an_snn(tiny):
    x, y = _inputs(2)
    with pytest.raises(ValueError, match="algorithm1"):
        FGSM(tiny, eps=EPS, grad_mode="algorithm1")(x, y)


def test_grad_mode_registry_is_extensible(tiny, monkeypatch):
    calls = []

    def flipped(model, x, y, targeted):
        calls.append(x.shape[0])
        g, o = GRAD_MODES["autograd"](model, x, y, targeted)
        return -g, o

    monkeypatch.setitem(GRAD_MODES, "flipped", flipped)
    x, y = _inputs(3)
    a = FGSM(tiny, eps=EPS, grad_mode="flipped", eot=2)(x, y)
    assert calls == [3, 3]
    ref = torch.clamp(x - EPS * _ref_grad(tiny, x, y).sign(), 0, 1)
    torch.testing.assert_close(a, ref, rtol=0, atol=1e-7)


# ------------------------------------------------------------------------------------ behaviour on trained models
def test_stronger_eps_never_helps(trained):
    model, x, y = trained
    accs = []
    for e in (0, 2, 8, 32):
        atk = PGD(model, eps=e / 255, alpha=max(e, 1) / 4 / 255, steps=4, seed=0)
        accs.append(int((predict(model, atk(x, y)) == y).sum()))
    assert accs[0] == int((predict(model, x) == y).sum())
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] < accs[0]


def test_targeted_pgd_raises_target_probability(trained):
    model, x, y = trained
    x, y = x[:32], y[:32]
    target = (y + 1) % 10
    x_adv = PGD(model, eps=16 / 255, alpha=4 / 255, steps=6, targeted=True)(x, target)
    with torch.no_grad():
        p0 = model(x).softmax(1).gather(1, target[:, None]).squeeze(1)
        p1 = model(x_adv).softmax(1).gather(1, target[:, None]).squeeze(1)
        hits0, hits1 = int((model(x).argmax(1) == target).sum()), int((model(x_adv).argmax(1) == target).sum())
    assert float((p1 > p0).float().mean()) > 0.9
    assert float((p1 / p0).log().mean()) > 0.3
    assert hits1 >= hits0 + 5


def test_pgd_restarts_never_worse_than_first_restart(trained):
    model, x, y = trained
    x, y = x[:32], y[:32]
    one = PGD(model, eps=4 / 255, alpha=1 / 255, steps=2, restarts=1, seed=3)(x, y)
    three = PGD(model, eps=4 / 255, alpha=1 / 255, steps=2, restarts=3, seed=3)(x, y)
    with torch.no_grad():
        l1 = F.cross_entropy(model(one), y, reduction="none")
        l3 = F.cross_entropy(model(three), y, reduction="none")
    wrong1, wrong3 = model(one).argmax(1) != y, model(three).argmax(1) != y
    assert bool((wrong3 | ~wrong1).all())  # an image fooled by restart 1 stays fooled
    assert bool(((l3 >= l1 - 1e-6) | (wrong3 & ~wrong1)).all())


# ------------------------------------------------------------------------------------ determinism (SNN)
def test_same_seed_same_adversarial_images_on_snn():
    snn = _snn(T=4).eval()
    x, y = _inputs(4)
    enc_state = snn.encoder.get_state().clone()
    a = PGD(snn, eps=EPS, alpha=2 / 255, steps=2, seed=1)(x, y)
    b = PGD(snn, eps=EPS, alpha=2 / 255, steps=2, seed=1)(x, y)
    c = PGD(snn, eps=EPS, alpha=2 / 255, steps=2, seed=2)(x, y)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(snn.encoder.get_state(), enc_state) and snn.encoder.seed == 0, "encoder state restored"
    assert not snn.training


def test_source_train_mode_is_seeded_and_restored():
    net = VGG("vgg5", seed=0)
    snn = SpikingVGG(net, [0.5] * 5, T=3, delay=False).eval()
    x, y = _inputs(2)
    rng = torch.get_rng_state()
    a = FGSM(snn, eps=EPS, source_train_mode=True, seed=4)(x, y)
    b = FGSM(snn, eps=EPS, source_train_mode=True, seed=4)(x, y)
    c = FGSM(snn, eps=EPS, source_train_mode=False, seed=4)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not snn.training and torch.equal(torch.get_rng_state(), rng)


# ------------------------------------------------------------------------------------ argument errors
@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(eps=-0.01), ValueError, "epsilon"),
    (dict(eps=8), ValueError, "8/255"),
    (dict(eps=1.5), ValueError, r"\[0, 1\] pixel units"),
    (dict(eps="8/255"), TypeError, "eps"),
    (dict(eps=float("nan")), ValueError, "epsilon"),
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=2.5), TypeError, "steps"),
    (dict(alpha=0.0), ValueError, "alpha"),
    (dict(alpha=-1 / 255), ValueError, "alpha"),
    (dict(grad_mode="magic"), ValueError, "grad_mode"),
    (dict(eot=0), ValueError, "eot"),
    (dict(eot=1.5), TypeError, "eot"),
    (dict(restarts=0), ValueError, "restarts"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(targeted="True"), TypeError, "targeted"),
])
def test_bad_arguments(tiny, kwargs, exc, word):
    kw = dict(eps=EPS)
    kw.update(kwargs)
    with pytest.raises(exc, match=word):
        PGD(tiny, **kw)


def test_bad_rfgsm_alpha_and_inputs(tiny):
    with pytest.raises(ValueError, match="alpha"):
        RFGSM(tiny, eps=4 / 255, alpha=8 / 255)
    with pytest.raises(TypeError, match="model"):
        FGSM("not a model", eps=EPS)
    atk = FGSM(tiny, eps=EPS)
    x, y = _inputs(2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        atk(x * 255, y)
    with pytest.raises(ValueError, match="shape"):
        atk(x[0], y)
    with pytest.raises(TypeError, match="uint8|float"):
        atk((x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match="y"):
        atk(x, y[:1])
    with pytest.raises(TypeError, match="integer"):
        atk(x, y.float())


def test_base_class_repr_and_config(tiny):
    atk = PGD(tiny, eps=EPS)
    cfg = atk.config()
    assert cfg["eps_255"] == 8 and cfg["alpha_255"] == 2 and cfg["steps"] == 7 and cfg["grad_mode_resolved"] == "autograd"
    assert "8/255" in repr(atk)
    assert isinstance(atk, Attack)
    assert _snn().encoder is not None and PGD(_snn(), eps=EPS).config()["grad_mode_resolved"] == "bptt"


# ------------------------------------------------------------------------------------ the get_logits hook
class FlippedFGSM(FGSM):
    """Attacks x -> model(x flipped left-right): the hook decides what the gradient is taken of."""

    def get_logits(self, x):
        return self.model(x.flip(-1))


def test_get_logits_override_changes_what_is_differentiated(tiny):
    x, y = _inputs()
    flipped = lambda z: tiny(z.flip(-1))  # noqa: E731
    ref = torch.clamp(x + EPS * _ref_grad(flipped, x, y).sign(), 0, 1)
    out = FlippedFGSM(tiny, eps=EPS)(x, y)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-7)
    assert not torch.allclose(out, FGSM(tiny, eps=EPS)(x, y))


class CountingPGD(PGD):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls = 0

    def get_logits(self, x):
        self.calls += 1
        return self.model(x)


def test_every_gradient_pass_and_score_goes_through_get_logits():
    snn = _snn(T=2).eval()
    x, y = _inputs(2)
    atk = CountingPGD(snn, eps=EPS, alpha=2 / 255, steps=3, eot=2, restarts=2, seed=0)
    out = atk(x, y)
    # 2 restarts x 3 steps x 2 EOT passes, plus one scoring pass per restart
    assert atk.calls == 2 * 3 * 2 + 2
    # the default hook is the model itself: the same numbers as the plain attack
    assert torch.equal(out, PGD(snn, eps=EPS, alpha=2 / 255, steps=3, eot=2, restarts=2, seed=0)(x, y))


def test_custom_forward_reaches_algorithm1_and_bptt_alike():
    snn = _snn(T=3).eval()
    x, y = _inputs(2)
    scaled = lambda z: 3.0 * snn(z)  # noqa: E731
    snn.encoder.reseed(4)
    g1, o1 = gradient(snn, x, y, "algorithm1", forward=scaled)
    snn.encoder.reseed(4)
    g2, o2 = gradient(snn, x, y, "bptt", forward=scaled)
    snn.encoder.reseed(4)
    g_plain, _ = gradient(snn, x, y, "bptt")
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6 * float(g2.abs().max()))
    torch.testing.assert_close(o1, o2)
    assert not torch.allclose(g2, g_plain)


def test_overridden_get_logits_refused_for_modes_with_their_own_forward():
    snn = _snn(T=2)
    x, y = _inputs(2)
    for mode in ("rate", "rga", "ann_proxy"):
        with pytest.raises(ValueError, match="get_logits"):
            CountingPGD(snn, eps=EPS, grad_mode=mode)
        with pytest.raises(ValueError, match="forward"):
            gradient(snn, x, y, mode, forward=snn)
    CountingPGD(snn, eps=EPS, grad_mode="algorithm1")  # accepted


# ------------------------------------------------------------------------------------ independent random streams
class SpyPGD(PGD):
    """Records, at the first forward of the crafting, the source's encoder seed, its dropout generator's seed and
    the random-start iterate."""

    seen = None

    def get_logits(self, x):
        if self.seen is None:
            dg = self.model.dropout_generator
            self.seen = dict(encoder_seed=self.model.encoder.seed, start=x.detach().clone(),
                             dropout_seed=None if dg is None else dg.initial_seed(), training=self.model.training)
        return self.model(x)


def test_attack_streams_are_distinct_and_restored():
    snn = _snn(T=2).eval()
    x, y = _inputs(3)
    seed = 5
    rng = torch.get_rng_state()
    atk = SpyPGD(snn, eps=EPS, alpha=2 / 255, steps=1, seed=seed, source_train_mode=True)
    atk(x, y)
    seen = atk.seen
    noise_seed = derive_seed(seed, "attack.noise")
    assert seen["encoder_seed"] == derive_seed(seed, "attack.encoder")
    assert seen["dropout_seed"] == derive_seed(seed, "attack.dropout", 1) and seen["training"]
    assert len({noise_seed, seen["encoder_seed"], seen["dropout_seed"]}) == 3
    # the random start used the noise stream ...
    u = torch.rand(x.shape, generator=generator(seed, "attack.noise"))
    torch.testing.assert_close(seen["start"], torch.clamp(x + 2 * EPS * u - EPS, 0, 1), rtol=0, atol=1e-7)
    # ... and the encoder's first Poisson step drew other numbers (the two were the same stream before)
    r0 = torch.rand((2,) + tuple(x.shape), generator=torch.Generator().manual_seed(seen["encoder_seed"]))[0]
    assert float((r0 - u).abs().max()) > 0.5
    assert abs(float(torch.corrcoef(torch.stack([r0.flatten(), u.flatten()]))[0, 1])) < 0.05
    # everything is restored
    assert snn.dropout_generator is None and snn.encoder.seed == 0 and not snn.training
    assert torch.equal(torch.get_rng_state(), rng)


def test_same_seed_same_images_with_dropout_source():
    snn = _snn(T=3).eval()
    x, y = _inputs(3)
    kw = dict(eps=EPS, alpha=2 / 255, steps=2, source_train_mode=True)
    a = PGD(snn, seed=3, **kw)(x, y)
    torch.manual_seed(999)  # the caller's global RNG does not matter
    b = PGD(snn, seed=3, **kw)(x, y)
    c = PGD(snn, seed=4, **kw)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_negative_seed_is_refused(tiny):
    with pytest.raises(ValueError, match="seed"):
        PGD(tiny, eps=EPS, seed=-1)
