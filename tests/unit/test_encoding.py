import math

import pytest
import torch

from snnlib.encoding import DirectEncoder, PoissonEncoder, check_timesteps, make_encoder, normalize, quantize




def _pixels(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 4, 4, generator=g)


# ------------------------------------------------------------------ Poisson rates
def test_poisson_rate_sign_and_values():
    x = _pixels(4)
    T = 4000
    s = PoissonEncoder(seed=1)(x, T)
    assert s.shape == (T,) + tuple(x.shape)
    assert set(torch.unique(s).tolist()) <= {-1.0, 0.0, 1.0}
    xn = normalize(x)
    # signs: never a spike of the wrong sign
    assert torch.all(s * torch.sign(xn).unsqueeze(0) >= 0)
    # mean over time ~ x_norm within a binomial tolerance (5 sigma, p = |x_norm|)
    p = xn.abs()
    sigma = torch.sqrt(p * (1 - p) / T)
    err = (s.mean(0) - xn).abs()
    assert torch.all(err <= 5 * sigma + 1e-6), float((err / (sigma + 1e-9)).max())


def test_poisson_extremes_with_le_semantics():
    # pixel 0.5 -> x_norm 0 never spikes; pixels 0 and 1 -> |x_norm| = 1 always spike (r <= 1 always holds)
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
    s = PoissonEncoder(seed=3)(x, 500)
    assert torch.all(s[:, 0, 0] == -1)
    assert torch.all(s[:, 0, 1] == 0)
    assert torch.all(s[:, 0, 2] == 1)


def test_poisson_seeded_determinism_and_reseed():
    x = _pixels()
    a = PoissonEncoder(seed=5)
    b = PoissonEncoder(seed=5)
    first = a(x, 8)
    assert torch.equal(first, b(x, 8))
    second = a(x, 8)
    assert not torch.equal(first, second)  # the stream moves on
    a.reseed()
    assert torch.equal(a(x, 8), first)  # reseed restarts it
    assert not torch.equal(PoissonEncoder(seed=6)(x, 8), first)
    a.reseed(6)
    assert torch.equal(a(x, 8), PoissonEncoder(seed=6)(x, 8))


def test_poisson_state_roundtrip():
    x = _pixels()
    enc = PoissonEncoder(seed=2)
    enc(x, 3)
    state = enc.get_state()
    nxt = enc(x, 5)
    enc.set_state(state)
    assert torch.equal(enc(x, 5), nxt)


def test_poisson_independent_of_global_rng():
    x = _pixels()
    torch.manual_seed(0)
    a = PoissonEncoder(seed=9)(x, 6)
    torch.manual_seed(12345)
    torch.rand(100)
    b = PoissonEncoder(seed=9)(x, 6)
    assert torch.equal(a, b)
    # and drawing spikes does not move the global generator
    torch.manual_seed(7)
    ref = torch.rand(3)
    torch.manual_seed(7)
    PoissonEncoder(seed=9)(x, 6)
    assert torch.equal(torch.rand(3), ref)


# ------------------------------------------------------------------ quantisation
@pytest.mark.parametrize("bits", [1, 2, 3, 5])
def test_quantize_levels(bits):
    x = torch.linspace(0, 1, 1001)
    q = quantize(x, bits)
    levels = torch.unique(q)
    assert levels.numel() == 2 ** bits
    assert torch.allclose(levels, torch.linspace(0, 1, 2 ** bits))
    assert (q - x).abs().max() <= 0.5 / (2 ** bits - 1) + 1e-6


def test_quantize_8_bits_is_identity_on_uint8_pixels():
    x = torch.arange(256, dtype=torch.uint8).float() / 255.0
    assert torch.equal(quantize(x, 8), x)
    assert quantize(x, None) is x


@pytest.mark.parametrize("bad", [0, 9, 2.0, True, "4"])
def test_quantize_bad_bits(bad):
    with pytest.raises(ValueError, match="bits"):
        quantize(torch.zeros(2), bad)
    with pytest.raises(ValueError, match="bits"):
        PoissonEncoder(bits=bad)


def test_encoder_quantizes_before_coding():
    # with 1 bit every pixel becomes 0 or 1, so every step spikes (-1 or +1)
    s = PoissonEncoder(seed=0, bits=1)(_pixels(), 20)
    assert torch.all(s.abs() == 1)


# ------------------------------------------------------------------ gradients
def test_ste_gradient_is_sum_over_time():
    x = _pixels(2).requires_grad_()
    T = 7
    w = torch.randn((T,) + tuple(x.shape))
    s = PoissonEncoder(seed=0, grad="ste")(x, T)
    (g,) = torch.autograd.grad((s * w).sum(), x)
    # ds_t/dx_norm = 1 and dx_norm/dx = 1/0.5 = 2
    assert torch.allclose(g, 2.0 * w.sum(0))


def test_ste_forward_values_are_still_spikes():
    x = _pixels(2).requires_grad_()
    s = PoissonEncoder(seed=4, grad="ste")(x, 5)
    ref = PoissonEncoder(seed=4, grad="none")(x.detach(), 5)
    assert torch.allclose(s.detach(), ref, atol=1e-6)
    assert torch.equal(s.detach().round(), ref)


def test_no_gradient_mode():
    x = _pixels(2).requires_grad_()
    s = PoissonEncoder(seed=0, grad="none")(x, 4)
    assert not s.requires_grad
    s = DirectEncoder(grad="none")(x, 4)
    assert not s.requires_grad


def test_direct_encoder_repeats_normalised_input():
    x = _pixels(3)
    s = DirectEncoder()(x, 5)
    assert s.shape == (5,) + tuple(x.shape)
    for t in range(5):
        assert torch.equal(s[t], normalize(x))
    xr = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(DirectEncoder()(xr, 5).sum(), xr)
    assert torch.allclose(g, torch.full_like(x, 10.0))


def test_make_encoder():
    assert isinstance(make_encoder("poisson", seed=3), PoissonEncoder)
    assert make_encoder("poisson", seed=3).seed == 3
    assert isinstance(make_encoder("direct"), DirectEncoder)
    with pytest.raises(ValueError, match="unknown encoder"):
        make_encoder("rank")
    with pytest.raises(ValueError, match="gradient mode"):
        PoissonEncoder(grad="exact")


# ------------------------------------------------------------------ argument errors
@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-1, ValueError), (2.5, TypeError), ("8", TypeError),
                                     (True, TypeError)])
def test_bad_timesteps(bad, exc):
    with pytest.raises(exc, match="T \\(timesteps\\)"):
        check_timesteps(bad)
    with pytest.raises(exc, match="T \\(timesteps\\)"):
        PoissonEncoder()(_pixels(1), bad)
    with pytest.raises(exc, match="T \\(timesteps\\)"):
        DirectEncoder()(_pixels(1), bad)


def test_bad_rate():
    with pytest.raises(ValueError, match="rate"):
        PoissonEncoder(rate=0.0)
    with pytest.raises(ValueError, match="rate"):
        PoissonEncoder(rate=1.5)


def test_rate_scales_firing():
    x = torch.ones(1, 3, 8, 8)  # x_norm = 1
    s = PoissonEncoder(seed=0, rate=0.25)(x, 2000)
    p, n = 0.25, s.numel()
    assert abs(s.mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------ per-sample streams
def test_sample_seeds_give_each_image_its_own_stream():
    x = _pixels(5)
    enc = PoissonEncoder(seed=0)
    batch_state = enc.get_state().clone()
    seeds = torch.tensor([11, 12, 13, 14, 15])
    enc.set_sample_seeds(seeds)
    s = enc(x, 6)
    assert s.shape == (6,) + tuple(x.shape)
    # image b's spikes are those of a one-image encoder seeded with seeds[b]: independent of the batch
    for b in (0, 3):
        alone = PoissonEncoder(seed=int(seeds[b]))(x[b:b + 1], 6)
        assert torch.equal(s[:, b:b + 1], alone)
    # a sub-batch with the matching seeds gives the same spikes per image
    enc.set_sample_seeds(seeds[2:4])
    assert torch.equal(enc(x[2:4], 6), s[:, 2:4])
    # streams continue across calls (time chunks): 2 + 4 steps == 6 steps
    enc.set_sample_seeds(seeds)
    chunked = torch.cat([enc(x, 2), enc(x, 4)])
    assert torch.equal(chunked, s)
    # the batch generator was not used; None returns to it with its old numbers
    assert torch.equal(enc.get_state(), batch_state)
    enc.set_sample_seeds(None)
    assert torch.equal(enc(x, 6), PoissonEncoder(seed=0)(x, 6))


def test_sample_seeds_errors():
    enc = PoissonEncoder()
    enc.set_sample_seeds(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="per-sample seeds"):
        enc(_pixels(3), 2)
    with pytest.raises(ValueError, match="1-D integer"):
        enc.set_sample_seeds(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="ints"):
        enc.set_sample_seeds([1, "2"])
    enc.set_sample_seeds(None)
    with pytest.raises(RuntimeError, match="set_sample_seeds"):
        enc.sample_generators("cpu")


def test_sample_seeds_keep_the_straight_through_gradient():
    x = _pixels(2).requires_grad_(True)
    enc = PoissonEncoder(grad="ste")
    enc.set_sample_seeds([3, 4])
    enc(x, 5).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 2.0 * 5))  # d x_norm / dx = 2, summed over 5 steps
