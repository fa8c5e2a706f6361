"""The claims' verdicts are statistical tests on paired per-image outcomes (issue 14), checked against scipy."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from snnlib.stats import accuracy_from_counts
from snnlib.study import claims, tables
from snnlib.study import records as R

from study_factories import (cascade_record, clean_row, outcome, pair_vectors, scored_record, scored_row, study_files, vector,
                             write_study)

ROOT = Path(__file__).resolve().parents[2]
S_, C_, I_, NT, NR = (claims.SUPPORTED, claims.CONTRADICTED, claims.INCONCLUSIVE, claims.NOT_TESTABLE,
                      claims.NOT_RUN)


def mcnemar_p(n10, n01):
    """Exact McNemar p by scipy: two-sided binomial test of n10 of the discordant images at 1/2."""
    return sps.binomtest(n10, n10 + n01, 0.5).pvalue


def by_id(S):
    return {r.id: r for r in claims.evaluate_claims(S)}


def tm_row(kind, adv, clean=None, attack="PGD", setting="black-box", eps=8.0, seed=0, zero_grad=None):
    return R.TrainingMethodRow(kind=kind, attack=attack, setting=setting, eps_255=eps, seed=seed,
                               result=scored_record(adv, clean, zero_grad=zero_grad, eps_255=eps))


def tm(*rows):
    return R.TrainingMethodResults(rows=list(rows), clean={})


def cell(source, target, adv, attack="PGD", source_seed=1, target_seed=0, clean=None):
    return R.TransferCell(attack=attack, source=source, source_kind=source.split()[0], source_seed=source_seed,
                          target=target, target_seed=target_seed, result=scored_record(adv, clean))


def t_row(kind, T, adv, clean=None, bits=None, sweep="T", zero_grad=None):
    return scored_row(R.DiscretizationRow, adv, clean, zero_grad=zero_grad, kind=kind, T=T, bits=bits, sweep=sweep)


# ------------------------------------------------------------------------------------------- the core tests
def test_identical_models_are_never_different():
    rng = np.random.default_rng(0)
    for n in (10, 100, 2000):
        a = rng.random(n) < 0.4
        for rule in ("A more robust than B", "A at least as robust as B", "A not more robust than B"):
            j = claims.judge_pair(rule, a, a.copy())
            assert j.pvalues["McNemar"] == 1.0 and j.effect == 0.0
            assert j.verdict() != C_
        assert claims.judge_pair("A more robust than B", a, a.copy()).verdict() == I_
    # and through the claims: E2 with the same per-image outcomes for SNN-BP and the ANN
    v = vector(40, 100)
    row = by_id(R.StudyResults(training_method=tm(tm_row("SNN-BP", v), tm_row("ANN", v))))["E2"]
    assert row.verdict == I_ and row.p_value == 1.0 and row.effect == 0.0
    assert "MDE at 80 % power" in row.measured and row.mde is not None and row.mde > 0


def test_overlapping_intervals_alone_never_support_no_difference():
    """Two equal-accuracy sweep points on n = 30 images: intervals overlap completely, but TOST at a 3-point
    margin cannot show equivalence with so few images, so E8a is inconclusive, not supported."""
    v = vector(15, 30)
    clean = vector(25, 30)
    S = R.StudyResults(discretization=R.DiscretizationResults(rows=[
        t_row("SNN-conv", 4, v, clean), t_row("SNN-conv", 16, v.copy(), clean)], eps_255=8.0),
        parameters={"equivalence_margin": 3})
    row = by_id(S)["E8a"]
    a = accuracy_from_counts(15, 30)
    assert a.low < a.high                         # the two intervals are identical, so they overlap
    assert row.verdict == I_, row.measured
    assert row.p_value >= 0.05 and "TOST" in row.test and row.n_images == 30


def test_tost_supports_equivalence_on_many_nearly_identical_images():
    a, b = pair_vectors(n11=1000, n10=10, n01=12, n00=978)     # n = 2000; b (the last level) +0.1 points
    j = claims.judge_sweep("no difference along a sweep", np.stack([a, b]), [4, 16], margin=3.0)
    assert j.verdict() == S_ and j.pvalues["TOST"] < 0.05 and j.pvalues["trend"] > 0.05
    clean = np.ones(2000, dtype=bool)
    S = R.StudyResults(discretization=R.DiscretizationResults(rows=[
        t_row("SNN-conv", 4, a, clean), t_row("SNN-conv", 16, b, clean)], eps_255=8.0))
    row = by_id(S)["E8a"]
    assert row.verdict == S_ and row.n_images == 2000
    assert abs(row.effect - 0.1) < 1e-9 and row.ci_low < 0 < row.ci_high


def test_mcnemar_decides_where_the_intervals_overlap():
    """13/100 vs 4/100 with 9 discordant images all one way: the Clopper-Pearson intervals overlap, McNemar's
    exact test (scipy.stats.binomtest of 9 of 9 at 1/2) gives p = 0.0039 and decides."""
    a, b = pair_vectors(n11=4, n10=9, n01=0, n00=87)
    assert accuracy_from_counts(13, 100).low < accuracy_from_counts(4, 100).high
    clean = vector(60, 100) | a | b
    row = by_id(R.StudyResults(training_method=tm(tm_row("SNN-BP", a, clean), tm_row("ANN", b, clean))))["E2"]
    assert row.verdict == S_
    assert row.p_value == pytest.approx(mcnemar_p(9, 0)) and row.p_value == pytest.approx(0.00390625)
    assert row.effect == pytest.approx(9.0) and row.ci_low > 0
    assert row.test.startswith("exact McNemar") and row.primary and row.seeds == [0] and row.n_images == 100
    assert "chapter 4" in row.measured and "clean gap" in row.measured


def test_a_dead_sweep_point_is_excluded_and_named():
    clean_ok, dead = vector(80, 100), vector(10, 100)
    rows = [t_row("SNN-BP", 4, vector(60, 100), clean_ok), t_row("SNN-BP", 8, vector(5, 100), dead),
            t_row("SNN-BP", 16, vector(30, 100), clean_ok)]
    row = by_id(R.StudyResults(discretization=R.DiscretizationResults(rows=rows, eps_255=8.0)))["E6"]
    assert row.excluded == ["SNN-BP T=8 (clean 10/100, not above chance)"]
    assert "excluded: SNN-BP T=8 (clean 10/100, not above chance)" in row.measured
    assert row.verdict == S_                       # 60 % at T=4 -> 30 % at T=16: falls, as claimed
    assert row.effect == pytest.approx(-30.0)
    # with only one valid point left the sweep is not testable
    row = by_id(R.StudyResults(discretization=R.DiscretizationResults(rows=rows[:2], eps_255=8.0)))["E6"]
    assert row.verdict == NT and "not testable at this scale" in row.measured
    assert row.excluded == ["SNN-BP T=8 (clean 10/100, not above chance)"]


def test_a_model_with_zero_gradients_or_at_chance_makes_a_pairwise_claim_not_testable():
    v = vector(40, 100)
    S = R.StudyResults(training_method=tm(tm_row("SNN-BP", v, setting="white-box", zero_grad=0.8),
                                          tm_row("ANN", v, setting="white-box", zero_grad=0.0)))
    row = by_id(S)["E4"]
    assert row.verdict == NT and row.excluded == ["SNN-BP (white-box zero-gradient share 0.80 > 0.5)"]
    S = R.StudyResults(training_method=tm(tm_row("SNN-BP", vector(10, 100), vector(12, 100)),
                                          tm_row("ANN", vector(5, 100), vector(90, 100))))
    row = by_id(S)["E2"]
    assert row.verdict == NT and row.excluded == ["SNN-BP (clean 12/100, not above chance)"]
    assert "not testable at this scale" in row.measured


def test_an_snn_bp_trained_at_fewer_timesteps_is_compared_with_the_one_at_T_bp():
    """E6b: chapter 2's "T trained" rows against the row at T_bp (parameter), McNemar per trained T (the model with
    fewer timesteps is A), all must hold; the guards apply."""
    clean = vector(80, 100)
    a, b = pair_vectors(n11=20, n10=12, n01=2, n00=66)        # trained at T=8: 32 %, at T=16: 22 %
    base = [t_row("SNN-BP", 8, vector(10, 100), clean), t_row("SNN-BP", 16, b, clean), t_row("SNN-BP", 24, b, clean)]
    S = lambda *trained: R.StudyResults(discretization=R.DiscretizationResults(rows=base + list(trained), eps_255=8.0),
                                        parameters={"T_bp": 16, "model_seeds": [3, 4]})
    row = by_id(S(t_row("SNN-BP", 8, a, clean, sweep=R.TRAINED_T)))["E6b"]
    assert row.verdict == S_ and row.p_value == pytest.approx(mcnemar_p(12, 2)) and row.effect == pytest.approx(10.0)
    assert row.seeds == [3] and "T=8 vs T=16" in row.measured and row.n_images == 100
    # trained at more timesteps than T_bp: T_bp's model is A
    row = by_id(S(t_row("SNN-BP", 32, b, clean, sweep=R.TRAINED_T)))["E6b"]      # 22 % at T=32 ...
    assert row.verdict == I_ and row.p_value == 1.0 and "T=16 vs T=32" in row.measured    # ... as at T=16
    row = by_id(S(t_row("SNN-BP", 32, vector(0, 100), clean, sweep=R.TRAINED_T)))["E6b"]
    assert row.verdict == S_ and row.effect == pytest.approx(22.0)
    # a second trained T that is not more robust keeps the claim open
    row = by_id(S(t_row("SNN-BP", 8, a, clean, sweep=R.TRAINED_T), t_row("SNN-BP", 12, b, clean, sweep=R.TRAINED_T),
                  t_row("SNN-BP", 32, vector(0, 100), clean, sweep=R.TRAINED_T)))["E6b"]
    assert row.verdict == I_ and row.p_value == 1.0
    assert all(f"{pair}:" in row.measured for pair in ("T=8 vs T=16", "T=12 vs T=16", "T=16 vs T=32"))
    # trained at chance: not testable, named; no trained row: not run
    row = by_id(S(t_row("SNN-BP", 8, vector(5, 100), vector(9, 100), sweep=R.TRAINED_T)))["E6b"]
    assert row.verdict == NT and row.excluded == ["SNN-BP trained at T=8 (clean 9/100, not above chance)"]
    assert by_id(S())["E6b"].verdict == NR


def test_holm_is_applied_to_the_primary_claims():
    """E1, E2 and E11 from chapter 5 (the other primary claims not run): raw p from scipy, Holm by hand. E11's raw
    p (0.039) is below 0.05, its Holm-adjusted p is not, so it is inconclusive."""
    n = 100
    idx = np.arange(n)
    a1 = idx < 40                                          # SNN-BP under ANN-crafted twin PGD
    a2 = (idx < 30) | (idx == 40) | (idx == 41)            # SNN-BP under SNN-crafted twin PGD: 10 vs 2
    b = (idx < 23) | (idx == 50)                           # ANN under its twin's PGD; worst(a) vs b: 7 vs 1
    cells = [cell("ANN (twin)", "SNN-BP", a1), cell("SNN-BP (twin)", "SNN-BP", a2), cell("ANN (twin)", "ANN", b),
             cell("ANN (twin)", "SNN-BP", idx < 30, "FGSM"), cell("ANN (twin)", "ANN", idx < 21, "FGSM")]
    rows = by_id(R.StudyResults(attack_source=R.AttackSourceResults(cells=cells, eps_255=8.0)))
    raw = {"E1": mcnemar_p(9, 0), "E2": mcnemar_p(7, 1), "E11": mcnemar_p(10, 2)}
    for k, p in raw.items():
        assert rows[k].p_value == pytest.approx(p), k
    order = sorted(raw, key=raw.get)                       # Holm: (m - i) p_(i), running maximum
    hand, running = {}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (len(raw) - i) * raw[k]))
        hand[k] = running
    for k in raw:
        assert rows[k].primary and rows[k].p_adjusted == pytest.approx(hand[k])
        assert rows[k].p_adjusted >= rows[k].p_value
    assert (rows["E1"].verdict, rows["E2"].verdict, rows["E11"].verdict) == (S_, I_, I_)
    assert raw["E11"] < 0.05 < rows["E11"].p_adjusted
    assert "Holm" in rows["E11"].measured
    # secondary claims show raw p only
    assert rows["I2"].primary is False and rows["I2"].p_adjusted is None


def test_results_without_outcomes_are_not_testable(tmp_path):
    write_study(tmp_path, study_files())             # the factories' records carry no (complete) outcomes
    rows = {r.id: r for r in claims.evaluate_claims(tmp_path)}
    for cid in ("E2", "E6", "E9", "E11", "I1"):
        assert rows[cid].verdict == NT and rows[cid].measured == claims.NO_OUTCOMES, cid
    for profile in ("laptop", "smoke"):             # committed reference runs, from before or after schema v1
        d = ROOT / "results" / profile
        if not d.is_dir():
            continue
        versions = {json.loads(f.read_text()).get("schema_version")
                    for f in d.glob("0[1-5]_*.json")}       # the chapters that hold per-image outcomes
        got = {r.id: r for r in claims.evaluate_claims(d)}
        lacking = [c for c in ("E1", "E2", "E4", "E5", "E6", "E11", "I1") if got[c].measured == claims.NO_OUTCOMES]
        if versions == {None}:                      # written before schema v1: nothing is testable
            assert len(lacking) == 7, (profile, lacking)
        elif None not in versions:                  # re-run with outcomes: every claim is judged on them
            assert lacking == [], (profile, lacking)
        assert got["E3"].verdict == NT and "cifar100" in got["E3"].measured


def test_blackbox_claims_use_only_the_transfer_cells():
    """Chapter 5 holds white-box and same-seed cells that fool SNN-BP on every image; had they entered the worst
    case, E2 would be contradicted. Only the twin-crafted cells count, so it is supported."""
    n = 100
    idx = np.arange(n)
    twin = [cell("ANN (twin)", "SNN-BP", idx < 60), cell("SNN-BP (twin)", "SNN-BP", idx < 55),
            cell("ANN (twin)", "ANN", idx < 20), cell("SNN-BP (twin)", "ANN", idx < 25)]
    other = [cell("SNN-BP", "SNN-BP", np.zeros(n, bool), source_seed=0),      # white-box: crafted on the target
             cell("ANN", "SNN-BP", np.zeros(n, bool), source_seed=0),         # same seed, not a twin
             cell("ANN", "ANN", idx < 40, source_seed=0)]
    S = R.StudyResults(attack_source=R.AttackSourceResults(cells=twin + other, eps_255=8.0))
    row = by_id(S)["E2"]
    assert row.verdict == S_ and row.effect == pytest.approx(35.0)           # worst case 55 % vs 20 %
    assert "chapter 5" in row.measured and "ANN (twin), SNN-BP (twin)" in row.measured
    # the same comparison with the white-box cell in SNN-BP's worst case would be contradicted
    with_wb = claims.judge_pair("A more robust than B", np.zeros(n, bool), idx < 20)
    assert with_wb.verdict() == C_
    # without chapter 5 the claim falls back to chapter 4's black-box row, and says so
    S = R.StudyResults(training_method=tm(tm_row("SNN-BP", idx < 60), tm_row("ANN", idx < 20)))
    assert "chapter 4; chapter 5 not run" in by_id(S)["E2"].measured


def test_seeds_are_pooled_by_mantel_haenszel_and_listed():
    a0, b0 = pair_vectors(n11=30, n10=6, n01=1, n00=63)
    a1, b1 = pair_vectors(n11=30, n10=5, n01=2, n00=63)
    S = R.StudyResults(training_method=tm(tm_row("SNN-BP", a0, seed=0), tm_row("ANN", b0, seed=0),
                                          tm_row("SNN-BP", a1, seed=1), tm_row("ANN", b1, seed=1)))
    row = by_id(S)["E2"]
    assert row.seeds == [0, 1] and "Mantel-Haenszel" in row.test and row.n_images == 200
    assert row.p_value == pytest.approx(mcnemar_p(11, 3))
    assert "seed 0 +5.0" in row.measured and "seed 1 +3.0" in row.measured and "directions agree" in row.measured


def test_whitebox_claims_prefer_the_worst_case_of_chapter_6():
    idx = np.arange(24)

    def report(kind, worst):
        clean = outcome(np.ones(24, bool), ids=idx + 100)
        return R.MaskingReport(kind=kind, n=24, eps_255=8.0, clean=accuracy_from_counts(24, 24), per_attack={},
                               worst_case=accuracy_from_counts(int(worst.sum()), 24), strongest={}, unique={},
                               seconds={}, acc_by_eps={}, checks=[], badge="", paper_attack="p",
                               outcomes={"clean": clean, "worst_case_whitebox": outcome(worst, ids=idx + 100)})
    gm = R.GradientMaskingResults(worst_case={"SNN-BP": report("SNN-BP", idx < 2), "ANN": report("ANN", idx < 20),
                                              "SNN-conv": report("SNN-conv", idx < 1)}, eps_255=8.0)
    # chapter 4's papers' attack says SNN-BP is far ahead; the worst case says it is behind
    S = R.StudyResults(gradient_masking=gm, parameters={"model_seeds": [3, 4]}, training_method=tm(
        tm_row("SNN-BP", vector(90, 100), setting="white-box"), tm_row("ANN", vector(10, 100), setting="white-box")))
    row = by_id(S)["E4"]
    assert "chapter 6" in row.measured and row.n_images == 24 and row.seeds == [3]
    assert row.verdict == C_ and row.effect == pytest.approx(100 * (2 - 20) / 24)
    S.gradient_masking = None
    row = by_id(S)["E4"]
    assert "chapter 4; chapter 6 not run" in row.measured and row.verdict == S_


def test_whitebox_claims_prefer_chapter_6s_cascades_on_every_image_and_both_seeds():
    """The cascades (every attacked image, both seeds) beat the full suite's few audit images of one seed; only
    the stages crafted on the target count (a transfer that fools more must not enter a white-box claim)."""
    n = 100
    cascade = lambda kind, s, wb, worst: cascade_record(kind, s, np.ones(n, bool), wb, worst)
    idx = np.arange(n)
    cascades = [cascade("SNN-BP", s, idx < 30, idx < 5) for s in (0, 1)] + \
               [cascade("ANN", s, idx < 10, idx < 10) for s in (0, 1)]
    gm = R.GradientMaskingResults(worst_case={}, eps_255=8.0, cascades=cascades)
    row = by_id(R.StudyResults(gradient_masking=gm))["E4"]
    assert "cascade worst case over the attacks crafted on each target itself" in row.measured
    assert row.seeds == [0, 1] and row.n_images == 2 * n
    assert row.effect == pytest.approx(20.0) and row.verdict == S_       # 30 % vs 10 % per seed: the white-box part
    assert gm.cascade("ANN", 1) is cascades[3] and gm.cascade("ANN", 2) is None
    # the record survives JSON
    back = R.from_dict(R.GradientMaskingResults, json.loads(json.dumps(R.to_dict(gm))))
    assert back.cascades[0].stages[2].whitebox is False
    assert (back.cascades[0].outcomes["worst_case_whitebox"].majority() == (idx < 30)).all()


# ------------------------------------------------------------------------------------------- every claim
def full_study():
    """All chapters with per-image outcomes (100 images, nested correct sets) so each verdict is known."""
    n = 100
    v = lambda k: vector(k, n)
    clean = {"ANN": v(95), "SNN-BP": v(80), "SNN-conv": v(60)}
    rows = []
    for kind, wb, bb in (("SNN-BP", 30, 60), ("ANN", 30, 20), ("SNN-conv", 5, 20)):
        for attack in ("FGSM", "PGD"):
            for e in (8.0, 16.0, 32.0):
                rows.append(tm_row(kind, v(wb), clean[kind], attack, "white-box", e, zero_grad=0.0))
                rows.append(tm_row(kind, v(bb), clean[kind], attack, "black-box", e))
    cells = []
    for attack in ("FGSM", "PGD"):
        for target, accs in (("SNN-BP", {"ANN": 60, "SNN-BP": 40, "SNN-conv": 70}),
                             ("ANN", {"ANN": 20, "SNN-BP": 30, "SNN-conv": 35}),
                             ("SNN-conv", {"ANN": 10, "SNN-BP": 15, "SNN-conv": 12})):
            for src, k in accs.items():
                cells.append(cell(f"{src} (twin)", target, v(k), attack, clean=clean[target]))
            cells.append(cell(target, target, v(0), attack, source_seed=0, clean=clean[target]))
    disc = [t_row("SNN-BP", 4, v(60)), t_row("SNN-BP", 8, v(45)), t_row("SNN-BP", 16, v(30)),
            t_row("SNN-BP", 8, v(50), sweep=R.TRAINED_T),
            t_row("SNN-BP", 16, v(60), bits=1, sweep="bits"),
            t_row("SNN-conv", 4, v(40)), t_row("SNN-conv", 16, v(40)),
            t_row("SNN-conv", 16, v(20), bits=1, sweep="bits")]
    leak = R.LeakResults(rows=[scored_row(R.LeakRow, v(60), kind="SNN-BP", leak=0.9),
                               scored_row(R.LeakRow, v(30), kind="SNN-BP", leak=1.0)], eps_255=8.0, perturbation={
        "ANN": [R.LayerPerturbation(mean=0.5, low=0.45, high=0.55, n=100)],
        "SNN-BP leak 1": [R.LayerPerturbation(mean=0.2, low=0.15, high=0.25, n=100)]})
    return R.StudyResults(
        models=R.ModelsResults(clean=[clean_row(k, b) for k, b in clean.items()], conv_vs_T=[], thresholds={},
                               snn_bp_thresholds={}, paper_table_I={}),
        discretization=R.DiscretizationResults(rows=disc, eps_255=8.0), leak=leak, training_method=tm(*rows),
        attack_source=R.AttackSourceResults(cells=cells, eps_255=8.0), scale_notes={"01_models": "test scale"},
        parameters={"equivalence_margin": 3, "model_seeds": [0, 1]})


def test_every_claim_evaluates_from_records_with_the_expected_verdict():
    rows = claims.evaluate_claims(full_study())
    got = {r.id: r.verdict for r in rows}
    assert got == {"E1": S_, "E2": S_, "E3": NT, "E4": I_, "E5": S_, "E6": S_, "E6b": S_, "E7": S_, "E8a": S_,
                   "E8b": C_, "E9": S_, "E10": S_, "E11": S_, "I1": S_, "I2": S_, "I3": S_}
    assert [r.id for r in rows] == [c[0] for c in claims.CLAIMS]
    assert claims.count_verdicts(rows) == {"supported": 13, "contradicted": 1, "inconclusive": 1,
                                           "not testable": 1, "not run": 0}
    r = {x.id: x for x in rows}
    assert [x.id for x in rows if x.primary] == list(claims.PRIMARY)
    for x in rows:
        if x.primary and x.p_value is not None:
            assert x.p_adjusted >= x.p_value
    assert r["E10"].test == "descriptive (not a paired test yet)"
    assert r["E3"].measured == claims.CIFAR100_REASON
    assert r["I1"].scale == "test scale"
    # E4: identical white-box outcomes on 100 images; non-inferiority at 3 points needs more images
    assert r["E4"].effect == 0.0 and r["E4"].p_value > 0.05 and "non-inferiority" in r["E4"].test
    # E1/E2 on chapter 5's twins: SNN-BP's worst case is 40 %, the ANN's 20 %
    assert r["E2"].effect == pytest.approx(20.0) and "chapter 5" in r["E2"].measured
    # E8b: 1-bit 20 % -> 8-bit 40 % (effect: last level - first): accuracy rises with the bits, against the claim
    assert r["E8b"].effect == pytest.approx(20.0) and r["E8b"].p_value < 0.05
    # every numeric field survives the summary file
    summary = R.SummaryFile(notebook="07_summary", profile="t", claims=rows, counts=claims.count_verdicts(rows),
                            snnlib_version="0", torch_version="0", machine={}, git_commit=None, timestamp_utc="t")
    back = R.from_dict(R.SummaryFile, json.loads(json.dumps(R.to_dict(summary), allow_nan=False)))
    assert back.claims == rows


def _images(adv, noise):
    return R.PerturbationImages(image_ids=list(range(len(adv))), adversarial=list(adv), noise=list(noise))


def test_e10_is_a_paired_test_of_the_noise_normalised_perturbation():
    """E10 per image: q = perturbation under the attack / under noise of the same size; each SNN's q against the
    ANN's on the same images (Wilcoxon), every SNN must hold; undefined values drop out image by image."""
    rng = np.random.default_rng(0)
    n = 60
    ann_adv = 0.6 + 0.05 * rng.standard_normal(n)
    noise = 0.2 + 0.02 * rng.random(n)
    S = full_study()
    S.leak.perturbation["SNN-conv (IF)"] = S.leak.perturbation["SNN-BP leak 1"]
    S.leak.perturbation_images = {"ANN": _images(ann_adv, noise),
                                  "SNN-BP leak 1": _images(ann_adv * 0.5, noise),
                                  "SNN-conv (IF)": _images([None] * 5 + list(ann_adv[5:] * 0.7), noise)}
    r = by_id(S)["E10"]
    assert r.verdict == S_ and r.test == "Wilcoxon signed-rank per SNN vs the ANN (all must hold)"
    assert r.p_value < 1e-6 and "on 55 images" in r.measured and "on 60 images" in r.measured
    # one SNN no different from the ANN (its q equals the ANN's up to noise): inconclusive, with the MDE stated
    S.leak.perturbation_images["SNN-conv (IF)"] = _images(ann_adv + 0.01 * rng.standard_normal(n), noise)
    r = by_id(S)["E10"]
    assert r.verdict == I_ and "smallest detectable median difference" in r.measured
    # every SNN amplifies the attack more than the ANN does: contradicted
    S.leak.perturbation_images["SNN-BP leak 1"] = _images(ann_adv * 1.5, noise)
    S.leak.perturbation_images["SNN-conv (IF)"] = _images(ann_adv * 1.3, noise)
    assert by_id(S)["E10"].verdict == C_
    # normalising matters: an SNN whose raw perturbation is lower but whose noise response is lower still
    S.leak.perturbation_images["SNN-BP leak 1"] = _images(ann_adv * 0.5, noise * 0.25)
    S.leak.perturbation_images["SNN-conv (IF)"] = _images(ann_adv * 0.5, noise * 0.25)
    assert by_id(S)["E10"].verdict == C_
    # too few defined images: not testable
    S.leak.perturbation_images["SNN-conv (IF)"] = _images([None] * (n - 5) + [0.1] * 5, noise)
    assert by_id(S)["E10"].verdict == NT


def test_models_at_chance_are_excluded_everywhere():
    S = full_study()
    for row in S.models.clean:
        row.outcomes = outcome(vector(10, 100))
        row.accuracy = accuracy_from_counts(10, 100)
    rows = by_id(S)
    assert rows["I1"].verdict == NT and "ANN (clean 10/100, not above chance)" in rows["I1"].excluded
    assert rows["E10"].verdict == NT
    assert claims.chance_level_models(S) == ["ANN", "SNN-BP", "SNN-conv"]


def test_the_rule_table_and_the_claims_table():
    names = {r.name for r in claims.VERDICT_RULES}
    covered = {c for r in claims.VERDICT_RULES for c in r.claims}
    assert covered == {c[0] for c in claims.CLAIMS} and len(names) == len(claims.VERDICT_RULES)
    t = tables.verdict_rules_table()
    assert len(t.rows) == len(claims.VERDICT_RULES) and "above chance" in t.caption
    assert "McNemar" in t.markdown()
    rows = claims.evaluate_claims(full_study())
    ct = tables.claims_table(rows)
    assert ct.columns[:4] == ["id", "paper", "claim", "verdict"] and "p (Holm)" in ct.columns
    e2 = next(x for x in ct.rows if x[0] == "E2")
    assert e2[3] == "✓ supported" and e2[5].startswith("+20.0 [") and "Holm" in e2[6] and e2[9] == "0"
    e3 = next(x for x in ct.rows if x[0] == "E3")
    assert e3[3] == "⊘ not testable" and e3[5] == ""
    # the table stays short enough to read across: what was measured is in the sentences, every row's of it
    assert "measured" not in ct.columns and "Each claim in one sentence" in ct.caption
    statements = tables.claim_statements(rows)
    assert all(r.measured.rstrip(".") in statements for r in rows)
    # rows of a summary written before the new fields still render
    old = R.ClaimRow(id="E1", paper="P", claim="c", chapter="04", verdict="supported", measured="m", scale=None)
    assert tables.claims_table([old]).rows[0][4:10] == ["", "", "", "", "", ""]


def test_trend_is_descriptive_text():
    acc = accuracy_from_counts
    pts = [(8, acc(70, 100)), (16, acc(50, 100)), (32, acc(20, 100))]
    assert claims.trend(pts)["direction"] == "falls" and claims.trend(list(reversed(pts)))["direction"] == "falls"
    assert "→" in claims.trend(pts)["text"]
    assert claims.trend(pts[:1])["text"] == "fewer than two points"


def test_a_broken_results_file_is_an_error_not_not_run(tmp_path):
    write_study(tmp_path, study_files())
    data = (tmp_path / "04_training_method.json").read_text().replace('"adversarial"', '"adversarial_acc"', 1)
    (tmp_path / "04_training_method.json").write_text(data)
    with pytest.raises(R.RecordError) as e:
        claims.evaluate_claims(tmp_path)
    assert "04_training_method.json" in str(e.value) and "adversarial" in str(e.value)


def test_study_results_carry_the_run_parameters(tmp_path):
    files = study_files()
    S = R.StudyResults.from_files(files)
    assert S.parameters == files["01_models"].parameters
    del files["01_models"]
    assert R.StudyResults.from_files(files).parameters == files["02_discretization"].parameters
    assert R.StudyResults().parameters == {}
