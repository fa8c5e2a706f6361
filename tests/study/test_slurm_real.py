"""--executor slurm on a real SLURM cluster (tests/slurm_cluster.py: one started on localhost, or one that runs).

* the smoke profile's 01_models with its two train units as SLURM jobs gives the results JSON of a local run;
* a job cancelled with scancel mid-run is retried (--retries 1) and the run completes;
* a job whose process is killed (SIGKILL, no result written) on a cluster without accounting (sacct answers "Slurm
  accounting storage is disabled") is reported as failed within seconds, instead of being waited for forever;
* the runner's output has no sacct warnings (submitit polls sacct; without accounting it warned at every poll);
* each job is submitted with its own sbatch options only (submitit's update_parameters accumulates);
* a refused submission (--partition nosuch; a transient sbatch error) is a failed attempt of its unit, retried or
  reported per unit, never a traceback that ends the run;
* with accounting (slurmdbd + MariaDB, fixture ``slurm_acct``): sacct answers, the jobs are followed through it
  without warnings in the output, and a job whose process is killed is reported with its id, its end state from
  sacct and the tail of its log.

Everything here skips, saying why, where no cluster runs and none can be started (needs root and Debian's
slurm-wlm + munge: apt-get install -y slurm-wlm munge; the accounting tests also mariadb-server + slurmdbd;
.ci/run installs them when apt-get is there) or where submitit is not installed.  One started cluster runs at a
time: the tests without accounting share one, those with accounting another.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from slurm_cluster import SlurmUnavailable, single_node_slurm
from snnlib.study import executors as X
from snnlib.study.cli import main
from test_cluster import SMALL, _argv, _assert_same, _dummy_book, _strip

ROOT = Path(__file__).resolve().parents[2]


class _OneCluster:
    """The started clusters of this module, one at a time: two would share ``SLURM_CONF`` (os.environ), and the
    second would find the first running and use it.  ``get(accounting)`` stops the open cluster when it is of the
    other kind and starts (or reuses) the one asked for; a cluster that cannot start skips its tests with the
    reason, once."""

    def __init__(self):
        self.kind: bool | None = None
        self.cluster = None
        self.stack = contextlib.ExitStack()
        self.refused: dict[bool, str] = {}

    def get(self, accounting: bool):
        if accounting in self.refused:
            pytest.skip(self.refused[accounting])
        if self.cluster is not None and self.kind == accounting:
            return self.cluster
        self.close()
        try:
            self.cluster = self.stack.enter_context(single_node_slurm(accounting=accounting))
        except SlurmUnavailable as e:
            self.close()
            self.refused[accounting] = f"no SLURM cluster{' with accounting' if accounting else ''}: {e}"
            pytest.skip(self.refused[accounting])
        self.kind = accounting
        _fresh_watcher()
        return self.cluster

    def close(self):
        self.stack.close()
        self.stack = contextlib.ExitStack()
        self.cluster = self.kind = None


def _fresh_watcher():
    """submitit's job-state watcher is one per process (a class attribute): a new cluster gets a new one, so what
    the old one learned (sacct disabled there, the states of job ids that the new cluster numbers again from 1) is
    not applied to the new cluster."""
    job_class = X._submitit_classes(None)[1]
    job_class.watcher = type(job_class.watcher)(delay_s=600)


@pytest.fixture(scope="module")
def _clusters():
    pytest.importorskip("submitit", reason="submitit not installed (pip install -r requirements-cluster.txt)")
    job_class = X._submitit_classes(None)[1]
    watcher = job_class.watcher
    one = _OneCluster()
    try:
        yield one
    finally:
        one.close()
        job_class.watcher = watcher


@pytest.fixture
def slurm(_clusters):
    """A cluster (started: without accounting, sacct answers "disabled"); started once for the module's tests."""
    return _clusters.get(accounting=False)


@pytest.fixture
def slurm_acct(_clusters):
    """A cluster whose sacct answers (started: with MariaDB and slurmdbd); started once for the module's tests."""
    return _clusters.get(accounting=True)


@pytest.fixture(autouse=True)
def _quick_polls(monkeypatch):
    """Look at the jobs every second (the default is 10 s); an ended job's result may take 3 s to appear."""
    monkeypatch.setattr(X.SlurmExecutor, "poll_s", 1.0)
    monkeypatch.setattr(X.SlurmExecutor, "gone_grace_s", 3.0)
    monkeypatch.setattr(X.SlurmExecutor, "resubmit_delay_s", 1.0)


def _main_within(argv: list[str], seconds: float) -> int:
    """main(argv), failing the test (instead of hanging) when the runner has not returned after ``seconds``."""
    box: dict[str, object] = {}

    def target():
        try:
            box["rc"] = main(argv)
        except BaseException as e:          # noqa: BLE001 - reported below
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"the runner still waits after {seconds:.0f} s (a job that ended was not noticed)")
    if "error" in box:
        raise box["error"]                  # type: ignore[misc]
    return box["rc"]                        # type: ignore[return-value]


def _assert_clean(text: str) -> None:
    """No traceback and no sacct noise (submitit's "Bypassing sacct error", sacct's own stderr line)."""
    for bad in ("Traceback", "Bypassing sacct", "accounting storage is disabled", "submitit WARNING",
                "submitit ERROR"):
        assert bad not in text, (bad, text[-3000:])


def _squeue(*args: str) -> str:
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, timeout=30).stdout


# the notebook writes "<its SLURM job id> <the pid of the job's python (the kernel's parent)>" on its first run,
# then works for a while; later runs finish at once
TELL_AND_WORK = """marker = {marker!r}
if not os.path.exists(marker):
    with open(marker + ".tmp", "w") as f:
        f.write(os.environ.get("SLURM_JOB_ID", "?") + " " + str(os.getppid()))
    os.replace(marker + ".tmp", marker)
    time.sleep({sleep})
"""


def _when_started(marker: Path, action, timeout: float = 180) -> threading.Thread:
    """Run ``action(job_id, pid)`` in a thread once the notebook has written the marker."""
    def watch():
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if marker.is_file():
                job_id, pid = marker.read_text().split()
                action(job_id, int(pid))
                return
            time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_notebook_and_its_train_units_on_slurm_match_the_local_executor(capfd, tmp_path, slurm):
    """01_models of the smoke profile (tiny sizes): the local executor (the notebook trains) vs SLURM (two train
    jobs, then the notebook's job loads their models): the same results JSON, the same cached models."""
    runs = {}
    for name, extra in (("local", []), ("slurm", ["--executor", "slurm", "--progress-every", "5"])):
        d = tmp_path / name
        argv = ["run", "--profile", "smoke", "--only", "01_models", *SMALL, "--threads", "1",
                "--book-dir", str(ROOT / "book"), "--out-dir", str(d / "book"),
                "--results-dir", str(d / "res"), "--cache-dir", str(d / "cache"), *extra]
        rc = _main_within(argv, 900)
        cap = capfd.readouterr()
        assert rc == 0, cap.out[-3000:] + cap.err[-3000:]
        runs[name] = cap
    out = runs["slurm"].out
    _assert_clean(runs["slurm"].out + runs["slurm"].err)
    assert "Executor: slurm (submitit" in out and "(2 train, 1 notebook)" in out
    assert "train seed 0: ok in" in out and "train seed 1: ok in" in out and "01_models: ok in" in out
    assert "+2/2 train unit(s) ok" in out
    a = json.loads((tmp_path / "local" / "res" / "01_models.json").read_text())
    b = json.loads((tmp_path / "slurm" / "res" / "01_models.json").read_text())
    _assert_same(_strip(a), _strip(b), "01_models")
    assert (tmp_path / "slurm" / "book" / "01_models.ipynb").is_file()
    for kind in ("ann", "thresholds", "snn_bp"):
        keys = [sorted(p.name for p in (tmp_path / n / "cache" / kind).iterdir() if p.is_dir())
                for n in ("local", "slurm")]
        assert keys[0] == keys[1] and len(keys[0]) == 2, (kind, keys)
    jobs = [p for p in (tmp_path / "slurm" / "res" / "_slurm").iterdir() if p.name.isdigit()]
    assert len(jobs) == 3                                     # one SLURM job per unit, each once


def test_a_job_cancelled_with_scancel_is_retried(capfd, tmp_path, slurm):
    marker = tmp_path / "started"
    book = _dummy_book(tmp_path / "book", {"02_discretization": TELL_AND_WORK.format(marker=str(marker),
                                                                                     sleep=300)})
    cancelled = []

    def cancel(job_id, pid):
        subprocess.run(["scancel", job_id], check=True, timeout=30)
        cancelled.append(job_id)

    watcher = _when_started(marker, cancel)
    argv = _argv(tmp_path, book, "--executor", "slurm", "--no-train-units", "--only", "01,02,07",
                 "--retries", "1", "--progress-every", "5")
    t0 = time.monotonic()
    rc = _main_within(argv, 120)
    took = time.monotonic() - t0
    watcher.join(timeout=5)
    cap = capfd.readouterr()
    assert rc == 0, cap.out[-3000:] + cap.err[-3000:]
    assert len(cancelled) == 1
    assert took < 110                                          # not the 300 s the cancelled job would have worked
    # scancel sends SIGTERM: the notebook's kernel dies, and the unit fails with DeadKernelError (or, where the
    # job's python is killed before it writes that, without a result): either way the state is named
    assert "02_discretization: attempt 1 failed" in cap.err and "retrying (1 retry left)" in cap.err
    assert (f"SLURM job {cancelled[0]} CANCELLED: DeadKernelError" in cap.err
            or f"SLURM job {cancelled[0]} ended (CANCELLED" in cap.err), cap.err
    assert "02_discretization: submitted again (attempt 2 of 2)" in cap.out
    assert "succeeded after a retry: 02_discretization (2 attempts)" in cap.out
    for nb in ("01_models", "02_discretization", "07_summary"):
        assert json.loads((tmp_path / "res" / f"{nb}.json").read_text())["T_bp"] == 8
    _assert_clean(cap.out + cap.err)


def test_a_killed_job_is_reported_even_without_accounting(capfd, tmp_path, slurm):
    """The job's python (which would write the result) is killed with SIGKILL: no result file, and where sacct does
    not answer submitit never learns that the job ended. The runner sees it with squeue, reports the unit failed
    (--retries 0) with the job's state and log, still runs the summary (--keep-going) and returns."""
    if slurm.started:
        assert not slurm.accounting                       # the cluster started here has no accounting
    marker = tmp_path / "started"
    book = _dummy_book(tmp_path / "book", {"02_discretization": TELL_AND_WORK.format(marker=str(marker),
                                                                                     sleep=300)})
    killed = []

    def kill(job_id, pid):
        os.kill(pid, signal.SIGKILL)
        killed.append(job_id)

    watcher = _when_started(marker, kill)
    argv = _argv(tmp_path, book, "--executor", "slurm", "--no-train-units", "--only", "02,07",
                 "--retries", "0", "--keep-going", "--progress-every", "5")
    t0 = time.monotonic()
    rc = _main_within(argv, 120)
    took = time.monotonic() - t0
    watcher.join(timeout=5)
    cap = capfd.readouterr()
    assert rc == 1, cap.out[-3000:] + cap.err[-3000:]
    assert len(killed) == 1 and took < 110
    assert "02_discretization: FAILED after" in cap.err
    assert f"SLURM job {killed[0]} ended (FAILED" in cap.err and "without writing its result; log: " in cap.err
    assert "Failures:\n  02_discretization (1 attempt): SLURM job" in cap.err
    assert "rerun only the notebooks that did not finish: python -m snnlib.study run --profile smoke " \
           "--only 02_discretization" in cap.err
    assert json.loads((tmp_path / "res" / "07_summary.json").read_text())["T_bp"] == 8
    _assert_clean(cap.out + cap.err)
    if not slurm.accounting:                            # sacct was asked, said "disabled", and was left alone
        watcher_of_jobs = X._submitit_classes(None)[1].watcher
        assert watcher_of_jobs.accounting_off and "accounting storage is disabled" in watcher_of_jobs.problem


def test_each_job_has_its_own_sbatch_options(tmp_path, slurm):
    """Unit a asks for 2 CPUs and a comment, unit b for nothing: b's job has 1 CPU and no comment (submitit's
    update_parameters accumulates; the executor starts every job from its own parameters)."""
    book = _dummy_book(tmp_path / "book")
    units = {}
    for name, nb in (("a", "01_models"), ("b", "02_discretization")):
        units[name] = X.Unit(id=f"nb/{nb}", kind="notebook", label=nb, notebook=nb, env={"PYTHONPATH": str(ROOT)},
                             spec={"input": str(book / f"{nb}.ipynb"), "output": str(tmp_path / f"{nb}.ipynb"),
                                   "parameters": {"results_dir": str(tmp_path / "res")}, "cwd": str(ROOT),
                                   "failed_copy": str(tmp_path / f"{nb}.failed.ipynb")})
    wanted = {"a": dict(cpus_per_task=min(2, slurm.cpus), extra={"comment": "unit-a-only"}), "b": {}}

    def spec_for(unit):
        opts = wanted["a" if unit is units["a"] else "b"]
        return X.slurm_job_spec(unit, folder=str(tmp_path / "_slurm"), partition=slurm.partition, **opts)

    ex = X.SlurmExecutor(str(tmp_path / "_slurm"), spec_for=spec_for)
    jobs = {name: ex.submit(units[name], 1) for name in ("a", "b")}
    try:
        shown = {name: subprocess.run(["scontrol", "show", "job", "-o", j.job_id], capture_output=True, text=True,
                                      timeout=30).stdout for name, j in jobs.items()}
        assert "Comment=unit-a-only" in shown["a"] and f"NumCPUs={min(2, slurm.cpus)}" in shown["a"]
        assert "Comment=" not in shown["b"] and "NumCPUs=1 " in shown["b"], shown["b"]
        done = {}
        t0 = time.monotonic()
        while len(done) < 2 and time.monotonic() - t0 < 120:
            for h, ok, value in ex.wait([j for j in jobs.values() if j not in done], timeout=5):
                done[h] = (ok, value)
        assert len(done) == 2 and all(ok for ok, _ in done.values()), done
    finally:
        ex.cancel(list(jobs.values()))


def test_a_refused_submission_is_reported_per_unit(capfd, tmp_path, slurm):
    book = _dummy_book(tmp_path / "book")
    argv = _argv(tmp_path, book, "--executor", "slurm", "--no-train-units", "--only", "01,02",
                 "--partition", "nosuch", "--keep-going", "--retries", "1")
    rc = _main_within(argv, 120)
    cap = capfd.readouterr()
    assert rc == 1, cap.out[-3000:] + cap.err[-3000:]
    for nb in ("01_models", "02_discretization"):
        assert f"{nb}: attempt 1 failed after" in cap.err
        assert f"{nb}: FAILED (2 attempts) after" in cap.err
    assert "sbatch refused the job: invalid partition specified: nosuch" in cap.err
    assert "Study 'smoke': 2 failed (01_models, 02_discretization), 0 ok" in cap.err
    assert not _squeue()                                    # nothing was queued
    _assert_clean(cap.out + cap.err)


def test_a_transient_sbatch_error_is_retried(capfd, tmp_path, slurm, monkeypatch):
    """sbatch fails once as when the controller is briefly unreachable; the unit's retry goes through."""
    import shutil
    real = shutil.which("sbatch")
    fake = tmp_path / "bin"
    fake.mkdir()
    flag = tmp_path / "sbatch-failed-once"
    (fake / "sbatch").write_text(
        "#!/bin/sh\n"
        f"if [ ! -e {flag} ]; then touch {flag}\n"
        "  echo 'sbatch: error: Batch job submission failed: Socket timed out on send/recv operation' >&2\n"
        "  exit 1\nfi\n"
        f'exec {real} "$@"\n')
    (fake / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    book = _dummy_book(tmp_path / "book")
    argv = _argv(tmp_path, book, "--executor", "slurm", "--no-train-units", "--only", "02", "--retries", "1")
    rc = _main_within(argv, 120)
    cap = capfd.readouterr()
    assert rc == 0, cap.out[-3000:] + cap.err[-3000:]
    assert flag.is_file()
    assert ("02_discretization: attempt 1 failed after" in cap.err
            and "sbatch refused the job: Batch job submission failed: Socket timed out on send/recv operation; "
                "retrying (1 retry left)" in cap.err)
    assert json.loads((tmp_path / "res" / "02_discretization.json").read_text())["T_bp"] == 8
    _assert_clean(cap.out + cap.err)


# --------------------------------------------------------------------------------------------
# a cluster with accounting (slurmdbd + MariaDB): submitit learns the jobs' end states from sacct


def _sacct_state(job_id: str) -> str:
    r = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State"], capture_output=True, text=True,
                       timeout=30)
    return r.stdout.strip()


def test_with_accounting_sacct_answers_and_the_output_is_clean(capfd, tmp_path, slurm_acct):
    """sacct answers (no "accounting storage is disabled"); a run's jobs are followed through sacct (submitit's
    watcher asked it, without an error) and the runner's output has no sacct warnings."""
    r = subprocess.run(["sacct", "-n", "-X", "-o", "JobID"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "disabled" not in r.stdout + r.stderr, r
    assert slurm_acct.accounting
    book = _dummy_book(tmp_path / "book")
    argv = _argv(tmp_path, book, "--executor", "slurm", "--no-train-units", "--only", "01,02",
                 "--retries", "0", "--progress-every", "5")
    rc = _main_within(argv, 120)
    cap = capfd.readouterr()
    assert rc == 0, cap.out[-3000:] + cap.err[-3000:]
    _assert_clean(cap.out + cap.err)
    watcher = X._submitit_classes(None)[1].watcher
    assert watcher.num_calls > 0 and not watcher.accounting_off and watcher.problem is None, watcher.problem
    jobs = sorted(p.name for p in (tmp_path / "res" / "_slurm").iterdir() if p.name.isdigit())
    assert len(jobs) == 2
    t0 = time.monotonic()
    while any(_sacct_state(j) != "COMPLETED" for j in jobs) and time.monotonic() - t0 < 30:
        time.sleep(0.5)
    assert [_sacct_state(j) for j in jobs] == ["COMPLETED", "COMPLETED"]


def test_with_accounting_a_killed_job_is_reported_with_its_state_and_log(capfd, tmp_path, slurm_acct,
                                                                         monkeypatch):
    """The job's python is killed with SIGKILL (no result written); sacct reports the job FAILED and submitit
    calls the job done.  squeue is made silent here, so that what the runner says comes from accounting: the unit
    is reported failed (--retries 0) with the job id, its end state from sacct and the last lines of its log (the
    whole message, not only its first line), without waiting for the 300 s the job would have worked."""
    monkeypatch.setattr(X.SlurmExecutor, "_squeue", staticmethod(lambda job_ids: None))
    marker = tmp_path / "started"
    book = _dummy_book(tmp_path / "book", {"02_discretization": TELL_AND_WORK.format(marker=str(marker),
                                                                                     sleep=300)})
    killed = []

    def kill(job_id, pid):
        os.kill(pid, signal.SIGKILL)
        killed.append(job_id)

    watcher = _when_started(marker, kill)
    argv = _argv(tmp_path, book, "--executor", "slurm", "--no-train-units", "--only", "02,07",
                 "--retries", "0", "--keep-going", "--progress-every", "5")
    t0 = time.monotonic()
    rc = _main_within(argv, 120)
    took = time.monotonic() - t0
    watcher.join(timeout=5)
    cap = capfd.readouterr()
    assert rc == 1, cap.out[-3000:] + cap.err[-3000:]
    assert len(killed) == 1 and took < 110
    state = _sacct_state(killed[0])
    assert state == "FAILED"                                  # accounting's word: the job's step was killed
    log = tmp_path / "res" / "_slurm" / killed[0] / f"{killed[0]}_0_log.err"
    tail = [ln.rstrip() for ln in log.read_text().splitlines() if ln.strip()][-3:]
    assert any("Killed" in ln for ln in tail), tail           # srun: error: localhost: task 0: Killed
    assert "02_discretization: FAILED after" in cap.err
    assert (f"SLURM job {killed[0]} ended ({state}) without writing its result; log: {log}"
            + "".join(f"\n      | {ln}" for ln in tail)) in cap.err, cap.err
    assert f"Failures:\n  02_discretization (1 attempt): SLURM job {killed[0]} ended ({state})" in cap.err
    assert json.loads((tmp_path / "res" / "07_summary.json").read_text())["T_bp"] == 8
    _assert_clean(cap.out + cap.err)
    watcher_of_jobs = X._submitit_classes(None)[1].watcher
    assert not watcher_of_jobs.accounting_off and watcher_of_jobs.problem is None
