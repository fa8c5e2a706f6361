"""Units of work of the study and the executors that run them: local, Dask, SLURM (submitit).

A study run is a grid of independent **units**:

* ``train`` units, one per (model configuration, training seed): ``pipeline.build_models(params, seed)``
  trains the ANN, balances the thresholds of the converted SNN and fine-tunes the BPTT SNN, storing
  each in the :class:`~snnlib.study.cache.ArtifactCache` (idempotent: a cached model is just loaded);
* ``notebook`` units, one per (notebook, parameter set): papermill executes ``book/<nb>.ipynb`` into a
  temp file that replaces the executed notebook (in ``runs/<profile>/book/``, or ``book/`` with
  ``--publish``) only on success; the notebook writes its ``<results-dir>/<nb>.json`` atomically.  A notebook unit depends on the train units of the
  models it reads, so on a cluster the (long) training jobs run first and once, and the evaluations
  then only load them.  ``07_summary`` (it reads the other notebooks' results) is ordered after the
  other notebooks but still runs when one of them failed, as it does locally (its claims then say
  "not run").

A unit carries everything it needs (absolute paths, parameters, the environment: ``SNNLIB_CACHE`` and
``PYTHONPATH``), so :func:`run_unit` can execute it on any machine that sees the same file system,
in any order, twice, or again after a crash, and the book comes out the same: every file it
writes is written atomically and trained models are content-keyed and built under a per-entry file
lock (two workers asking for the same model train it once; the other waits and loads it).

:func:`run_grid` drives a grid through an executor: it submits the units whose dependencies are
done, retries a failed unit ``retries`` times, reports progress (done, running, failed, remaining)
and returns the final state of every unit.  Executors:

* :class:`LocalExecutor`  - in this process, one unit at a time (today's behaviour);
* :class:`DaskExecutor`   - a Dask ``distributed`` cluster (``--scheduler ADDRESS``, or a
  ``LocalCluster`` of ``--workers N`` processes with one thread each);
* :class:`SlurmExecutor`  - one SLURM job per unit through ``submitit`` (``--partition``, ``--time``,
  ``--gpus-per-node``, ``--cpus-per-task``, ``--slurm-arg key=value``); :func:`slurm_job_spec` and
  :func:`sbatch_preview` show what would be submitted without submitting.

Dask, distributed and submitit are optional (``requirements-cluster.txt``); they are imported only
by the executor that needs them.
"""

from __future__ import annotations

import abc
import contextlib
import math
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..machine import utc_now
from .notebooks import NotebookFailed, running_prefix

__all__ = [
    "Unit",
    "UnitError",
    "UnitState",
    "run_unit",
    "run_unit_captured",
    "run_grid",
    "Executor",
    "LocalExecutor",
    "DaskExecutor",
    "SlurmExecutor",
    "parse_slurm_time",
    "slurm_job_spec",
    "sbatch_preview",
    "MissingExtra",
]

TRAIN, NOTEBOOK = "train", "notebook"

#: Final states of a unit.
OK, FAILED, SKIPPED, BLOCKED, NOT_RUN = "ok", "failed", "skipped", "blocked", "not run"


class MissingExtra(RuntimeError):
    """An optional dependency of an executor is not installed."""


class ClusterSetupError(RuntimeError):
    """The cluster cannot run the units (its scheduler or workers cannot import snnlib); says what to fix."""


def _need(module: str, executor: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"--executor {executor} needs the optional package {module.split('.')[0]!r}; install "
            "the cluster extra: python -m pip install -r requirements-cluster.txt") from None


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One independent piece of work.  Plain data: picklable, and JSON-able except the tuples."""

    id: str                                   #: unique in the grid, e.g. ``nb/01_models``
    kind: str                                 #: ``train`` or ``notebook``
    label: str                                #: for people: ``01_models``, ``train seed 0``
    spec: Mapping[str, Any]                   #: what to run (absolute paths, parameters)
    env: Mapping[str, str] = field(default_factory=dict)   #: set while the unit runs
    deps: tuple[str, ...] = ()                #: units that must succeed first
    after: tuple[str, ...] = ()               #: units that must finish first (success or not)
    estimate_s: float = 60.0                  #: expected wall time (for SLURM time limits)
    notebook: str | None = None               #: the notebook stem of a notebook unit


class UnitError(Exception):
    """A unit failed.  Picklable across processes (all state in ``args``).

    retry: whether another attempt may succeed; False for a Python error raised in a cell (the same inputs raise
    it again) and for a job stopped at its time limit (the same limit stops it again).
    """

    def __init__(self, message: str, failed_copy: str | None = None, host: str | None = None, retry: bool = True):
        super().__init__(message, failed_copy, host, retry)

    @property
    def retry(self) -> bool:
        return self.args[3] if len(self.args) > 3 else True

    @property
    def message(self) -> str:
        return self.args[0]

    @property
    def failed_copy(self) -> str | None:
        return self.args[1]

    @property
    def host(self) -> str | None:
        return self.args[2]

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def environment(changes: Mapping[str, str | None]):
    """Set (or, with None, remove) environment variables for the duration of a ``with`` block."""
    old = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_unit(unit: Unit, attempt: int = 1) -> dict[str, Any]:
    """Execute ``unit`` here; return a JSON-able summary or raise :class:`UnitError`.

    This is the function a Dask worker or a SLURM job calls.  It applies ``unit.env`` (the artifact
    cache location, ``PYTHONPATH``) for the duration of the unit.
    """
    host = socket.gethostname()
    t0 = time.monotonic()
    started = utc_now()
    info: dict[str, Any] = {}
    with environment(unit.env):
        try:
            if unit.kind == TRAIN:
                info = _run_train(unit.spec)
            elif unit.kind == NOTEBOOK:
                _run_notebook(unit.spec)
            else:
                raise UnitError(f"unknown unit kind {unit.kind!r}")
        except UnitError as e:
            raise UnitError(e.message, e.failed_copy, host, e.retry) from None
        except Exception as e:
            failed_copy = getattr(e, "failed_copy", None)
            msg = str(e) if isinstance(e, NotebookFailed) else f"{type(e).__name__}: {e}"
            if not isinstance(e, NotebookFailed):
                frames = traceback.extract_tb(e.__traceback__)[-2:]
                msg += "".join(f"\n      | at {os.path.basename(f.filename)}:{f.lineno} in {f.name}"
                               for f in frames)
            raise UnitError(msg, str(failed_copy) if failed_copy else None, host,
                            retry=not getattr(e, "deterministic", False)) from None
    return {"id": unit.id, "status": OK, "attempt": attempt, "host": host, "pid": os.getpid(),
            "started_utc": started, "finished_utc": utc_now(),
            "wall_time_s": round(time.monotonic() - t0, 3), **info}


def run_unit_captured(unit: Unit, attempt: int = 1) -> tuple[bool, Any]:
    """:func:`run_unit` that returns ``(ok, result_or_UnitError)`` instead of raising.

    Used by the cluster executors: a unit's failure is a result the driver retries or reports,
    not a task error that the cluster logs with its own traceback.  A worker that dies (killed,
    out of memory) still surfaces as the cluster's own error, which the driver retries as well.
    """
    try:
        return True, run_unit(unit, attempt)
    except UnitError as e:
        return False, e


def _run_train(spec: Mapping[str, Any]) -> dict[str, Any]:
    from .cache import ArtifactCache, config_key
    from .pipeline import build_models

    messages: list[str] = []

    def log(msg: str) -> None:
        messages.append(str(msg))
        print(msg, flush=True)

    import torch

    cache = ArtifactCache(spec.get("cache_dir"))
    threads = os.environ.get("SNNLIB_TORCH_THREADS")      # the runner's --threads (torch already runs here)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        models = build_models(dict(spec["params"]), int(spec["seed"]), cache=cache, progress=False,
                              log=log)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    keys = {k: config_key(c) for k, c in models.info.get("configs", {}).items()}
    return {"seed": int(spec["seed"]), "trained": messages, "cache_keys": keys,
            "cache_dir": str(cache.root), "torch_threads": used}


def _run_notebook(spec: Mapping[str, Any]) -> None:
    from .notebooks import execute_notebook

    execute_notebook(spec["input"], spec["output"], dict(spec["parameters"]),
                     kernel=spec.get("kernel", "python3"), cwd=spec["cwd"],
                     failed_copy=spec["failed_copy"], log_output=bool(spec.get("log_output")))


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------


class Executor(abc.ABC):
    """Runs units somewhere.  ``submit`` starts one; ``wait`` returns those that finished."""

    name = "base"
    #: How many units may be submitted at once (``None``: no limit; the cluster queues them).
    capacity: int | None = None

    @abc.abstractmethod
    def submit(self, unit: Unit, attempt: int) -> Any:
        """Start ``unit`` (attempt number ``attempt``); return a handle."""

    @abc.abstractmethod
    def wait(self, handles: Sequence[Any], timeout: float) -> list[tuple[Any, bool, Any]]:
        """Handles that finished within ``timeout`` s: ``(handle, ok, result_or_exception)``."""

    def cancel(self, handles: Sequence[Any]) -> None:
        pass

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.name

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Done:
    def __init__(self, ok: bool, value: Any) -> None:
        self.ok, self.value = ok, value


def notebook_progress(unit: Unit) -> str | None:
    """"cell 5 of 12" for a notebook unit running in this process (read from the executed copy papermill keeps
    saving next to the output, :func:`~snnlib.study.notebooks.running_prefix`); None when there is nothing to read
    yet."""
    import glob
    import json

    out = unit.spec.get("output") if unit.kind == NOTEBOOK else None
    if not out:
        return None
    folder, stem = os.path.dirname(os.path.abspath(out)), os.path.splitext(os.path.basename(out))[0]
    found = sorted(glob.glob(os.path.join(folder, f"{running_prefix(stem)}*.ipynb")), key=os.path.getmtime)
    if not found:
        return None
    try:
        with open(found[-1], encoding="utf-8") as f:
            cells = [c for c in json.load(f).get("cells", []) if c.get("cell_type") == "code"]
    except (OSError, ValueError):
        return None                       # caught mid-write: next time
    done = sum(c.get("metadata", {}).get("papermill", {}).get("status") == "completed" for c in cells)
    return f"cell {min(done + 1, len(cells))} of {len(cells)}" if cells else None


class LocalExecutor(Executor):
    """In this process, one unit at a time: ``submit`` runs the unit to the end.

    heartbeat_s: while a unit runs, print every this many seconds how long it has run against its estimate and,
    for a notebook, which code cell it is in (None: silent).
    """

    name = "local"
    capacity = 1

    def __init__(self, heartbeat_s: float | None = None, out=None) -> None:
        self.heartbeat_s = heartbeat_s
        self.out = out

    def _beat(self, unit: Unit, stop) -> None:
        from .formatting import format_duration
        t0 = time.monotonic()
        while not stop.wait(self.heartbeat_s):
            where = notebook_progress(unit)
            print(f"    {unit.label}: running for {format_duration(time.monotonic() - t0)} (estimate "
                  f"{format_duration(unit.estimate_s)})" + (f", {where}" if where else ""),
                  file=self.out or sys.stdout, flush=True)

    def submit(self, unit: Unit, attempt: int) -> Any:
        import threading

        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(unit, stop), daemon=True) if self.heartbeat_s else None
        if beat is not None:
            beat.start()
        try:
            return _Done(True, run_unit(unit, attempt))
        except UnitError as e:
            return _Done(False, e)
        finally:
            stop.set()
            if beat is not None:
                beat.join()

    def wait(self, handles, timeout):
        return [(h, h.ok, h.value) for h in handles]

    def describe(self) -> str:
        return "local (in this process, one notebook at a time)"


class DaskExecutor(Executor):
    """Units as tasks of a Dask ``distributed`` cluster.

    ``scheduler``: address of a running scheduler (``tcp://host:8786``, or a scheduler file path
    ending in ``.json``); ``None`` starts a ``LocalCluster`` of ``workers`` processes with one thread
    each.  The workers must import ``snnlib`` (installed, or the repository on ``PYTHONPATH``) and see
    the repository, the results folder and the artifact cache at the same paths (shared file system).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 worker_env: Mapping[str, str] | None = None) -> None:
        distributed = _need("distributed", "dask")
        self._distributed = distributed
        self.cluster = None
        if scheduler:
            if scheduler.endswith(".json"):
                self.client = distributed.Client(scheduler_file=scheduler, timeout="60s")
            else:
                self.client = distributed.Client(scheduler, timeout="60s")
        else:
            import dask
            n = workers or max(1, min(os.cpu_count() or 1, 4))
            # a unit whose worker dies comes back to the runner as a failure, which it retries and counts
            # (the scheduler's own silent reruns would hide those attempts)
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                    env=dict(worker_env or {}))
            self.client = distributed.Client(self.cluster)
        self._seq = 0
        if scheduler:
            self.check_imports()

    def check_imports(self) -> None:
        """Raise :class:`ClusterSetupError` unless the scheduler and every worker can import snnlib (the scheduler
        unpickles the units' tasks too: without snnlib every unit would fail at once)."""
        def can_import_snnlib():         # a local function: pickled by value, so it runs where snnlib is missing
            import importlib.util
            import sys
            return {"ok": importlib.util.find_spec("snnlib") is not None, "python": sys.executable}

        try:
            where = {"the scheduler": self.client.run_on_scheduler(can_import_snnlib)}
            where.update({f"worker {a}": r for a, r in self.client.run(can_import_snnlib).items()})
        except Exception as e:          # an old scheduler without run_on_scheduler, a closed comm: not our check
            print(f"note: could not check that the Dask cluster imports snnlib ({type(e).__name__}: {e})",
                  file=sys.stderr, flush=True)
            return
        try:
            def allowed_failures():
                import dask
                return dask.config.get("distributed.scheduler.allowed-failures", 3)
            reruns = int(self.client.run_on_scheduler(allowed_failures))
        except Exception:
            reruns = 0
        if reruns:
            print(f"note: this Dask scheduler reruns a unit whose worker dies up to {reruns} time(s) on its own; "
                  "the runner neither sees nor counts those attempts. Start the scheduler with "
                  "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 to have every attempt counted and reported "
                  "(--retries).", file=sys.stderr, flush=True)
        bad = [f"{name} ({r['python']})" for name, r in where.items() if not r["ok"]]
        if bad:
            self.close()
            raise ClusterSetupError(
                f"the Dask cluster cannot import snnlib in: {', '.join(bad)}. Start the scheduler and the workers "
                f"with the repository on PYTHONPATH (PYTHONPATH={os.environ.get('PYTHONPATH') or '<repo>'} dask "
                "scheduler / dask worker ...) or with snnlib installed in their Python (pip install -e <repo>)")

    def submit(self, unit: Unit, attempt: int) -> Any:
        self._seq += 1
        key = f"snnlib-{unit.id.replace('/', '-')}-a{attempt}-{os.getpid()}-{self._seq}"
        return self.client.submit(run_unit_captured, unit, attempt, key=key, pure=False,
                                  priority=10 if unit.kind == TRAIN else 0)

    def wait(self, handles, timeout):
        if not handles:
            return []
        import asyncio

        try:
            self._distributed.wait(list(handles), timeout=timeout, return_when="FIRST_COMPLETED")
        except (TimeoutError, asyncio.TimeoutError):
            pass
        out = []
        for f in handles:
            if f.status == "finished":
                ok, value = f.result()
                out.append((f, ok, value))
            elif f.status in ("error", "lost"):
                exc = f.exception() if f.status == "error" else RuntimeError("result lost")
                out.append((f, False, exc))
            elif f.status == "cancelled":
                out.append((f, False, RuntimeError("cancelled by the cluster")))
        return out

    def cancel(self, handles) -> None:
        with contextlib.suppress(Exception):
            self.client.cancel(list(handles))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()

    def describe(self) -> str:
        try:
            n = len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        except TypeError:
            n = len(self.client.scheduler_info().get("workers", {}))
        except Exception:
            n = "?"
        where = "LocalCluster" if self.cluster is not None else self.client.scheduler.address
        return f"dask ({where}, {n} worker(s))"


# ---- SLURM -----------------------------------------------------------------------------------


def parse_slurm_time(text: str | int | None) -> int | None:
    """SLURM time (``90``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) -> minutes."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        return text
    s = str(text).strip()
    try:
        days = 0
        if "-" in s:
            d, s = s.split("-", 1)
            days = int(d)
            parts = [int(x) for x in s.split(":")]
            h, m, sec = (parts + [0, 0])[:3]
        else:
            parts = [int(x) for x in s.split(":")]
            if len(parts) == 1:
                h, m, sec = 0, parts[0], 0
            elif len(parts) == 2:
                h, m, sec = 0, parts[0], parts[1]
            elif len(parts) == 3:
                h, m, sec = parts
            else:
                raise ValueError
        if min(days, h, m, sec) < 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"--time {text!r}: expected minutes or SLURM's [D-]HH:MM:SS") from None
    total = days * 1440 + h * 60 + m + math.ceil(sec / 60)
    if total <= 0:
        raise ValueError(f"--time {text!r}: must be at least one minute")
    return total


def default_minutes(estimate_s: float) -> int:
    """Time limit for a unit without ``--time``: 1.5x its estimate, at least 30 min."""
    return max(30, int(math.ceil(1.5 * float(estimate_s) / 60.0)))


def slurm_job_spec(unit: Unit, *, folder: str, partition: str | None = None,
                   time_min: int | None = None, gpus_per_node: int | None = None,
                   cpus_per_task: int | None = None,
                   extra: Mapping[str, str] | None = None,
                   python: str | None = None) -> dict[str, Any]:
    """The submitit ``SlurmExecutor`` parameters (sbatch options) for ``unit``.

    ``extra`` (``--slurm-arg key=value``) goes to ``additional_parameters`` and wins over the rest.
    """
    params: dict[str, Any] = {
        "job_name": f"snnlib-{unit.label.replace(' ', '-')}",
        "time": int(time_min) if time_min else default_minutes(unit.estimate_s),
        "nodes": 1,
        "ntasks_per_node": 1,
    }
    if partition:
        params["partition"] = partition
    if gpus_per_node:
        params["gpus_per_node"] = int(gpus_per_node)
    if cpus_per_task:
        params["cpus_per_task"] = int(cpus_per_task)
    setup = [f"export {k}={_shquote(v)}" for k, v in sorted(unit.env.items())]
    params["setup"] = setup
    if extra:
        params["additional_parameters"] = {str(k).replace("_", "-"): v for k, v in extra.items()}
    return {"folder": os.path.join(folder, "%j"), "python": python or sys.executable,
            "parameters": params}


def _shquote(v: Any) -> str:
    import shlex

    return shlex.quote(str(v))


def sbatch_preview(spec: Mapping[str, Any]) -> str:
    """The sbatch script submitit would write for ``spec`` (from :func:`slurm_job_spec`)."""
    folder = spec["folder"]
    command = f"{spec['python']} -u -m submitit.core._submit {_shquote(folder)}"
    try:
        from submitit.slurm.slurm import _make_sbatch_string
    except ImportError:
        p = dict(spec["parameters"])
        lines = ["#!/bin/bash", "", "# Parameters (submitit not installed: approximate)"]
        extra = p.pop("additional_parameters", {}) or {}
        setup = p.pop("setup", [])
        p.update(extra)
        for k in sorted(p):
            lines.append(f"#SBATCH --{k.replace('_', '-')}={p[k]}")
        lines += ["", "# setup", *setup, "", "# command", command, ""]
        return "\n".join(lines)
    return _make_sbatch_string(command=command, folder=folder, **spec["parameters"])


#: SLURM job states in which a job may still write its result (anything else: it has ended)
SLURM_ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
                          "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD",
                          "PREEMPTED"})


#: states of a job that SLURM stopped (rather than one that ended by itself)
SLURM_STOPPED = frozenset({"CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "DEADLINE",
                           "BOOT_FAIL"})


class _Rejected:
    """A job that sbatch refused: reported by ``wait`` as a failed attempt once ``at`` (monotonic) has come, so a
    retry of a transient refusal (the controller restarting) does not go out in the same second."""

    def __init__(self, error: "UnitError", at: float) -> None:
        self.error, self.at = error, at


_SUBMITIT_CLASSES: dict[str, Any] = {}


def _submitit_classes(submitit) -> tuple[Any, Any]:
    """submitit's SlurmExecutor and SlurmJob, with a job-state watcher that keeps the runner's output clean.

    submitit polls ``sacct`` for the jobs' states; on a cluster without accounting ``sacct`` prints "Slurm
    accounting storage is disabled" to the runner's terminal and submitit logs "Bypassing sacct error" at every
    poll.  This watcher runs sacct with its output captured, and stops asking once sacct says accounting is off
    (the executor then follows the jobs with ``squeue``, see :meth:`SlurmExecutor.wait`); other sacct errors are
    kept in ``problem``, not printed.
    """
    if _SUBMITIT_CLASSES:
        return _SUBMITIT_CLASSES["executor"], _SUBMITIT_CLASSES["job"]
    import subprocess

    from submitit.slurm import slurm as sl

    class QuietSlurmInfoWatcher(sl.SlurmInfoWatcher):
        accounting_off = False
        problem: str | None = None

        def update(self) -> None:
            if self.accounting_off:
                self._last_status_check = time.time()
                return
            command = self._make_command()
            if command is None:
                return
            self._num_calls += 1
            try:
                r = subprocess.run(command, capture_output=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as e:
                self.problem = f"{type(e).__name__}: {e}"
            else:
                text = (r.stderr or b"").decode(errors="replace").strip()
                if r.returncode == 0:
                    self._output = r.stdout
                    self._info_dict.update(self.read_info(r.stdout))
                else:
                    self.problem = text or f"sacct exited with code {r.returncode}"
                    if "accounting storage is disabled" in text.lower():
                        self.accounting_off = True
            self._last_status_check = time.time()
            for job_id in self._registered - self._finished:
                if self.is_done(job_id, mode="cache"):
                    self._finished.add(job_id)

    class QuietSlurmJob(sl.SlurmJob):
        watcher = QuietSlurmInfoWatcher(delay_s=600)

    class QuietSlurmExecutor(sl.SlurmExecutor):
        job_class = QuietSlurmJob

    _SUBMITIT_CLASSES.update(executor=QuietSlurmExecutor, job=QuietSlurmJob)
    return QuietSlurmExecutor, QuietSlurmJob


def _tail(path: Any, n: int = 3) -> list[str]:
    """The last ``n`` non-empty lines of a text file (none when it cannot be read)."""
    try:
        with open(path, errors="replace") as f:
            lines = [ln.rstrip() for ln in f.read()[-20000:].splitlines() if ln.strip()]
    except OSError:
        return []
    return lines[-n:]


class SlurmExecutor(Executor):
    """One SLURM job per unit through submitit (jobs run ``run_unit`` on a compute node).

    * Each job is submitted with exactly its own parameters (submitit's ``update_parameters`` accumulates: one
      unit's ``--cpus-per-task``, ``--comment`` or GPUs would otherwise leak into the next job).
    * A job that sbatch refuses (``--partition nosuch``, the controller unreachable) is a failed attempt of its
      unit, retried or reported like any other (after ``resubmit_delay_s``), never an error of the whole run.
    * A job that ends without writing its result (cancelled, killed, out of memory, node lost) is noticed with
      ``squeue`` even where ``sacct`` does not answer (no accounting): once SLURM reports the job ended (or no
      longer knows it) and ``gone_grace_s`` later its result is still missing, the attempt has failed.
    """

    name = "slurm"
    poll_s: float = 10.0               #: seconds between two looks at the jobs (result files, squeue)
    gone_grace_s: float = 30.0         #: an ended job's result may take this long to appear (shared file systems)
    resubmit_delay_s: float = 10.0     #: a refused submission is reported (and retried) after this long
    settle_s: float = 60.0             #: a failed unit's report waits this long at most for its job's final state

    def __init__(self, folder: str, *, partition: str | None = None, time_min: int | None = None,
                 gpus_per_node: int | None = None, cpus_per_task: int | None = None,
                 extra: Mapping[str, str] | None = None, poll_s: float | None = None,
                 gone_grace_s: float | None = None,
                 spec_for: Callable[[Unit], Mapping[str, Any]] | None = None) -> None:
        submitit = _need("submitit", "slurm")
        self.folder = str(folder)
        self.options = dict(partition=partition, time_min=time_min, gpus_per_node=gpus_per_node,
                            cpus_per_task=cpus_per_task, extra=extra)
        self.spec_for = spec_for
        if poll_s is not None:
            self.poll_s = poll_s
        if gone_grace_s is not None:
            self.gone_grace_s = gone_grace_s
        executor_class, self._job_class = _submitit_classes(submitit)
        self._ex = executor_class(folder=os.path.join(self.folder, "%j"))
        self._ended: dict[str, tuple[float, str]] = {}     # job id -> (first seen ended, its state)
        self._settling: dict[str, float] = {}               # job id -> when its failed result was first seen

    def spec(self, unit: Unit) -> Mapping[str, Any]:
        if self.spec_for is not None:
            return self.spec_for(unit)
        return slurm_job_spec(unit, folder=self.folder, **self.options)

    def submit(self, unit: Unit, attempt: int) -> Any:
        import io

        spec = self.spec(unit)
        try:
            self._ex.parameters = {}               # this job's parameters only, not the previous job's too
            if spec.get("python"):
                self._ex.python = _shquote(spec["python"])
            self._ex.update_parameters(**dict(spec["parameters"]))
            with contextlib.redirect_stderr(io.StringIO()):    # submitit echoes sbatch's error: it is in ours
                return self._ex.submit(run_unit_captured, unit, attempt)
        except Exception as e:
            lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
            lines = [ln.split("error:", 1)[1].strip() if ln.startswith("sbatch: error:") else ln for ln in lines]
            text = "; ".join(dict.fromkeys(lines[:4])) or type(e).__name__
            return _Rejected(UnitError(f"sbatch refused the job: {text}"),
                             time.monotonic() + self.resubmit_delay_s)

    def wait(self, handles, timeout):
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            out, live = [], []
            for h in handles:
                if isinstance(h, _Rejected):
                    if now >= h.at:
                        out.append((h, False, h.error))
                elif h.done():
                    res = self._outcome(h)
                    if res is not None:
                        out.append(res)
                else:
                    live.append(h)
            if live:
                out += self._ended_without_result(live)
            if out or now >= deadline:
                return out
            wake = min([deadline, now + self.poll_s] + [h.at for h in handles if isinstance(h, _Rejected)])
            time.sleep(max(0.05, wake - time.monotonic()))

    def _outcome(self, job) -> tuple[Any, bool, Any] | None:
        """``(job, ok, result or error)`` of a job that is done; None while a failed job's state settles.

        With accounting, submitit calls a job done once ``sacct`` reports it ended, result or not; its
        ``job.result()`` then waits (sleeps) up to 15 s for a missing result file, and the runner would see no other
        job meanwhile.  A job without a result file is given ``gone_grace_s`` here instead (polled, not slept; the
        same grace as a job that ``squeue`` reports ended), then reported with its state from accounting and the
        tail of its log."""
        if not self._result_exists(job):
            state = ""
            with contextlib.suppress(Exception):
                state = str(job.watcher.get_state(job.job_id, mode="cache") or "")
            state = "" if state == "UNKNOWN" else state
            now = time.monotonic()
            since, seen = self._ended.setdefault(job.job_id, (now, state or "ended"))
            if now - since < self.gone_grace_s:
                return None
            if not self._result_exists(job):
                self._ended.pop(job.job_id, None)
                return job, False, self._job_error(job, state or seen)
        self._ended.pop(job.job_id, None)
        try:
            ok, value = job.result()
        except Exception as e:      # submitit: the job died, timed out or was cancelled (sacct said so)
            parts = str(e).split("----------------------")
            if type(e).__name__ == "FailedJobError" and len(parts) >= 3:      # the job raised: its last line
                trace = [ln for ln in parts[1].splitlines() if ln.strip()]
                return job, False, UnitError(f"SLURM job {job.job_id} raised: {trace[-1].strip() if trace else e}"
                                             f"; log: {job.paths.stderr}")
            with contextlib.suppress(Exception):
                state = job.watcher.get_state(job.job_id, mode="cache")
                if state and state != "UNKNOWN":
                    return job, False, self._job_error(job, state)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return job, False, self._job_error(job, f"{type(e).__name__}: {first}")
        if not ok and isinstance(value, UnitError):
            # did the unit fail because SLURM stopped its job (scancel, time limit, node failure)? Then the notebook
            # only saw its kernel die: name the job's state. While SLURM still kills the job's processes the state
            # reads COMPLETING: the report waits for the final state (at most settle_s).
            st = (self._squeue([job.job_id]) or {}).get(str(job.job_id))
            if st is not None and st[0] in SLURM_ACTIVE:
                since = self._settling.setdefault(job.job_id, time.monotonic())
                if time.monotonic() - since < self.settle_s:
                    return None
            self._settling.pop(job.job_id, None)
            if st is not None and st[0] in SLURM_STOPPED:
                value = UnitError(f"SLURM job {job.job_id} {st[0]}: {value.message}", value.failed_copy, value.host,
                                  retry=value.retry and st[0] != "TIMEOUT")   # the same limit stops it again
        return job, ok, value

    @staticmethod
    def _result_exists(job) -> bool:
        try:
            return bool(job.paths.result_pickle.exists())
        except Exception:
            return True                # cannot tell: job.result() says what happened

    def _job_error(self, job, state: str) -> UnitError:
        log = job.paths.stderr
        lines = _tail(log)
        return UnitError(f"SLURM job {job.job_id} ended ({state}) without writing its result; log: {log}"
                         + "".join(f"\n      | {ln}" for ln in lines), retry="TIMEOUT" not in state)

    def _ended_without_result(self, jobs) -> list[tuple[Any, bool, Any]]:
        """The jobs that SLURM says have ended (or no longer knows), ``gone_grace_s`` ago, and still have no result.

        This does not need ``sacct`` (accounting): ``squeue -t all`` lists the jobs the controller knows, ended
        ones until its ``MinJobAge``; a job it does not list at all has ended too.
        """
        states = self._squeue([j.job_id for j in jobs])
        if states is None:                     # squeue did not answer: nothing can be said this time
            return []
        now = time.monotonic()
        out = []
        for job in jobs:
            st = states.get(job.job_id)
            if st is not None and st[0] in SLURM_ACTIVE:
                self._ended.pop(job.job_id, None)
                continue
            what = (st[0] + (f", {st[1]}" if st[1] and st[1] not in ("None", "(null)") else "")) if st \
                else "no longer known to SLURM"
            since, what = self._ended.setdefault(job.job_id, (now, what))
            if now - since < self.gone_grace_s:
                continue
            if job.done(force_check=False):    # the result appeared after all
                res = self._outcome(job)
                if res is not None:
                    out.append(res)
                continue
            self._ended.pop(job.job_id, None)
            out.append((job, False, self._job_error(job, what)))
        return out

    @staticmethod
    def _squeue(job_ids: Sequence[str]) -> dict[str, tuple[str, str]] | None:
        """``{job id: (state, reason)}`` of the jobs the controller knows; None when squeue fails."""
        import subprocess

        ids = sorted({str(j).split("_")[0] for j in job_ids})
        try:
            r = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"],
                               capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return None
        if r.returncode != 0:
            # every id unknown: "slurm_load_jobs error: Invalid job id specified"
            return {} if "invalid job id" in r.stderr.lower() else None
        out = {}
        for line in r.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 2 and parts[0]:
                out[parts[0]] = (parts[1].strip().upper(), parts[2].strip() if len(parts) > 2 else "")
        return out

    def cancel(self, handles) -> None:
        for job in handles:
            if isinstance(job, _Rejected):
                continue
            with contextlib.suppress(Exception):
                job.cancel(check=False)

    def describe(self) -> str:
        return f"slurm (submitit, logs in {self.folder})"


# --------------------------------------------------------------------------------------------
# Driving a grid
# --------------------------------------------------------------------------------------------


@dataclass
class UnitState:
    unit: Unit
    status: str = "pending"          # pending | running | ok | failed | skipped | blocked | not run
    attempts: int = 0
    error: UnitError | BaseException | None = None
    result: dict[str, Any] | None = None
    started: float | None = None     # monotonic time of the current/last attempt
    note: str = ""                   # why skipped / blocked

    @property
    def final(self) -> bool:
        return self.status in (OK, FAILED, SKIPPED, BLOCKED, NOT_RUN)


class Reporter:
    """Callbacks of :func:`run_grid` (the study runner prints its lines from them)."""

    def started(self, st: UnitState) -> None: ...
    def retrying(self, st: UnitState, error: BaseException) -> None: ...
    def finished(self, st: UnitState) -> None: ...
    def blocked(self, st: UnitState) -> None: ...
    def progress(self, counts: Mapping[str, int], elapsed: float) -> None: ...


def counts_of(states: Iterable[UnitState]) -> dict[str, int]:
    c = {"done": 0, "running": 0, "failed": 0, "remaining": 0, "total": 0}
    for st in states:
        c["total"] += 1
        if st.status in (OK, SKIPPED):
            c["done"] += 1
        elif st.status == "running":
            c["running"] += 1
        elif st.status in (FAILED, BLOCKED):
            c["failed"] += 1
        else:
            c["remaining"] += 1
    return c


def run_grid(units: Sequence[Unit], executor: Executor, *, retries: int = 1,
             keep_going: bool = False, reporter: Reporter | None = None,
             progress_every: float = 30.0, skip: Iterable[str] = ()) -> dict[str, UnitState]:
    """Run ``units`` (in the given order where dependencies allow) on ``executor``.

    A unit is submitted once its ``deps`` succeeded and its ``after`` units finished; a unit whose
    dependency failed is ``blocked``.  A failed attempt is resubmitted up to ``retries`` times.
    Without ``keep_going``, no new unit starts after a final failure (units already running finish)
    and the others end as ``not run``.  ``skip``: ids already done (``--resume``).
    """
    rep = reporter or Reporter()
    states = {u.id: UnitState(u) for u in units}
    for uid in skip:
        if uid in states:
            states[uid].status = SKIPPED
    order = [u.id for u in units]
    running: dict[Any, str] = {}
    stop = False
    t0 = time.monotonic()
    last_progress = t0
    cap = executor.capacity

    def dep_state(st: UnitState) -> str:
        """ready | wait | blocked"""
        for d in st.unit.deps:
            ds = states.get(d)
            if ds is None:
                continue
            if ds.status in (FAILED, BLOCKED, NOT_RUN):
                st.note = f"needs {ds.unit.label}, which {'failed' if ds.status == FAILED else 'did not run'}"
                return "blocked"
            if ds.status not in (OK, SKIPPED):
                return "wait"
        for d in st.unit.after:
            ds = states.get(d)
            if ds is not None and not ds.final:
                return "wait"
        return "ready"

    def launch(st: UnitState) -> None:
        st.attempts += 1
        st.status = "running"
        st.started = time.monotonic()
        rep.started(st)
        h = executor.submit(st.unit, st.attempts)
        running[h] = st.unit.id

    report = cap is None              # cluster executors: a progress line per change + heartbeat

    try:
        while True:
            # schedule every unit that can start (in the given order)
            progressed = True
            while progressed:
                progressed = False
                for uid in order:
                    st = states[uid]
                    if st.status != "pending":
                        continue
                    if stop:
                        st.status, st.note = NOT_RUN, "stopped after a failure (no --keep-going)"
                        progressed = True
                        continue
                    ds = dep_state(st)
                    if ds == "blocked":
                        st.status = BLOCKED
                        rep.blocked(st)
                        progressed = True
                        if not keep_going:
                            stop = True
                    elif ds == "ready" and (cap is None or len(running) < cap):
                        launch(st)
                        progressed = True
            if not running:
                for s in states.values():      # nothing runs and nothing can start
                    if s.status == "pending":
                        s.status, s.note = NOT_RUN, "its dependencies never finished"
                break
            timeout = max(0.05, last_progress + progress_every - time.monotonic())
            finished = executor.wait(list(running), timeout=timeout)
            for h, ok, value in finished:
                st = states[running.pop(h)]
                if ok:
                    st.status, st.result, st.error = OK, value, None
                    rep.finished(st)
                    continue
                err = value if isinstance(value, BaseException) else RuntimeError(str(value))
                st.error = err
                if st.attempts <= retries and getattr(err, "retry", True):
                    rep.retrying(st, err)
                    launch(st)                 # the retry goes out at once
                    continue
                if st.attempts <= retries:
                    st.note = "not retried: the same inputs fail the same way (a Python error in a cell, a time limit)"
                st.status = FAILED
                rep.finished(st)
                if not keep_going:
                    stop = True
            now = time.monotonic()
            if report and (finished or now - last_progress >= progress_every):
                rep.progress(counts_of(states.values()), now - t0)
                last_progress = now
            elif now - last_progress >= progress_every:
                last_progress = now
    except BaseException:
        executor.cancel(list(running))
        raise
    return states
