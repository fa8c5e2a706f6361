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
                      "-p", "T_list=[8,24]", "-p", "T_bp=16")) == 0
    out = capsys.readouterr().out
    for stem in NOTEBOOKS:
        assert stem in out
    assert "T_list=[8, 24]" in out and "*T_bp" in out     # overridden with the profile's own values
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


def test_dry_run_says_which_estimates_were_measured_on_another_cpu(capsys, tmp_path, book, monkeypatch):
    import snnlib.machine
    from snnlib.study.profiles import load_profile
    measured_on = load_profile("laptop")["estimate_machine"]
    res = tmp_path / "res"
    res.mkdir()
    (res / "02_discretization.json").write_text(json.dumps({"wall_time_s": 60.0, "machine": {"cpu_name": "Zilog Z80"}}))
    (res / "03_leak.json").write_text(json.dumps({"wall_time_s": 60.0, "machine": {"cpu_name": "Elsewhere CPU"}}))
    monkeypatch.setattr(snnlib.machine, "cpu_name", lambda: "Elsewhere CPU")
    assert main(_args(tmp_path, book, "--dry-run", "--profile", "laptop", "--only", "01,02,03")) == 0
    out = capsys.readouterr().out
    assert f"profile estimate on {measured_on}" in out and "last run on Zilog Z80" in out
    leak = next(line for line in out.splitlines() if line.startswith("3  03_leak"))
    assert " on " not in leak.split("leak_list")[0]                     # measured here: no machine named
    assert f"note: the estimates marked 'on {measured_on}' (and others) were measured on another CPU than this " \
           "one (Elsewhere CPU)" in out
    monkeypatch.setattr(snnlib.machine, "cpu_name", lambda: measured_on)
    assert main(_args(tmp_path, book, "--dry-run", "--profile", "laptop", "--only", "01")) == 0
    out = capsys.readouterr().out
    assert " on " not in out.split("Total estimate")[0].split("01_models", 1)[1] and "another CPU" not in out


def test_a_profile_names_the_cpu_its_estimates_were_measured_on_as_a_string(tmp_path):
    from snnlib.study.profiles import ProfileError, load_profile
    import yaml
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "snnlib" / "study" / "profiles.yaml").read_text())
    raw["profiles"]["smoke"]["estimate_machine"] = ["AMD"]
    f = tmp_path / "profiles.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError, match="estimate_machine.*the CPU name"):
        load_profile("smoke", path=f)
    assert load_profile("smoke")["estimate_machine"] is None


def test_dry_run_adds_training_when_the_models_are_not_cached(capsys, tmp_path, book, monkeypatch):
    """Without 01_models, the first notebook that needs models trains them when the cache lacks them: the plan
    says so and counts 01_models' training share (half per seed) in the total; with the models cached it does not."""
    from snnlib.study import cli
    from snnlib.study.cache import ArtifactCache
    from snnlib.study.profiles import cost_units, load_profile, training_cost_units

    assert main(_args(tmp_path, book, "--dry-run", "--only", "05,07")) == 0
    out = capsys.readouterr().out
    p = load_profile("smoke")
    share = training_cost_units(p["notebooks"]["01_models"]) / cost_units("01_models", p["notebooks"]["01_models"])
    train_s = p["estimate_s"]["01_models"] * share
    assert "(training)" in out and "seed(s) 0, 1 not in the cache" in out and "trained first by 05_attack_source" in out
    total = train_s + p["estimate_s"]["05_attack_source"] + p["estimate_s"]["07_summary"]
    assert f"Total estimate: {cli._fmt_s(total)} for 2 notebook(s), training included" in out

    # a chapter that recorded its training time is estimated without it; with 01_models in the plan, 01's estimate
    # holds training (the profile's, or a record from before training_s) unless its record says how much
    res = tmp_path / "res"
    res.mkdir()
    (res / "05_attack_source.json").write_text(json.dumps({"wall_time_s": 500.0, "training_s": 380.0}))
    assert main(_args(tmp_path, book, "--dry-run", "--only", "01,05")) == 0
    out = capsys.readouterr().out
    assert "(training)" not in out and "2m 00s    last run without its training" in out
    # a chapter resumed after a stop: the work it loaded from the cache (an earlier attempt's) is part of its cost
    (res / "05_attack_source.json").write_text(json.dumps({"wall_time_s": 500.0, "training_s": 380.0,
                                                           "reused_s": 60.0}))
    assert main(_args(tmp_path, book, "--dry-run", "--only", "05")) == 0
    assert "3m 00s    last run without its training + its cached work" in capsys.readouterr().out
    (res / "05_attack_source.json").write_text(json.dumps({"wall_time_s": 500.0, "training_s": 380.0}))
    (res / "01_models.json").write_text(json.dumps({"wall_time_s": 100.0, "training_s": 60.0}))
    assert main(_args(tmp_path, book, "--dry-run", "--only", "01,05")) == 0
    out = capsys.readouterr().out
    assert "(training)" in out and "trained first by 01_models" in out
    t01 = 40.0 / (1 - share) * share                     # 01's own work (40 s) scaled back up to its training share
    assert f"Total estimate: {cli._fmt_s(t01 + 40.0 + 120.0)} for 2 notebook(s), training included" in out

    monkeypatch.setattr(ArtifactCache, "has", lambda self, kind, config: True)
    assert main(_args(tmp_path, book, "--dry-run", "--only", "05,07")) == 0
    out = capsys.readouterr().out
    assert "(training)" not in out and "training included" not in out


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


def _digests(folder: Path) -> dict[str, str]:
    import hashlib
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_run_writes_to_the_profiles_folder_then_resume(capsys, tmp_path, book):
    before = _digests(book)
    argv = _args(tmp_path, book, "--only", "01_models,02", "-p", "T_bp=7")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[1/2] 01_models: ok in" in out and "[2/2] 02_discretization: ok in" in out
    assert "python -m snnlib.study book --profile smoke" in out       # how to build a book from it
    run_book = tmp_path / "runs" / "smoke" / "book"                  # next to the book folder
    res = tmp_path / "res"
    data = json.loads((res / "02_discretization.json").read_text())
    assert data["T_bp"] == 7 and data["parameters"]["profile"] == "smoke"
    inj = _injected(run_book / "02_discretization.ipynb")
    assert len(inj) == 1 and "T_bp = 7" in inj[0] and "T_list = [6, 8]" in inj[0]
    assert f"results_dir = \"{res}\"" in inj[0] or f"results_dir = '{res}'" in inj[0]
    meta = nbformat.read(str(run_book / "01_models.ipynb"), as_version=4).metadata["papermill"]
    assert ".running" not in meta["output_path"]
    assert not [p for p in run_book.iterdir() if p.name.startswith(".")]      # no temp left
    assert _digests(book) == before                                      # the sources are untouched
    log = json.loads((res / study.LOG_NAME).read_text())
    assert log["notebooks"]["01_models"]["status"] == "ok"
    assert log["notebooks"]["01_models"]["parameters"]["T_bp"] == 7

    # --resume with the same parameters skips both; a changed parameter reruns
    mtime = (run_book / "01_models.ipynb").stat().st_mtime_ns
    assert main(argv + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped (done with the same parameters") == 2
    assert (run_book / "01_models.ipynb").stat().st_mtime_ns == mtime
    assert main(_args(tmp_path, book, "--only", "01", "-p", "T_bp=6", "--resume")) == 0
    assert "01_models: ok in" in capsys.readouterr().out
    inj = _injected(run_book / "01_models.ipynb")
    assert len(inj) == 1 and "T_bp = 6" in inj[0]          # re-injected, not stacked


def test_smoke_run_without_publish_leaves_the_book_byte_identical(capsys, tmp_path, book):
    before = _digests(book)
    argv = ["run", "--profile", "smoke", "--book-dir", str(book), "--cache-dir", str(tmp_path / "cache"),
            "--only", "01,02,07"]
    assert main(argv) == 0
    assert _digests(book) == before
    runs = tmp_path / "runs" / "smoke"
    assert sorted(p.name for p in (runs / "book").glob("*.ipynb")) == [
        "01_models.ipynb", "02_discretization.ipynb", "07_summary.ipynb"]
    assert (runs / "results" / "01_models.json").is_file() and not (tmp_path / "results").exists()
    assert main(argv + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "runs/smoke/book/<notebook>.ipynb" in out and "runs/smoke/results" in out


def test_publish_writes_into_the_book_and_results(capsys, tmp_path, book):
    before = _digests(book)
    argv = ["run", "--profile", "smoke", "--book-dir", str(book), "--cache-dir", str(tmp_path / "cache"),
            "--only", "01", "--publish"]
    assert main(argv + ["--dry-run"]) == 0
    assert "(--publish: over the committed notebooks)" in capsys.readouterr().out
    assert main(argv) == 0
    after = _digests(book)
    assert after["01_models.ipynb"] != before["01_models.ipynb"]
    assert {k: v for k, v in after.items() if k != "01_models.ipynb"} == \
        {k: v for k, v in before.items() if k != "01_models.ipynb"}
    assert len(_injected(book / "01_models.ipynb")) == 1
    assert (tmp_path / "results" / "smoke" / "01_models.json").is_file()
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("extra, words", [
    (["--publish", "--out-dir", "x"], ["--publish writes", "drop --out-dir"]),
    (["--publish", "--results-dir", "x"], ["drop --results-dir"]),
    (["--out-dir", "{book}"], ["is the book folder", "--publish"]),
])
def test_publish_conflicts_are_usage_errors(capsys, tmp_path, book, extra, words):
    extra = [e.format(book=book) for e in extra]
    argv = ["run", "--book-dir", str(book), "--dry-run", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, (w, err)


def _toc(book: Path, stems) -> None:
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nparts:\n  - caption: All\n    chapters:\n"
                                   + "".join(f"      - file: {s}\n" for s in stems))
    (book / "_config.yml").write_text("title: test book\nexecute:\n  execute_notebooks: 'off'\n"
                                      "only_build_toc_files: true\n")
    (book / "intro.md").write_text("# Intro\n\nThe test book.\n")


def test_book_command_assembles_a_runs_executed_notebooks(capsys, tmp_path, book):
    _toc(book, [*NOTEBOOKS, "appendix"])
    nbformat.write(_notebook("appendix"), str(book / "appendix.ipynb"))        # not run by the runner
    before = _digests(book)
    run_book = tmp_path / "runs" / "smoke" / "book"
    assert main(["book", "--book-dir", str(book), "--no-build"]) == 2          # nothing executed yet
    assert "no executed notebooks" in capsys.readouterr().err
    run_book.mkdir(parents=True)
    for stem in NOTEBOOKS[:-1]:
        (run_book / f"{stem}.ipynb").write_bytes((book / f"{stem}.ipynb").read_bytes())
    assert main(["book", "--book-dir", str(book), "--no-build"]) == 2
    err = capsys.readouterr().err
    assert "lacks the executed notebook(s) ['07_summary']" in err and "--only 07_summary" in err
    (run_book / "07_summary.ipynb").write_text("executed copy")
    assert main(["book", "--book-dir", str(book), "--no-build"]) == 0
    assert "runs/smoke/book" in capsys.readouterr().out
    for name in ("_toc.yml", "_config.yml", "intro.md", "appendix.ipynb"):
        assert (run_book / name).read_bytes() == (book / name).read_bytes(), name
    assert (run_book / "07_summary.ipynb").read_text() == "executed copy"   # the run's copy, not the source
    assert _digests(book) == before
    assert main(["book", "--book-dir", str(book), "--from", str(book), "--no-build"]) == 2
    assert "jupyter-book build book" in capsys.readouterr().err


def test_book_command_builds_the_run_and_prints_index_html(capsys, tmp_path, book):
    pytest.importorskip("jupyter_book")
    _toc(book, ["01_models"])
    run_book = tmp_path / "runs" / "smoke" / "book"
    run_book.mkdir(parents=True)
    nb = _notebook("01_models")
    nb.cells[0].source = "# Executed smoke copy"
    nbformat.write(nb, str(run_book / "01_models.ipynb"))
    assert main(["book", "--book-dir", str(book)]) == 0
    out = capsys.readouterr().out
    index = run_book / "_build" / "html" / "index.html"
    assert f"book built: {index}" in out and index.is_file()
    assert "Executed smoke copy" in (run_book / "_build" / "html" / "01_models.html").read_text()
    assert not (book / "_build").exists()


def test_toc_files_lists_every_page(tmp_path):
    from snnlib.study.book import BookError, toc_files
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n"
                                       "      - file: a\n        sections:\n          - file: b\n"
                                       "      - file: c\n")
    assert toc_files(tmp_path / "_toc.yml") == ["intro", "a", "b", "c"]
    (tmp_path / "_toc.yml").write_text("chapters: []\n")
    with pytest.raises(BookError, match="no 'root'"):
        toc_files(tmp_path / "_toc.yml")


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


def test_resume_reruns_chapters_of_an_earlier_training_run_and_a_summary_older_than_its_chapters(capsys, tmp_path,
                                                                                                 book):
    """After 01_models ran again (e.g. on another machine: other weights), a chapter whose results record other
    models (or none) is not done; the summary is not done once a chapter finished after it."""
    argv = _args(tmp_path, book, "--only", "01,02,07")
    assert main(argv) == 0
    assert main(argv + ["--resume"]) == 0
    assert capsys.readouterr().out.count("skipped (done with the same parameters") == 3
    # an optional parameter named null is the same run as one that left it out; any other value is not
    for value, done in (("null", True), ("4", False)):
        assert main(argv + ["--resume", "--dry-run", "-p", f"attack_batch={value}"]) == 0
        row = [line for line in capsys.readouterr().out.splitlines() if "02_disc" in line][-1]
        assert ("done, skipped" in row) == done, (value, row)
    res = tmp_path / "res"
    rec = json.loads((res / "01_models.json").read_text())
    rec["models"] = {"seed 0": {"ANN": "a" * 16}}                 # chapter 1 re-run: new models recorded
    (res / "01_models.json").write_text(json.dumps(rec))
    assert main(argv + ["--resume", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    rows = {nb: [line for line in plan.splitlines() if nb in line][-1] for nb in ("01_models", "02_disc", "07_sum")}
    assert "done, skipped" in rows["01_models"] and "done, skipped" not in rows["02_disc"]
    assert "done, skipped" not in rows["07_sum"]                    # chapter 2 runs again, so the summary does too
    rec2 = json.loads((res / "02_discretization.json").read_text())
    rec2["models"] = rec["models"]                                  # as if chapter 2 ran with the new models
    (res / "02_discretization.json").write_text(json.dumps(rec2))
    assert main(_args(tmp_path, book, "--only", "02", "--resume")) == 0        # done now: skipped
    assert "skipped (done with the same parameters" in capsys.readouterr().out
    log = json.loads((res / study.LOG_NAME).read_text())
    log["notebooks"]["02_discretization"]["finished_utc"] = "2999-01-01T00:00:00+00:00"   # a chapter after the summary
    (res / study.LOG_NAME).write_text(json.dumps(log))
    assert main(_args(tmp_path, book, "--only", "07", "--resume")) == 0
    assert "07_summary: ok in" in capsys.readouterr().out


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


def test_the_runner_warns_once_when_the_chapters_used_different_models(tmp_path, capsys):
    """A chapter re-run alone on another machine trains other weights from the same seed: after each notebook the
    runner compares the results folder's model fingerprints and says so, once per disagreement."""
    from types import SimpleNamespace

    def write(nb, digest):
        (tmp_path / f"{nb}.json").write_text(json.dumps({"models": {"seed 0": {"ANN": digest}}}))

    printer = study._Printer(SimpleNamespace(results_dir=tmp_path, root=tmp_path, executor="local"), [])
    write("01_models", "a" * 16)
    write("05_attack_source", "a" * 16)
    printer.warn_mixed_models()
    assert capsys.readouterr().err == ""
    write("05_attack_source", "b" * 16)
    printer.warn_mixed_models()
    printer.warn_mixed_models()
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "used different trained models" in err
    assert "\n  seed 0 ANN: 01_models used" in err and "re-run the whole profile" in err


def test_chapters_this_run_executes_again_are_named_once_in_a_note_not_warned(tmp_path, capsys):
    """A --resume after chapter 1 was re-run: the older chapters disagree with it until this run replaces them, so
    they get one note (not a warning after every notebook); a disagreeing chapter the run will not touch is warned."""
    from types import SimpleNamespace

    def write(nb, digest):
        (tmp_path / f"{nb}.json").write_text(json.dumps({"models": {"seed 0": {"ANN": digest}}}))

    printer = study._Printer(SimpleNamespace(results_dir=tmp_path, root=tmp_path, executor="local"), [])
    printer.pending = {"03_leak", "05_attack_source"}
    write("01_models", "a" * 16)
    write("05_attack_source", "b" * 16)
    printer.warn_mixed_models()
    printer.warn_mixed_models()
    cap = capsys.readouterr()
    assert cap.err == "" and cap.out.count("note: 05_attack_source in ") == 1 and "executes it again" in cap.out
    write("04_training_method", "c" * 16)                  # not in this run: its disagreement is warned
    printer.warn_mixed_models()
    cap = capsys.readouterr()
    assert cap.err.count("warning:") == 1 and "04_training_method used cccc" in cap.err and cap.out == ""


def test_the_runner_warns_when_clean_outcomes_show_other_models(tmp_path, capsys):
    """Chapters written before the fingerprints: a chapter whose clean outcomes of a base model differ from
    chapter 1's (another training run, e.g. a --resume that kept an older machine's chapters) is named too."""
    import sys
    from types import SimpleNamespace

    from snnlib.study import records as R
    sys.path.insert(0, str(Path(__file__).parent))
    from study_factories import chapter_file
    from test_consistency import REF, _clean, _study

    run = _study(_clean(~REF))
    for nb, res in (("01_models", run.models), ("05_attack_source", run.attack_source)):
        f = chapter_file(nb, res)
        f.parameters.update(T_conv=64, leak_bp=0.99)
        R.write_record(tmp_path, f)
    printer = study._Printer(SimpleNamespace(results_dir=tmp_path, root=tmp_path, executor="local"), [])
    printer.warn_mixed_models()
    err = capsys.readouterr().err
    assert "05_attack_source SNN-BP seed 0: 200 of 200 clean outcomes differ from 01_models's" in err
