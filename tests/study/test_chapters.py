import json

import pytest

from snnlib.files import to_jsonable

from snnlib.study import chapters as E
from snnlib.study.profiles import ProfileError, notebook_params


def smoke(nb="02_discretization", **changes):
    p = notebook_params("smoke", nb)
    p.update(changes)
    return p


def test_smoke_parameters_are_valid():
    for nb in ("01_models", "02_discretization", "03_leak", "06_gradient_masking"):
        assert E.check_params(nb, smoke(nb))["profile"] == "custom"


@pytest.mark.parametrize("name,value,words", [
    ("arch", "resnet50", ["arch", "vgg5"]),
    ("T_bp", 0, ["T_bp", ">= 1"]),
    ("T_list", [0, 8], ["T_list"]),
    ("leak_bp", 1.5, ["leak_bp"]),
    ("eps_list", ["8", "16"], ["eps_list"]),
    ("n_test", "64", ["n_test"]),
])
def test_bad_parameters_name_the_parameter_and_what_is_allowed(name, value, words):
    with pytest.raises(ProfileError) as e:
        E.check_params("02_discretization", smoke(**{name: value}))
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    assert "allowed" in msg


def test_unknown_parameter_and_cross_check():
    with pytest.raises(ProfileError, match="unknown parameter"):
        E.check_params("02_discretization", smoke(T_typo=3))
    with pytest.raises(ProfileError, match="attack_images"):
        E.check_params("02_discretization", smoke(attack_images=1000))


def test_collect_params_picks_the_notebooks_knobs():
    ns = dict(smoke("03_leak"), profile="smoke", results_dir="r", unrelated=1)
    p = E.collect_params(ns, "03_leak")
    assert "leak_list" in p and "T_list" not in p and "unrelated" not in p
    ns.pop("leak_list")
    with pytest.raises(ProfileError, match="leak_list"):
        E.collect_params(ns, "03_leak")


def test_main_eps_prefers_8():
    assert E.main_eps({"eps_list": [2, 8, 32]}) == 8.0
    assert E.main_eps({"eps_list": [2, 4, 16]}) == 4.0


def test_layer_perturbation_known_answers():
    import math
    import torch
    from snnlib.models import SpikingVGG, build_ann
    torch.manual_seed(0)
    ann = build_ann("vgg5", seed=0)
    x = torch.rand(3, 3, 32, 32)
    same = E.layer_perturbation(ann, x, x)
    assert len(same) == 5 and all(d.mean == 0 for d in same)
    moved = E.layer_perturbation(ann, x, (x + 0.1).clamp(0, 1))
    assert all(d.mean > 0 and d.low <= d.mean <= d.high for d in moved)
    # an SNN whose thresholds are too high never fires: the ratio is undefined (nan), not 0 or inf
    silent = SpikingVGG(ann, [1e6] * 5, T=8, delay=False)
    out = E.layer_perturbation(silent, x, (x + 0.1).clamp(0, 1))
    assert all(math.isnan(d.mean) and d.n == 0 for d in out)


def test_noise_like_has_the_attacks_size_per_image_and_a_seeded_direction():
    import torch
    g = torch.Generator().manual_seed(0)
    x = 0.25 + 0.5 * torch.rand(4, 3, 32, 32, generator=g)                 # away from 0 and 1: no clipping
    x_adv = (x + (8 / 255) * torch.sign(torch.randn(4, 3, 32, 32, generator=g)) * (torch.arange(4) / 3).view(-1, 1, 1, 1))
    noise = E.noise_like(x, x_adv, seed=0)
    torch.testing.assert_close((noise - x).flatten(1).norm(dim=1), (x_adv - x).flatten(1).norm(dim=1))
    assert float((noise - x).abs().max()) <= 8 / 255 + 1e-6 and torch.equal(noise, E.noise_like(x, x_adv, seed=0))
    assert not torch.equal(noise, E.noise_like(x, x_adv, seed=1)) and torch.equal(noise[0], x[0])
    ann = __import__("snnlib.models", fromlist=["build_ann"]).build_ann("vgg5", seed=0)
    ratios = E.layer_ratios(ann, x, noise)
    assert len(ratios) == 5 and ratios[-1].shape == (4,) and float(ratios[-1][0]) == 0.0 and float(ratios[-1][3]) > 0


# ------------------------------------------------------------------------------------ attacks on tiny models
@pytest.fixture(scope="module")
def tiny_ctx(tmp_path_factory):
    """Two training seeds of untrained VGG5 models (T=4) on 4 images, with an artifact cache: fast, CPU only."""
    import copy
    import torch
    from snnlib.encoding import PoissonEncoder
    from snnlib.models import SpikingVGG, build_ann
    from snnlib.study.cache import ArtifactCache
    from snnlib.study.pipeline import ModelSet

    sets = []
    for seed in (0, 1):
        ann = build_ann("vgg5", seed=seed).eval()
        conv = SpikingVGG(ann, [0.5] * 5, T=4, leak=1.0, encoder=PoissonEncoder(seed=0)).eval()
        bp = SpikingVGG(copy.deepcopy(ann), [0.35] * 5, T=4, leak=0.99, encoder=PoissonEncoder(seed=0)).eval()
        configs = {k: {"kind": k, "seed": seed} for k in E.KINDS}
        sets.append(ModelSet(ann, conv, bp, seed, info={"configs": configs}))
    params = dict(pgd_alpha=2, pgd_steps=2, eval_seed=0, attack_seed=0, eval_draws=1, long_pgd_steps=3, restarts=1, eot_samples=2,
                  surrogates=["linear", "arctan"], adaptive_images=4, eps_list=[8], large_eps=[64])
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 3])
    return E.Context("05_attack_source", params, test=None, x=x, y=y, models=sets,
                     cache=ArtifactCache(tmp_path_factory.mktemp("cache")), device=torch.device("cpu"))


def test_transfer_matrix_cells_agree_with_single_attack_results(tiny_ctx):
    res = E.attack_source_results(tiny_ctx, 8, attacks=("PGD",), log=lambda s: None)
    assert res.sources() == ["ANN", "SNN-conv", "SNN-BP", "ANN (twin)", "SNN-conv (twin)", "SNN-BP (twin)"]
    assert len(res.cells) == 18 and {c.source_seed for c in res.cells} == {0, 1}
    ms = {"": tiny_ctx.target, " (twin)": tiny_ctx.twin}
    for c in res.cells:
        suffix = " (twin)" if c.source.endswith(" (twin)") else ""
        pair = E.AttackPair(source=ms[suffix].kinds()[c.source_kind], source_name=c.source, source_set=ms[suffix],
                            source_kind=c.source_kind, target=tiny_ctx.target.kinds()[c.target], target_name=c.target)
        one = E.attack_result(tiny_ctx, pair, "PGD", 8)
        assert one.adversarial == c.result.adversarial and one.clean == c.result.clean, (c.source, c.target)
        assert one.zero_grad_share == c.result.zero_grad_share
        assert (c.result.zero_grad_share is not None) == c.result.whitebox
        assert c.result.whitebox == (c.source == c.target) == one.whitebox
        out = c.result.outcomes
        assert out["clean"].aligned(out["adversarial"]) and out["adversarial"].attack_seed == 0
        assert out["adversarial"].accuracy() == c.result.adversarial.value


def test_both_target_seeds_give_two_replicates(tiny_ctx):
    tiny_ctx.params["target_seeds"] = "both"
    try:
        res = E.attack_source_results(tiny_ctx, 8, attacks=("FGSM",), log=lambda s: None)
    finally:
        tiny_ctx.params.pop("target_seeds")
    assert len(res.cells) == 36 and {c.target_seed for c in res.cells} == {0, 1}
    for c in res.cells:      # a twin is always the other seed's model, the rest the target's own
        assert (c.source_seed != c.target_seed) == c.source.endswith(" (twin)")


def test_other_attacks_use_the_leading_images_and_agree_with_the_full_cells(tiny_ctx):
    """max_images (chapter 5's other_attacks): every cell on the first k attack images, SNN-conv cells on at most
    snn_conv_images; the image ids are the leading ones, and the outcomes are those of attacking those images."""
    tiny_ctx.params["snn_conv_images"] = 2
    try:
        res = E.attack_source_results(tiny_ctx, 8, attacks=("BIM",), log=lambda s: None, max_images=3)
        assert E.images_for(tiny_ctx, "ANN", "SNN-BP", limit=3) == 3
        assert E.images_for(tiny_ctx, "SNN-conv", limit=3) == 2 == E.images_for(tiny_ctx, "SNN-conv")
        with pytest.raises(ValueError, match="positive"):
            E.images_for(tiny_ctx, "ANN", limit=0)
    finally:
        tiny_ctx.params.pop("snn_conv_images")
    assert res.attacks() == ["BIM"] and len(res.cells) == 18
    for c in res.cells:
        n = 2 if "SNN-conv" in (c.source_kind, c.target) else 3
        ids = c.result.outcomes["adversarial"].image_ids
        assert c.result.adversarial.total == n and list(ids) == list(range(n)), (c.source, c.target)
    ms = tiny_ctx.target
    pair = E.AttackPair(source=ms.ann, source_name="ANN", source_set=ms, source_kind="ANN", target=ms.snn_bp,
                        target_name="SNN-BP")
    direct = E.attack_result(tiny_ctx, pair, "bim", 8, x=tiny_ctx.x[:3], y=tiny_ctx.y[:3])
    cell = next(c for c in res.cells if c.source == "ANN" and c.target == "SNN-BP")
    assert direct.adversarial == cell.result.adversarial
    with pytest.raises(ValueError, match="max_images"):
        E.attack_result(tiny_ctx, pair, "bim", 8, x=tiny_ctx.x[:3], y=tiny_ctx.y[:3], max_images=2)


def test_outcomes_use_the_evaluation_stream_not_the_attacks(tiny_ctx):
    """Changing only the attack seed changes the crafted images, never the clean outcomes."""
    ms = tiny_ctx.target
    wb = E.AttackPair.whitebox(ms.snn_bp, "SNN-BP", ms)
    a = E.attack_result(tiny_ctx, wb, "rfgsm", 8)
    tiny_ctx.params["attack_seed"] = 7
    try:
        b = E.attack_result(tiny_ctx, wb, "rfgsm", 8)
    finally:
        tiny_ctx.params["attack_seed"] = 0
    assert (a.outcomes["clean"].correct == b.outcomes["clean"].correct).all()
    assert a.outcomes["adversarial"].attack_seed == 0 and b.outcomes["adversarial"].attack_seed == 7


def test_zero_gradient_share_is_the_robustness_apis_value(tiny_ctx):
    from snnlib.robustness import evaluate_attack
    for model in (tiny_ctx.target.ann, tiny_ctx.target.snn_bp):
        atk = E.make_attack("pgd", model, 8, tiny_ctx.params)
        share = E.zero_gradient_share(atk, tiny_ctx.x, tiny_ctx.y)
        res = evaluate_attack(model, atk, tiny_ctx.x, tiny_ctx.y, eval_seed=0, zero_grad_check=True)
        assert share == res.zero_grad_share and 0.0 <= share <= 1.0


def test_attack_batch_changes_only_the_poisson_draws_an_snn_source_sees(tiny_ctx):
    """attack_batch (a memory bound): the attack crafts that many images at once, within the budget.  The random
    start continues one stream, so a deterministic source (the ANN, an SNN with analog input) crafts exactly the
    examples of one batch; a Poisson-coded SNN source draws its spikes batch by batch, so its examples are other
    draws of the same attack (tiny_ctx's own SNNs, at T=4 <= 5 spiking layers, are silent: active ones here)."""
    import copy
    import torch
    from snnlib.encoding import DirectEncoder, PoissonEncoder
    from snnlib.models import SpikingVGG
    ann = tiny_ctx.target.ann
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = ann(x).argmax(1).detach()
    params = dict(tiny_ctx.params, pgd_steps=3)
    for name, model, same in (
            ("ANN", ann, True),
            ("SNN, analog input", SpikingVGG(copy.deepcopy(ann), [0.05] * 5, T=8, leak=0.99,
                                              encoder=DirectEncoder()).eval(), True),
            ("SNN, Poisson input", SpikingVGG(copy.deepcopy(ann), [0.05] * 5, T=8, leak=0.99,
                                               encoder=PoissonEncoder(seed=0)).eval(), False)):
        with torch.no_grad():
            assert model(x).abs().sum() > 0, name                        # the source responds
        whole = E.make_attack("pgd", model, 8, params)
        pieces = E.make_attack("pgd", model, 8, dict(params, attack_batch=2))
        assert whole.batch_size is None and pieces.batch_size == 2 and whole.config() != pieces.config()
        a, b = whole(x, y), pieces(x, y)
        assert (b - x).abs().max() <= 8 / 255 + 1e-6 and b.min() >= 0 and b.max() <= 1
        assert not torch.equal(a, x)
        assert torch.allclose(a, b, atol=1e-6) == same, name


def test_attack_batch_bounds_every_attack_of_chapter_6(tiny_ctx):
    """attack_batch reaches every attack chapter 6 runs (the papers', the adaptive suite, APGD, Square, the
    transfers; SNN and ANN targets), and a cascade crafted in pieces runs every stage within the budget."""
    import dataclasses
    import torch
    base = dict(tiny_ctx.params, apgd_steps=2, square_queries=5)
    with torch.no_grad():              # labels the ANN gets right, so that its cascade attacks every image
        y = tiny_ctx.target.ann(tiny_ctx.x).argmax(1)
    whole = dataclasses.replace(tiny_ctx, params=base, y=y, clean_memo={}, cache=None)
    pieces = dataclasses.replace(whole, params=dict(base, attack_batch=3), clean_memo={})
    for kind in ("SNN-BP", "ANN"):
        model = getattr(tiny_ctx.target, {"SNN-BP": "snn_bp", "ANN": "ann"}[kind])
        one = E.adaptive_attacks(whole, kind, model, 8).attacks
        assert {n: a.batch_size for n, a in one.items()} == dict.fromkeys(one, None), kind
        batched = E.adaptive_attacks(pieces, kind, model, 8).attacks
        assert {n: a.batch_size for n, a in batched.items()} == dict.fromkeys(batched, 3), kind
    c = E.cascade_report(pieces, "ANN", pieces.target, pieces.twin, 8)
    assert c.stages[0].attacked == 4 and all(s.max_linf <= 8 / 255 + 1e-6 for s in c.stages)
    assert [s.name for s in c.stages] == [s.name for s in E.cascade_report(whole, "ANN", whole.target,
                                                                           whole.twin, 8).stages]


def test_attack_pair_and_attack_result(tiny_ctx):
    ms = tiny_ctx.target
    wb = E.AttackPair.whitebox(ms.snn_bp, "SNN-BP", ms)
    assert wb.is_whitebox and wb.source_name == wb.target_name == "SNN-BP"
    rec = E.attack_result(tiny_ctx, wb, "fgsm", 8)
    assert rec.attack_name == "FGSM" and rec.whitebox and rec.zero_grad_share is not None   # checked by default
    assert rec.attack["grad_mode"] == "algorithm1" and rec.eps_255 == 8
    bb = E.AttackPair(source=tiny_ctx.twin.ann, source_name="ANN (twin)", source_set=tiny_ctx.twin,
                      source_kind="ANN", target=ms.snn_bp, target_name="SNN-BP")
    rec = E.attack_result(tiny_ctx, bb, "pgd", 8)
    assert not rec.whitebox and rec.zero_grad_share is None and rec.source == "ANN (twin)"
    assert [r.eps_255 for r in E.eps_sweep(tiny_ctx, bb, "pgd", [4, 8])] == [4, 8]


def test_adaptive_attacks_are_the_suite_plus_the_papers_attacks(tiny_ctx):
    from snnlib.attacks.suite import adaptive_suite
    ms, P = tiny_ctx.target, tiny_ctx.params
    a = E.adaptive_attacks(tiny_ctx, "SNN-BP", ms.snn_bp, 8)
    names = list(a.attacks)
    assert names[0] == a.paper_fgsm == "FGSM Alg.1 (paper)" and names[1] == a.paper_pgd == "PGD-2 Alg.1 (paper)"
    assert a.transfer == "PGD-2 transfer from twin SNN-BP" and names[-1] == "PGD-2 transfer from twin ANN"
    suite = adaptive_suite(ms.snn_bp, 8 / 255, steps=3, restarts=1, eot=2, eot_steps=2, paper_steps=2,
                           surrogates=(), seed=0)
    for name, atk in suite.items():                      # the suite's attacks, unchanged (the paper's PGD too)
        assert a.attacks[name].config() == atk.config(), name
    assert a.attacks[a.paper_pgd].config() == E.make_attack("pgd", ms.snn_bp, 8, P).config()
    short = [n for n in names if "surrogate" in n]
    assert short == ["PGD-2 surrogate arctan(width=2)"]                # the own surrogate (linear) skipped
    assert names.index(short[0]) == names.index("PGD-3x1 BPTT") - 1      # before the long BPTT, as before
    assert a.attacks[short[0]].config()["steps"] == 2
    assert a.attacks[a.transfer].model is tiny_ctx.twin.snn_bp
    ann = E.adaptive_attacks(tiny_ctx, "ANN", ms.ann, 8)
    assert list(ann.attacks) == ["FGSM (paper)", "PGD-2 (paper)", "PGD-3x1", "PGD-2 transfer from twin ANN"]


def test_masking_report_is_a_typed_record(tiny_ctx):
    r = E.masking_report(tiny_ctx, "SNN-BP", tiny_ctx.target.snn_bp, 8)
    assert r.paper_attack == "PGD-2 Alg.1 (paper)" and r.n == 4 and sorted(r.acc_by_eps) == ["64.0", "8.0"]
    assert r.acc_by_eps["8.0"] == r.per_attack[r.paper_attack]
    zero = next(c for c in r.checks if c.name == "zero_gradients")
    atk = E.adaptive_attacks(tiny_ctx, "SNN-BP", tiny_ctx.target.snn_bp, 8).attacks[r.paper_attack]
    assert zero.value == E.zero_gradient_share(atk, tiny_ctx.x[:4], tiny_ctx.y[:4])
    assert r.worst_case.correct <= min(a.correct for a in r.per_attack.values())


def test_clean_outcomes_of_fewer_images_reuse_a_larger_scoring_and_equal_a_fresh_one(tiny_ctx, monkeypatch):
    import dataclasses
    ctx = dataclasses.replace(tiny_ctx, params=dict(tiny_ctx.params, eval_draws=3), clean_memo={})
    model = ctx.target.snn_bp                                   # stochastic: the draws are seeded per image id
    fresh = E.clean_outcomes(dataclasses.replace(ctx, clean_memo={}), model, 3)
    E.clean_outcomes(ctx, model, 4)
    calls = []
    monkeypatch.setattr(E, "score", lambda *a, **k: calls.append(1))
    sliced = E.clean_outcomes(ctx, model, 3)
    assert not calls and sliced.draws == 3
    assert (sliced.image_ids == fresh.image_ids).all() and (sliced.correct == fresh.correct).all()
    E.clean_outcomes(ctx, ctx.target.ann, 2)
    assert calls == [1]                                         # another model is scored afresh (here: the stub)


def test_adaptive_attacks_take_their_transfers_from_the_given_twin(tiny_ctx):
    a = E.adaptive_attacks(tiny_ctx, "SNN-BP", tiny_ctx.twin.snn_bp, 8, twin=tiny_ctx.target)   # seed 1 as target
    assert a.attacks[a.transfer].model is tiny_ctx.target.snn_bp
    assert a.attacks["PGD-2 transfer from twin ANN"].model is tiny_ctx.target.ann
    assert a.attacks[a.paper_pgd].model is tiny_ctx.twin.snn_bp


def test_cascade_report_attacks_only_the_survivors_and_is_audited(tiny_ctx):
    import dataclasses
    from snnlib.robustness.prediction import predict_draws
    ms = tiny_ctx.target
    labels = predict_draws(ms.snn_bp, tiny_ctx.x, 1, 0, tiny_ctx.attack_ids(), 64)[0]   # every image clean-correct
    ctx = dataclasses.replace(tiny_ctx, y=labels.clone(), clean_memo={})
    full = E.masking_report(ctx, "SNN-BP", ms.snn_bp, 8)
    c = E.cascade_report(ctx, "SNN-BP", ms, ctx.twin, 8, full=full)
    names = [s.name for s in c.stages]
    assert names[0] == full.paper_attack and set(names) == set(full.per_attack) and (c.seed, c.n) == (0, 4)
    flags = [s.whitebox for s in c.stages]
    assert flags == sorted(flags, reverse=True) and not flags[-1]      # the target's own attacks, then transfers
    alive = int(c.outcomes["clean"].majority().sum())
    assert alive == 4
    for s in c.stages:                                  # each stage attacks exactly the survivors of the earlier ones
        assert s.attacked == alive and s.max_linf <= 8 / 255 + 1e-6, s
        alive -= s.fooled
    o = c.outcomes
    assert c.worst_case.correct == alive == int(o["worst_case"].majority().sum())
    assert c.whitebox.correct == int(o["worst_case_whitebox"].majority().sum())
    assert (o["worst_case"].majority() <= o["worst_case_whitebox"].majority()).all()
    assert c.audit["n"] == 4 and c.audit["full"]["correct"] == full.worst_case.correct
    assert c.audit["missed"] == int((o["worst_case"].majority() & ~full.outcomes["worst_case"].majority()).sum())


def test_apgd_and_square_join_the_suite_before_the_transfers_and_run_in_the_cascade(tiny_ctx):
    import dataclasses
    from snnlib.attacks.external import APGD, Square
    ctx = dataclasses.replace(tiny_ctx, params=dict(tiny_ctx.params, apgd_steps=2, square_queries=5),
                              clean_memo={})
    a = E.adaptive_attacks(ctx, "SNN-BP", ctx.target.snn_bp, 8)
    names = list(a.attacks)
    auto = ["APGD-CE-2 EOT-2", "APGD-DLR-2 EOT-2", "Square-5"]
    assert names[-5:] == auto + [a.transfer, "PGD-2 transfer from twin ANN"]
    apgd, square = a.attacks["APGD-DLR-2 EOT-2"], a.attacks["Square-5"]
    assert isinstance(apgd, APGD) and apgd.loss == "dlr" and apgd.eot == 2 and apgd.steps == 2
    assert isinstance(square, Square) and square.queries == 5 and square.model is ctx.target.snn_bp
    ann = list(E.adaptive_attacks(ctx, "ANN", ctx.target.ann, 8).attacks)
    assert ann[-4:] == ["APGD-CE-2", "APGD-DLR-2", "Square-5", "PGD-2 transfer from twin ANN"]   # no EOT on the ANN
    stages = [k for k, _ in E.cascade_stages(a)]
    assert stages[0] == a.paper_pgd and stages[-5:-2] == auto
    c = E.cascade_report(ctx, "SNN-BP", ctx.target, ctx.twin, 8)
    assert [s.name for s in c.stages] == stages and all(s.max_linf <= 8 / 255 + 1e-6 for s in c.stages)
    # another surrogate on the target's own weights is white-box; only the twins' attacks are transfers
    assert {s.name: s.whitebox for s in c.stages}["PGD-2 surrogate arctan(width=2)"]
    assert [s.name for s in c.stages if not s.whitebox] == [a.transfer, "PGD-2 transfer from twin ANN"]
    off = dataclasses.replace(ctx, params=dict(ctx.params, apgd_steps=0, square_queries=0))
    assert not any(n.startswith(("APGD", "Square")) for n in E.adaptive_attacks(off, "ANN", ctx.target.ann, 8).attacks)


def test_discretization_and_leak_sweeps_build_their_records(tiny_ctx):
    from snnlib.study import records as R
    ctx = tiny_ctx
    ctx.params.update(T_list=[2], quant_bits=[None, 1], leak_list=[1.0, 0.9])
    lines = []
    d = E.discretization_results(ctx, 8, log=lines.append)
    assert [(r.kind, r.T, r.bits, r.sweep) for r in d.rows] == [
        ("SNN-BP", 2, None, "T"), ("SNN-BP", 4, None, "T"), ("SNN-BP", 4, 1, "bits"),
        ("SNN-conv", 2, None, "T"), ("SNN-conv", 4, None, "T"), ("SNN-conv", 4, 1, "bits")]
    assert len(lines) == 6 and lines[0].startswith("SNN-BP T=2: clean ")
    row = d.rows[0]
    assert row.fgsm_wb.whitebox and row.pgd_wb.attack["steps"] == 2 and row.pgd_bb.source == "ANN (twin)"
    assert not row.pgd_bb.whitebox and row.pgd_bb.zero_grad_share is None
    leak = E.leak_results(ctx, 8, log=lines.append)
    assert [r.leak for r in leak.rows] == [0.9, 1.0]
    assert list(leak.perturbation) == ["ANN", "SNN-conv (IF)", "SNN-BP leak 0.9", "SNN-BP leak 1"]
    assert all(len(v) == 5 for v in leak.perturbation.values())
    assert list(leak.perturbation_images) == list(leak.perturbation)       # E10's per-image values, every model
    ann = leak.perturbation_images["ANN"]
    assert ann.image_ids == ctx.attack_ids().tolist() and len(ann.adversarial) == len(ann.noise) == len(ctx.y)
    assert all(a is not None and a > 0 for a in ann.adversarial + ann.noise)    # the ANN's last layer is never silent
    for rec in (d, leak):                                   # the records survive their JSON form
        back = R.from_dict(type(rec), json.loads(json.dumps(to_jsonable(R.to_dict(rec)))))
        assert json.dumps(to_jsonable(R.to_dict(back)), sort_keys=True) == \
            json.dumps(to_jsonable(R.to_dict(rec)), sort_keys=True)


def test_attack_order_is_a_seeded_permutation_whose_prefixes_nest():
    import torch
    first = E.attack_order(1017, None)
    assert first.tolist() == list(range(1017))                      # null: the first test images, as before
    a, b = E.attack_order(1017, 0), E.attack_order(1017, 0)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(1017))
    assert not torch.equal(a, E.attack_order(1017, 1))
    assert not torch.equal(a[:100], first[:100])                    # never simply the first N
    # a smaller sample (adaptive images) is the start of the larger one, so every chapter is paired on it
    assert set(a[:24].tolist()) <= set(a[:300].tolist())


def test_snn_conv_cells_use_the_leading_part_of_the_sample(tiny_ctx):
    ms = tiny_ctx.target
    tiny_ctx.params["snn_conv_images"] = 2
    try:
        conv = E.attack_result(tiny_ctx, E.AttackPair.whitebox(ms.snn_conv, "SNN-conv", ms), "fgsm", 8)
        ann = E.attack_result(tiny_ctx, E.AttackPair.whitebox(ms.ann, "ANN", ms), "fgsm", 8)
        bb = E.AttackPair(source=ms.ann, source_name="ANN", source_set=ms, source_kind="ANN", target=ms.snn_conv,
                          target_name="SNN-conv")
        to_conv = E.attack_result(tiny_ctx, bb, "fgsm", 8)
    finally:
        tiny_ctx.params.pop("snn_conv_images")
    ids = tiny_ctx.attack_ids().tolist()
    assert conv.n == to_conv.n == 2 and ann.n == 4
    assert conv.outcomes["adversarial"].image_ids.tolist() == ids[:2]      # a prefix: pairs with the others
    assert to_conv.outcomes["clean"].image_ids.tolist() == ids[:2]


def test_the_conversion_curve_keeps_the_outcomes_behind_each_point_and_they_survive_the_record(tiny_ctx):
    from snnlib.study import records as R
    conv = tiny_ctx.target.snn_conv
    points = E.accuracy_vs_T(conv, (tiny_ctx.x, tiny_ctx.y), [6, 8], seed=0, draws=3)
    assert [p.T for p in points] == [6, 8]
    for p in points:
        assert p.outcomes.draws == 3 and p.outcomes.n == 4
        assert p.accuracy == E.clean_accuracy(conv.twin(T=p.T), (tiny_ctx.x, tiny_ctx.y), 0, 3)
        assert p.accuracy.correct == int(p.outcomes.majority().sum())
    back = R.from_dict(R.TimestepPoint, R.to_dict(points[1]))
    assert back.T == 8 and (back.outcomes.correct == points[1].outcomes.correct).all()


def test_a_scored_cell_is_cached_so_a_stopped_chapter_does_not_score_it_again(tiny_ctx, monkeypatch):
    import dataclasses
    from snnlib.study.records import to_dict
    ctx = dataclasses.replace(tiny_ctx, clean_memo={})
    pair = E.AttackPair.whitebox(ctx.target.snn_bp, "SNN-BP", ctx.target)
    first = E.attack_result(ctx, pair, "FGSM", 6)
    calls = []
    real = E.evaluate_attack
    monkeypatch.setattr(E, "evaluate_attack", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = E.attack_result(dataclasses.replace(ctx, clean_memo={}), pair, "FGSM", 6)    # a new kernel, same cache
    assert not calls and to_dict(again) == to_dict(first)
    assert all((again.outcomes[k].correct == first.outcomes[k].correct).all() for k in ("clean", "adversarial"))
    other_seed = dataclasses.replace(ctx, params=dict(ctx.params, eval_seed=1), clean_memo={})
    E.attack_result(other_seed, pair, "FGSM", 6)                          # other draws: scored afresh
    assert calls == [1]
    twin = E.AttackPair(source=ctx.target.snn_bp, source_name="SNN-BP", source_set=ctx.target, source_kind="SNN-BP",
                        target=ctx.twin.snn_bp, target_name="SNN-BP")       # another target's weights
    E.attack_result(ctx, twin, "FGSM", 6, zero_grad_check=True)
    assert calls == [1, 1]
    # a new kernel (a new cache object over the same folder) counts the attack work it re-used, not the models
    import time

    import torch
    from snnlib.study.cache import ArtifactCache
    from snnlib.study import cache as C
    ArtifactCache(ctx.cache.root).get_or_build("ann", {"seed": 99}, lambda: time.sleep(0.05) or {"w": torch.ones(1)})
    monkeypatch.setattr(C, "PROCESS_ID", "a later attempt")               # the entries above were another process's
    resumed = dataclasses.replace(ctx, clean_memo={}, cache=ArtifactCache(ctx.cache.root))
    resumed.cache.get_or_build("ann", {"seed": 99}, lambda: {})
    assert resumed.cache.reused_s["ann"] >= 0.05 and resumed.reused_attack_s() == 0.0
    E.attack_result(resumed, pair, "FGSM", 6)
    assert calls == [1, 1] and set(resumed.cache.reused_s) == {"ann", "adversarial", "scored"}
    assert resumed.cache.reused_s["adversarial"] > 0 and resumed.cache.reused_s["scored"] > 0
    assert resumed.reused_attack_s() == pytest.approx(resumed.cache.reused_s["adversarial"]
                                                      + resumed.cache.reused_s["scored"], abs=1e-3)


def test_chapter_6_resumes_from_its_cached_reports_and_recomputes_when_a_parameter_changes(tiny_ctx, monkeypatch):
    import dataclasses
    from snnlib.study.records import to_dict
    from snnlib.robustness.prediction import predict_draws
    labels = predict_draws(tiny_ctx.target.ann, tiny_ctx.x, 1, 0, tiny_ctx.attack_ids(), 64)[0]
    ctx = dataclasses.replace(tiny_ctx, y=labels.clone(), clean_memo={},
                              params=dict(tiny_ctx.params, apgd_steps=0, square_queries=0))
    first = E.gradient_masking_results(ctx, 8, log=lambda s: None)
    calls = []
    cascades = {(c.kind, c.seed): c for c in first.cascades}
    monkeypatch.setattr(E, "masking_report", lambda c, kind, *a, **k: calls.append("masking") or first.worst_case[kind])
    monkeypatch.setattr(E, "cascade_report", lambda c, kind, target_set, *a, **k: calls.append("cascade")
                        or cascades[(kind, target_set.seed)])
    again = E.gradient_masking_results(dataclasses.replace(ctx, clean_memo={}), 8, log=lambda s: None)
    assert not calls and to_dict(again) == to_dict(first)
    assert len(again.cascades) == 6 and set(again.worst_case) == set(E.KINDS)
    changed = dataclasses.replace(ctx, params=dict(ctx.params, eot_samples=3), clean_memo={})
    E.gradient_masking_results(changed, 8, log=lambda s: None)
    assert calls == ["masking"] * 3 + ["cascade"] * 6                   # another parameter: computed afresh
