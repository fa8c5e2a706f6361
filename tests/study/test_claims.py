import math

import pytest

from snnlib.study import claims
from snnlib.study import records as R
from snnlib.stats import accuracy_from_counts

from study_factories import attack_record, discretization_row, leak_row, study_files, write_study


def acc(k, n):
    return accuracy_from_counts(k, n)


def test_compare_and_verdicts_follow_interval_separation():
    hi, lo = acc(80, 100), acc(40, 100)
    assert claims.compare(hi, lo) == "greater"
    assert claims.compare(lo, hi) == "less"
    assert claims.compare(acc(50, 100), acc(55, 100)) == "overlap"
    assert claims.verdict_greater(hi, lo, "a", "b")[0] == claims.SUPPORTED
    assert claims.verdict_greater(lo, hi, "a", "b")[0] == claims.CONTRADICTED
    v, text = claims.verdict_greater(acc(50, 100), acc(55, 100), "a", "b")
    assert v == claims.INCONCLUSIVE and "images per model" in text
    assert "50.0% [39.8, 60.2]" in text          # the one accuracy format


def test_images_needed_matches_formula_and_would_separate():
    a, b = acc(50, 100), acc(60, 100)
    n = claims.images_needed(a, b)
    assert n == math.ceil((2 * 1.96) ** 2 * 0.55 * 0.45 / 0.1 ** 2)
    # with that many images the same proportions give (nearly) separated intervals
    a2, b2 = acc(round(0.5 * n * 1.1), int(n * 1.1)), acc(round(0.6 * n * 1.1), int(n * 1.1))
    assert claims.compare(b2, a2) == "greater"
    assert claims.images_needed(a, a) is None


def test_trend_direction():
    pts = [(8, acc(70, 100)), (16, acc(50, 100)), (32, acc(20, 100))]
    assert claims.trend(pts)["direction"] == "falls"
    assert claims.trend(list(reversed(pts)))["direction"] == "falls"  # sorted by x
    assert claims.trend([(8, acc(20, 100)), (32, acc(70, 100))])["direction"] == "rises"
    assert claims.trend([(8, acc(50, 100)), (32, acc(52, 100))])["direction"] == "flat"


def _tm(bp_bb, ann_bb, eps=(8.0,)):
    rows = []
    for kind, a in (("SNN-BP", bp_bb), ("ANN", ann_bb)):
        for attack in ("FGSM", "PGD"):
            for e in eps:
                rows.append(R.TrainingMethodRow(kind=kind, attack=attack, setting="black-box", eps_255=e,
                                                result=attack_record(adversarial=a, eps_255=e)))
    return R.TrainingMethodResults(rows=rows, clean={k: acc(80, 100) for k in R.KINDS})


def _models(a):
    return R.ModelsResults(clean=[R.CleanRow(kind=k, seed=0, T=None, leak=None, accuracy=a) for k in R.KINDS],
                           conv_vs_T=[], thresholds={}, snn_bp_thresholds={}, paper_table_I={})


def _masking(worst):
    def report(kind, w):
        return R.MaskingReport(kind=kind, n=100, eps_255=8.0, clean=acc(80, 100), per_attack={"p": w},
                               worst_case=w, strongest={}, unique={}, seconds={}, acc_by_eps={}, checks=[],
                               badge="", paper_attack="p")
    return R.GradientMaskingResults(worst_case={k: report(k, w) for k, w in worst.items()}, eps_255=8.0)


def test_claims_from_records():
    S = R.StudyResults(models=_models(acc(80, 100)), training_method=_tm(acc(60, 100), acc(20, 100)),
                       scale_notes={"04_training_method": "test scale"})
    rows = {r.id: r for r in claims.evaluate_claims(S)}
    assert rows["E1"].verdict == claims.SUPPORTED
    assert rows["E2"].verdict == claims.SUPPORTED
    assert rows["E6"].verdict == claims.NOT_RUN               # chapter 2 did not run
    assert rows["E1"].scale == "test scale"
    # the worst case from chapter 6 overrides the papers' attack
    S.gradient_masking = _masking({"SNN-BP": acc(5, 100), "ANN": acc(20, 100), "SNN-conv": acc(5, 100)})
    rows = {r.id: r for r in claims.evaluate_claims(S)}
    assert rows["E1"].verdict == claims.CONTRADICTED
    assert "worst case" in rows["E1"].measured


def test_models_at_chance_make_every_verdict_inconclusive():
    S = R.StudyResults(models=_models(acc(11, 100)), training_method=_tm(acc(60, 100), acc(20, 100)))
    rows = {r.id: r for r in claims.evaluate_claims(S)}
    assert rows["E1"].verdict == claims.INCONCLUSIVE
    assert "chance" in rows["E1"].measured


def test_every_claim_evaluates_from_records_with_the_expected_verdict():
    """All chapters present: each claim reads its chapter's records (constructed so each verdict is known)."""
    hi, mid, lo = acc(90, 100), acc(60, 100), acc(20, 100)
    tm_rows = []
    for kind, wb, bb in (("SNN-BP", mid, hi), ("ANN", mid, lo), ("SNN-conv", lo, lo)):
        for attack in ("FGSM", "PGD"):
            for e in (8.0, 16.0, 32.0):
                for setting, a in (("white-box", wb), ("black-box", bb)):
                    tm_rows.append(R.TrainingMethodRow(kind=kind, attack=attack, setting=setting, eps_255=e,
                                                       result=attack_record(adversarial=a, eps_255=e)))
    disc = R.DiscretizationResults(rows=[
        discretization_row("SNN-BP", T=4, pgd_wb=hi), discretization_row("SNN-BP", T=16, pgd_wb=lo),
        discretization_row("SNN-BP", T=16, bits=1, sweep="bits", pgd_wb=hi),
        discretization_row("SNN-conv", T=4, pgd_wb=mid), discretization_row("SNN-conv", T=16, pgd_wb=mid),
        discretization_row("SNN-conv", T=16, bits=1, sweep="bits", pgd_wb=lo)], eps_255=8.0)
    leak = R.LeakResults(rows=[leak_row(0.9, pgd_wb=hi), leak_row(1.0, pgd_wb=lo)], eps_255=8.0, perturbation={
        "ANN": [R.LayerPerturbation(mean=0.5, low=0.45, high=0.55, n=100)],
        "SNN-BP leak 1": [R.LayerPerturbation(mean=0.2, low=0.15, high=0.25, n=100)]})
    cells = [R.TransferCell(attack="PGD", source=s, source_kind=s.split()[0], source_seed=1, target="SNN-BP",
                            result=attack_record(adversarial=a)) for s, a in (("ANN (twin)", hi),
                                                                               ("SNN-BP (twin)", lo))]
    S = R.StudyResults(models=R.ModelsResults(
        clean=[R.CleanRow(kind="ANN", seed=0, T=None, leak=None, accuracy=acc(95, 100)),
               R.CleanRow(kind="SNN-conv", seed=0, T=16, leak=1.0, accuracy=acc(60, 100)),
               R.CleanRow(kind="SNN-BP", seed=0, T=16, leak=0.99, accuracy=acc(90, 100))],
        conv_vs_T=[], thresholds={}, snn_bp_thresholds={}, paper_table_I={}),
        discretization=disc, leak=leak,
        training_method=R.TrainingMethodResults(rows=tm_rows, clean={k: hi for k in R.KINDS}),
        attack_source=R.AttackSourceResults(cells=cells, eps_255=8.0))
    got = {r.id: r.verdict for r in claims.evaluate_claims(S)}
    S_, C_, I_ = claims.SUPPORTED, claims.CONTRADICTED, claims.INCONCLUSIVE
    assert got == {"E1": S_, "E2": S_, "E4": I_, "E5": S_, "E6": S_, "E7": S_, "E8a": S_, "E8b": C_, "E9": S_,
                   "E10": S_, "E11": S_, "I1": S_, "I2": S_, "I3": S_}
    assert set(got) == {c[0] for c in claims.CLAIMS}
    assert claims.count_verdicts(claims.evaluate_claims(S)) == {"supported": 12, "contradicted": 1,
                                                                 "inconclusive": 1, "not run": 0}


def test_committed_results_give_the_committed_verdicts():
    """The reference run's records (schema version 0 files) give the verdicts its summary recorded."""
    import json
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    for profile in ("laptop", "smoke"):
        d = root / "results" / profile
        if not (d / "07_summary.json").is_file():
            pytest.skip(f"results/{profile} not present")
        old = {c["id"]: c for c in json.loads((d / "07_summary.json").read_text())["claims"]}
        for row in claims.evaluate_claims(d):
            assert row.verdict == old[row.id]["verdict"], (profile, row.id)


def test_a_broken_results_file_is_an_error_not_not_run(tmp_path):
    write_study(tmp_path, study_files())
    data = (tmp_path / "04_training_method.json").read_text().replace('"adversarial"', '"adversarial_acc"', 1)
    (tmp_path / "04_training_method.json").write_text(data)
    with pytest.raises(R.RecordError) as e:
        claims.evaluate_claims(tmp_path)
    assert "04_training_method.json" in str(e.value) and "adversarial" in str(e.value)
