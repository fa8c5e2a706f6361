"""Two runs' verdicts side by side (snnlib.study.replication, tables.replication_table)."""
import dataclasses
from pathlib import Path

import pytest

from snnlib.study import tables
from snnlib.study.records import ClaimRow
from snnlib.study.replication import compare_runs

PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "laptop"


def _row(cid, verdict, effect=None, low=None, high=None, primary=False):
    return ClaimRow(id=cid, paper="ECCV", claim=f"claim {cid}", chapter="05", verdict=verdict, measured="",
                    scale=None, effect=effect, ci_low=low, ci_high=high, primary=primary)


def test_compare_runs_pairs_claims_by_id_and_flags_flipped_verdicts_and_effects_outside_the_other_interval():
    a = [_row("E1", "supported", 5.0, 3.0, 7.0, primary=True), _row("E2", "inconclusive", 1.0, -1.0, 3.0),
         _row("E3", "not testable")]
    b = [_row("E2", "inconclusive", 2.5, 0.5, 4.5), _row("E1", "inconclusive", 2.0, 0.0, 4.0, primary=True),
         _row("E9", "supported", 4.0, 1.0, 7.0)]
    reps = {r.id: r for r in compare_runs(a, b)}
    assert [r.id for r in compare_runs(a, b)] == ["E1", "E2", "E3", "E9"]          # A's order, then B's extra
    assert not reps["E1"].same_verdict and reps["E1"].effects_agree is False       # 2.0 outside [3, 7]
    assert reps["E2"].same_verdict and reps["E2"].effects_agree is True            # 2.5 in [-1, 3], 1.0 in [0.5, 4.5]
    assert reps["E3"].b is None and not reps["E3"].same_verdict and reps["E3"].effects_agree is None
    assert reps["E9"].a is None and reps["E9"].b.verdict == "supported"
    t = tables.replication_table(list(reps.values()), "run A", "run B")
    assert t.caption.startswith("A: run A; B: run B. The same verdict for 1 of 2 claims (0 of 1 primary)")
    assert "E1 (supported → inconclusive)" in t.caption
    e1 = t.rows[0]
    assert e1[0] == "E1 (primary)" and e1[3] == "+5.0 [+3.0, +7.0]" and e1[6:] == ["**no**", "**no**"]
    assert t.rows[2][4] == "not in this run"


def test_compare_runs_refuses_what_is_neither_a_folder_nor_claim_rows():
    with pytest.raises(TypeError, match="ClaimRow"):
        compare_runs([{"id": "E1"}], [])


@pytest.mark.skipif(not (PUBLISHED / "07_summary.json").exists(), reason="no published laptop run")
def test_a_run_compared_with_itself_replicates_every_verdict_and_effect():
    reps = compare_runs(PUBLISHED, PUBLISHED)
    assert reps and all(r.same_verdict for r in reps)
    assert all(r.effects_agree in (True, None) for r in reps) and any(r.effects_agree for r in reps)
    shifted = [dataclasses.replace(r.b, effect=r.b.ci_high + 1.0) if r.b.effect is not None and r.b.ci_high
               is not None else r.b for r in reps]
    assert not any(r.effects_agree for r in compare_runs([r.a for r in reps], shifted))


@pytest.mark.skipif(not (PUBLISHED / "07_summary.json").exists(), reason="no published laptop run")
def test_compare_command_prints_the_table_and_exits_0_only_when_every_verdict_matches(tmp_path, capsys, monkeypatch):
    from snnlib.study import cli
    assert cli.main(["compare", str(PUBLISHED), str(PUBLISHED)]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "The same verdict for 16 of 16 claims" in out and "laptop profile, cpu: " in out and "| E4 (primary) |" in out
    assert cli.main(["compare", str(PUBLISHED), str(tmp_path / "missing")]) == cli.EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    from snnlib.study import replication
    reps = replication.compare_runs(PUBLISHED, PUBLISHED)
    flipped = [dataclasses.replace(r, b=dataclasses.replace(r.b, verdict="contradicted")) if r.id == "E4" else r
               for r in reps]
    monkeypatch.setattr(replication, "compare_runs", lambda a, b: flipped)
    assert cli.main(["compare", str(PUBLISHED), str(PUBLISHED)]) == cli.EXIT_FAILED
    assert "E4 (supported → contradicted)" in capsys.readouterr().out


@pytest.mark.skipif(not (PUBLISHED / "07_summary.json").exists(), reason="no published laptop run")
def test_the_summary_shows_each_compared_run_and_refuses_a_missing_folder(tmp_path, capsys):
    found = tables.replication_tables(PUBLISHED, [PUBLISHED])
    assert len(found) == 1 and "laptop profile" in found[0].caption and len(found[0].rows) >= 16
    assert tables.replication_tables(PUBLISHED, []) == []
    with pytest.raises(FileNotFoundError, match="compare_with: results folder .*missing does not exist"):
        tables.replication_tables(PUBLISHED, [tmp_path / "missing"])
    assert tables.run_label(tmp_path) == str(tmp_path)          # no chapter 1 record: just the folder
    tables.display_replications(PUBLISHED, [])
    assert "No other run is compared here" in capsys.readouterr().out


@pytest.mark.skipif(not (PUBLISHED / "07_summary.json").exists(), reason="no published laptop run")
def test_compare_notes_when_the_runs_used_different_profiles(tmp_path, capsys):
    import json
    import shutil
    from snnlib.study import cli
    other = tmp_path / "other"
    shutil.copytree(PUBLISHED, other)
    rec = json.loads((other / "01_models.json").read_text())
    rec["profile"] = "paper"
    (other / "01_models.json").write_text(json.dumps(rec))
    assert cli.main(["compare", str(PUBLISHED), str(other)]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "different profiles (laptop, paper)" in err and "mixes" not in err
    for chapter, digest in (("01_models", "aaaa"), ("03_leak", "bbbb")):     # two chapters, two training runs
        rec = json.loads((other / f"{chapter}.json").read_text())
        rec["models"] = {"seed 0": {"ANN": digest}}
        (other / f"{chapter}.json").write_text(json.dumps(rec))
    assert cli.main(["compare", str(PUBLISHED), str(other)]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert f"note: {other} mixes trained models from different training runs (seed 0 ANN: 01_models used aaaa" in err
    assert cli.main(["compare", str(PUBLISHED), str(PUBLISHED)]) == cli.EXIT_OK
    assert "different profiles" not in capsys.readouterr().err
