"""torchattacks wrappers (APGD, Square) and the cascade worst case with its audit.

Tiny models on purpose (2 CPU cores): a VGG-style architecture registered for this module (2 conv + 1 hidden
layer), random weights, as an ANN and as an SNN that fires in every layer (low thresholds, ``delay=False``).
Labels are the model's own clean predictions (so there is something to attack), a few flipped to make
clean-misclassified images.
"""
import sys

import numpy as np
import pytest
import torch

from snnlib import VGG, PoissonEncoder, SpikingVGG
from snnlib.attacks import FGSM, PGD
from snnlib.attacks.external import APGD, Square, require_torchattacks
from snnlib.robustness.cascade import (CLEAN, CascadeResult, audit, cascade_worst_case, correct_predictions,
                                       full_correctness)
from snnlib.robustness.prediction import predict, predict_draws
from snnlib.robustness.worst_case import evaluate_worst_case
from snnlib.seeding import ATTACK_NOISE, derive_seed

from tiny_models import tiny_arch as use_tiny_arch  # noqa: E402

TINY = "tiny_cascade_test"
EPS = 8 / 255


@pytest.fixture(scope="module", autouse=True)
def tiny_arch_and_eager_lif():
    with use_tiny_arch(TINY, features=[16, "A", 32, "D", "A"], hidden=[128]):
        yield


def _ann(seed=0):
    return VGG(TINY, seed=seed).eval()


def _snn(seed=0, T=4):
    return SpikingVGG(VGG(TINY, seed=seed), [0.5] * 3, T=T, delay=False, encoder=PoissonEncoder(seed=0)).eval()


def _images(n, seed=1):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _predict(model, x):
    """Predictions (N,) with per-image spike streams (eval seed 0, image ids 0..N-1), as the cascade scores."""
    return predict_draws(model, x, 1, 0)[0]


def _own_labels(model, x, flip=()):
    """The model's clean predictions, with the labels at positions ``flip`` changed (clean-wrong images)."""
    y = _predict(model, x).clone()
    for i in flip:
        y[i] = (y[i] + 1) % 10
    return y


def _linf(a, b):
    return float((a - b).abs().max())


# ------------------------------------------------------------------------------------ APGD and Square
ATTACKS = {
    "apgd-ce": lambda m, seed=0: APGD(m, EPS, steps=5, loss="ce", seed=seed),
    "apgd-dlr-eot": lambda m, seed=0: APGD(m, EPS, steps=4, loss="dlr", eot=2, restarts=2, seed=seed),
    "apgd-best-loss": lambda m, seed=0: APGD(m, EPS, steps=4, keep="best_loss", seed=seed),
    "square": lambda m, seed=0: Square(m, EPS, queries=30, seed=seed),
}


@pytest.mark.parametrize("kind", ["ann", "snn"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_budget_determinism_and_rng(kind, name):
    model = _ann() if kind == "ann" else _snn()
    x = _images(4)
    y = _own_labels(model, x)
    atk = ATTACKS[name](model, seed=3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    x_adv = atk(x, y)
    assert torch.equal(torch.get_rng_state(), state), "the caller's global RNG must be left as it was"
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert _linf(x_adv, x) <= EPS + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    torch.manual_seed(999)  # another global RNG state: same seed, same images
    assert torch.equal(atk(x, y), x_adv)
    assert not model.training


@pytest.mark.parametrize("kind, name", [("snn", "apgd-ce"), ("ann", "square")])
def test_attacks_fool_the_model(kind, name):
    """APGD fools the SNN through BPTT; Square fools the (deterministic) ANN by queries alone."""
    model = _ann() if kind == "ann" else _snn()
    x = _images(4)
    y = _own_labels(model, x)
    x_adv = ATTACKS[name](model, seed=0)(x, y)
    assert _linf(x_adv, x) > 0
    assert bool((_predict(model, x_adv) != y).any())


def test_square_queries_the_snn_without_gradients():
    """Square only queries the SNN's outputs: the encoder's gradient setting changes nothing, and no input
    gradient is ever taken."""
    snn = _snn()
    x = _images(4)
    y = _own_labels(snn, x)
    calls = []
    handle = snn.register_forward_hook(lambda m, inp, out: calls.append(inp[0].requires_grad or out.requires_grad))
    try:
        ref = Square(snn, EPS, queries=30, seed=0)(x, y)
        snn.encoder.grad = "none"
        out = Square(snn, EPS, queries=30, seed=0)(x, y)
    finally:
        handle.remove()
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert len(calls) >= 4 and not any(calls)


def test_different_seeds_give_different_images():
    ann = _ann()
    x = _images(4)
    y = _own_labels(ann, x)
    a = Square(ann, EPS, queries=20, seed=0)(x, y)
    b = Square(ann, EPS, queries=20, seed=1)(x, y)
    assert not torch.equal(a, b)


def test_apgd_matches_torchattacks_called_directly():
    """The wrapper is torchattacks' APGD with the seed derive_seed(seed, "attack.noise", batch index)."""
    ta = require_torchattacks()
    ann = _ann()
    x = _images(6)
    y = _own_labels(ann, x)
    ours = APGD(ann, EPS, steps=6, loss="dlr", restarts=2, seed=5)(x, y)
    with torch.random.fork_rng():
        ref = ta.APGD(ann, norm="Linf", eps=EPS, steps=6, n_restarts=2, loss="dlr",
                      seed=derive_seed(5, ATTACK_NOISE, 0))(x, y)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-7)
    assert _linf(ours, x) > 0


def test_square_matches_torchattacks_per_batch():
    """With batch_size, batch b runs torchattacks' Square with seed derive_seed(seed, "attack.noise", b)."""
    ta = require_torchattacks()
    ann = _ann()
    x = _images(6)
    y = _own_labels(ann, x)
    ours = Square(ann, EPS, queries=15, seed=2, batch_size=3)(x, y)
    with torch.random.fork_rng():
        ref = torch.cat([ta.Square(ann, norm="Linf", eps=EPS, n_queries=15, seed=derive_seed(2, ATTACK_NOISE, b))(
            x[3 * b:3 * b + 3], y[3 * b:3 * b + 3]) for b in range(2)])
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-7)


def test_apgd_is_at_least_as_strong_as_fgsm():
    ann = _ann()
    x = _images(16)
    y = _own_labels(ann, x)
    eps = 1 / 255
    fgsm_ok = predict(ann, FGSM(ann, eps)(x, y)) == y
    apgd_ok = predict(ann, APGD(ann, eps, steps=20, seed=0)(x, y)) == y
    assert int(apgd_ok.sum()) <= int(fgsm_ok.sum())
    assert int(apgd_ok.sum()) < x.shape[0]


def test_apgd_forces_the_straight_through_encoder_and_restores_it():
    """The encoder's grad setting does not matter to APGD (STE for the duration) and is put back afterwards."""
    snn = _snn()
    x = _images(3)
    y = _own_labels(snn, x)
    ref = APGD(snn, EPS, steps=4, seed=1)(x, y)
    snn.encoder.grad = "none"
    snn.train()
    out = APGD(snn, EPS, steps=4, seed=1)(x, y)
    assert snn.encoder.grad == "none" and snn.training
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_apgd_keep_best_loss_perturbs_every_image():
    """keep="best_loss" returns an iterate for every image (never the clean one); "fooled" keeps unfooled ones clean."""
    ann = _ann()
    x = _images(4)
    y = _own_labels(ann, x, flip=(0,))  # image 0 is misclassified already: "fooled" leaves it untouched
    fooled_mode = APGD(ann, EPS, steps=3, seed=0)(x, y)
    best_mode = APGD(ann, EPS, steps=3, seed=0, keep="best_loss")(x, y)
    assert _linf(fooled_mode[0], x[0]) == 0
    assert all(_linf(best_mode[i], x[i]) > 0 for i in range(4))


def test_bad_arguments_are_named():
    ann = _ann()
    with pytest.raises(ValueError, match="loss"):
        APGD(ann, EPS, loss="hinge")
    with pytest.raises(ValueError, match="keep"):
        APGD(ann, EPS, keep="last")
    with pytest.raises(ValueError, match="rho"):
        APGD(ann, EPS, rho=1.5)
    with pytest.raises(ValueError, match="steps"):
        APGD(ann, EPS, steps=0)
    with pytest.raises(ValueError, match="eps"):
        APGD(ann, 8)
    with pytest.raises(ValueError, match="p_init"):
        Square(ann, EPS, p_init=0)
    with pytest.raises(ValueError, match="queries"):
        Square(ann, EPS, queries=0)
    with pytest.raises(ValueError, match="loss"):
        Square(ann, EPS, loss="dlr")


def test_missing_torchattacks_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # makes ``import torchattacks`` fail
    ann = _ann()
    x = _images(2)
    with pytest.raises(ImportError, match="pip install torchattacks"):
        APGD(ann, EPS, steps=2)(x, _own_labels(ann, x))


def test_config_names_the_hyper_parameters():
    cfg = APGD(_ann(), EPS, steps=7, loss="dlr", eot=3, restarts=2).config()
    assert (cfg["attack"], cfg["steps"], cfg["loss"], cfg["eot"], cfg["restarts"]) == ("APGD", 7, "dlr", 3, 2)
    cfg = Square(_ann(), EPS, queries=11).config()
    assert (cfg["attack"], cfg["queries"], cfg["gradient_free"]) == ("Square", 11, True)


# ------------------------------------------------------------------------------------ the cascade
class Recording(FGSM):
    """FGSM that records the images each ``attack`` call receives."""

    name = "RecordingFGSM"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen = []

    def attack(self, x, y):
        self.seen.append(x.clone())
        return super().attack(x, y)

    __call__ = attack


def _deterministic_setting(n=24):
    """ANN target, labels with 3 clean-wrong images, and deterministic stages of growing strength, one a transfer."""
    target, other = _ann(0), _ann(1)
    x = _images(n, seed=7)
    y = _own_labels(target, x, flip=[i for i in (0, 5, 11) if i < n])
    stages = [("FGSM 0.25/255", Recording(target, 0.25 / 255)),
              ("transfer FGSM 8/255", Recording(other, 8 / 255)),
              ("PGD-5 1/255", PGD(target, 1 / 255, alpha=0.25 / 255, steps=5, random_start=False))]
    return target, stages, x, y


def test_cascade_equals_the_full_worst_case_for_deterministic_stages():
    """Two code paths: the cascade and every stage on every image (evaluate_worst_case) give the same robust set,
    the same first-fooling stage per image, and the audit finds no miss."""
    target, stages, x, y = _deterministic_setting()
    ids = np.arange(100, 100 + x.shape[0])
    res = cascade_worst_case(target, stages, x, y, image_ids=ids, eval_seed=0, batch_size=8)
    full = evaluate_worst_case(target, dict(stages), x, y, eval_seed=0, batch_size=8)
    assert isinstance(res, CascadeResult)
    assert torch.equal(res.robust, full.robust)
    per_stage = full_correctness(target, stages, x, y, image_ids=ids, batch_size=8)
    assert torch.equal(res.robust, torch.stack(list(per_stage.values())).all(0))
    assert res.fooled_by() == full.strongest  # first stage (clean first) that fooled each image
    # the test only means something when every stage fools someone first and some images survive
    assert all(v > 0 for v in res.fooled_by().values()) and 0 < int(res.robust.sum()) < x.shape[0]
    correct_all = {CLEAN: predict(target, x, 8, 0) == y, **full.correct}
    names = res.stage_names
    expected_first = [next((names.index(k) for k in names if not bool(correct_all[k][i])), -1)
                      for i in range(x.shape[0])]
    assert res.first_fooled.tolist() == expected_first
    assert res.accuracy.correct == int(full.robust.sum()) and res.accuracy.total == x.shape[0]
    assert res.accuracy.low <= res.accuracy.value <= res.accuracy.high
    report = audit(correct_all, res)
    assert report.ok and report.missed == 0 and report.extra == 0
    assert [int(i) for i in res.image_ids] == list(ids)


def test_later_stages_only_see_the_survivors():
    target, stages, x, y = _deterministic_setting()
    res = cascade_worst_case(target, stages, x, y, image_ids=range(x.shape[0]), eval_seed=0, batch_size=8)
    clean_ok = predict(target, x, 8, 0) == y
    first, second = stages[0][1], stages[1][1]
    assert len(first.seen) == 1 and len(second.seen) == 1
    assert torch.equal(first.seen[0], x[clean_ok])  # stage 1: the clean-correct images only
    after_first = clean_ok & (predict(target, FGSM(target, 0.25 / 255)(x, y), 8, 0) == y)
    assert torch.equal(second.seen[0], x[after_first])
    attacked = [s.attacked for s in res.stages]
    assert attacked == [x.shape[0], int(clean_ok.sum()), int(after_first.sum()),
                        int(after_first.sum()) - res.stages[2].fooled]
    assert sum(s.fooled for s in res.stages) + int(res.robust.sum()) == x.shape[0]
    assert all(s.max_linf <= a.eps + 1e-6 for s, (_, a) in zip(res.stages[1:], stages))


def test_cascade_without_clean_attacks_every_image_first():
    target, stages, x, y = _deterministic_setting(n=8)
    res = cascade_worst_case(target, stages[:1], x, y, image_ids=range(8), include_clean=False, batch_size=8)
    assert res.stage_names == ["FGSM 0.25/255"] and res.stages[0].attacked == 8
    assert torch.equal(stages[0][1].seen[0], x)
    full = evaluate_worst_case(target, dict(stages[:1]), x, y, include_clean=False, batch_size=8)
    assert torch.equal(res.robust, full.robust)


def test_cascade_equals_full_correctness_on_an_snn_target():
    """An SNN target scored over 3 draws per image (majority), deterministic transfer stages crafted on ANNs: the
    per-image spike streams make each image's score independent of the subset it is scored in, so the cascade
    and every stage on every image agree exactly."""
    snn, source = _snn(), _ann(0)
    x = _images(12, seed=3)
    y = _own_labels(snn, x, flip=(1,))
    stages = [("transfer FGSM 2/255", FGSM(source, 2 / 255)),
              ("transfer PGD-4 8/255", PGD(source, EPS, alpha=2 / 255, steps=4, random_start=False)),
              ("transfer FGSM 8/255 other ANN", FGSM(_ann(1), EPS))]
    ids = np.arange(300, 312)
    res = cascade_worst_case(snn, stages, x, y, image_ids=ids, eval_seed=4, draws=3, batch_size=5)
    full = full_correctness(snn, stages, x, y, image_ids=ids, eval_seed=4, draws=3, batch_size=7)
    expected = torch.stack(list(full.values())).all(0)
    assert torch.equal(res.robust, expected)
    assert res.stages[0].fooled >= 1 and sum(s.fooled for s in res.stages[1:]) >= 1
    assert audit(full, res).missed == 0 and audit(full, res).extra == 0
    assert res.draws == 3 and res.eval_seed == 4


def test_correct_predictions_is_a_majority_over_draws():
    snn = _snn()
    x = _images(6)
    y = _own_labels(snn, x)
    ids = np.arange(6)
    pred = predict_draws(snn, x, 3, 2, torch.as_tensor(ids))
    expected = (pred == y).sum(0) >= 2
    assert torch.equal(correct_predictions(snn, x, y, ids, eval_seed=2, draws=3), expected)
    assert torch.equal(correct_predictions(snn, x[3:], y[3:], ids[3:], eval_seed=2, draws=3), expected[3:])


def test_cascade_on_an_snn_with_apgd_and_square():
    """The intended use: the papers' PGD, then APGD, then the gradient-free Square, on an SNN target."""
    snn = _snn()
    x = _images(6)
    y = _own_labels(snn, x, flip=(2,))
    stages = [("PGD-3", PGD(snn, EPS, alpha=2 / 255, steps=3, seed=0)),
              ("APGD-CE", APGD(snn, EPS, steps=4, seed=0)),
              ("Square", Square(snn, EPS, queries=20, seed=0))]
    res = cascade_worst_case(snn, stages, x, y, image_ids=range(6), eval_seed=0, batch_size=6)
    attacked = [s.attacked for s in res.stages]
    assert attacked == sorted(attacked, reverse=True)
    assert res.stages[0].fooled >= 1  # image 2's label was flipped
    assert sum(s.fooled for s in res.stages) + int(res.robust.sum()) == 6
    assert ((res.first_fooled >= 0) == ~res.robust).all()
    assert res.to_dict()["robust_per_image"] == [int(b) for b in res.robust]
    assert res.first_fooled_names()[2] == CLEAN


def test_audit_reports_the_images_the_cascade_missed():
    target, stages, x, y = _deterministic_setting(n=12)
    ids = np.arange(50, 62)
    res = cascade_worst_case(target, stages[:1], x, y, image_ids=ids, batch_size=12)
    robust_pos = res.robust.nonzero().flatten()
    assert robust_pos.numel() >= 2
    sample = robust_pos[:2]  # an audit sample of two images the cascade calls robust
    fooled_one = torch.tensor([False, True])  # a stronger attack of the full run fools the second
    report = audit({"clean": torch.ones(2, dtype=torch.bool), "stronger": fooled_one}, res,
                   image_ids=ids[sample.numpy()])
    assert not report.ok and report.missed == 1 and report.missed_ids == [int(ids[sample[0]])]
    assert report.n == 2 and report.extra == 0
    with pytest.raises(KeyError, match="not in the cascade"):
        audit({"a": torch.ones(1, dtype=torch.bool)}, res, image_ids=[7])
    with pytest.raises(ValueError, match="image_ids"):
        audit({"a": torch.ones(3, dtype=torch.bool)}, res)


def test_cascade_bad_input_is_named():
    target, stages, x, y = _deterministic_setting(n=4)
    ids = range(4)
    with pytest.raises(ValueError, match="at least one stage"):
        cascade_worst_case(target, [], x, y, image_ids=ids)
    with pytest.raises(ValueError, match="twice"):
        cascade_worst_case(target, [stages[0], stages[0]], x, y, image_ids=ids)
    with pytest.raises(ValueError, match="'clean'"):
        cascade_worst_case(target, [("clean", stages[0][1])], x, y, image_ids=ids)
    with pytest.raises(ValueError, match="targeted"):
        cascade_worst_case(target, [("t", FGSM(target, EPS, targeted=True))], x, y, image_ids=ids)
    with pytest.raises(TypeError, match="snnlib.attacks.Attack"):
        cascade_worst_case(target, [("f", object())], x, y, image_ids=ids)
    with pytest.raises(ValueError, match="image_ids"):
        cascade_worst_case(target, stages, x, y, image_ids=range(3))
    with pytest.raises(ValueError, match="distinct"):
        cascade_worst_case(target, stages, x, y, image_ids=[0, 0, 1, 2])
    with pytest.raises(ValueError, match="draws"):
        cascade_worst_case(target, stages, x, y, image_ids=ids, draws=0)
    with pytest.raises(ValueError, match="eval_seed"):
        cascade_worst_case(target, stages, x, y, image_ids=ids, eval_seed=None)
    with pytest.raises(ValueError, match="non-negative"):
        cascade_worst_case(target, stages, x, y, image_ids=[-1, 0, 1, 2])
