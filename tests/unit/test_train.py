import hashlib

import pytest
import torch

from snnlib.data import load
from snnlib.models import SpikingVGG, build_ann
from snnlib.train import CheckpointMismatch, load_checkpoint, train_ann, train_snn




@pytest.fixture(scope="module")
def tiny():
    return load("cifar10", "train", n=64, source="subset")


def _state_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ann_loss_falls():
    split = load("cifar10", "train", n=128, source="subset")
    net = build_ann("vgg5", seed=0)
    hist = train_ann(net, split, 4, batch_size=32, augment=False, progress=False)
    assert len(hist["loss"]) == 4
    assert hist["loss"][-1] < 0.8 * hist["loss"][0], hist["loss"]
    assert hist["lr"] == [1e-2, 1e-2, 1e-3, 1e-4]  # /10 at 60 % (epoch 2) and 80 % (3) of 4 epochs


def test_ann_resume_equals_uninterrupted(tiny, tmp_path):
    straight = build_ann("vgg5", seed=0)
    h_straight = train_ann(straight, tiny, 2, batch_size=32, progress=False, checkpoint=tmp_path / "a.pt")

    first = build_ann("vgg5", seed=0)
    ck = tmp_path / "b.pt"
    h1 = train_ann(first, tiny, 2, batch_size=32, progress=False, checkpoint=ck, stop_after=1)
    assert len(h1["loss"]) == 1
    resumed = build_ann("vgg5", seed=123)  # fresh model (other init) and optimizer
    h2 = train_ann(resumed, tiny, 2, batch_size=32, progress=False, checkpoint=ck)
    assert _state_equal(resumed.state_dict(), straight.state_dict())
    assert h2["loss"] == h_straight["loss"]

    state = torch.load(ck, map_location="cpu", weights_only=True)
    assert state["epoch"] == 1
    assert state["config"]["kind"] == "ann" and state["config"]["epochs"] == 2
    assert state["config"]["batch_size"] == 32 and state["config"]["data"]["n"] == 64
    assert state["config"]["model"]["arch"] == "vgg5"
    assert _state_equal(load_checkpoint(ck)["model"], straight.state_dict())
    # a finished run resumed again trains no more
    again = build_ann("vgg5", seed=5)
    h3 = train_ann(again, tiny, 2, batch_size=32, progress=False, checkpoint=ck)
    assert h3["loss"] == h_straight["loss"] and _state_equal(again.state_dict(), straight.state_dict())


def _snn(seed=0):
    net = build_ann("vgg5", seed=seed)
    return SpikingVGG(net, [0.5, 0.3, 0.3, 0.1, 0.1], T=6, leak=0.99)


def test_snn_resume_equals_uninterrupted(tmp_path):
    split = load("cifar10", "train", n=32, source="subset")
    kw = dict(batch_size=16, progress=False)
    straight = _snn()
    train_snn(straight, split, 2, checkpoint=tmp_path / "a.pt", **kw)

    first = _snn()
    ck = tmp_path / "b.pt"
    train_snn(first, split, 2, checkpoint=ck, stop_after=1, **kw)
    after_one = {k: v.clone() for k, v in first.net.state_dict().items()}
    resumed = _snn(seed=7)
    train_snn(resumed, split, 2, checkpoint=ck, **kw)
    assert not _state_equal(after_one, straight.net.state_dict())  # the second epoch changed the weights
    assert _state_equal(resumed.net.state_dict(), straight.net.state_dict())
    # the encoder stream continues where the straight run's did
    assert torch.equal(resumed.encoder.get_state(), straight.encoder.get_state())
    state = load_checkpoint(ck)
    assert state["config"]["kind"] == "snn" and state["config"]["model"]["T"] == 6
    assert "encoder" in state["rng"]


def test_snn_resume_needs_encoder_state(tmp_path):
    """The Poisson stream changes the trained weights, so restoring its state (checked above) is not vacuous."""
    split = load("cifar10", "train", n=32, source="subset")
    kw = dict(batch_size=16, progress=False)
    a = _snn()
    train_snn(a, split, 1, **kw)
    b = _snn()
    b.encoder.reseed(1)
    train_snn(b, split, 1, **kw)
    assert not _state_equal(a.net.state_dict(), b.net.state_dict())


def test_checkpoint_mismatch_raises_and_keeps_file(tiny, tmp_path):
    ck = tmp_path / "c.pt"
    train_ann(build_ann("vgg5"), tiny, 1, batch_size=64, progress=False, checkpoint=ck)
    digest = hashlib.sha256(ck.read_bytes()).hexdigest()
    with pytest.raises(CheckpointMismatch, match="lr"):
        train_ann(build_ann("vgg5"), tiny, 1, batch_size=64, lr=0.05, progress=False, checkpoint=ck)
    with pytest.raises(CheckpointMismatch, match="epochs"):
        train_ann(build_ann("vgg5"), tiny, 3, batch_size=64, progress=False, checkpoint=ck)
    assert hashlib.sha256(ck.read_bytes()).hexdigest() == digest


def test_bad_arguments(tiny, tmp_path):
    net = build_ann("vgg5")
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="epochs"):
            train_ann(net, tiny, bad, progress=False)
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            train_ann(net, tiny, 1, batch_size=bad, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    assert train_ann(net, tiny, 0, progress=False)["loss"] == []
