"""The typed results records: build each, round-trip it through JSON, fail loudly on a missing or renamed field."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from snnlib.files import to_jsonable
from snnlib.study import records as R
from snnlib.study.claims import CLAIMS

from study_factories import acc, chapter_results, study_files, write_study

ROOT = Path(__file__).resolve().parents[2]


def canonical(record) -> str:
    return json.dumps(to_jsonable(R.to_dict(record)), sort_keys=True)


@pytest.mark.parametrize("notebook", sorted(R.CHAPTER_RESULTS))
def test_every_chapter_file_round_trips_through_json(tmp_path, notebook):
    rec = study_files()[notebook]
    assert isinstance(rec.results, R.CHAPTER_RESULTS[notebook])
    path = R.write_record(tmp_path, rec)
    assert path == tmp_path / f"{notebook}.json"
    assert json.loads(path.read_text())["schema_version"] == R.SCHEMA_VERSION
    back = R.read_chapter(path, notebook)
    assert type(back.results) is type(rec.results)
    assert canonical(back) == canonical(rec)


def test_round_trip_keeps_types_nan_and_outcomes(tmp_path):
    files = study_files()
    write_study(tmp_path, files)
    S = R.load_study(tmp_path)
    leak = S.leak.perturbation["SNN-BP leak 1"][0]
    assert math.isnan(leak.mean) and leak.n == 0                    # NaN -> null -> NaN
    assert isinstance(S.models.conv_vs_T[0], R.TimestepPoint)
    row = S.training_method.rows[0].result
    assert isinstance(row.adversarial, type(acc(1))) and row.adversarial.correct == 30
    orig = files["04_training_method"].results.rows[0].result.outcomes["adversarial"]
    got = row.outcomes["adversarial"]
    assert np.array_equal(got.correct, orig.correct) and np.array_equal(got.image_ids, orig.image_ids)
    assert S.gradient_masking.worst_case["SNN-BP"].checks[0].value == {"seeds": [0, 1], "spread": 0.1}
    assert S.discretization.rows[1].bits == 1 and S.discretization.rows[0].bits is None
    assert S.scale_notes["03_leak"] == "test scale" and S.num_classes == 10


def test_summary_file_round_trips(tmp_path):
    rec = R.SummaryFile(notebook="07_summary", profile="t", counts={"supported": 1},
                        claims=[R.ClaimRow(id="E1", paper="ECCV 2020", claim="c", chapter="04_training_method",
                                           verdict="supported", measured="m", scale=None)],
                        snnlib_version="0", torch_version="2", machine={}, git_commit="abc",
                        timestamp_utc="2026-01-01T00:00:00+00:00")
    back = R.from_json(R.write_record(tmp_path, rec))
    assert back == rec


def _damage(path: Path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("notebook, edit, words", [
    ("04_training_method", lambda d: d["results"]["rows"][0]["result"].pop("adversarial"),
     ["results.rows[0].result.adversarial", "missing field 'adversarial'", "AttackRecord"]),
    ("01_models", lambda d: d["results"]["clean"][1].update(acc=d["results"]["clean"][1].pop("accuracy")),
     ["results.clean[1]", "unknown field(s) ['acc']"]),
    ("06_gradient_masking", lambda d: d["results"]["worst_case"]["SNN-BP"].pop("paper_attack"),
     ["results.worst_case.SNN-BP.paper_attack", "missing"]),
    ("02_discretization", lambda d: d["results"]["rows"][0].pop("sweep"), ["results.rows[0].sweep", "missing"]),
    ("03_leak", lambda d: d["results"]["rows"][0].update(leak="0.9"), ["results.rows[0].leak", "number"]),
    ("05_attack_source", lambda d: d.pop("scale_note"), ["scale_note", "missing field"]),
    ("05_attack_source", lambda d: d.update(schema_version=99), ["schema_version 99"]),
    ("04_training_method", lambda d: d["results"]["clean"]["SNN-BP"].pop("low"),
     ["results.clean.SNN-BP.low", "Accuracy"]),
])
def test_missing_or_renamed_field_names_the_file_and_the_field(tmp_path, notebook, edit, words):
    path = R.write_record(tmp_path, study_files()[notebook])
    _damage(path, edit)
    with pytest.raises(R.RecordError) as e:
        R.read_chapter(path)
    msg = str(e.value)
    assert str(path) in msg
    for w in words:
        assert w in msg, (w, msg)


def test_a_missing_chapter_file_is_not_run_but_a_broken_one_is_an_error(tmp_path):
    files = study_files()
    del files["03_leak"]
    write_study(tmp_path, files)
    S = R.load_study(tmp_path)
    assert S.leak is None and S.chapter("03_leak") is None and S.models is not None
    (tmp_path / "02_discretization.json").write_text("{not json")
    with pytest.raises(R.RecordError, match="02_discretization.json: not valid JSON"):
        R.load_study(tmp_path)


def test_chapter_file_of_the_wrong_chapter_is_refused(tmp_path):
    path = R.write_record(tmp_path, study_files()["01_models"])
    with pytest.raises(R.RecordError, match="expected '03_leak'"):
        R.read_chapter(path, "03_leak")


def test_attack_record_from_robustness_result_keeps_every_field():
    import torch
    from snnlib.attacks import FGSM
    from snnlib.robustness import evaluate_attack

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    x, y = torch.rand(6, 3, 32, 32), torch.arange(6) % 10
    res = evaluate_attack(model, FGSM(model, 8 / 255, seed=0), x, y, eval_seed=0)
    rec = R.AttackRecord.from_result(res, "fgsm")
    d = res.to_dict()
    assert rec.attack_name == "FGSM" and rec.adversarial == res.adversarial and rec.clean == res.clean
    assert rec.zero_grad_share == res.zero_grad_share and rec.flags_ok == res.flags_ok and rec.whitebox
    assert {k: v for k, v in R.to_dict(rec).items() if k not in ("attack_name", "outcomes")} == \
        json.loads(json.dumps(d))
    assert R.AttackRecord.from_result(res, "fgsm", whitebox=False).whitebox is False


def test_lookups_on_records():
    res = chapter_results()
    tm = res["04_training_method"]
    assert tm.adversarial("SNN-BP", "PGD", "black-box", 8) == acc(30)
    assert tm.find("SNN-BP", "PGD", "white-box", 8.0) is None
    assert tm.budget_series("SNN-BP", "PGD", "black-box") == [(0.0, acc(60)), (8.0, acc(30))]
    src = res["05_attack_source"]
    assert src.sources() == ["ANN (twin)"]
    assert src.matrix("PGD", ["SNN-BP"]) == [[acc(30)]]
    with pytest.raises(R.RecordError, match="no PGD cell from 'ANN \\(twin\\)' to 'ANN'"):
        src.matrix("PGD", ["ANN"])
    d = res["02_discretization"]
    assert d.bits_series("SNN-BP", "pgd_wb") == [(1.0, acc(30))]        # no unquantised point at T=16
    d.rows.append(R.DiscretizationRow(**{**vars(d.rows[0]), "T": 16}))
    assert [b for b, _ in d.bits_series("SNN-BP", "clean")] == [8.0, 1.0]
    assert [x for x, _ in R.series(d.rows, "T", "clean", sweep="T")] == [8, 16]
    with pytest.raises(ValueError, match="entry must be"):
        d.rows[0].entry("pgd")
    m = res["06_gradient_masking"].worst_case["SNN-BP"]
    assert m.paper == acc(3, 24) and [e for e, _ in m.eps_series()] == [8.0, 16.0]
    assert res["01_models"].clean_accuracy("SNN-BP") == acc(40) and res["01_models"].clean_accuracy("X") is None


@pytest.mark.parametrize("profile", ["laptop", "smoke"])
def test_committed_results_load(profile):
    """The committed reference results (written before the schema had a version) read as records."""
    d = ROOT / "results" / profile
    if not d.is_dir():
        pytest.skip(f"results/{profile} not present")
    S = R.load_study(d)
    for nb in R.CHAPTER_RESULTS:
        assert S.chapter(nb) is not None, nb
    # every attack (FGSM and PGD, and R-FGSM and BIM where the profile runs them) x 6 sources x 3 targets, once per
    # target seed: no cell missing, none twice
    cells = S.attack_source.cells
    attacks = {c.attack for c in cells}
    seeds = {c.target_seed for c in cells}
    assert len(S.training_method.rows) > 0 and {"FGSM", "PGD"} <= attacks
    assert len(cells) == len(attacks) * 6 * 3 * len(seeds)
    assert len({(c.attack, c.source, c.target, c.target_seed) for c in cells}) == len(cells)
    summary = R.from_json(d / "07_summary.json")
    assert isinstance(summary, R.SummaryFile)
    ids = [c.id for c in summary.claims]
    assert len(ids) == len(set(ids)) and set(ids) <= {cid for cid, *_ in CLAIMS}, "unknown claim: re-run the summary"
