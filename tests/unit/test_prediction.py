import pytest
import torch
from torch import nn

from snnlib.data import load
from snnlib.robustness.prediction import accuracy, as_tensors, predict
from snnlib.models import SpikingVGG, build_ann
from snnlib.stats import clopper_pearson




class ByFirstPixel(nn.Module):
    """Predicts class floor(10 * x[:, 0, 0, 0]); counts its calls and records train/eval mode."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        cls = (x[:, 0, 0, 0] * 10).long().clamp(0, 9)
        return nn.functional.one_hot(cls, 10).float() + self.dummy


def test_accuracy_counts_match_hand_computation():
    n = 37
    x = torch.zeros(n, 3, 32, 32)
    cls = torch.arange(n) % 10
    x[:, 0, 0, 0] = (cls.float() + 0.5) / 10
    y = cls.clone()
    wrong = [0, 5, 6, 20, 36]
    y[wrong] = (y[wrong] + 1) % 10
    model = ByFirstPixel().train()
    acc = accuracy(model, (x, y), batch_size=8)
    assert (acc.correct, acc.total) == (n - len(wrong), n)
    assert acc.value == pytest.approx((n - len(wrong)) / n)
    assert (acc.low, acc.high) == pytest.approx(clopper_pearson(n - len(wrong), n))
    assert model.training  # mode restored
    assert model.modes and not any(model.modes)  # every batch in eval mode
    assert len(model.modes) == 5  # ceil(37 / 8)
    assert torch.equal(predict(model, x, batch_size=10), cls)


def test_accuracy_on_split_and_uint8_error():
    split = load("cifar10", "test", n=8, source="subset")
    x, y = as_tensors(split)
    assert x.dtype == torch.float32 and x.shape == (8, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    acc = accuracy(ByFirstPixel(), split)
    assert acc.total == 8
    with pytest.raises(TypeError, match="uint8"):
        accuracy(ByFirstPixel(), (split.images.permute(0, 3, 1, 2), split.labels))
    with pytest.raises(TypeError, match="Split or an"):
        accuracy(ByFirstPixel(), split.images)
    with pytest.raises(ValueError, match="batch_size"):
        predict(ByFirstPixel(), x, batch_size=0)


def test_snn_accuracy_repeatable_for_seed():
    net = build_ann("vgg5", seed=0)
    snn = SpikingVGG(net, [0.5, 0.3, 0.3, 0.1, 0.1], T=10)
    split = load("cifar10", "test", n=6, source="subset")
    x, y = as_tensors(split)
    p1 = predict(snn, x, batch_size=4, seed=1)
    snn(x)  # move the encoder's stream on; predict reseeds
    p2 = predict(snn, x, batch_size=4, seed=1)
    assert torch.equal(p1, p2)
    logits_a = snn.eval()(x)
    snn.encoder.reseed(2)
    logits_b = snn(x)
    assert not torch.equal(logits_a, logits_b)  # the Poisson input really is random
    a = accuracy(snn, split, seed=1)
    assert a.correct == int((p1 == y).sum())


def test_empty_input():
    assert predict(ByFirstPixel(), torch.zeros(0, 3, 32, 32)).numel() == 0
