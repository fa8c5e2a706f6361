"""The model pipeline: validation split, ANN recipe and cache keys, kept ANN epochs, the accuracy-matched ANN and
SNN-BP's early stopping (tiny sizes: a few dozen images, 1-2 epochs)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from snnlib.data import load
from snnlib.models import SpikingVGG, build_ann
from snnlib.study.cache import ArtifactCache, config_key
from snnlib.study.pipeline import (PIPELINE_KEYS, ModelSet, accuracy_matched_ann, accuracy_matched_epoch,
                                   ann_train_config, artifact_configs, build_models, check_pipeline_params,
                                   validation_split, weights_digest)
from snnlib.study.profiles import ProfileError, load_profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import tiny_arch  # noqa: E402

TINY = "tiny_pipeline"


def _smoke(**changes):
    p = {k: v for k, v in load_profile("smoke")["common"].items() if k in PIPELINE_KEYS}
    p.update(changes)
    return p


def _state_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------------ the split
def test_validation_split_is_seeded_disjoint_and_complete():
    full = load("cifar10", "train", n=100, source="subset")
    tr, va = validation_split(full, 20)
    assert (len(tr), len(va)) == (80, 20)
    ids_tr, ids_va = set(tr.indices.tolist()), set(va.indices.tolist())
    assert not ids_tr & ids_va and ids_tr | ids_va == set(full.indices.tolist())
    assert tr.indices.tolist() == sorted(tr.indices.tolist())          # the split's order is kept
    assert va.indices.tolist() != list(range(80, 100)) and va.indices.tolist() != list(range(20))  # drawn, not a slice
    pos = {int(i): k for k, i in enumerate(full.indices)}
    for part in (tr, va):                                               # images and labels follow their indices
        k = [pos[int(i)] for i in part.indices]
        assert torch.equal(part.images, full.images[k]) and torch.equal(part.labels, full.labels[k])
    again_tr, again_va = validation_split(full, 20)
    assert torch.equal(again_va.indices, va.indices) and torch.equal(again_tr.indices, tr.indices)
    assert not torch.equal(validation_split(full, 20, seed=1)[1].indices, va.indices)
    for bad in (0, 100, 2.0, True):
        with pytest.raises(ValueError, match="n_val"):
            validation_split(full, bad)


# ------------------------------------------------------------------------------------------------ parameters
def test_ann_recipe_comes_from_the_parameters():
    cfg = ann_train_config(_smoke(ann_schedule="cosine", ann_lr=0.05, ann_warmup_epochs=2, ann_nesterov=True,
                                  label_smoothing=0.1, epochs_ann=60), seed=3)
    assert (cfg.schedule, cfg.lr, cfg.warmup_epochs, cfg.nesterov, cfg.label_smoothing) == (
        "cosine", 0.05, 2, True, 0.1)
    assert (cfg.epochs, cfg.seed, cfg.momentum, cfg.weight_decay, cfg.optimizer) == (60, 3, 0.9, 5e-4, "sgd")
    assert cfg.augment is None      # crop/flip on a Split
    paper = load_profile("paper")["common"]
    faithful = ann_train_config(paper, seed=0)
    assert (faithful.schedule, faithful.lr, faithful.warmup_epochs, faithful.nesterov, faithful.label_smoothing,
            faithful.milestones, faithful.lr_reduce) == ("step", 0.01, 0, False, 0.0, (0.6, 0.8, 0.9), 10.0)


@pytest.mark.parametrize("changes, words", [
    (dict(ann_schedule="linear"), ["'ann_schedule'", "'step', 'cosine'"]),
    (dict(ann_lr=0), ["'ann_lr'", "> 0"]),
    (dict(label_smoothing=1.0), ["'label_smoothing'", "[0, 1)"]),
    (dict(ann_nesterov="yes"), ["'ann_nesterov'", "true or false"]),
    (dict(val_images=256), ["val_images=256", "n_train=256"]),
    (dict(val_images=200), ["balance_images=64", "56 training images"]),
    (dict(ann_warmup_epochs=1), ["ann_warmup_epochs=1", "epochs_ann=1"]),
    (dict(patience=0), ["'patience'", ">= 1"]),
    (dict(arch="vgg7"), ["'arch'", "vgg7"]),
])
def test_bad_pipeline_parameters_name_the_parameter(changes, words):
    with pytest.raises(ProfileError) as info:
        check_pipeline_params(_smoke(**changes))
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_missing_parameters_are_named():
    p = _smoke()
    del p["ann_lr"], p["patience"]
    with pytest.raises(ProfileError, match=r"missing parameter\(s\) patience, ann_lr"):
        build_models(p, 0, cache=ArtifactCache("/nonexistent"))


@pytest.mark.parametrize("name, value, kinds", [
    ("ann_schedule", "step", {"ANN", "SNN-conv", "SNN-BP"}),
    ("ann_lr", 0.02, {"ANN", "SNN-conv", "SNN-BP"}),
    ("ann_warmup_epochs", 1, {"ANN", "SNN-conv", "SNN-BP"}),
    ("ann_nesterov", True, {"ANN", "SNN-conv", "SNN-BP"}),
    ("label_smoothing", 0.0, {"ANN", "SNN-conv", "SNN-BP"}),
    ("ann_checkpoint_every", 2, {"ANN", "SNN-conv", "SNN-BP"}),
    ("val_images", 32, {"ANN", "SNN-conv", "SNN-BP"}),
    ("epochs_ann", 3, {"ANN", "SNN-conv", "SNN-BP"}),
    ("patience", 3, {"SNN-BP"}),
    ("epochs_snn", 3, {"SNN-BP"}),
])
def test_every_recipe_parameter_changes_the_cache_keys(name, value, kinds):
    base = _smoke(epochs_ann=4)
    before = {k: config_key(c) for k, c in artifact_configs(base, 0).items()}
    after = {k: config_key(c) for k, c in artifact_configs(dict(base, **{name: value}), 0).items()}
    assert {k for k in before if before[k] != after[k]} == kinds
    assert name in PIPELINE_KEYS       # so the runner's train-unit key changes too


def test_the_two_model_seeds_share_the_split_but_not_the_keys():
    a, b = artifact_configs(_smoke(), 0), artifact_configs(_smoke(), 1)
    assert a["ANN"]["val"] == b["ANN"]["val"] and a["ANN"]["data"] == b["ANN"]["data"]
    assert config_key(a["ANN"]) != config_key(b["ANN"])


# ------------------------------------------------------------------------------------------------ matching
def _fake_set(tmp_path, val_acc, kept, snn_bp_val=None):
    """A ModelSet whose ANN history has ``val_acc`` and whose kept epochs ``kept`` hold distinguishable weights."""
    ann = build_ann("vgg5", seed=0).eval()
    snaps = {}
    for e in kept:
        sd = {k: torch.full_like(v, float(e)) for k, v in ann.state_dict().items()}
        torch.save(sd, tmp_path / f"e{e}.pt")
        snaps[e] = str(tmp_path / f"e{e}.pt")
    info = {"ann_history": {"loss": [1.0] * len(val_acc), "val_acc": list(val_acc)},
            "configs": {"ANN": {"seed": 0}}}
    if snn_bp_val is not None:
        info["snn_bp_val_accuracy"] = snn_bp_val
    conv = SpikingVGG(ann, [1.0] * ann.num_spiking, T=6)
    return ModelSet(ann, conv, conv, 0, info, ann_snapshots=snaps)


def test_accuracy_matched_ann_picks_the_closest_kept_epoch(tmp_path):
    val = [0.20, 0.35, 0.48, 0.55, 0.61, 0.64, 0.66, 0.67]
    ms = _fake_set(tmp_path, val, kept=[2, 4, 6], snn_bp_val=0.57)
    assert ms.ann_epochs() == [2, 4, 6, 8]                   # the kept epochs and the last (the ANN itself)
    assert accuracy_matched_epoch(ms, 0.50) == 4             # |0.55 - 0.50| beats |0.35 - 0.50| (epoch 3 not kept)
    assert accuracy_matched_epoch(ms) == 4                   # default target: SNN-BP's validation accuracy
    assert accuracy_matched_epoch(ms, 0.66) == 8 and accuracy_matched_epoch(ms, 0.9) == 8
    assert accuracy_matched_epoch(ms, 0.0) == 2
    net = accuracy_matched_ann(ms, 0.62)                     # epoch 6 (0.64) vs epoch 4 (0.55)
    assert all(torch.all(v == 6.0) for v in net.state_dict().values()) and not net.training
    assert ms.accuracy_matched_ann(0.70) is ms.ann            # the last epoch is the ANN itself
    assert ms.ann_config_at_epoch(6) == {"seed": 0, "epoch": 6}
    # ties go to the earlier epoch
    tie = _fake_set(tmp_path, [0.4, 0.5, 0.6, 0.7], kept=[1, 2, 3])
    assert accuracy_matched_epoch(tie, 0.55) == 2


def test_accuracy_matching_errors(tmp_path):
    ms = _fake_set(tmp_path, [0.3, 0.5], kept=[1])
    with pytest.raises(ValueError, match="fraction"):
        accuracy_matched_epoch(ms, 55)
    with pytest.raises(ValueError, match="SNN-BP has no validation accuracy"):
        accuracy_matched_epoch(ms)
    with pytest.raises(KeyError, match="kept epochs: \\[1, 2\\]"):
        ms.ann_at_epoch(3)
    Path(ms.ann_snapshots[1]).unlink()
    with pytest.raises(FileNotFoundError, match="epoch 1 are missing"):
        ms.ann_at_epoch(1)
    old = _fake_set(tmp_path, [0.3, 0.5], kept=[])
    del old.info["ann_history"]["val_acc"]
    with pytest.raises(ValueError, match="no per-epoch validation accuracy"):
        accuracy_matched_epoch(old, 0.4)


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture
def tiny_params():
    with tiny_arch(TINY, features=[8, "A", 16, "A"], hidden=[32]):
        yield _smoke(arch=TINY, n_train=48, val_images=16, balance_images=16, balance_T=8, batch_size=16,
                     epochs_ann=2, ann_warmup_epochs=1, ann_checkpoint_every=1, epochs_snn=2, patience=1,
                     T_conv=8, T_bp=6, device="cpu")


def test_build_models_keeps_epochs_validates_and_loads_back(tiny_params, tmp_path):
    cache = ArtifactCache(tmp_path)
    logs = []
    ms = build_models(tiny_params, 0, cache=cache, progress=False, log=logs.append)
    h = ms.ann_history
    assert len(h["val_acc"]) == 2 and all(0.0 <= v <= 1.0 for v in h["val_acc"])
    assert h["lr"] == pytest.approx([0.025, 0.05])            # warm-up epoch, then the cosine's first epoch
    assert ms.ann_epochs() == [1, 2] and list(ms.ann_snapshots) == [1]
    assert ms.info["train_data"]["n"] == 32 and ms.info["val_data"]["n"] == 16
    bp = ms.snn_bp_history
    assert 1 <= len(bp["val_acc"]) <= 2 and bp["best_epoch"] == 1 + bp["val_acc"].index(max(bp["val_acc"]))
    assert ms.info["snn_bp_val_accuracy"] == max(bp["val_acc"])
    assert bp["stopped_early"] == (len(bp["loss"]) < 2)
    assert [m.split(" (")[0] for m in logs] == ["trained ANN", "balanced thresholds", "trained BPTT SNN"]
    assert f"best validation accuracy {100 * max(bp['val_acc']):.1f} % at epoch {bp['best_epoch']}" in logs[2]
    first = ms.ann_at_epoch(1)
    assert not _state_equal(first.state_dict(), ms.ann.state_dict())
    assert accuracy_matched_epoch(ms) in (1, 2)
    # a second build loads everything from the cache: same weights, same histories, same kept epochs
    again = build_models(tiny_params, 0, cache=cache, progress=False, log=lambda m: None)
    assert _state_equal(again.ann_at_epoch(1).state_dict(), first.state_dict())
    assert _state_equal(again.snn_bp.net.state_dict(), ms.snn_bp.net.state_dict())
    assert again.ann_history["val_acc"] == h["val_acc"] and again.snn_bp_history == bp
    assert again.info["configs"] == ms.info["configs"]
    # and a build from scratch in another cache gives the very same models (every draw is seeded)
    fresh = build_models(tiny_params, 0, cache=ArtifactCache(tmp_path / "other"), progress=False, log=lambda m: None)
    assert _state_equal(fresh.ann_at_epoch(1).state_dict(), first.state_dict())
    assert _state_equal(fresh.snn_bp.net.state_dict(), ms.snn_bp.net.state_dict())
    assert fresh.snn_bp_history["val_acc"] == bp["val_acc"] and fresh.ann_history["val_acc"] == h["val_acc"]
    assert fresh.fingerprint() == again.fingerprint() == ms.fingerprint()          # what the chapters record
    assert len(set(ms.fingerprint().values())) == 3        # SNN-conv: the ANN's weights plus its thresholds


def test_weights_digest_sees_one_ulp_and_the_thresholds():
    import copy
    ann = build_ann("vgg5", seed=0)
    twin = copy.deepcopy(ann)
    assert weights_digest(ann) == weights_digest(twin) and len(weights_digest(ann)) == 16
    w = next(twin.parameters())
    with torch.no_grad():                                  # one weight moved by one float32 ulp
        w.view(-1)[7] = torch.nextafter(w.view(-1)[7], torch.tensor(float("inf")))
    assert weights_digest(twin) != weights_digest(ann)
    a = SpikingVGG(ann, [1.0] * 5, T=4)
    b = SpikingVGG(copy.deepcopy(ann), [1.0] * 4 + [1.5], T=4)
    assert weights_digest(a) != weights_digest(b) != weights_digest(ann)
    assert weights_digest(SpikingVGG(copy.deepcopy(ann), [1.0] * 5, T=8)) == weights_digest(a)   # T is a setting


def test_the_cache_keys_hold_the_thread_count_the_models_were_trained_with(tiny_params, tmp_path):
    """Float reductions split by thread: a model trained with 1 thread is not the one trained with 2, so a cache
    shared by executors with different counts keeps both (issue 18); the keys are what artifact_configs predicts."""
    from snnlib.study.pipeline import compute_record

    before = torch.get_num_threads()
    cache = ArtifactCache(tmp_path)
    keys = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            logs = []
            ms = build_models(tiny_params, 0, cache=cache, progress=False, log=logs.append)
            assert [m.split(" (")[0] for m in logs] == ["trained ANN", "balanced thresholds", "trained BPTT SNN"]
            keys[n] = {k: config_key(c) for k, c in ms.info["configs"].items()}
            assert keys[n] == {k: config_key(c) for k, c in artifact_configs(tiny_params, 0, threads=n).items()}
            assert ms.info["configs"]["ANN"]["compute"] == {"device": "cpu", "torch_threads": n}
    finally:
        torch.set_num_threads(before)
    assert all(keys[1][k] != keys[2][k] for k in keys[1])
    assert compute_record("cuda", 1) == compute_record("cuda", 8) == {"device": "cuda"}
    with pytest.raises(ValueError, match="thread count"):
        compute_record("cpu", 0)


def test_snn_bp_keeps_the_best_validation_epoch(tiny_params, tmp_path, monkeypatch):
    """Early stopping inside the pipeline, with a scripted validation: stops after patience, keeps the best."""
    from snnlib.study import pipeline

    scripted = iter([0.6, 0.4, 0.5])
    seen = []

    def fake_validator(val, seed, batch_size=128):
        def validate(snn):
            seen.append({k: v.clone() for k, v in snn.net.state_dict().items()})
            return next(scripted)
        return validate

    monkeypatch.setattr(pipeline, "_snn_validator", fake_validator)
    logs = []
    ms = build_models(dict(tiny_params, epochs_snn=3, patience=1), 0, cache=ArtifactCache(tmp_path),
                      progress=False, log=logs.append)
    assert "2 epochs of at most 3, stopped early; best validation accuracy 60.0 % at epoch 1" in logs[-1]
    bp = ms.snn_bp_history
    assert bp["val_acc"] == [0.6, 0.4] and bp["best_epoch"] == 1 and bp["stopped_early"] is True
    assert _state_equal(ms.snn_bp.net.state_dict(), seen[0])
    assert not _state_equal(seen[0], seen[1])
