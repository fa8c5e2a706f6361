import pytest
import torch
from torch import nn

from snnlib.convert import balance_thresholds, convert, scale_thresholds
from snnlib.data import load, to_float
from snnlib.encoding import PoissonEncoder
from snnlib.robustness.prediction import predict
from snnlib.models import SpikingVGG, build_ann
from snnlib.neurons import lif_multistep
from snnlib.train import train_ann




@pytest.fixture(scope="module")
def images():
    return to_float(load("cifar10", "train", n=4, source="subset").images)


def brute_force_thresholds(net, x, T, seed=0, channels_last=True):
    """Layer l's threshold = max input current when layers < l run as IF neurons with their balanced thresholds;
    each layer's pass uses a fresh Poisson encoder seeded ``seed + l`` (as balance_thresholds documents)."""
    th = []
    weights = net.weight_layers()[:-1]
    for layer in range(len(weights)):
        h = PoissonEncoder(seed=seed + layer)(x, T)
        li, peak = 0, None
        for m in list(net.features) + [nn.Flatten(2)] + list(net.classifier):
            if isinstance(m, nn.Conv2d):
                inp = h.flatten(0, 1)
                if channels_last:
                    inp = inp.contiguous(memory_format=torch.channels_last)
                cur = m(inp).unflatten(0, (T, -1))
            elif isinstance(m, nn.Linear):
                cur = m(h)
            elif isinstance(m, nn.AvgPool2d):
                h = m(h.flatten(0, 1)).unflatten(0, (T, -1))
                continue
            elif isinstance(m, nn.Flatten):
                h = h.flatten(2)
                continue
            else:  # dropout: identity in eval
                continue
            if li == layer:
                peak = cur.max().item()
                break
            h = lif_multistep(cur, th[li], 1.0)  # IF, subtract reset, delay
            li += 1
        th.append(peak)
    return th


T_BAL = 16


@pytest.fixture(scope="module")
def balanced(images):
    net = build_ann("vgg5", seed=0).train()
    th = balance_thresholds(net, images, T_BAL, seed=3)
    assert net.training  # the caller's mode is restored
    return net, th


@torch.no_grad()
def test_balance_equals_brute_force(images, balanced):
    net, got = balanced
    ref = brute_force_thresholds(net.eval(), images, T_BAL, seed=3)
    assert len(got) == 5 and all(t > 0 for t in got)
    assert got == pytest.approx(ref, rel=1e-6)


@torch.no_grad()
def test_balance_chunking_does_not_change_result(images, balanced):
    net, got = balanced
    # time chunks draw the same Poisson stream and carry the membranes over
    assert balance_thresholds(net, images, T_BAL, seed=3, time_chunk=5) == pytest.approx(got, rel=1e-6)


@torch.no_grad()
def test_balance_in_the_released_layout_equals_brute_force(images, balanced):
    net, _ = balanced
    got = balance_thresholds(net, images, T_BAL, seed=3, layout="nchw", lif_backend="eager")
    ref = brute_force_thresholds(net.eval(), images, T_BAL, seed=3, channels_last=False)
    assert got == pytest.approx(ref, rel=1e-6)


def test_balance_bad_inputs():
    net = build_ann("vgg5")
    with pytest.raises(ValueError, match="images must be"):
        balance_thresholds(net, torch.rand(2, 1, 32, 32), 4)
    with pytest.raises(ValueError, match="T \\(timesteps\\)"):
        balance_thresholds(net, torch.rand(2, 3, 32, 32), 0)
    with pytest.raises(ValueError, match="unknown layout"):
        balance_thresholds(net, torch.rand(2, 3, 32, 32), 4, layout="channels_last")


def test_scale_thresholds_released_model_1():
    released = [20.76, 2.69, 2.33, 0.28, 1.14]
    assert scale_thresholds(released, 0.7) == [14.53, 1.88, 1.63, 0.2, 0.8]
    assert scale_thresholds(released, 1.0) == released
    assert scale_thresholds([0.001], 0.5) == [0.01]  # never rounded down to 0
    assert scale_thresholds([1.23456], 1.0, decimals=None) == [1.23456]
    with pytest.raises(ValueError, match="scale"):
        scale_thresholds(released, 0.0)


def test_one_rounding_rule_for_convert_and_spikingvgg():
    """SpikingVGG(threshold_decimals=2) applies the same rounding as scale_thresholds (the released code's)."""
    raw = [14.5349, 1.8831, 1.631, 0.196, 0.0004]
    snn = SpikingVGG(build_ann("vgg5"), [t * 0.7 for t in raw], T=4, threshold_decimals=2)
    expected = scale_thresholds(raw, 0.7, decimals=2)
    assert expected == [10.17, 1.32, 1.14, 0.14, 0.01]
    assert snn.thresholds.tolist() == pytest.approx(expected, abs=1e-6)


def test_convert_builds_if_snn_over_same_weights(images, balanced):
    net, th = balanced
    snn = convert(net, images, T=20, balance_T=T_BAL, scale=0.7, seed=3)
    assert isinstance(snn, SpikingVGG) and snn.net is net
    assert snn.leak == 1.0 and snn.T == 20
    assert snn.thresholds.tolist() == pytest.approx(scale_thresholds(th, 0.7), abs=1e-6)


def test_agreement_with_ann_rises_with_T():
    """Convert a briefly trained VGG5; the SNN agrees with its ANN far more often at T=48 than at T=8.

    (At T=8 only 3 steps reach the output through the 5 delayed layers; measured: 0.02 vs 0.67.)"""
    torch.manual_seed(0)
    train = load("cifar10", "train", n=512, source="subset")
    test_x = to_float(load("cifar10", "test", n=64, source="subset").images)
    net = build_ann("vgg5", seed=0)
    train_ann(net, train, 2, batch_size=64, progress=False, augment=False)
    net.eval()
    ann_pred = predict(net, test_x)
    snn = convert(net, to_float(train.images[:64]), T=8, balance_T=16)
    agree = {}
    for T in (8, 48):
        agree[T] = (predict(snn.twin(T=T), test_x, seed=0) == ann_pred).float().mean().item()
    assert agree[48] > agree[8] + 0.2, agree
    assert agree[48] > 0.4, agree
