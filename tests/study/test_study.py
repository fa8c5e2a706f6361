"""Tests of the study runner (python -m snnlib.study) with tiny dummy notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from snnlib.study import cli as study
from snnlib.study.profiles import NOTEBOOKS
from snnlib.study.cli import main, parse_param

# A dummy notebook: a parameters cell with smoke defaults, and a cell that writes the results
# JSON the way the real notebooks do.  No torch import, so each run costs ~1-2 s.
PARAMS_CELL = """profile = 'smoke'
results_dir = 'results/smoke'
T_bp = 8
T_list = [4, 8]
"""
BODY_CELL = """import time
from snnlib.study.results import write_result
_t0 = time.perf_counter()
{extra}
write_result(results_dir, {stem!r}, {{"parameters": {{"T_bp": T_bp, "profile": profile}},
             "T_bp": T_bp}}, wall_time_s=time.perf_counter() - _t0)
print("done", T_bp)
"""


def _notebook(stem: str, extra: str = "") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell(PARAMS_CELL)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {stem}"), params,
                nbformat.v4.new_code_cell(BODY_CELL.format(stem=stem, extra=extra))]
    return nb


@pytest.fixture
def book(tmp_path):
    d = tmp_path / "book"
    d.mkdir()
    for stem in NOTEBOOKS:
        extra = "raise ValueError('boom in ' + profile)" if stem == "03_leak" else ""
        nbformat.write(_notebook(stem, extra), str(d / f"{stem}.ipynb"))
    return d


def _args(tmp_path, book, *more):
    return ["run", "--book-dir", str(book), "--results-dir", str(tmp_path / "res"),
            "--cache-dir", str(tmp_path / "cache"), *more]


# --------------------------------------------------------------------------------------------
# parsing and errors (no execution)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("T_bp=8", ("T_bp", 8)),
    ("T_list=[4,8]", ("T_list", [4, 8])),
    ("quant_bits=[null, 2]", ("quant_bits", [None, 2])),
    ("leak_bp=0.9", ("leak_bp", 0.9)),
    ("device=cpu", ("device", "cpu")),
    ("data_dir=null", ("data_dir", None)),
    ("data_dir=a=b", ("data_dir", "a=b")),
])
def test_parse_param(text, expected):
    assert parse_param(text) == expected


@pytest.mark.parametrize("argv, words", [
    (["-p", "T_bp=0"], ["T_bp", "got 0", "integer >= 1"]),
    (["-p", "T_bp=abc"], ["T_bp", "'abc'", "integer >= 1"]),
    (["-p", "T_bp"], ["expected name=value"]),
    (["-p", "T_list=[4,"], ["not valid YAML"]),
    (["-p", "Tbp=4"], ["Tbp", "did you mean 'T_bp'"]),
    (["-p", "results_dir=x"], ["--results-dir"]),
    (["--only", "nope"], ["unknown notebook 'nope'"]),
    (["--profile", "fast"], ["unknown profile 'fast'"]),
])
def test_bad_arguments_exit_2(capsys, tmp_path, book, argv, words):
    assert main(_args(tmp_path, book, "--dry-run", *argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    for w in words:
        assert w in err, (w, err)


def test_missing_notebook_exit_2(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(_args(tmp_path, empty, "--only", "01")) == 2
    assert "not found" in capsys.readouterr().err


def test_no_command_and_help(capsys):
    assert main([]) == 2
    assert main(["run", "--help"]) == 0
    assert "--dry-run" in capsys.readouterr().out


def test_dry_run_plan(capsys, tmp_path, book):
    assert main(_args(tmp_path, book, "--dry-run", "--profile", "laptop",
                      "-p", "T_list=[4,8]", "-p", "T_bp=4")) == 0
    out = capsys.readouterr().out
    for stem in NOTEBOOKS:
        assert stem in out
    assert "T_list=[4, 8]" in out and "*T_bp" in out
    from snnlib.study.profiles import load_profile
    from snnlib.study.cli import _fmt_s as fmt  # the runner's own duration formatting
    est = load_profile("laptop")["estimate_s"]
    assert fmt(est["01_models"]) in out                       # the profile's estimate for 01_models
    assert f"Total estimate: {fmt(sum(est.values()))} for 7 notebook(s)" in out
    assert not (tmp_path / "res").exists()          # a dry run writes nothing


def test_dry_run_uses_last_wall_time_and_only(capsys, tmp_path, book):
    res = tmp_path / "res"
    res.mkdir()
    (res / "02_discretization.json").write_text(json.dumps({"wall_time_s": 123.0}))
    assert main(_args(tmp_path, book, "--dry-run", "--only", "discretization,01")) == 0
    out = capsys.readouterr().out
    assert "2m 03s" in out and "last run" in out
    assert "03_leak" not in out
    assert "Total estimate: 3m 03s for 2 notebook(s)" in out   # 123 s + smoke's 60 s


def test_profiles_and_parameters_cell_commands(capsys):
    assert main(["profiles"]) == 0
    assert "laptop" in capsys.readouterr().out
    assert main(["parameters-cell", "leak"]) == 0
    assert "leak_list = [1.0, 0.9]" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# execution (papermill, ~1-2 s per notebook)
# --------------------------------------------------------------------------------------------


def _injected(path: Path) -> list[str]:
    nb = nbformat.read(str(path), as_version=4)
    return [c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]


def test_run_in_place_then_resume(capsys, tmp_path, book):
    argv = _args(tmp_path, book, "--only", "01_models,02", "-p", "T_bp=5")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[1/2] 01_models: ok in" in out and "[2/2] 02_discretization: ok in" in out
    res = tmp_path / "res"
    data = json.loads((res / "02_discretization.json").read_text())
    assert data["T_bp"] == 5 and data["parameters"]["profile"] == "smoke"
    inj = _injected(book / "02_discretization.ipynb")
    assert len(inj) == 1 and "T_bp = 5" in inj[0] and "T_list = [6, 8]" in inj[0]
    assert f"results_dir = \"{res}\"" in inj[0] or f"results_dir = '{res}'" in inj[0]
    meta = nbformat.read(str(book / "01_models.ipynb"), as_version=4).metadata["papermill"]
    assert ".running" not in meta["output_path"]
    assert not [p for p in book.iterdir() if p.name.startswith(".")]      # no temp left
    log = json.loads((res / study.LOG_NAME).read_text())
    assert log["notebooks"]["01_models"]["status"] == "ok"
    assert log["notebooks"]["01_models"]["parameters"]["T_bp"] == 5

    # --resume with the same parameters skips both; a changed parameter reruns
    mtime = (book / "01_models.ipynb").stat().st_mtime_ns
    assert main(argv + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped (done with the same parameters") == 2
    assert (book / "01_models.ipynb").stat().st_mtime_ns == mtime
    assert main(_args(tmp_path, book, "--only", "01", "-p", "T_bp=6", "--resume")) == 0
    assert "01_models: ok in" in capsys.readouterr().out
    inj = _injected(book / "01_models.ipynb")
    assert len(inj) == 1 and "T_bp = 6" in inj[0]          # re-injected, not stacked


def test_failure_reports_cell_and_rerun_command(capsys, tmp_path, book):
    before = (book / "03_leak.ipynb").read_bytes()
    out_dir = tmp_path / "out"
    assert main(_args(tmp_path, book, "--only", "leak,05", "--out-dir", str(out_dir))) == 1
    err = capsys.readouterr().err
    assert "[1/2] 03_leak: FAILED" in err
    assert "ValueError: boom in smoke" in err and "cell 2" in err
    assert "rerun only this notebook: python -m snnlib.study run --profile smoke --only " \
           "03_leak" in err
    assert "05_attack_source" not in err or "not run" in err       # stopped at the failure
    assert (book / "03_leak.ipynb").read_bytes() == before         # input untouched
    assert not (out_dir / "03_leak.ipynb").exists()                # no half notebook
    assert not (out_dir / "05_attack_source.ipynb").exists()
    failed = tmp_path / "res" / "03_leak.failed.ipynb"
    assert "boom" in failed.read_text()
    log = json.loads((tmp_path / "res" / study.LOG_NAME).read_text())
    assert log["notebooks"]["03_leak"]["status"] == "failed"


def test_resume_reruns_an_edited_notebook(capsys, tmp_path, book):
    argv = _args(tmp_path, book, "--only", "07_summary")
    assert main(argv) == 0
    assert main(argv + ["--resume"]) == 0
    assert "skipped" in capsys.readouterr().out
    nb = nbformat.read(str(book / "07_summary.ipynb"), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, str(book / "07_summary.ipynb"))
    assert main(argv + ["--resume", "--dry-run"]) == 0
    assert "done, skipped" not in capsys.readouterr().out
    assert main(argv + ["--resume"]) == 0
    assert "07_summary: ok in" in capsys.readouterr().out


def test_cuda_profile_without_gpu_is_refused(capsys, tmp_path, book):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert main(_args(tmp_path, book, "--profile", "paper", "--only", "07")) == 2
    assert "device=cuda" in capsys.readouterr().err
    assert main(_args(tmp_path, book, "--profile", "paper", "--dry-run")) == 0
    assert "no CUDA GPU" in capsys.readouterr().out
