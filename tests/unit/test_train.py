import hashlib
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from snnlib.data import batches, load, to_float
from snnlib.models import SpikingVGG, build_ann
from snnlib.train import CheckpointMismatch, CorruptCheckpoint, TrainConfig, fit, load_checkpoint, train_ann, train_snn




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


# ------------------------------------------------------------------ settings record, batch iterables, RNG hygiene
def test_checkpoint_record_keeps_its_keys(tiny, tmp_path):
    """Checkpoints written before TrainConfig keep matching: new settings appear only when not at their defaults."""
    train_ann(build_ann("vgg5"), tiny, 1, batch_size=64, progress=False, checkpoint=tmp_path / "a.pt")
    cfg = load_checkpoint(tmp_path / "a.pt")["config"]
    assert set(cfg) == {"kind", "model", "momentum", "weight_decay", "optimizer", "epochs", "batch_size", "seed",
                        "lr", "milestones", "lr_reduce", "augment", "data"}
    assert cfg["augment"] is True and cfg["optimizer"] == "sgd" and cfg["milestones"] == [0.6, 0.8, 0.9]
    train_ann(build_ann("vgg5"), tiny, 1, batch_size=64, progress=False, checkpoint=tmp_path / "b.pt",
              schedule="cosine", label_smoothing=0.1)
    cfg = load_checkpoint(tmp_path / "b.pt")["config"]
    assert cfg["schedule"] == "cosine" and cfg["label_smoothing"] == 0.1
    with pytest.raises(CheckpointMismatch, match="schedule"):
        train_ann(build_ann("vgg5"), tiny, 1, batch_size=64, progress=False, checkpoint=tmp_path / "b.pt",
                  label_smoothing=0.1)


def test_fit_leaves_the_callers_rng_alone_and_ignores_it(tiny):
    a = build_ann("vgg5", seed=0)  # (building draws from the global RNG: torch's default layer init)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    train_ann(a, tiny, 1, batch_size=32, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(6)  # another caller state: the same weights (fit seeds its own dropout stream)
    b = build_ann("vgg5", seed=0)
    train_ann(b, tiny, 1, batch_size=32, progress=False)
    assert _state_equal(a.state_dict(), b.state_dict())
    c = build_ann("vgg5", seed=0)
    train_ann(c, tiny, 1, batch_size=32, progress=False, seed=1)
    assert not _state_equal(a.state_dict(), c.state_dict())


def test_train_config_equals_keywords(tiny):
    a, b, c = build_ann("vgg5", seed=0), build_ann("vgg5", seed=0), build_ann("vgg5", seed=0)
    ha = train_ann(a, tiny, 2, batch_size=32, lr=0.02, progress=False)
    hb = train_ann(b, tiny, TrainConfig.ann(2, batch_size=32), lr=0.02, progress=False)
    hc = fit(c, tiny, TrainConfig(epochs=2, batch_size=32, lr=0.02), progress=False)  # fit builds the SGD itself
    assert ha["loss"] == hb["loss"] == hc["loss"]
    assert _state_equal(a.state_dict(), b.state_dict()) and _state_equal(a.state_dict(), c.state_dict())
    snn_cfg = TrainConfig.snn(3)
    assert (snn_cfg.optimizer, snn_cfg.lr, snn_cfg.lr_reduce, snn_cfg.amsgrad) == ("adam", 1e-4, 5.0, True)
    assert isinstance(snn_cfg.make_optimizer([nn.Parameter(torch.zeros(1))]), torch.optim.Adam)
    with pytest.raises(TypeError, match="unknown training setting.*lerning_rate"):
        train_ann(build_ann("vgg5"), tiny, 1, lerning_rate=0.1, progress=False)


def test_cosine_and_step_schedules():
    cos = TrainConfig(epochs=4, lr=0.1, schedule="cosine")
    assert [cos.lr_at(e) for e in range(4)] == pytest.approx(
        [0.1, 0.05 * (1 + math.cos(math.pi / 4)), 0.05, 0.05 * (1 - math.cos(math.pi / 4))])
    step = TrainConfig(epochs=10, lr=1.0, milestones=(0.5, 0.8), lr_reduce=10.0)
    assert [step.lr_at(e) for e in (0, 4, 5, 7, 8, 9)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def _linear(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))


def test_label_smoothing_is_the_loss_trained_on():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 4, 4, generator=g), torch.randint(0, 10, (8,), generator=g)
    model = _linear()
    with torch.no_grad():
        expected = float(F.cross_entropy(model(x), y, label_smoothing=0.2))
        plain = float(F.cross_entropy(model(x), y))
    hist = fit(model, [(x, y)], 1, lr=1e-3, label_smoothing=0.2, progress=False)
    assert hist["loss"][0] == pytest.approx(expected, rel=1e-6) and abs(expected - plain) > 1e-3


def test_batch_list_equals_split(tiny):
    """A list holding the batches fit would draw from a Split trains to the very same weights."""
    split = load("cifar10", "train", n=48, source="subset")
    listed = list(batches(split, 16, shuffle=True, augment=False, generator=torch.Generator().manual_seed(3)))
    a, b = build_ann("vgg5", seed=0), build_ann("vgg5", seed=0)
    ha = fit(a, split, 1, batch_size=16, seed=3, augment=False, progress=False)
    hb = fit(b, listed, 1, seed=3, progress=False)  # augment defaults to False for a batch iterable
    assert ha["loss"] == hb["loss"] and _state_equal(a.state_dict(), b.state_dict())


def _loader(split, seed=1):
    ds = TensorDataset(to_float(split.images), split.labels)
    return DataLoader(ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed))


def test_dataloader_resume_equals_uninterrupted(tmp_path):
    split = load("cifar10", "train", n=48, source="subset")
    kw = dict(progress=False, lr=0.02)
    straight = build_ann("vgg5", seed=0)
    h = train_ann(straight, _loader(split), 2, **kw)
    first = build_ann("vgg5", seed=0)
    ck = tmp_path / "d.pt"
    train_ann(first, _loader(split), 2, checkpoint=ck, stop_after=1, **kw)
    assert "loader" in load_checkpoint(ck)["rng"]
    resumed = build_ann("vgg5", seed=4)
    h2 = train_ann(resumed, _loader(split), 2, checkpoint=ck, **kw)  # a fresh loader: its state comes from ck
    assert h2["loss"] == h["loss"] and _state_equal(resumed.state_dict(), straight.state_dict())
    assert load_checkpoint(ck)["config"]["data"] == {"source": "DataLoader", "batches": 3, "n": 48}


def test_batch_source_errors(tiny):
    net = build_ann("vgg5")
    with pytest.raises(TypeError, match="one-shot"):
        fit(net, (b for b in [(torch.rand(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))]), 1, progress=False)
    with pytest.raises(TypeError, match="iterable of"):
        fit(net, 3, 1, progress=False)
    with pytest.raises(TypeError, match="float pixels"):
        fit(net, [(torch.zeros(2, 32, 32, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))], 1,
            progress=False)
    with pytest.raises(TypeError, match="not an"):
        fit(net, [(torch.zeros(2, 3, 32, 32), torch.zeros(2), torch.zeros(2))], 1, progress=False)


@pytest.mark.parametrize("kw, exc, word", [
    (dict(schedule="linear"), ValueError, "schedule"),
    (dict(label_smoothing=1.0), ValueError, "label_smoothing"),
    (dict(label_smoothing=-0.1), ValueError, "label_smoothing"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer"),
    (dict(milestones="0.5"), TypeError, "milestones"),
    (dict(milestones=(0.5, 1.5)), ValueError, r"milestones\[1\]"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr="0.1"), TypeError, "lr"),
    (dict(augment="yes"), TypeError, "augment"),
    (dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (dict(warmup_epochs=-1), ValueError, "warmup_epochs"),
    (dict(warmup_epochs=1.5), ValueError, "warmup_epochs"),
    (dict(nesterov=1), TypeError, "nesterov"),
    (dict(nesterov=True, optimizer="adam"), ValueError, "nesterov"),
    (dict(nesterov=True, momentum=0.0), ValueError, "nesterov"),
])
def test_bad_train_config(kw, exc, word):
    with pytest.raises(exc, match=word):
        TrainConfig(epochs=1, **kw)


# ------------------------------------------------------------------ warm-up, Nesterov, validation and early stopping
def test_warmup_then_cosine_and_step_by_hand():
    # 6 epochs, 2 of warm-up: lr (e + 1) / 3 for e = 0, 1, then a cosine over the 4 remaining epochs
    cfg = TrainConfig(epochs=6, lr=0.05, schedule="cosine", warmup_epochs=2)
    by_hand = [0.05 / 3, 0.1 / 3, 0.05, 0.025 * (1 + math.sqrt(0.5)), 0.025, 0.025 * (1 - math.sqrt(0.5))]
    assert [cfg.lr_at(e) for e in range(6)] == pytest.approx(by_hand)
    assert [cfg.lr_at(e) for e in range(6)] == pytest.approx([0.0166667, 0.0333333, 0.05, 0.0426777, 0.025,
                                                              0.0073223], abs=1e-7)
    # no warm-up: the plain cosine, unchanged
    assert TrainConfig(epochs=4, lr=0.1, schedule="cosine", warmup_epochs=0).lr_at(1) == pytest.approx(
        0.05 * (1 + math.cos(math.pi / 4)))
    # step with warm-up: the warm-up scales the step rate; milestones stay fractions of all the epochs
    step = TrainConfig(epochs=10, lr=1.0, milestones=(0.5,), lr_reduce=10.0, warmup_epochs=1)
    assert [step.lr_at(e) for e in (0, 1, 4, 5, 9)] == pytest.approx([0.5, 1, 1, 0.1, 0.1])
    # fit applies exactly these rates, epoch by epoch
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 4, 4, generator=g), torch.randint(0, 10, (8,), generator=g)
    hist = fit(_linear(), [(x, y)], cfg, progress=False)
    assert hist["lr"] == pytest.approx(by_hand)


def test_nesterov_reaches_the_optimizer_and_the_record(tiny, tmp_path):
    cfg = TrainConfig(epochs=1, nesterov=True)
    opt = cfg.make_optimizer([nn.Parameter(torch.zeros(1))])
    assert opt.param_groups[0]["nesterov"] is True
    assert cfg.optimizer_record()["nesterov"] is True and "nesterov" not in TrainConfig(epochs=1).optimizer_record()
    train_ann(build_ann("vgg5"), tiny, 1, batch_size=64, progress=False, checkpoint=tmp_path / "n.pt",
              nesterov=True, warmup_epochs=1)
    cfg_rec = load_checkpoint(tmp_path / "n.pt")["config"]
    assert cfg_rec["nesterov"] is True and cfg_rec["warmup_epochs"] == 1
    with pytest.raises(CheckpointMismatch, match="nesterov"):
        train_ann(build_ann("vgg5"), tiny, 1, batch_size=64, progress=False, checkpoint=tmp_path / "n.pt",
                  warmup_epochs=1)


def _data(n=8):
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(n, 3, 4, 4, generator=g), torch.randint(0, 10, (n,), generator=g))]


class _Script:
    """A validation function that returns scripted accuracies and keeps the weights it was shown."""

    def __init__(self, values):
        self.values, self.calls, self.seen = list(values), 0, []

    def __call__(self, model):
        self.seen.append({k: v.clone() for k, v in model.state_dict().items()})
        self.calls += 1
        return self.values[self.calls - 1]


def test_early_stopping_stops_at_the_right_epoch_and_restores_the_best():
    data = _data()
    # best 0.5 at epoch 2 (index 1); epochs 3 and 4 are not better -> patience 2 stops after epoch 4
    script = _Script([0.3, 0.5, 0.4, 0.5, 0.9, 0.9])
    model = _linear()
    hist = fit(model, data, 6, lr=0.1, progress=False, validate=script, patience=2, restore_best=True)
    assert len(hist["loss"]) == 4 and script.calls == 4
    assert hist["val_acc"] == [0.3, 0.5, 0.4, 0.5]          # a tie (epoch 4) is not an improvement
    assert _state_equal(model.state_dict(), script.seen[1])  # the weights of epoch 2
    assert not _state_equal(script.seen[1], script.seen[3])
    # without restore_best: the last epoch's weights; without patience: every epoch runs
    last = _linear()
    fit(last, data, 6, lr=0.1, progress=False, validate=_Script([0.3, 0.5, 0.4, 0.5, 0.9, 0.9]), patience=2)
    assert _state_equal(last.state_dict(), script.seen[3])
    full = _Script([0.3, 0.5, 0.4, 0.5, 0.9, 0.8])
    kept = _linear()
    h = fit(kept, data, 6, lr=0.1, progress=False, validate=full, restore_best=True)
    assert len(h["loss"]) == 6 and h["val_acc"][-1] == 0.8 and _state_equal(kept.state_dict(), full.seen[4])


def test_early_stopping_resumes_from_its_checkpoint(tmp_path):
    data, values = _data(), [0.3, 0.5, 0.4, 0.5, 0.9, 0.9]
    straight = _linear()
    h = fit(straight, data, 6, lr=0.1, progress=False, validate=_Script(values), patience=2, restore_best=True)
    ck = tmp_path / "es.pt"
    first = _linear()
    fit(first, data, 6, lr=0.1, progress=False, validate=_Script(values), patience=2, restore_best=True,
        checkpoint=ck, stop_after=2)
    rest = _Script(values[2:])
    resumed = _linear(seed=3)
    h2 = fit(resumed, data, 6, lr=0.1, progress=False, validate=rest, patience=2, restore_best=True, checkpoint=ck)
    def same(a, b):
        return {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}

    assert rest.calls == 2 and same(h2, h) and _state_equal(resumed.state_dict(), straight.state_dict())
    # a run that stopped stays stopped: no more epochs, no more validation, the best weights
    again, none = _linear(seed=4), _Script([])
    h3 = fit(again, data, 6, lr=0.1, progress=False, validate=none, patience=2, restore_best=True, checkpoint=ck)
    assert none.calls == 0 and same(h3, h) and _state_equal(again.state_dict(), straight.state_dict())
    assert load_checkpoint(ck)["config"]["validation"] == {"patience": 2, "restore_best": True}
    with pytest.raises(CheckpointMismatch, match="validation"):
        fit(_linear(), data, 6, lr=0.1, progress=False, validate=_Script(values), patience=3, checkpoint=ck)


def test_on_epoch_end_sees_every_epoch_after_validation():
    seen = []
    fit(_linear(), _data(), 3, lr=0.1, progress=False, validate=_Script([0.1, 0.2, 0.3]),
        on_epoch_end=lambda e, m, h: seen.append((e, list(h["val_acc"]))))
    assert seen == [(0, [0.1]), (1, [0.1, 0.2]), (2, [0.1, 0.2, 0.3])]


@pytest.mark.parametrize("kw, exc, word", [
    (dict(patience=2), ValueError, "validate"),
    (dict(restore_best=True), ValueError, "validate"),
    (dict(validate=lambda m: 0.5, patience=0), ValueError, "patience"),
    (dict(validate=lambda m: 0.5, patience=True), ValueError, "patience"),
    (dict(validate=0.5), TypeError, "validate"),
    (dict(on_epoch_end="x"), TypeError, "on_epoch_end"),
])
def test_bad_validation_arguments(kw, exc, word):
    with pytest.raises(exc, match=word):
        fit(_linear(), _data(), 1, progress=False, **kw)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_damaged_checkpoint_is_never_resumed(tiny, tmp_path, damage):
    """A checkpoint cut short (full disk, kill mid-copy), overwritten or not a checkpoint is set aside with a warning
    naming it, and training starts again: the result equals an uninterrupted run, never garbage weights."""
    straight = build_ann("vgg5", seed=0)
    h_straight = train_ann(straight, tiny, 2, batch_size=32, progress=False, checkpoint=tmp_path / "a.pt")

    ck = tmp_path / "b.pt"
    train_ann(build_ann("vgg5", seed=0), tiny, 2, batch_size=32, progress=False, checkpoint=ck, stop_after=1)
    raw = ck.read_bytes()
    if damage == "truncate":
        ck.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        ck.write_bytes(b"\0" * 1000)
    else:
        torch.save({"weights": torch.zeros(3)}, ck)
    with pytest.raises(CorruptCheckpoint, match=re.escape(str(ck))):
        load_checkpoint(ck)
    again = build_ann("vgg5", seed=0)
    with pytest.warns(UserWarning, match="starts from epoch 1"):
        h = train_ann(again, tiny, 2, batch_size=32, progress=False, checkpoint=ck)
    assert h["loss"] == h_straight["loss"] and _state_equal(again.state_dict(), straight.state_dict())
    assert (tmp_path / "b.pt.corrupt").is_file()
    assert _state_equal(load_checkpoint(ck)["model"], straight.state_dict())     # a good checkpoint replaced it
