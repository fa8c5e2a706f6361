"""Gradient-masking checks: each fires on a constructed masking sign and stays quiet on clean inputs."""
import json
from types import SimpleNamespace

import pytest
import torch

from snnlib import VGG, DirectEncoder, PoissonEncoder, SpikingVGG
from snnlib.attacks import gradient
from snnlib.robustness.masking import (Check, accuracy_of, badge, black_box_stronger, no_convergence_at_large_eps,
                            non_monotone_in_eps, randomness, run_checks, single_step_stronger, zero_gradients)
from snnlib.stats import accuracy_from_counts as acc

from tiny_models import tiny_arch as use_tiny_arch  # noqa: E402

TINY = "tiny_masking_test"


@pytest.fixture(scope="module", autouse=True)
def tiny_arch():
    """A tiny VGG-style architecture (3 spiking layers) for this module, eager LIF loop (see conftest.tiny_arch)."""
    with use_tiny_arch(TINY, features=[16, "A", 32, "A"], hidden=[64]):
        yield


def _snn(encoder=None, grad="ste", T=4):
    return SpikingVGG(VGG(TINY, seed=0), [0.5] * 3, T=T, delay=False,
                      encoder=encoder if encoder is not None else PoissonEncoder(seed=0, grad=grad)).eval()


def _data(n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


# ------------------------------------------------------------------------------------ comparisons
def test_black_box_stronger():
    flag = black_box_stronger(acc(60, 100), acc(5, 100))
    assert not flag.ok and flag.name == "black_box_stronger" and flag.value == pytest.approx(-0.55)
    assert "black-box" in flag.detail
    assert black_box_stronger(acc(20, 100), acc(60, 100)).ok  # the usual case: transfer is weaker
    # overlapping intervals: quiet with the CI rule, flagged on point estimates
    assert black_box_stronger(acc(50, 100), acc(45, 100)).ok
    assert not black_box_stronger(acc(50, 100), acc(45, 100), rule="point").ok
    # RobustnessResult-like objects are read through .adversarial
    wb, bb = SimpleNamespace(adversarial=acc(60, 100)), SimpleNamespace(adversarial=acc(5, 100))
    assert not black_box_stronger(wb, bb).ok
    with pytest.raises(TypeError, match="Accuracy"):
        black_box_stronger(0.6, 0.05)
    with pytest.raises(ValueError, match="rule"):
        black_box_stronger(acc(6, 10), acc(5, 10), rule="maybe")


def test_single_step_stronger():
    assert not single_step_stronger(acc(10, 200), acc(120, 200)).ok  # FGSM beats PGD: masking sign
    quiet = single_step_stronger(acc(120, 200), acc(10, 200))
    assert quiet.ok and quiet.value == pytest.approx(0.55)
    assert single_step_stronger(acc(30, 100), acc(30, 100)).ok


def test_no_convergence_at_large_eps():
    big = 64 / 255
    assert not no_convergence_at_large_eps({8 / 255: acc(50, 100), big: acc(40, 100)}).ok
    assert no_convergence_at_large_eps({8 / 255: acc(50, 100), big: acc(2, 100)}).ok
    # below 10 % but clearly above 0: CI low > 5 %
    c = no_convergence_at_large_eps({big: acc(90, 1000)})
    assert not c.ok and c.value == pytest.approx(0.09)
    # nothing large enough: skipped, counted as passed
    s = no_convergence_at_large_eps({8 / 255: acc(50, 100)})
    assert s.ok and s.skipped and "not run" in s.detail
    assert no_convergence_at_large_eps({128 / 255: acc(1, 100), 16 / 255: acc(60, 100)}).ok
    with pytest.raises(ValueError, match="pixel units"):
        no_convergence_at_large_eps({64: acc(1, 100)})
    with pytest.raises(ValueError, match="at least one"):
        no_convergence_at_large_eps({})


def test_non_monotone_in_eps():
    rising = non_monotone_in_eps({2 / 255: acc(10, 100), 8 / 255: acc(60, 100), 16 / 255: acc(5, 100)})
    assert not rising.ok and rising.value == pytest.approx(0.5) and "2/255" in rising.detail
    assert non_monotone_in_eps({0.0: acc(90, 100), 4 / 255: acc(50, 100), 8 / 255: acc(20, 100)}).ok


# ------------------------------------------------------------------------------------ gradients and randomness
def test_zero_gradients_on_shares_and_tensors():
    assert zero_gradients(0.0).ok
    z = zero_gradients(0.25)
    assert not z.ok and z.value == 0.25
    assert zero_gradients(0.25, max_share=0.5).ok
    g = torch.randn(4, 3, 8, 8)
    assert zero_gradients(g).ok
    g[2] = 0
    assert zero_gradients(g).value == 0.25 and not zero_gradients(g).ok
    with pytest.raises(ValueError, match="fraction"):
        zero_gradients(1.5)


def test_zero_gradients_catch_a_masked_snn_gradient():
    """Spikes as constants (encoder grad "none") give an exactly zero autograd gradient; BPTT does not."""
    snn = _snn(grad="none")
    x, y = _data(4)
    assert not zero_gradients(gradient(snn, x, y, "autograd")[0]).ok
    assert zero_gradients(gradient(snn, x, y, "bptt")[0]).ok


def test_randomness_fires_for_poisson_and_not_for_deterministic_models():
    x, y = _data(16)
    snn = _snn()
    snn.encoder.reseed(3)
    snn.encoder.generator("cpu")
    state = snn.encoder.get_state().clone()
    r = randomness(snn, x, y, seeds=(0, 1, 2))
    assert not r.ok and r.value["changed"] > 0 and len(r.value["accuracy"]) == 3
    assert r.value["spread"] == max(r.value["accuracy"]) - min(r.value["accuracy"])
    assert snn.encoder.seed == 3 and torch.equal(snn.encoder.get_state(), state), "encoder state restored"
    direct = randomness(_snn(encoder=DirectEncoder()), x, y, seeds=(0, 1))
    assert direct.ok and direct.value["changed"] == 0 and direct.value["spread"] == 0
    assert randomness(VGG(TINY).eval(), x, y, seeds=(0, 1)).ok
    with pytest.raises(ValueError, match="two seeds"):
        randomness(snn, x, y, seeds=(0,))


# ------------------------------------------------------------------------------------ run_checks and badge
def test_run_checks_and_badge_quiet_on_clean_results():
    x, y = _data(8)
    checks = run_checks(whitebox=acc(10, 100), blackbox=acc(50, 100), fgsm=acc(40, 100), pgd=acc(10, 100),
                        acc_by_eps={8 / 255: acc(10, 100), 64 / 255: acc(0, 100)}, zero_grad_share=0.0,
                        model=VGG(TINY).eval(), x=x, y=y)
    assert [c.name for c in checks] == ["black_box_stronger", "single_step_stronger", "no_convergence_at_large_eps",
                                        "non_monotone_in_eps", "zero_gradients", "randomness"]
    assert all(c.ok for c in checks)
    assert badge(checks) == "✓ no masking signs (6 checks)"
    json.dumps([c.to_dict() for c in checks])
    assert str(checks[0]).startswith("✓ black_box_stronger")


def test_run_checks_and_badge_on_masking_signs():
    checks = run_checks(whitebox=acc(60, 100), blackbox=acc(5, 100), fgsm=acc(10, 100), pgd=acc(60, 100),
                        acc_by_eps={8 / 255: acc(60, 100)}, zero_grad_share=0.3)
    assert [c.ok for c in checks] == [False, False, True, True, False]
    assert checks[2].skipped
    b = badge(checks)
    assert b == "⚠ 3 masking signs: black_box_stronger, single_step_stronger, zero_gradients"
    assert badge([Check("x", True, "fine"), Check("y", True, "n/a", skipped=True)]) == \
        "✓ no masking signs (1 check, 1 skipped)"
    assert badge([Check("x", False, "bad")]) == "⚠ 1 masking sign: x"
    assert run_checks() == []


def test_accuracy_of_per_image_results():
    a = accuracy_of(torch.tensor([True, False, True, True]))
    assert a.correct == 3 and a.total == 4 and a.low < 0.75 < a.high
