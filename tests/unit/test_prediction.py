import pytest
import torch
from torch import nn

from snnlib.data import load
from snnlib.robustness.prediction import accuracy, as_tensors, predict, predict_draws
from snnlib.models import SpikingVGG, build_ann
from snnlib.seeding import derive_seeds
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


# ------------------------------------------------------------------ per-image Poisson draws
def _firing_snn():
    net = build_ann("vgg5", seed=0)
    return SpikingVGG(net, [0.5, 0.3, 0.3, 0.1, 0.1], T=4, delay=False)


def test_predict_draws_independent_of_batch_size_and_batch_mates():
    snn = _firing_snn()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 3, 32, 32, generator=g)
    ids = torch.arange(100, 120)
    a = predict_draws(snn, x, draws=3, seed=2, image_ids=ids, batch_size=7)
    b = predict_draws(snn, x, draws=3, seed=2, image_ids=ids, batch_size=64)
    assert a.shape == (3, 20) and a.dtype == torch.long
    assert torch.equal(a, b)
    # an image's prediction depends on its id, not on its position or its batch mates
    perm = torch.randperm(20, generator=g)
    c = predict_draws(snn, x[perm], draws=3, seed=2, image_ids=ids[perm], batch_size=5)
    assert torch.equal(c, a[:, perm])
    # same seed same result; the batch generator of the encoder is untouched and per-sample mode is switched off
    assert snn.encoder.sample_seeds is None
    assert torch.equal(predict_draws(snn, x, draws=3, seed=2, image_ids=ids), a)


def test_predict_draws_differ_across_draws_and_seeds():
    snn = _firing_snn()
    x = torch.rand(24, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # the logits of the K draws differ (fresh spikes per draw); compare them through the encoder directly
    p = predict_draws(snn, x, draws=4, seed=0, batch_size=8)
    q = predict_draws(snn, x, draws=4, seed=1, batch_size=8)
    assert not torch.equal(p, q)
    enc = snn.encoder
    spikes = []
    for k in range(2):
        enc.set_sample_seeds(derive_seeds(0, "eval.encoder", torch.arange(3), k))
        spikes.append(enc(x[:3], 4))
    enc.set_sample_seeds(None)
    assert not torch.equal(spikes[0], spikes[1])
    # draw k of predict_draws is predict with per-image streams: reproduce draw 1 by hand
    snn.eval()
    enc.set_sample_seeds(derive_seeds(0, "eval.encoder", torch.arange(24), 1))
    with torch.no_grad():
        by_hand = snn(x).argmax(1)
    enc.set_sample_seeds(None)
    assert torch.equal(p[1], by_hand)


def test_predict_draws_deterministic_model_and_errors():
    model = ByFirstPixel()
    x = torch.zeros(5, 3, 32, 32)
    x[:, 0, 0, 0] = torch.tensor([0.05, 0.15, 0.25, 0.35, 0.45])
    out = predict_draws(model, x, draws=3)
    assert torch.equal(out, torch.arange(5).expand(3, 5))
    with pytest.raises(ValueError, match="draws"):
        predict_draws(model, x, draws=0)
    with pytest.raises(ValueError, match="image_ids"):
        predict_draws(model, x, image_ids=torch.arange(4))
    with pytest.raises(ValueError, match="seed"):
        predict_draws(model, x, seed=-1)
