import json
import math

import pytest

from snnlib.study import claims
from snnlib.stats import accuracy_from_counts


def acc(k, n):
    return accuracy_from_counts(k, n).to_dict()


def test_compare_and_verdicts_follow_interval_separation():
    hi, lo = acc(80, 100), acc(40, 100)
    assert claims.compare(hi, lo) == "greater"
    assert claims.compare(lo, hi) == "less"
    assert claims.compare(acc(50, 100), acc(55, 100)) == "overlap"
    assert claims._verdict_greater(hi, lo, "a", "b")[0] == claims.SUPPORTED
    assert claims._verdict_greater(lo, hi, "a", "b")[0] == claims.CONTRADICTED
    v, text = claims._verdict_greater(acc(50, 100), acc(55, 100), "a", "b")
    assert v == claims.INCONCLUSIVE and "images per model" in text


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
    assert claims.trend(list(reversed([(x, a) for x, a in pts])))["direction"] == "falls"  # sorted by x
    assert claims.trend([(8, acc(20, 100)), (32, acc(70, 100))])["direction"] == "rises"
    assert claims.trend([(8, acc(50, 100)), (32, acc(52, 100))])["direction"] == "flat"


def _write(tmp_path, stem, results, dataset="cifar10"):
    (tmp_path / f"{stem}.json").write_text(json.dumps(dict(results=results, parameters=dict(dataset=dataset),
                                                           scale_note="test scale")))


def _tm_rows(bp_bb, ann_bb):
    rows = []
    for kind, a in (("SNN-BP", bp_bb), ("ANN", ann_bb)):
        for attack in ("FGSM", "PGD"):
            rows.append(dict(kind=kind, attack=attack, setting="black-box", eps_255=8.0, result=dict(adversarial=a)))
    return rows


def test_claims_from_results_files(tmp_path):
    good = [dict(kind=k, accuracy=acc(80, 100)) for k in ("ANN", "SNN-conv", "SNN-BP")]
    _write(tmp_path, "01_models", dict(clean=good))
    _write(tmp_path, "04_training_method", dict(rows=_tm_rows(acc(60, 100), acc(20, 100))))
    rows = {r["id"]: r for r in claims.evaluate_claims(tmp_path)}
    assert rows["E1"]["verdict"] == claims.SUPPORTED
    assert rows["E2"]["verdict"] == claims.SUPPORTED
    assert rows["E6"]["verdict"] == claims.NOT_RUN
    assert rows["E1"]["scale"] == "test scale"
    # the worst case from chapter 6 overrides the papers' attack
    _write(tmp_path, "06_gradient_masking", dict(worst_case={"SNN-BP": dict(worst_case=acc(5, 100)),
                                                             "ANN": dict(worst_case=acc(20, 100))}))
    rows = {r["id"]: r for r in claims.evaluate_claims(tmp_path)}
    assert rows["E1"]["verdict"] == claims.CONTRADICTED
    assert "worst case" in rows["E1"]["measured"]


def test_models_at_chance_make_every_verdict_inconclusive(tmp_path):
    chance = [dict(kind=k, accuracy=acc(11, 100)) for k in ("ANN", "SNN-conv", "SNN-BP")]
    _write(tmp_path, "01_models", dict(clean=chance))
    _write(tmp_path, "04_training_method", dict(rows=_tm_rows(acc(60, 100), acc(20, 100))))
    rows = {r["id"]: r for r in claims.evaluate_claims(tmp_path)}
    assert rows["E1"]["verdict"] == claims.INCONCLUSIVE
    assert "chance" in rows["E1"]["measured"]
