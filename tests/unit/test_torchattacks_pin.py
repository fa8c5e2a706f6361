"""snnlib's FGSM and PGD pinned to torchattacks' on a small ANN (float64): identical adversarial images.

torchattacks works in [0, 1] without normalisation by default, takes the batch-mean cross-entropy (snnlib the sum:
the same sign) and draws PGD's random start with ``uniform_(-eps, eps)`` from the global RNG; seeding that RNG with
snnlib's "attack.noise" stream gives both the same start noise.
"""
import pytest
import torch
from torch import nn

from snnlib.attacks import FGSM, PGD
from snnlib.seeding import derive_seed

torchattacks = pytest.importorskip("torchattacks", reason="torchattacks is not installed (pip install torchattacks)")

EPS = 8 / 255


def small_ann(seed=0):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                        nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(16 * 16, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (2.0 / max(p[0].numel(), 1)) ** 0.5)
    return net.double().eval()


def inputs(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g, dtype=torch.float64)
    x[0, :, :4] = 0.0  # on the box edges
    x[1, :, :4] = 1.0
    return x, torch.randint(0, 10, (n,), generator=g)


def test_fgsm_equals_torchattacks():
    model, (x, y) = small_ann(), inputs()
    ours = FGSM(model, eps=EPS)(x, y)
    theirs = torchattacks.FGSM(model, eps=EPS)(x, y)
    assert not torch.equal(ours, x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_without_random_start_equals_torchattacks(targeted):
    model, (x, y) = small_ann(), inputs()
    labels = (y + 1) % 10 if targeted else y
    ours = PGD(model, eps=EPS, alpha=2 / 255, steps=7, random_start=False, targeted=targeted)(x, labels)
    atk = torchattacks.PGD(model, eps=EPS, alpha=2 / 255, steps=7, random_start=False)
    if targeted:
        atk.set_mode_targeted_by_label(quiet=True)
    theirs = atk(x, labels)
    assert float((ours - x).abs().max()) > EPS / 2
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_pgd_with_the_same_random_start_equals_torchattacks():
    model, (x, y) = small_ann(), inputs()
    seed = 3
    ours = PGD(model, eps=EPS, alpha=2 / 255, steps=5, random_start=True, seed=seed)(x, y)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "attack.noise"))  # torchattacks draws its start from the global RNG
        theirs = torchattacks.PGD(model, eps=EPS, alpha=2 / 255, steps=5, random_start=True)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    # the start noise matters: another seed gives other images
    other = PGD(model, eps=EPS, alpha=2 / 255, steps=5, random_start=True, seed=seed + 1)(x, y)
    assert float((other - ours).abs().max()) > 1e-3
