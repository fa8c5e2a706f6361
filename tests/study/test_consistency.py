"""The clean-outcome check that every chapter of a run scored the same trained models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snnlib.robustness.outcomes import Outcomes
from snnlib.study import records as R
from snnlib.study import tables
from snnlib.study.consistency import base_clean_sets, clean_agreement

from study_factories import acc, attack_record, chapter_file, discretization_row, leak_row

ROOT = Path(__file__).resolve().parents[2]


def _clean(correct, ids=None, eval_seed=0):
    correct = np.asarray(correct, dtype=bool)
    ids = np.arange(correct.shape[-1]) if ids is None else np.asarray(ids)
    return Outcomes(image_ids=ids, correct=correct, eval_seed=eval_seed)


REF = np.random.default_rng(0).random((5, 40)) > 0.4          # SNN-BP seed 0: 5 draws of 40 images


def _study(attack_source_clean, leak_clean=None, params=None):
    models = R.ModelsResults(clean=[R.CleanRow(kind="SNN-BP", seed=0, T=16, leak=0.99, accuracy=acc(60),
                                               outcomes=_clean(REF))],
                             conv_vs_T=[], thresholds={}, snn_bp_thresholds={}, paper_table_I={})
    cell = R.TransferCell(attack="PGD", source="ANN (twin)", source_kind="ANN", source_seed=1, target="SNN-BP",
                          result=attack_record(outcomes={"clean": attack_source_clean}), target_seed=0)
    leak = R.LeakResults(rows=[leak_row(0.99), leak_row(1.0)], eps_255=8.0, perturbation={})
    leak.rows[0].pgd_wb.outcomes = {"clean": leak_clean} if leak_clean is not None else None
    leak.rows[1].pgd_wb.outcomes = {"clean": _clean(~REF)}       # another leak: another model, never compared
    disc = R.DiscretizationResults(rows=[discretization_row(T=8)], eps_255=8.0)    # not the base T: skipped
    disc.rows[0].pgd_wb.outcomes = {"clean": _clean(~REF)}
    return R.StudyResults(models=models, attack_source=R.AttackSourceResults(cells=[cell], eps_255=8.0),
                          leak=leak, discretization=disc,
                          parameters=params or {"T_bp": 16, "T_conv": 64, "leak_bp": 0.99})


def test_the_same_model_agrees_draw_by_draw_on_the_shared_images():
    ids = np.arange(10, 40)[::-1]                              # a subset, in another order
    study = _study(_clean(REF[:, ids], ids), leak_clean=_clean(REF[:, :20], np.arange(20)))
    rows = clean_agreement(study)
    assert [(a.chapter, a.kind, a.seed, a.reference, a.images, a.level, a.agree, a.compared) for a in rows] == [
        ("03_leak", "SNN-BP", 0, "01_models", 20, "draws", 100, 100),
        ("05_attack_source", "SNN-BP", 0, "01_models", 30, "draws", 150, 150)]
    assert {s.chapter for s in base_clean_sets(study)} == {"01_models", "03_leak", "05_attack_source"}


def test_another_training_run_disagrees_and_the_table_says_so(tmp_path):
    other = REF.copy()
    other[:, 3] = ~other[:, 3]                                 # one image flips in every draw
    study = _study(_clean(other))
    (a,) = clean_agreement(study)
    assert (a.agree, a.compared) == (195, 200) and a.share == 0.975
    # different draw counts or evaluation seeds: each image's majority vote is compared instead
    (m,) = clean_agreement(_study(_clean(REF[:1], eval_seed=7)))
    assert m.level == "majority" and m.compared == 40
    assert m.agree == int((REF.sum(0) * 2 > 5).__eq__(REF[0]).sum())
    # the summary's table, from results files
    for nb, res in (("01_models", study.models), ("05_attack_source", study.attack_source)):
        f = chapter_file(nb, res)
        f.parameters.update(T_conv=64, leak_bp=0.99)
        R.write_record(tmp_path, f)
    t = tables.model_consistency_table(tmp_path)
    assert t.rows == [["05_attack_source", "SNN-BP (seed 0)", "200 image-draws", "195", "97.50 %"]]
    assert t.caption.startswith("**Some chapters scored other trained models**")
    assert "05_attack_source SNN-BP (seed 0): 5 of 200" in t.caption


#: every results set committed under results/ (the published run and any kept beside it)
PUBLISHED_RUNS = sorted(p.parent.name for p in (ROOT / "results").glob("*/01_models.json"))


def test_the_published_laptop_run_is_among_the_checked_runs():
    assert "laptop" in PUBLISHED_RUNS


@pytest.mark.parametrize("run", PUBLISHED_RUNS)
def test_the_published_chapters_scored_the_same_models(run):
    """A published run is one run: a chapter re-run alone with other trained models fails here."""
    from snnlib.study.records import load_study
    from snnlib.study.results import model_mismatches
    folder = ROOT / "results" / run
    study = load_study(folder)
    assert base_clean_sets(study), f"results/{run} has no per-image clean outcomes to compare"
    rows = clean_agreement(study)
    assert rows, "no two chapters scored the same model"
    assert [f"{a.chapter} {a.kind} seed {a.seed}" for a in rows if a.agree < a.compared] == []
    assert model_mismatches(folder) == []


def test_a_chapter_refuses_models_other_than_those_its_folder_recorded(tmp_path):
    """Before a chapter spends hours on attacks, its freshly built models are checked against the folder's
    01_models record (same recipe): other weights, from another machine, stop it with a clear message."""
    from types import SimpleNamespace

    from snnlib.study.consistency import ModelMismatch, check_recorded_models, recorded_model_problems
    from snnlib.study.pipeline import PIPELINE_KEYS

    params = {k: f"value of {k}" for k in PIPELINE_KEYS}
    params["model_seeds"] = [0, 1]
    models = R.ModelsResults(clean=[], conv_vs_T=[], thresholds={}, paper_table_I={},
                             snn_bp_thresholds={"seed 0": [4.354, 1.3468], "seed 1": [4.0, 1.25]})
    f = chapter_file("01_models", models)
    f.parameters = dict(params)
    R.write_record(tmp_path, f)

    def model_set(seed, th, prints=None):
        return SimpleNamespace(seed=seed, info={"snn_bp_thresholds": th}, fingerprint=lambda: prints or {})

    same = [model_set(0, [4.354, 1.3468]), model_set(1, [4.0, 1.25])]
    assert recorded_model_problems(tmp_path, params, same) == []
    check_recorded_models(tmp_path, params, same)
    other = [model_set(0, [4.0925, 1.6219]), model_set(1, [4.0, 1.25])]
    assert recorded_model_problems(tmp_path, params, other) == [
        "seed 0: SNN-BP thresholds [4.093, 1.622], 01_models recorded [4.354, 1.347]"]
    with pytest.raises(ModelMismatch, match="this machine trains other weights .* Re-run the whole profile"):
        check_recorded_models(tmp_path, params, other)
    # another recipe (e.g. -p epochs_ann=3) or no record: nothing to compare
    assert recorded_model_problems(tmp_path, dict(params, epochs_ann=3), other) == []
    assert recorded_model_problems(tmp_path / "empty", params, other) == []
    # where 01_models recorded the weights' fingerprints, those decide
    f.models = {"seed 0": {"ANN": "a" * 16, "SNN-BP": "b" * 16}}
    R.write_record(tmp_path, f)
    assert recorded_model_problems(tmp_path, params, [model_set(0, [9.0], {"ANN": "a" * 16, "SNN-BP": "b" * 16})]) == []
    assert recorded_model_problems(tmp_path, params, [model_set(0, [4.354, 1.3468], {"ANN": "c" * 16,
                                                                                     "SNN-BP": "b" * 16})]) == [
        "seed 0: the weights of ANN differ from those 01_models recorded"]
