"""The study's units of work and its cluster executors (python -m snnlib.study run --executor ...).

* the grid driver (dependencies, retries, --keep-going) with a fake executor: no extra needed;
* the SLURM job description (sbatch parameters) that --executor slurm would submit, via --dry-run;
* a real Dask LocalCluster (2 worker processes, 1 thread each): a crashing unit is retried, two
  workers asking for the same model train it once, and the smoke profile's real notebooks give the
  same results JSON as the local executor.

Tests that need dask/distributed or submitit skip cleanly without the extra
(``pip install -r requirements-cluster.txt``).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from pathlib import Path

import nbformat
import pytest

from snnlib.study import executors as X
from snnlib.study.executors import Unit, parse_slurm_time, run_grid, slurm_job_spec
from snnlib.study.cli import main

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

PARAMS_CELL = """profile = 'smoke'
results_dir = 'results/smoke'
T_bp = 8
"""
BODY_CELL = """import os, time
from snnlib.study.results import write_result
{extra}
write_result(results_dir, {stem!r}, {{"parameters": {{"T_bp": T_bp}}, "T_bp": T_bp, "pid": os.getpid()}},
             wall_time_s=0.1)
"""
# first run: create the marker and kill the kernel (a crash, not a Python exception)
CRASH_ONCE = """marker = {marker!r}
if not os.path.exists(marker):
    open(marker, "w").close()
    os._exit(3)
"""


def _dummy_book(d: Path, extras: dict[str, str] | None = None) -> Path:
    """The book's notebooks as tiny no-torch notebooks (~1-2 s each)."""
    from snnlib.study.profiles import NOTEBOOKS

    d.mkdir(parents=True, exist_ok=True)
    for stem in NOTEBOOKS:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        params = nbformat.v4.new_code_cell(PARAMS_CELL)
        params.metadata["tags"] = ["parameters"]
        body = BODY_CELL.format(stem=stem, extra=(extras or {}).get(stem, ""))
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        nbformat.write(nb, str(d / f"{stem}.ipynb"))
    return d


def _argv(tmp: Path, book: Path, *more: str) -> list[str]:
    return ["run", "--book-dir", str(book), "--results-dir", str(tmp / "res"),
            "--cache-dir", str(tmp / "cache"), *more]


# --------------------------------------------------------------------------------------------
# the grid driver, with a fake executor (no extra needed)
# --------------------------------------------------------------------------------------------


class FakeExecutor(X.Executor):
    """Runs nothing: each unit 'succeeds' unless its id fails the first ``fails[id]`` attempts."""

    def __init__(self, fails=None, capacity=None):
        self.fails = dict(fails or {})
        self.capacity = capacity
        self.log: list[tuple[str, int]] = []

    def submit(self, unit, attempt):
        self.log.append((unit.id, attempt))
        ok = attempt > self.fails.get(unit.id, 0)
        return (unit.id, attempt, ok)

    def wait(self, handles, timeout):
        h = handles[0]           # one at a time, in submission order
        return [(h, h[2], {"id": h[0]} if h[2] else X.UnitError(f"boom {h[0]}"))]


def _grid():
    t = [Unit(id=f"train/{s}", kind="train", label=f"train seed {s}", spec={}) for s in (0, 1)]
    nbs = [Unit(id=f"nb/{n}", kind="notebook", label=n, spec={}, notebook=n,
                deps=("train/0", "train/1")) for n in ("01", "02")]
    summary = Unit(id="nb/07", kind="notebook", label="07", spec={}, notebook="07",
                   after=("nb/01", "nb/02"))
    return [*t, *nbs, summary]


@pytest.mark.parametrize("capacity", [None, 1])
def test_grid_runs_training_first_and_retries(capacity):
    ex = FakeExecutor(fails={"nb/02": 1}, capacity=capacity)
    states = run_grid(_grid(), ex, retries=1)
    assert {k: s.status for k, s in states.items()} == dict.fromkeys(states, "ok")
    order = [uid for uid, _ in ex.log]
    assert order.index("train/0") < order.index("nb/01") and order.index("nb/02") < order.index("nb/07")
    assert ("nb/02", 2) in ex.log and states["nb/02"].attempts == 2


def test_grid_failure_blocks_dependents_and_summary_still_runs():
    ex = FakeExecutor(fails={"train/1": 9})
    states = run_grid(_grid(), ex, retries=2, keep_going=True)
    assert states["train/1"].status == "failed" and states["train/1"].attempts == 3
    assert states["nb/01"].status == states["nb/02"].status == "blocked"
    assert "train seed 1" in states["nb/01"].note
    assert states["nb/07"].status == "ok"            # ordered after, not dependent
    # without --keep-going nothing new starts after the failure
    states = run_grid(_grid(), FakeExecutor(fails={"train/0": 9}, capacity=1), retries=0)
    assert states["train/0"].status == "failed"
    assert {states[k].status for k in ("train/1", "nb/01", "nb/02", "nb/07")} == {"not run"}


def test_unit_and_error_pickle():
    u = _grid()[2]
    assert pickle.loads(pickle.dumps(u)) == u
    e = pickle.loads(pickle.dumps(X.UnitError("cell 2 raised", "/x/03.failed.ipynb", "node7")))
    assert str(e) == "cell 2 raised" and e.failed_copy == "/x/03.failed.ipynb" and e.host == "node7"


def test_local_executor_retries_a_crashed_kernel(capsys, tmp_path):
    book = _dummy_book(tmp_path / "book", {"02_discretization": CRASH_ONCE.format(
        marker=str(tmp_path / "crashed-once"))})
    assert main(_argv(tmp_path, book, "--only", "02", "--retries", "1")) == 0
    cap = capsys.readouterr()
    assert "attempt 1 failed" in cap.err and "DeadKernelError" in cap.err
    assert "[1/1] 02_discretization: running again (attempt 2 of 2)" in cap.out
    log = json.loads((tmp_path / "res" / "_study_log.json").read_text())
    assert log["notebooks"]["02_discretization"]["status"] == "ok"
    assert log["notebooks"]["02_discretization"]["attempts"] == 2
    entry = log["notebooks"]["02_discretization"]        # what the runner expected, next to what it measured
    assert entry["estimate_s"] > 0 and entry["estimate_from"].startswith("profile estimate")


def test_usage_errors(capsys, tmp_path):
    book = _dummy_book(tmp_path / "book")
    assert main(_argv(tmp_path, book, "--dry-run", "--partition", "gpu")) == 2
    assert "--partition only apply with --executor slurm" in capsys.readouterr().err
    assert main(_argv(tmp_path, book, "--dry-run", "--executor", "slurm", "--time", "x")) == 2
    assert "--time 'x'" in capsys.readouterr().err
    assert main(_argv(tmp_path, book, "--dry-run", "--executor", "slurm",
                      "--slurm-arg", "account")) == 2
    assert "expected key=value" in capsys.readouterr().err


def test_missing_extra_is_a_clear_usage_error(capsys, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "distributed", None)       # import fails
    book = _dummy_book(tmp_path / "book")
    assert main(_argv(tmp_path, book, "--only", "07", "--executor", "dask")) == 2
    assert "requirements-cluster.txt" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# SLURM: the job description, without submitting
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, minutes", [("90", 90), ("12:00:00", 720), ("1-00", 1440),
                                           ("1-02:30", 1590), ("05:30", 6), (45, 45)])
def test_parse_slurm_time(text, minutes):
    assert parse_slurm_time(text) == minutes


def test_slurm_job_spec_defaults_from_the_estimate():
    u = Unit(id="nb/03_leak", kind="notebook", label="03_leak", spec={}, estimate_s=21600,
             env={"SNNLIB_CACHE": "/shared/cache"})
    spec = slurm_job_spec(u, folder="/shared/res/_slurm", partition="gpu", gpus_per_node=1,
                          extra={"account": "proj", "mail_type": "FAIL"})
    p = spec["parameters"]
    assert p["time"] == 540 and p["partition"] == "gpu" and p["gpus_per_node"] == 1
    assert p["job_name"] == "snnlib-03_leak"
    assert p["additional_parameters"] == {"account": "proj", "mail-type": "FAIL"}
    assert "export SNNLIB_CACHE=/shared/cache" in p["setup"]


def test_slurm_dry_run_prints_the_sbatch_parameters(capsys, tmp_path):
    book = _dummy_book(tmp_path / "book")
    argv = ["run", "--profile", "paper", "--executor", "slurm", "--dry-run",
            "--book-dir", str(book), "--results-dir", str(tmp_path / "res"),
            "--cache-dir", "/shared/snn-cache", "--partition", "gpu", "--time", "12:00:00",
            "--cpus-per-task", "8", "--slurm-arg", "account=proj", "--slurm-arg", "mem=64G",
            "--only", "01_models,03,07"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Executor slurm: 5 unit(s), retries 1, cache /shared/snn-cache" in out
    lines = [ln for ln in out.splitlines() if ln.strip().startswith("sbatch ")]
    assert len(lines) == 5                       # 2 train units + 3 notebooks
    assert lines[0].endswith("# train/seed0-" + lines[0].split("train/seed0-")[1])
    for ln in lines:
        for flag in ("--partition=gpu", "--time=720", "--cpus-per-task=8", "--account=proj",
                     "--mem=64G"):
            assert flag in ln, (flag, ln)
        # paper's device is cuda: one GPU per job, except for the summary (reads JSON files)
        assert ("--gpus-per-node=1" in ln) == ("nb/07_summary" not in ln), ln
    nb_lines = [ln for ln in out.splitlines() if "] notebook" in ln]
    assert "needs: train/seed0-" in nb_lines[0] and "train/seed1-" in nb_lines[0]
    assert "needs: -; after 2 notebook(s)" in nb_lines[-1]          # 07_summary
    assert not (tmp_path / "res").exists()                          # nothing written
    if _has("submitit"):
        script = out.split("Script of the first job")[1]
        for line in ("#SBATCH --partition=gpu", "#SBATCH --time=720", "#SBATCH --gpus-per-node=1",
                     "#SBATCH --account=proj", "#SBATCH --mem=64G", "#SBATCH --cpus-per-task=8",
                     "export SNNLIB_CACHE=/shared/snn-cache", "submitit.core._submit"):
            assert line in script, line


def _fake_slurm_bin(d: Path, sbatch_body: str) -> Path:
    """A folder with a fake ``srun`` (submitit only checks that it exists) and a fake ``sbatch``."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "srun").write_text("#!/bin/sh\nexit 0\n")
    (d / "sbatch").write_text("#!/bin/sh\n" + sbatch_body)
    for name in ("srun", "sbatch"):
        (d / name).chmod(0o755)
    return d


@pytest.fixture
def fresh_slurm_watcher(monkeypatch):
    """The submitit job class with its own state watcher for this test (fake job ids stay out of later tests)."""
    submitit = pytest.importorskip("submitit")
    job_class = X._submitit_classes(submitit)[1]
    monkeypatch.setattr(job_class, "watcher", type(job_class.watcher)(delay_s=600))
    return job_class


def test_each_slurm_job_is_submitted_with_its_own_parameters(tmp_path, monkeypatch, fresh_slurm_watcher):
    """submitit's update_parameters accumulates: unit a's CPUs, GPUs and comment must not reach unit b's job."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    fake = _fake_slurm_bin(tmp_path / "bin", f'n=$(ls {scripts} | wc -l)\ncp "$1" {scripts}/job$n.sh\n'
                                             'echo "Submitted batch job $((n + 100))"\n')
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    units = [Unit(id=f"nb/{n}", kind="notebook", label=n, spec={}, notebook=n) for n in ("a", "b")]
    opts = {"nb/a": dict(cpus_per_task=4, gpus_per_node=1, extra={"comment": "only-a"}), "nb/b": {}}
    ex = X.SlurmExecutor(str(tmp_path / "_slurm"), spec_for=lambda u: slurm_job_spec(
        u, folder=str(tmp_path / "_slurm"), **opts[u.id]))
    jobs = [ex.submit(u, 1) for u in units]
    assert [j.job_id for j in jobs] == ["100", "101"]
    a, b = (scripts / "job0.sh").read_text(), (scripts / "job1.sh").read_text()
    for line in ("#SBATCH --cpus-per-task=4", "#SBATCH --gpus-per-node=1", "#SBATCH --comment=only-a"):
        assert line in a and line not in b, (line, b)
    assert "#SBATCH --job-name=snnlib-b" in b


def test_a_refused_sbatch_fails_its_units_not_the_run(capfd, tmp_path, monkeypatch, fresh_slurm_watcher):
    """sbatch refuses every job (--partition nosuch): each unit is retried, then reported failed with sbatch's
    reason; the run ends with the failures and exit code 1, not with a traceback."""
    fake = _fake_slurm_bin(tmp_path / "bin", "echo 'sbatch: error: invalid partition specified: nosuch' >&2\n"
                                             "echo 'sbatch: error: Batch job submission failed: Invalid partition "
                                             "name specified' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(X.SlurmExecutor, "resubmit_delay_s", 0.0)
    book = _dummy_book(tmp_path / "book")
    argv = _argv(tmp_path, book, "--executor", "slurm", "--no-train-units", "--only", "01,02",
                 "--partition", "nosuch", "--keep-going")
    assert main(argv) == 1
    cap = capfd.readouterr()
    reason = ("sbatch refused the job: invalid partition specified: nosuch; Batch job submission failed: "
              "Invalid partition name specified")
    for nb in ("01_models", "02_discretization"):
        assert f"{nb}: attempt 1 failed after " in cap.err and f": {reason}; retrying (1 retry left)" in cap.err
        assert f"{nb}: FAILED (2 attempts) after" in cap.err
    assert f"Failures:\n  01_models (2 attempts): {reason}\n  02_discretization (2 attempts): {reason}" in cap.err
    assert "Traceback" not in cap.out + cap.err
    assert cap.err.count("sbatch: error:") == 0                # said once per attempt, in the runner's words


class _EndedJob:
    """A submitit job that accounting (sacct) reports ended with ``state``; its result file appears only if the
    test writes it.  ``result()`` of a job without a result file would sleep up to 15 s in submitit."""

    def __init__(self, folder: Path, state: str):
        self.job_id = "7"
        self.paths = type("P", (), {"result_pickle": folder / "7_0_result.pkl", "stderr": folder / "7_0_log.err"})
        self.watcher = type("W", (), {"get_state": staticmethod(lambda job_id, mode="standard": state)})
        self.result_calls = 0

    def done(self, force_check: bool = False) -> bool:
        return True                             # sacct says the job ended

    def result(self):
        self.result_calls += 1
        assert self.paths.result_pickle.exists(), "job.result() called without a result file (sleeps 15 s)"
        return True, {"ok": 1}


def test_a_job_that_accounting_reports_ended_without_its_result(tmp_path, monkeypatch):
    """With accounting submitit calls a job done once sacct says it ended; the executor does not block in
    job.result() (submitit sleeps up to 15 s for a missing result file) but polls for gone_grace_s, then reports the
    job's state from accounting and the tail of its log; a result file that appears within the grace is used."""
    pytest.importorskip("submitit")
    fake = _fake_slurm_bin(tmp_path / "bin", "exit 1\n")     # submitit only checks that srun exists
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    ex = X.SlurmExecutor(str(tmp_path / "_slurm"), poll_s=0.05, gone_grace_s=0.5)
    job = _EndedJob(tmp_path, "OUT_OF_MEMORY")
    job.paths.stderr.write_text("start\nsrun: error: localhost: task 0: Out Of Memory\n\nslurmstepd: error: "
                                "Detected 1 oom_kill event in StepId=7.0\n")
    assert ex.wait([job], timeout=0.1) == []                       # within the grace: nothing yet, no sleep
    h, ok, err = ex.wait([job], timeout=5)[0]
    assert h is job and not ok and job.result_calls == 0
    assert err.message == (f"SLURM job 7 ended (OUT_OF_MEMORY) without writing its result; log: {job.paths.stderr}"
                           "\n      | start\n      | srun: error: localhost: task 0: Out Of Memory"
                           "\n      | slurmstepd: error: Detected 1 oom_kill event in StepId=7.0")
    assert err.retry
    timeout_job = _EndedJob(tmp_path, "TIMEOUT")
    assert not ex.wait([timeout_job], timeout=5)[0][2].retry       # the same limit would stop it again
    late = _EndedJob(tmp_path, "COMPLETED")
    assert ex.wait([late], timeout=0.1) == []
    late.paths.result_pickle.write_bytes(b"")                       # the shared file system shows it late
    assert ex.wait([late], timeout=5) == [(late, True, {"ok": 1})]


def _has(module: str) -> bool:
    import importlib
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Dask: a real LocalCluster with 2 worker processes, 1 thread each
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("dask")
    env = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, env=env) as lc:
        with distributed.Client(lc) as client:
            yield lc, client


def test_dask_local_cluster_retries_a_crashing_unit(capsys, tmp_path):
    pytest.importorskip("distributed")
    book = _dummy_book(tmp_path / "book", {"02_discretization": CRASH_ONCE.format(
        marker=str(tmp_path / "crashed-once"))})
    # no --scheduler: the runner starts (and stops) its own LocalCluster
    argv = _argv(tmp_path, book, "--executor", "dask", "--workers", "2", "--no-train-units",
                 "--only", "01,02,07", "--progress-every", "5")
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "Executor: dask (LocalCluster, 2 worker(s)); 3 unit(s) (0 train, 3 notebook), " \
           "retries 1" in cap.out
    assert "02_discretization: attempt 1 failed" in cap.err
    assert "02_discretization: submitted again (attempt 2 of 2)" in cap.out
    assert "progress: 3/3 done, 0 running, 0 failed, 0 remaining" in cap.out
    assert "succeeded after a retry: 02_discretization (2 attempts)" in cap.out
    for nb in ("01_models", "02_discretization", "07_summary"):
        assert json.loads((tmp_path / "res" / f"{nb}.json").read_text())["T_bp"] == 8
        assert (book / f"{nb}.ipynb").is_file()
    assert not [p for p in book.iterdir() if p.name.startswith(".")]     # no temp left


def test_dask_failures_summary_and_rerun_command(capsys, tmp_path, cluster):
    lc, _ = cluster
    book = _dummy_book(tmp_path / "book", {"03_leak": "raise ValueError('boom')"})
    argv = _argv(tmp_path, book, "--executor", "dask", "--scheduler", lc.scheduler_address,
                 "--no-train-units", "--only", "leak,05,07", "--keep-going")
    assert main(argv) == 1
    err = capsys.readouterr().err
    # a Python error in a cell is not retried (the same inputs raise it again), and the runner says why
    assert "03_leak: FAILED after" in err and "ValueError: boom" in err and "03_leak: attempt 1 failed" not in err
    assert "not retried: the same inputs fail the same way" in err
    assert "Failures:\n  03_leak (1 attempt): cell 1" in err
    assert ("rerun only the notebooks that did not finish: python -m snnlib.study run "
            "--profile smoke --only 03_leak ") in err
    assert f"--executor dask --scheduler {lc.scheduler_address}" in err
    assert (tmp_path / "res" / "05_attack_source.json").is_file()       # the others completed
    assert (tmp_path / "res" / "07_summary.json").is_file()
    assert (tmp_path / "res" / "03_leak.failed.ipynb").is_file()


TINY = {"dataset": "cifar10", "data_source": "subset", "data_dir": None, "arch": "vgg5",
        "n_train": 128, "batch_size": 64, "epochs_ann": 1, "epochs_snn": 1, "T_conv": 16, "T_bp": 6,
        "leak_bp": 0.99, "threshold_scale_bp": 0.7, "balance_T": 16, "balance_images": 16,
        "val_images": 32, "patience": 1, "ann_schedule": "step", "ann_lr": 0.01, "ann_warmup_epochs": 0,
        "ann_nesterov": False, "label_smoothing": 0.0, "ann_checkpoint_every": 1, "device": "cpu"}


def test_two_workers_asking_for_the_same_model_train_it_once(tmp_path, cluster):
    _, client = cluster
    workers = sorted(client.scheduler_info()["workers"])
    assert len(workers) == 2
    cache = tmp_path / "shared-cache"
    env = {"SNNLIB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    units = [Unit(id=f"train/seed0-copy{i}", kind="train", label="train seed 0", env=env,
                  spec={"params": TINY, "seed": 0, "cwd": str(ROOT), "cache_dir": str(cache)})
             for i in (1, 2)]
    futures = [client.submit(X.run_unit, u, 1, workers=[w], pure=False)
               for u, w in zip(units, workers)]
    results = client.gather(futures)
    assert len({(r["host"], r["pid"]) for r in results}) == 2     # two processes
    trained = [m for r in results for m in r["trained"]]
    # each artifact (ANN, balanced thresholds, BPTT SNN) was built by exactly one of the two
    # workers (not necessarily the same one: the lock is per entry); the other loaded it
    for what in ("trained ANN", "balanced thresholds", "trained BPTT SNN"):
        assert sum(m.startswith(what) for m in trained) == 1, (what, trained)
    assert len(trained) == 3, trained
    assert results[0]["cache_keys"] == results[1]["cache_keys"]
    for kind in ("ann", "thresholds", "snn_bp"):
        entries = [p for p in (cache / kind).iterdir() if p.is_dir()]
        assert len(entries) == 1, (kind, entries)
    assert not list(cache.rglob("*.tmp"))


VOLATILE = {"wall_time_s", "training_s", "timestamp_utc", "machine", "git_commit"}   # training_s: on a cluster, train units train the models


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _assert_same(a, b, where="results"):
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (where, a, b)
    elif isinstance(a, dict):
        assert sorted(a) == sorted(b), (where, sorted(a), sorted(b))
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


SMALL = ["-p", "n_train=128", "-p", "balance_images=16", "-p", "n_test=32",
         "-p", "attack_images=8", "-p", "T_bp=6", "-p", "T_conv=12", "-p", "balance_T=16",
         "-p", "device=cpu"]


def test_smoke_notebooks_on_dask_match_the_local_executor(capsys, tmp_path, cluster, monkeypatch):
    """The real notebooks 01_models and 07_summary: local executor vs 2 Dask workers."""
    lc, _ = cluster
    monkeypatch.setenv("OMP_NUM_THREADS", "1")              # the Dask workers run 1 thread too
    book = ROOT / "book"
    runs = {}
    for name, extra in (("local", []),
                        ("dask", ["--executor", "dask", "--scheduler", lc.scheduler_address])):
        d = tmp_path / name
        argv = ["run", "--profile", "smoke", "--only", "01_models,07_summary", *SMALL,
                "--book-dir", str(book), "--out-dir", str(d / "book"),
                "--results-dir", str(d / "res"), "--cache-dir", str(d / "cache"), *extra]
        rc = main(argv)
        cap = capsys.readouterr()
        assert rc == 0, cap.out[-3000:] + cap.err[-3000:]
        runs[name] = (d, cap)
    d, cap = runs["dask"]
    assert "3 train" not in cap.out and "(2 train, 2 notebook)" in cap.out
    assert "train seed 0: ok in" in cap.out and "train seed 1: ok in" in cap.out
    # the notebook loaded what the train units had trained (nothing trained twice)
    assert "01_models: ok in" in cap.out
    assert "+2/2 train unit(s) ok" in cap.out
    for nb in ("01_models", "07_summary"):
        a = json.loads((tmp_path / "local" / "res" / f"{nb}.json").read_text())
        b = json.loads((tmp_path / "dask" / "res" / f"{nb}.json").read_text())
        _assert_same(_strip(a), _strip(b), nb)
        assert (tmp_path / "dask" / "book" / f"{nb}.ipynb").is_file()
    # the same trained models, under the same content keys, in both caches
    for kind in ("ann", "thresholds", "snn_bp"):
        keys = [sorted(p.name for p in (tmp_path / n / "cache" / kind).iterdir() if p.is_dir())
                for n in ("local", "dask")]
        assert keys[0] == keys[1] and len(keys[0]) == 2, (kind, keys)
    assert os.environ.get("SNNLIB_CACHE") != str(tmp_path / "dask" / "cache")   # restored


# --------------------------------------------------------------------------------------------
# Dask for real: `dask scheduler` and two `dask worker` processes; one worker dies mid-unit
# --------------------------------------------------------------------------------------------

# the unit announces itself (the pid of its worker process: the kernel's parent), then works for a while
SLOW_AND_TELL = """marker = {marker!r}
with open(marker, "a") as f:
    f.write(f"{{os.getppid()}}\\n")
time.sleep({sleep})
"""


def _dask_cli(*args: str, log: Path, **env_changes):
    import subprocess
    import sys
    dask = Path(sys.executable).parent / "dask"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **env_changes)
    return subprocess.Popen([str(dask), *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)         # its own process group: killed with its children


def _wait_for(cond, timeout_s: float, what: str):
    import time
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def test_real_dask_cluster_survives_a_worker_killed_mid_unit(capsys, tmp_path):
    """A scheduler and two workers started with the `dask` command line (the scheduler imports snnlib too); the
    worker running 02_discretization is killed (SIGKILL to its process group: the worker and its notebook kernel,
    as when a node is lost); the unit runs again on the other worker and the run ends with every result."""
    import signal
    import threading
    distributed = pytest.importorskip("distributed")
    sched_file = tmp_path / "scheduler.json"
    # with allowed-failures 0 the scheduler does not rerun the unit on its own: the runner sees the worker's death,
    # retries and counts the attempt (the README says to start schedulers so)
    procs = [_dask_cli("scheduler", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file),
                       log=tmp_path / "scheduler.log", DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")]
    try:
        _wait_for(sched_file.is_file, 60, "the scheduler file")
        for name in ("w1", "w2"):
            procs.append(_dask_cli("worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                                   "--no-nanny", "--no-dashboard", "--name", name, log=tmp_path / f"{name}.log"))
        address = json.loads(sched_file.read_text())["address"]
        with distributed.Client(address, timeout=60) as client:
            _wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 60, "two workers")
            workers = {info["name"]: info["pid"] if "pid" in info else None
                       for info in client.scheduler_info()["workers"].values()}
        marker = tmp_path / "started"
        book = _dummy_book(tmp_path / "book", {"02_discretization": SLOW_AND_TELL.format(marker=str(marker),
                                                                                         sleep=8)})
        killed = []

        def kill_the_worker_of_02():
            pid = int(_wait_for(lambda: marker.is_file() and marker.read_text().split(), 120, "02 to start")[0])
            for p in procs[1:]:
                if p.pid == pid:                       # --no-nanny: the worker is the process we started
                    os.killpg(p.pid, signal.SIGKILL)
                    killed.append(p.pid)

        killer = threading.Thread(target=kill_the_worker_of_02, daemon=True)
        killer.start()
        argv = _argv(tmp_path, book, "--executor", "dask", "--scheduler", address, "--no-train-units",
                     "--only", "01,02,07", "--retries", "1")
        assert main(argv) == 0, capsys.readouterr().err[-3000:]
        cap = capsys.readouterr()
        assert "02_discretization: attempt 1 failed" in cap.err, cap.err[-3000:]
        assert "succeeded after a retry: 02_discretization (2 attempts)" in cap.out
        assert "reruns a unit whose worker dies" not in cap.err
        killer.join(timeout=5)
        assert len(killed) == 1, f"the worker of 02 was not found among {[p.pid for p in procs]} ({workers})"
        starts = marker.read_text().split()
        assert len(starts) == 2 and starts[0] != starts[1]          # ran again, on the other worker
        for nb in ("01_models", "02_discretization", "07_summary"):
            assert json.loads((tmp_path / "res" / f"{nb}.json").read_text())["T_bp"] == 8
        assert not [p for p in book.iterdir() if p.name.startswith(".") and p.suffix == ".ipynb"]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except Exception:
                os.killpg(p.pid, signal.SIGKILL)


def test_a_cluster_that_cannot_import_snnlib_is_refused_before_any_unit():
    """The scheduler unpickles the units' tasks too: where it (or a worker) cannot import snnlib, the runner stops
    at once with what to fix, instead of failing every unit in 0.0 s."""
    pytest.importorskip("distributed")

    class FakeClient:
        def __init__(self, scheduler_ok, workers_ok):
            self.s, self.w, self.closed = scheduler_ok, workers_ok, False

        def run_on_scheduler(self, fn):
            assert fn()["ok"]                       # the probe itself runs here and finds snnlib
            return {"ok": self.s, "python": "/opt/sched/bin/python"}

        def run(self, fn):
            return {f"tcp://w{i}": {"ok": ok, "python": "/opt/w/bin/python"} for i, ok in enumerate(self.w)}

        def close(self):
            self.closed = True

    ex = X.DaskExecutor.__new__(X.DaskExecutor)
    ex.cluster = None
    ex.client = FakeClient(True, [True, True])
    ex.check_imports()                              # all fine: no error
    ex.client = FakeClient(False, [True, False])
    with pytest.raises(X.ClusterSetupError, match=r"cannot import snnlib in: the scheduler \(/opt/sched/bin/python\)"
                                                  r", worker tcp://w1 .*PYTHONPATH=.*pip install -e"):
        ex.check_imports()
    assert ex.client.closed


@pytest.mark.parametrize("executor, words", [("dask", "cannot be stopped from here and will still write"),
                                             ("local", "left unchanged")])
def test_ctrl_c_message_is_true_for_the_executor(capsys, tmp_path, monkeypatch, executor, words):
    """Ctrl-C: the local executor stops the notebook (its output is left unchanged); Dask cannot stop a started
    task, and the message says so instead of promising an unchanged output."""
    from snnlib.study import cli

    def interrupted(*a, reporter=None, **k):
        class Cur:
            unit = Unit(id="nb/02_discretization", kind="notebook", label="02_discretization", spec={},
                        notebook="02_discretization")
        reporter.current = Cur()
        raise KeyboardInterrupt

    monkeypatch.setattr(X, "run_grid", interrupted)
    monkeypatch.setattr(cli, "_make_executor", lambda plan: FakeExecutor())
    book = _dummy_book(tmp_path / "book")
    extra = ("--executor", "dask", "--scheduler", "tcp://127.0.0.1:1") if executor == "dask" else ()
    code = main(_argv(tmp_path, book, "--no-train-units", "--only", "02", *extra))
    err = capsys.readouterr().err
    assert code != 0 and words in err, err[-2000:]


def test_every_unit_gets_the_runners_thread_count(capsys, tmp_path, monkeypatch):
    """Results depend on torch's thread count (float reductions), and a Dask nanny sets OMP_NUM_THREADS=1 on its
    workers: the runner pins one count for every unit (--threads, default its own), which the notebook kernels
    and the train units use whatever the worker's own setting."""
    from snnlib.study import cli

    seen = {}

    def record(units, executor, **k):
        seen.update({u.id: dict(u.env) for u in units})
        raise KeyboardInterrupt             # stop here: the units are all this test needs

    monkeypatch.setattr(X, "run_grid", record)
    monkeypatch.setattr(cli, "_make_executor", lambda plan: FakeExecutor())
    book = _dummy_book(tmp_path / "book")
    main(_argv(tmp_path, book, "--only", "02", "--threads", "3"))
    assert seen and all(env["OMP_NUM_THREADS"] == env["SNNLIB_TORCH_THREADS"] == "3" for env in seen.values())
    trains = {}
    for n in (3, 1):                    # a cluster's train units: the models are keyed by the count too
        seen.clear()
        main(_argv(tmp_path, book, "--only", "02", "--executor", "slurm", "--threads", str(n)))
        trains[n] = {u for u in seen if u.startswith("train/")}
    trains_3, trains_1 = trains[3], trains[1]
    assert trains_3 and len(trains_1) == len(trains_3) and not trains_1 & trains_3   # models keyed by the count
    assert main(_argv(tmp_path, book, "--threads", "0")) == 2
    assert "--threads 0: allowed: an integer >= 1" in capsys.readouterr().err


def test_a_train_unit_computes_with_the_pinned_threads_and_restores_the_workers(tmp_path, monkeypatch):
    import torch
    from snnlib.study import pipeline

    used = []
    monkeypatch.setattr(pipeline, "build_models", lambda *a, **k: used.append(torch.get_num_threads()) or
                        type("M", (), {"info": {}})())
    before = torch.get_num_threads()
    pinned = 1 if before > 1 else 2
    unit = Unit(id="train/s0", kind="train", label="train seed 0", env={"SNNLIB_TORCH_THREADS": str(pinned)},
                spec={"params": {}, "seed": 0, "cache_dir": str(tmp_path)})
    out = X.run_unit(unit)
    assert used == [pinned] and out["torch_threads"] == pinned and torch.get_num_threads() == before


def test_local_runs_say_how_long_a_notebook_has_run_and_where_it_is(capsys, tmp_path):
    """A long notebook is not silent: the local runner prints, every --progress-every seconds, the time it has
    run against its estimate and the code cell it is executing (read from papermill's running copy)."""
    book = _dummy_book(tmp_path / "book", {"02_discretization": "time.sleep(4)"})
    assert main(_argv(tmp_path, book, "--only", "02", "--progress-every", "0.7")) == 0
    out = capsys.readouterr().out
    beats = [line for line in out.splitlines() if "02_discretization: running for" in line]
    assert beats, out[-2000:]
    assert any(re.search(r"\(estimate [^)]+\), cell (\d+) of \1$", line) for line in beats), beats
    assert main(_argv(tmp_path, book, "--only", "02", "--progress-every", "0")) == 2


def test_failures_that_would_repeat_are_not_retried():
    """A Python error in a cell or a time-limit hit fails the same way again: no second attempt; a crash is retried."""
    class Once(FakeExecutor):
        def wait(self, handles, timeout):
            h = handles[0]
            retry = h[0] != "nb/01"                  # 01: a deterministic error; the others: a crash
            return [(h, h[2], {"id": h[0]} if h[2] else X.UnitError(f"boom {h[0]}", retry=retry))]

    ex = Once(fails={"nb/01": 5, "nb/02": 1})
    states = run_grid(_grid(), ex, retries=2, keep_going=True)
    assert states["nb/01"].status == X.FAILED and states["nb/01"].attempts == 1
    assert states["nb/01"].note.startswith("not retried")
    assert states["nb/02"].status == X.OK and states["nb/02"].attempts == 2
    import pickle
    e = pickle.loads(pickle.dumps(X.UnitError("m", None, "h", retry=False)))
    assert e.retry is False and e.host == "h" and X.UnitError("m").retry is True


def test_a_cell_error_is_deterministic_a_dead_kernel_is_not(tmp_path):
    from snnlib.study import notebooks
    book = _dummy_book(tmp_path / "book", {"02_discretization": "raise ValueError('boom')",
                                           "03_leak": "raise MemoryError()"})
    for stem, deterministic in (("02_discretization", True), ("03_leak", False)):
        with pytest.raises(notebooks.NotebookFailed) as info:
            notebooks.execute_notebook(book / f"{stem}.ipynb", tmp_path / f"{stem}.ipynb",
                                       {"results_dir": str(tmp_path / "res")}, cwd=ROOT,
                                       failed_copy=tmp_path / f"{stem}.failed.ipynb")
        assert info.value.deterministic is deterministic


def test_copies_left_by_killed_processes_are_removed_not_those_of_live_ones(tmp_path):
    """A killed worker or runner leaves papermill's running copy next to the output; the next run of that notebook
    on the host removes it, and leaves the copies of live processes (a concurrent run) and of other hosts."""
    import subprocess
    import sys
    from snnlib.study import notebooks
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{notebooks.running_prefix('02_discretization', dead.pid)}abcd1234.ipynb"
    live = tmp_path / f"{notebooks.running_prefix('02_discretization')}abcd1234.ipynb"
    other_host = tmp_path / ".02_discretization.running-otherhost-1-abcd1234.ipynb"
    other_nb = tmp_path / f"{notebooks.running_prefix('03_leak', dead.pid)}abcd1234.ipynb"
    for p in (stale, live, other_host, other_nb):
        p.write_text("{}")
    assert notebooks.remove_stale_copies(tmp_path, "02_discretization") == [stale]
    assert not stale.exists() and live.exists() and other_host.exists() and other_nb.exists()
    book = _dummy_book(tmp_path / "book")
    notebooks.execute_notebook(book / "03_leak.ipynb", tmp_path / "03_leak.ipynb", {"results_dir": str(tmp_path)},
                               cwd=ROOT, failed_copy=tmp_path / "03_leak.failed.ipynb")
    assert not other_nb.exists() and (tmp_path / "03_leak.ipynb").is_file()
