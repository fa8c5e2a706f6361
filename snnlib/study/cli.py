"""Run the book's notebooks with papermill under a profile.

Usage::

    python -m snnlib.study run --profile smoke|laptop|gpu|paper [--only NOTEBOOK ...]
                               [-p name=value ...] [--dry-run] [--resume] [--keep-going]
                               [--publish | --out-dir DIR --results-dir DIR] [--data-dir DIR]
                               [--book-dir DIR] [--cache-dir DIR] [-v]
                               [--executor local|dask|slurm] [--retries N] [--no-train-units]
                               [--scheduler ADDRESS] [--workers N]                    (dask)
                               [--partition P] [--time T] [--gpus-per-node N]
                               [--cpus-per-task N] [--slurm-arg KEY=VALUE ...]         (slurm)
    python -m snnlib.study book --profile smoke [--from DIR] [--strict] [--no-build]
    python -m snnlib.study profiles                    # list the profiles
    python -m snnlib.study parameters-cell NOTEBOOK    # print a parameters cell (smoke defaults)

``run`` executes ``<book-dir>/<nb>.ipynb`` for every notebook (in book order, or only those named
with ``--only``: ``02_discretization``, ``discretization`` or ``02``) with
``papermill.execute_notebook(..., kernel_name="python3", cwd=<repo root>)`` and the profile's
parameters plus ``profile`` and ``results_dir``.  The notebooks in book/ are sources: a run writes
the executed copies to ``<out-dir>/<nb>.ipynb`` (default ``runs/<profile>/book/``) and the results
JSON to ``<results-dir>`` (default ``runs/<profile>/results/``), next to the book folder, and never
over ``book/*.ipynb`` (the committed reference run) unless asked with ``--publish``, which writes the
executed notebooks into the book folder and the results into ``results/<profile>/``.  An executed
copy replaces the output only when the notebook finished: papermill writes to a temp file that is
then ``os.replace``-d, so an interrupted run never leaves a half notebook.  A failed notebook's
executed copy (with the traceback) is kept as ``<results-dir>/<nb>.failed.ipynb``.

``book`` builds the book from a run's executed notebooks (:mod:`snnlib.study.book`): it copies the
book's configuration, table of contents and Markdown pages next to them (``runs/<profile>/book/``),
runs ``jupyter-book build`` there and prints the path of ``index.html``.  ``jupyter-book build book``
builds the published reference.

``-p name=value`` values are parsed as YAML (``-p T_list=[8,16]``, ``-p data_dir=null``) and
validated against :data:`snnlib.study.profiles.KNOWN_PARAMS` and
:func:`snnlib.study.profiles.meaning_checks`.  Exit codes: 0 success, 1 a notebook failed, 2 bad
usage/profile/parameter, 130 interrupted.

Bad input is refused before any work, with one message naming the parameter or path and what is
allowed (exit code 2, the dry run too): values that cannot mean anything (timesteps too short for a
spike to reach the output, ``eps_list`` budgets of 0, ``pgd_alpha`` above twice the largest budget,
more images than the data source holds), ``--only`` naming no notebook, a ``--data-dir`` /
``-p data_dir`` that is not an existing folder (both relative to the current folder), and output
folders (``--results-dir``, ``--out-dir``, ``--cache-dir``) that are files, lie under a file or
cannot be written.  What locating the data reveals (``data_source: torchvision`` without the
files, ``auto`` falling back to the shipped subset with too few images) is a note in the dry run
and an error in the run (a note with ``--executor dask|slurm``, whose workers may see other files);
a ``--data-dir`` without a full copy, where ``auto`` uses the shipped subset, is a note.  The
estimate is scaled by a rough cost model (:func:`snnlib.study.profiles.cost_units`); a run whose
estimate is more than :data:`BUDGET_FACTOR` times the profile's own (e.g.
``-p pgd_steps=1000000000``) asks for ``--yes``.

The runner keeps a log ``<results-dir>/_study_log.json`` (status, wall time and parameters of the
last run of each notebook): ``--resume`` skips notebooks whose last run succeeded with the same
parameters, and ``--dry-run`` uses measured wall times for its estimate (the ``wall_time_s``
of ``<results-dir>/<nb>.json`` written by the notebook, else the log's, else the profile's
``estimate_s``).

Executors (:mod:`snnlib.study.executors`): the work is a grid of independent units, one per (notebook,
parameters), plus with ``--executor dask|slurm`` one ``train`` unit per model seed that the notebook
units depend on (models are trained once, before the evaluations, into the shared artifact cache
given by ``--cache-dir``).  ``local`` (default) runs the notebooks one after another in this process,
as before; ``dask`` submits the units to a Dask cluster (``--scheduler``, else a ``LocalCluster`` of
``--workers`` processes); ``slurm`` submits one job per unit with submitit (``--dry-run`` prints the
sbatch parameters without submitting).  A failed unit is retried ``--retries`` times (default 1 on a
cluster, 0 locally); progress (done, running, failed, remaining) is printed while it runs, and the
end lists the failures with the command that reruns only the notebooks that did not finish.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import profiles as _profiles
from ..files import atomic_write_json, file_lock
from ..machine import utc_now
from .executors import environment
from .notebooks import execute_notebook, relative_path as _rel
from .profiles import KNOWN_PARAMS, NOTEBOOKS, ProfileError

__all__ = ["main", "parse_param", "repo_root", "LOG_NAME"]

#: Runner log file name inside the results folder.
LOG_NAME = "_study_log.json"

#: Notebooks that train nothing and summarise the others: ordered after them, no train units.
AGGREGATE_NOTEBOOKS = ("07_summary",)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: A run whose estimate (by the rough cost model) exceeds the profile's own this many times needs ``--yes``.
BUDGET_FACTOR = 10.0


class UsageError(Exception):
    """Bad command line / parameter: reported on stderr, exit code 2."""


def repo_root() -> Path:
    """The repository root (the folder holding ``snnlib/`` and ``book/``)."""
    here = Path(__file__).resolve().parents[2]      # snnlib/study/cli.py -> the checkout
    if (here / "book").is_dir() or (here / "_toc.yml").is_file():
        return here
    return Path.cwd().resolve()


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        m, sec = divmod(int(round(s)), 60)
        return f"{m}m {sec:02d}s"
    if s < 3 * 86400:
        h, rem = divmod(int(round(s)), 3600)
        return f"{h}h {rem // 60:02d}m"
    if s < 2 * 365.25 * 86400:
        return f"{s / 86400:.1f} days"
    return f"{s / (365.25 * 86400):.3g} years"


def _fmt_v(v: Any) -> str:
    """Value as the user would type it in YAML (null, [4, 8], 0.99, cifar10)."""
    if isinstance(v, str):
        return v
    return json.dumps(v)


def _without_null_optional(params: Any) -> Any:
    """Parameters without the optional ones set to null (an optional parameter left out means null, so a run
    recorded before a profile named it explicitly is still the same run)."""
    if not isinstance(params, dict):
        return params
    return {k: v for k, v in params.items()
            if not (v is None and k in KNOWN_PARAMS and KNOWN_PARAMS[k].optional)}


def _source_hash(path: Path) -> str | None:
    """sha256 of a notebook's code: cell types and sources, without papermill's injected cell.

    Equal for a notebook and its executed copy, so ``--resume`` notices edited notebooks.
    """
    import hashlib

    import nbformat

    try:
        cells = nbformat.read(str(path), as_version=4).cells
    except Exception:
        return None
    h = hashlib.sha256()
    for c in cells:
        if "injected-parameters" in c.get("metadata", {}).get("tags", []):
            continue
        h.update(json.dumps([c.cell_type, c.source]).encode("utf-8"))
    return h.hexdigest()


def parse_param(text: str) -> tuple[str, Any]:
    """Parse ``name=value``; the value is YAML (``[4,8]`` -> list, ``null`` -> None)."""
    import yaml

    if "=" not in text:
        raise UsageError(f"-p {text!r}: expected name=value (e.g. -p T_bp=8 or -p T_list=[4,8])")
    name, raw = text.split("=", 1)
    name = name.strip()
    if not name:
        raise UsageError(f"-p {text!r}: missing parameter name before '='")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        msg = str(e).splitlines()[0]
        raise UsageError(f"-p {text!r}: value {raw!r} is not valid YAML ({msg})") from None
    return name, value


def _split_multi(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x for x in (s.strip() for s in v.split(",")) if x)
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------


class _Plan:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = repo_root()
        cwd = Path.cwd()

        def user_path(p: str | None, default: Path) -> Path:
            return Path(os.path.abspath(cwd / Path(p).expanduser())) if p else default

        # parameters
        overrides: dict[str, Any] = {}
        data_flag = None
        for item in args.param or []:
            name, value = parse_param(item)
            if name in _profiles.RUNNER_PARAMS:
                flag = "--profile" if name == "profile" else "--results-dir"
                raise UsageError(f"-p {item!r}: {name!r} is set by the runner; use {flag}")
            overrides[name] = value
            if name == "data_dir":
                data_flag = f"-p {item}"
        if args.data_dir is not None:
            if "data_dir" in overrides:
                raise UsageError("give the data folder either with --data-dir or with "
                                 "-p data_dir=..., not both")
            if not args.data_dir.strip():
                raise UsageError("--data-dir '': no folder given (an unset shell variable?); give the folder "
                                 "that holds cifar-10-batches-py, or leave --data-dir out for the default")
            overrides["data_dir"] = args.data_dir
            data_flag = f"--data-dir {args.data_dir}"
        # -p data_dir and --data-dir: relative to the current folder, passed on relative to the repository
        # root (the notebooks' working folder); the folder must exist (a typo is not a fallback to the subset)
        if isinstance(overrides.get("data_dir"), str) and overrides["data_dir"].strip():
            folder = user_path(overrides["data_dir"], cwd)
            if not folder.is_dir():
                what = "is a file, not a folder" if folder.exists() else "does not exist"
                raise UsageError(f"{data_flag}: {folder} {what}; give the folder that holds the official "
                                 "cifar-10-batches-py / cifar-100-python folder (relative paths are relative to "
                                 "the current folder), or leave it out for the default data folder "
                                 "($SNNLIB_DATA_DIR or ~/.cache/snnlib/data; the shipped subset is in data/)")
            overrides["data_dir"] = _rel(folder, self.root)
        try:
            self.profile = _profiles.load_profile(args.profile, overrides,
                                                  path=args.profiles_file)
        except ProfileError as e:
            raise UsageError(str(e)) from None

        # notebooks
        try:
            only = [_profiles.resolve_notebook(n) for n in _split_multi(args.only)]
        except ValueError as e:
            raise UsageError(f"--only: {e}") from None
        if args.only is not None and not only:
            given = " ".join(f"--only {shlex.quote(v)}" for v in args.only)
            raise UsageError(f"{given}: names no notebook (an unset shell variable?); valid: "
                             f"{', '.join(NOTEBOOKS)} (or without the number prefix); leave out --only to run "
                             "every notebook")
        self.notebooks = [nb for nb in NOTEBOOKS if not only or nb in only]
        used = set().union(*(self.profile["notebooks"][nb] for nb in self.notebooks))
        self.unused = sorted(k for k in self.profile["overrides"] if k not in used)

        # folders: the book's notebooks are sources; a run writes next to the book folder, in
        # runs/<profile>/ (git-ignored), unless --publish asks for book/ and results/<profile>/
        self.book_dir = user_path(args.book_dir, self.root / "book")
        self.publish = bool(args.publish)
        if self.publish and (args.out_dir or args.results_dir):
            flag = "--out-dir" if args.out_dir else "--results-dir"
            raise UsageError(f"--publish writes the executed notebooks into {_rel(self.book_dir, self.root)}/ "
                             f"and the results into results/{args.profile}/; drop {flag}, or drop "
                             "--publish to write elsewhere")
        project = self.book_dir.parent
        self.out_dir = user_path(args.out_dir, self.book_dir if self.publish
                                 else project / "runs" / args.profile / "book")
        if self.out_dir == self.book_dir and not self.publish:
            raise UsageError(f"--out-dir {args.out_dir} is the book folder: writing the executed "
                             "notebooks over the committed ones needs --publish (and no --out-dir)")
        self.results_dir = user_path(args.results_dir, project / "results" / args.profile if self.publish
                                     else project / "runs" / args.profile / "results")
        self.cache_dir = user_path(args.cache_dir, cwd) if args.cache_dir else None
        self.log_path = self.results_dir / LOG_NAME
        self.log = _read_json(self.log_path) or {}

        # executor
        self.executor = args.executor
        local = self.executor == "local"
        misplaced = [flag for flag, val, ok in (
            ("--scheduler", args.scheduler, self.executor == "dask"),
            ("--workers", args.workers, self.executor == "dask"),
            ("--partition", args.partition, self.executor == "slurm"),
            ("--time", args.time, self.executor == "slurm"),
            ("--gpus-per-node", args.gpus_per_node, self.executor == "slurm"),
            ("--cpus-per-task", args.cpus_per_task, self.executor == "slurm"),
            ("--slurm-arg", args.slurm_arg, self.executor == "slurm"),
        ) if val is not None and not ok]
        if misplaced:
            raise UsageError(f"{', '.join(misplaced)} only apply with --executor "
                             + ("dask" if misplaced[0] in ("--scheduler", "--workers")
                                else "slurm") + f" (got --executor {self.executor})")
        if args.workers is not None and args.workers < 1:
            raise UsageError(f"--workers {args.workers}: allowed: an integer >= 1")
        if args.retries is not None and args.retries < 0:
            raise UsageError(f"--retries {args.retries}: allowed: an integer >= 0")
        self.retries = args.retries if args.retries is not None else (0 if local else 1)
        threads = getattr(args, "threads", None)
        if threads is not None and threads < 1:
            raise UsageError(f"--threads {threads}: allowed: an integer >= 1")
        # every unit computes with the same number of torch threads wherever it runs (float reductions differ with
        # the thread count, and so would trained weights): this process's count unless --threads says otherwise
        self.threads = threads if threads is not None else _torch_threads()
        every = getattr(args, "progress_every", None)
        if every is not None and not every > 0:
            raise UsageError(f"--progress-every {every}: allowed: a number of seconds > 0")
        self.progress_every = float(every) if every is not None else (300.0 if local else 60.0)
        self.train_units = not local and not args.no_train_units
        try:
            from .executors import parse_slurm_time
            self.time_min = parse_slurm_time(args.time)
        except ValueError as e:
            raise UsageError(str(e)) from None
        self.slurm_extra: dict[str, str] = {}
        for item in args.slurm_arg or []:
            k, sep, v = item.partition("=")
            if not sep or not k.strip().lstrip("-"):
                raise UsageError(f"--slurm-arg {item!r}: expected key=value (e.g. "
                                 "--slurm-arg account=myproj --slurm-arg mem=32G)")
            self.slurm_extra[k.strip().lstrip("-")] = v.strip()
        if local:
            self.unit_cache = self.cache_dir
        else:   # workers must all use the same (shared) cache: always pass it explicitly
            from .cache import cache_dir as _default_cache
            self.unit_cache = Path(os.path.abspath(self.cache_dir or _default_cache()))

    # -- per notebook -------------------------------------------------------------------------
    def input_path(self, nb: str) -> Path:
        return self.book_dir / f"{nb}.ipynb"

    def output_path(self, nb: str) -> Path:
        return self.out_dir / f"{nb}.ipynb"

    def params(self, nb: str) -> dict[str, Any]:
        p = dict(self.profile["notebooks"][nb])
        p["profile"] = self.profile["name"]
        p["results_dir"] = _rel(self.results_dir, self.root)
        return p

    def log_entry(self, nb: str) -> dict[str, Any]:
        entry = (self.log.get("notebooks") or {}).get(nb)
        return entry if isinstance(entry, dict) else {}

    def is_done(self, nb: str) -> bool:
        """Last run succeeded with the same parameters and the same notebook code, from the trained models the
        results folder's 01_models recorded (:meth:`stale_models`); the summary also after every chapter it reads."""
        e = self.log_entry(nb)
        return (e.get("status") == "ok"
                and _without_null_optional(e.get("parameters"))
                == _without_null_optional(json.loads(json.dumps(self.params(nb))))
                and self.output_path(nb).is_file()
                and e.get("source_sha256") == _source_hash(self.input_path(nb))
                and not self.stale_models(nb) and not self.summary_outdated(nb))

    def stale_models(self, nb: str) -> bool:
        """Whether chapter ``nb``'s results were computed from other trained models than those the results folder's
        01_models recorded (or record none where 01_models does): 01_models was re-run since, e.g. on another
        machine, so --resume must run the chapter again rather than keep numbers of an earlier training run."""
        if nb == "01_models" or nb in AGGREGATE_NOTEBOOKS:
            return False
        reference = (_read_json(self.results_dir / "01_models.json") or {}).get("models")
        return bool(reference) and (_read_json(self.results_dir / f"{nb}.json") or {}).get("models") != reference

    def summary_outdated(self, nb: str) -> bool:
        """Whether the aggregate notebook ``nb`` (the summary) finished before a chapter it reads last finished, or
        a chapter of this plan is about to run again."""
        if nb not in AGGREGATE_NOTEBOOKS:
            return False
        mine = str(self.log_entry(nb).get("finished_utc") or "")
        chapters = [other for other in NOTEBOOKS if other not in AGGREGATE_NOTEBOOKS]
        return (any(str(self.log_entry(other).get("finished_utc") or "") > mine for other in chapters)
                or any(other in self.notebooks and not self.is_done(other) for other in chapters))

    def _measured(self, nb: str) -> tuple[float, str, Any, Any]:
        """(seconds, where from, the parameters they were measured with, the CPU they were measured on) of ``nb``:
        the last run's wall time, else the profile's estimate."""
        res = _read_json(self.results_dir / f"{nb}.json")
        if res and isinstance(res.get("wall_time_s"), (int, float)):
            wall, src = float(res["wall_time_s"]), "last run"
            trained = res.get("training_s")
            if isinstance(trained, (int, float)) and trained > 0:       # training is estimated on its own
                wall, src = max(wall - float(trained), 0.0), "last run without its training"
            reused = res.get("reused_s")
            if isinstance(reused, (int, float)) and reused > 0:         # a resumed chapter: its earlier attempts too
                wall, src = wall + float(reused), src + " + its cached work"
            return wall, src, res.get("parameters"), (res.get("machine") or {}).get("cpu_name")
        e = self.log_entry(nb)
        if isinstance(e.get("wall_time_s"), (int, float)):
            return float(e["wall_time_s"]), "last run (runner)", e.get("parameters"), None
        return self.profile["estimate_s"][nb], "profile estimate", None, self.profile.get("estimate_machine")

    def estimate(self, nb: str) -> tuple[float, str]:
        """(seconds, where from): the last run's wall time, else the profile's estimate, scaled by the rough cost
        model from the parameters it was measured (or estimated) with to this plan's; "on <CPU>" when measured on
        another CPU than this machine's."""
        seconds, src, then, cpu = self._measured(nb)
        other = _other_cpu(cpu)
        return self._scaled(nb, seconds, src + (f" on {other}" if other else ""), then)

    def measured_on_other_cpu(self, nb: str) -> str | None:
        """The CPU ``nb``'s estimate was measured on when it is not this machine's, else None."""
        return _other_cpu(self._measured(nb)[3])

    def uncached_seeds(self, notebooks: Sequence[str]) -> list[int]:
        """Model seeds whose trained models (ANN, thresholds, SNN-BP for this plan's training parameters and thread
        count) are not all in the cache, so the first of ``notebooks`` that needs models trains them; empty when
        none needs models or the data cannot be read (the data checks say why)."""
        from .cache import ArtifactCache
        from .pipeline import artifact_configs

        model_nbs = [nb for nb in notebooks if nb not in AGGREGATE_NOTEBOOKS]
        if not model_nbs:
            return []
        p = self.profile["notebooks"][model_nbs[0]]
        cache = ArtifactCache(self.unit_cache or self.cache_dir)
        missing = []
        for seed in p["model_seeds"][:2]:
            try:
                cfgs = artifact_configs(p, seed, threads=self.threads)
            except Exception:  # noqa: BLE001 - no data or no GPU: the run's own checks report it
                return []
            if not all(cache.has(kind, cfgs[name]) for kind, name in
                       (("ann", "ANN"), ("thresholds", "SNN-conv"), ("snn_bp", "SNN-BP"))):
                missing.append(int(seed))
        return missing

    def estimate_has_training(self, nb: str) -> bool:
        """Whether :meth:`estimate` of ``nb`` already holds the training of the models: 01_models' estimate from
        the profile or from a run recorded before chapters recorded their training time."""
        if nb != "01_models":
            return False
        res = _read_json(self.results_dir / f"{nb}.json") or {}
        return not isinstance(res.get("training_s"), (int, float))

    def training_step(self, todo: Sequence[str]) -> tuple[str, float, list[int]] | None:
        """(first notebook that needs models, seconds, seeds) when ``todo`` must train models the cache lacks and no
        notebook's estimate holds that training already; else None."""
        first = next((nb for nb in todo if nb not in AGGREGATE_NOTEBOOKS), None)
        if first is None or self.estimate_has_training(first):
            return None
        seeds = self.uncached_seeds(todo)
        return (first, self.training_estimate(seeds), seeds) if seeds else None

    def training_estimate(self, seeds: Sequence[int]) -> float:
        """Seconds to train the models of ``seeds``: 01_models' estimate times its training share by the rough
        cost model (which counts two seeds)."""
        if not seeds:
            return 0.0
        p = self.profile["notebooks"]["01_models"]
        try:
            share = _profiles.training_cost_units(p) / _profiles.cost_units("01_models", p)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
            return 0.0
        est01 = self.estimate("01_models")[0]
        if not self.estimate_has_training("01_models"):     # 01's own work without training: add it back
            est01 = est01 / max(1.0 - share, 1e-6)
        return est01 * share * len(seeds) / 2.0

    @property
    def base_profile(self) -> dict[str, Any]:
        """The profile without this plan's overrides."""
        if getattr(self, "_base", None) is None:
            self._base = _profiles.load_profile(self.args.profile, path=self.args.profiles_file)
        return self._base

    def cost_ratio(self, nb: str, then: Any = None) -> float:
        """Rough cost of ``nb`` with this plan's parameters over its cost with ``then`` (default: the profile's)."""
        base = self.base_profile["notebooks"][nb]
        now = self.profile["notebooks"][nb]
        then = _profiles.recorded_params(then, base) if isinstance(then, dict) else base
        try:
            den = _profiles.cost_units(nb, then)
            return _profiles.cost_units(nb, now) / den if den > 0 else 1.0
        except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
            return 1.0

    def _scaled(self, nb: str, seconds: float, source: str, then: Any) -> tuple[float, str]:
        r = self.cost_ratio(nb, then)
        if abs(r - 1.0) > 0.005:
            source += f", x{r:.3g} for these parameters"
        return seconds * r, source

    def budget(self, notebooks: Sequence[str]) -> tuple[float, float, float, list[str]]:
        """(ratio, profile seconds, scaled seconds, drivers) of ``notebooks`` by the rough cost model: how many times
        the profile's own estimate this plan's parameters make them; ``drivers``: the overrides that raise it most,
        as ``name=value (xN)``.  Training is part of ``01_models``' estimate; without that notebook, models for
        changed training parameters are trained by the first notebook that needs them, so their extra training
        time (01_models' training share, scaled) is added."""
        est = self.base_profile["estimate_s"]
        nbs = list(notebooks)
        base_s = sum(est[nb] for nb in nbs) or 1.0
        base_nb = self.base_profile["notebooks"]

        def ratio(nb: str, params: Mapping[str, Any]) -> float:
            try:
                den = _profiles.cost_units(nb, base_nb[nb])
                return _profiles.cost_units(nb, params) / den if den > 0 else 1.0
            except (KeyError, TypeError, ValueError, OverflowError):
                return 1.0

        def scaled(params_for) -> float:
            total = sum(est[nb] * ratio(nb, params_for(nb)) for nb in nbs)
            if "01_models" not in nbs and any(nb not in AGGREGATE_NOTEBOOKS for nb in nbs):
                try:
                    b = _profiles.training_cost_units(base_nb["01_models"])
                    t = _profiles.training_cost_units(params_for("01_models"))
                    share = b / _profiles.cost_units("01_models", base_nb["01_models"])
                    total += est["01_models"] * share * max(0.0, t / b - 1.0)
                except (KeyError, TypeError, ValueError, OverflowError, ZeroDivisionError):
                    pass
            return total

        total = scaled(lambda nb: self.profile["notebooks"][nb])
        drivers = []
        for k, v in self.profile["overrides"].items():
            def one(nb: str, k=k, v=v) -> dict[str, Any]:
                p = dict(base_nb[nb])
                if k in p:
                    p[k] = v
                return p
            r = scaled(one) / base_s
            if r > 1.5:
                drivers.append((r, f"{k}={_fmt_v(v)} (x{r:.3g})"))
        drivers.sort(key=lambda t: -t[0])
        return total / base_s, base_s, total, [d for _, d in drivers]

    def over_budget_text(self, notebooks: Sequence[str]) -> str | None:
        """A sentence when the plan's parameters make ``notebooks`` more than :data:`BUDGET_FACTOR` times the
        profile's own estimate, else ``None``."""
        ratio, base_s, scaled_s, drivers = self.budget(notebooks)
        if ratio <= BUDGET_FACTOR:
            return None
        by = f", driven by {', '.join(drivers)}" if drivers else ""
        train = ("" if "01_models" in notebooks or all(nb in AGGREGATE_NOTEBOOKS for nb in notebooks)
                 else ", training included")
        return (f"the parameters make this run about {ratio:.3g} times the {self.profile['name']!r} profile's own "
                f"estimate ({_fmt_s(base_s)} -> {_fmt_s(scaled_s)}{train}, by a rough cost model{by})")

    # -- checks before any work -----------------------------------------------------------------
    def output_folders(self) -> list[tuple[str, Path, str]]:
        """(what, folder, how to choose another) of every folder the run writes into."""
        from .cache import cache_dir as _default_cache

        if self.publish:
            results_fix = out_fix = "make it a writable folder (the --publish locations are fixed)"
        else:
            results_fix = "choose another with --results-dir DIR, or make it a writable folder"
            out_fix = "choose another with --out-dir DIR, or make it a writable folder"
        cache = self.unit_cache or self.cache_dir or _default_cache()
        cache_fix = ("choose another with --cache-dir DIR (or $SNNLIB_CACHE), or make it a writable folder")
        return [("results folder", self.results_dir, results_fix),
                ("output folder of the executed notebooks", self.out_dir, out_fix),
                ("artifact cache", Path(os.path.abspath(cache)), cache_fix)]

    def output_problems(self, create: bool = False) -> list[str]:
        """Why an output folder cannot be written, one message each (``create``: make the folders and write a
        probe file in each, as the run does; else only look)."""
        from ..files import folder_problem, make_writable_folder

        out = []
        seen = set()
        for what, folder, fix in self.output_folders():
            if folder in seen:
                continue
            seen.add(folder)
            problem = make_writable_folder(folder) if create else folder_problem(folder)
            if problem:
                out.append(f"{what} {_rel(folder, self.root)}: {problem}; {fix}")
        return out

    def data_notes(self) -> list[str]:
        """A note when a data folder was given but holds no full copy, so ``data_source: auto`` uses the shipped
        subset (a folder that exists but is not the right one would otherwise pass silently)."""
        from .. import data as D

        if "data_dir" not in self.profile["overrides"] or self.profile["overrides"]["data_dir"] is None:
            return []
        out = []
        for nb in self.notebooks:
            p = self.profile["notebooks"][nb]
            if nb in AGGREGATE_NOTEBOOKS or p["data_source"] != "auto":
                continue
            folder = Path(p["data_dir"]).expanduser()
            folder = folder if folder.is_absolute() else self.root / folder
            if not D.full_copy_available(p["dataset"], folder):
                msg = (f"no full {p['dataset']} copy ('{D._SPECS[p['dataset']]['folder']}') in {folder}: "
                       "data_source 'auto' uses the shipped subset")
                if msg not in out:
                    out.append(msg)
        return out

    def data_problems(self, notebooks: Sequence[str]) -> list[str]:
        """What locating the data reveals about the notebooks' parameters (one message per distinct problem)."""
        out: list[str] = []
        for nb in notebooks:
            if nb in AGGREGATE_NOTEBOOKS:
                continue
            for msg in _profiles.data_problems(self.profile["notebooks"][nb], base=self.root):
                if msg not in out:
                    out.append(msg)
        return out

    def book_command(self) -> str:
        """The command that builds a book from this run's executed notebooks."""
        cmd = ["python", "-m", "snnlib.study", "book", "--profile", self.args.profile]
        if self.args.out_dir or self.args.book_dir:
            cmd += ["--from", _rel(self.out_dir, self.root)]
        if self.args.book_dir:
            cmd += ["--book-dir", str(self.args.book_dir)]
        return shlex.join(cmd)

    def rerun_command(self, nb: str | Sequence[str]) -> str:
        a = self.args
        nbs = [nb] if isinstance(nb, str) else list(nb)
        cmd = ["python", "-m", "snnlib.study", "run", "--profile", a.profile,
               "--only", ",".join(nbs)]
        for item in a.param or []:
            cmd += ["-p", item]
        for flag, val in (("--book-dir", a.book_dir), ("--out-dir", a.out_dir),
                          ("--results-dir", a.results_dir), ("--data-dir", a.data_dir),
                          ("--cache-dir", a.cache_dir), ("--profiles-file", a.profiles_file)):
            if val:
                cmd += [flag, str(val)]
        if a.publish:
            cmd += ["--publish"]
        if getattr(a, "yes", False):
            cmd += ["--yes"]
        if a.executor != "local":
            cmd += ["--executor", a.executor]
            for flag, val in (("--scheduler", a.scheduler), ("--workers", a.workers),
                              ("--retries", a.retries), ("--partition", a.partition),
                              ("--time", a.time), ("--gpus-per-node", a.gpus_per_node),
                              ("--cpus-per-task", a.cpus_per_task)):
                if val is not None:
                    cmd += [flag, str(val)]
            for item in a.slurm_arg or []:
                cmd += ["--slurm-arg", item]
            if a.no_train_units:
                cmd += ["--no-train-units"]
        return shlex.join(cmd)

    # -- units --------------------------------------------------------------------------------
    def unit_env(self) -> dict[str, str]:
        env = {"PYTHONPATH": os.pathsep.join(
            [str(self.root)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH")
                                else []))}
        if self.unit_cache is not None:
            env["SNNLIB_CACHE"] = str(self.unit_cache)
        env.update({name: str(self.threads) for name in THREAD_VARIABLES})
        return env

    def units(self, todo: Sequence[str] | None = None) -> list:
        """The grid: train units (per model configuration and seed) then notebook units.

        ``todo``: the notebooks that will run (default: all selected); train units are made only
        for those.
        """
        from .executors import NOTEBOOK, TRAIN, Unit

        todo = list(self.notebooks if todo is None else todo)
        env = self.unit_env()
        train: dict[str, Any] = {}
        needs: dict[str, list[str]] = {}
        if self.train_units:
            from .cache import config_key
            from .pipeline import PIPELINE_KEYS

            for nb in todo:
                if nb in AGGREGATE_NOTEBOOKS:
                    continue
                p = self.profile["notebooks"][nb]
                mp = {k: p[k] for k in PIPELINE_KEYS}
                mp["device"] = p["device"]
                for seed in p["model_seeds"][:2]:
                    key = config_key({**mp, "seed": seed, "torch_threads": self.threads})
                    uid = f"train/seed{seed}-{key[:10]}"
                    needs.setdefault(nb, []).append(uid)
                    if uid not in train:
                        train[uid] = (seed, mp, key)
            labels = {}
            for uid, (seed, mp, key) in train.items():
                same_seed = sum(1 for s2, _, _ in train.values() if s2 == seed)
                labels[uid] = f"train seed {seed}" + (f" ({key[:6]})" if same_seed > 1 else "")
        units = []
        est_train = self.profile["estimate_s"].get("01_models", 60.0)
        for uid, (seed, mp, key) in train.items():
            units.append(Unit(id=uid, kind=TRAIN, label=labels[uid], env=env,
                              spec={"params": mp, "seed": seed, "cwd": str(self.root),
                                    "cache_dir": str(self.unit_cache) if self.unit_cache
                                    else None},
                              estimate_s=est_train))
        nb_ids = [f"nb/{nb}" for nb in todo]
        trains_first = None if self.train_units else self.training_step(todo)
        for nb in todo:
            after = tuple(i for i in nb_ids if i != f"nb/{nb}") \
                if nb in AGGREGATE_NOTEBOOKS else ()
            est, _ = self.estimate(nb)
            if trains_first and trains_first[0] == nb:
                est += trains_first[1]
            units.append(Unit(
                id=f"nb/{nb}", kind=NOTEBOOK, label=nb, env=env, notebook=nb,
                deps=tuple(needs.get(nb, ())), after=after, estimate_s=est,
                spec={"input": str(self.input_path(nb)), "output": str(self.output_path(nb)),
                      "parameters": self.params(nb), "kernel": self.args.kernel,
                      "cwd": str(self.root),
                      "failed_copy": str(self.results_dir / f"{nb}.failed.ipynb"),
                      "log_output": bool(self.args.verbose)}))
        return units

    def slurm_folder(self) -> Path:
        return self.results_dir / "_slurm"

    def slurm_spec(self, unit) -> dict[str, Any]:
        from .executors import slurm_job_spec

        gpus = self.args.gpus_per_node
        if gpus is None and unit.notebook not in AGGREGATE_NOTEBOOKS and \
                self.profile["notebooks"][unit.notebook or "01_models"]["device"] == "cuda":
            gpus = 1                      # the summary reads JSON files: no GPU for it
        return slurm_job_spec(unit, folder=str(self.slurm_folder()), partition=self.args.partition,
                              time_min=self.time_min, gpus_per_node=gpus,
                              cpus_per_task=self.args.cpus_per_task, extra=self.slurm_extra)

    # -- log ----------------------------------------------------------------------------------
    def record(self, nb: str, entry: dict[str, Any]) -> None:
        # locked read-modify-write: runners for other notebooks may share the results folder
        with file_lock(self.log_path.with_name(".study_log.lock"),
                        "another runner writing the study log"):
            log = _read_json(self.log_path) or {}
            log.setdefault("notebooks", {})
            log["profile"] = self.profile["name"]
            log["notebooks"][nb] = entry
            log["updated_utc"] = utc_now()
            atomic_write_json(self.log_path, log)
        self.log = log


# --------------------------------------------------------------------------------------------
# Dry run
# --------------------------------------------------------------------------------------------


def _print_plan(plan: _Plan, out=None) -> float:
    out = out if out is not None else sys.stdout
    prof = plan.profile
    root = plan.root
    w = out.write
    w(f"Study plan: profile {prof['name']!r}")
    w(f" - {prof['description']}\n" if prof["description"] else "\n")
    w(f"  book dir    : {_rel(plan.book_dir, root)}\n")
    w(f"  output      : {_rel(plan.out_dir, root)}/<notebook>.ipynb"
      + (" (--publish: over the committed notebooks)\n" if plan.publish else "\n"))
    w(f"  results dir : {_rel(plan.results_dir, root)}\n")
    w(f"  cache dir   : {plan.cache_dir or os.environ.get('SNNLIB_CACHE') or '~/.cache/snnlib'}"
      "\n")
    w(f"  kernel      : {plan.args.kernel} (cwd {root})\n")
    if prof["overrides"]:
        w("  overrides   : " + ", ".join(f"{k}={_fmt_v(v)}" for k, v in
                                         prof["overrides"].items()) + "\n")
    w("\nCommon parameters (* = overridden with -p/--data-dir):\n")
    width = max(len(k) for k in prof["common"])
    for k, v in prof["common"].items():
        mark = "*" if k in prof["overrides"] else " "
        doc = _profiles.KNOWN_PARAMS[k].doc
        w(f" {mark}{k:<{width}} = {_fmt_v(v):<22} # {doc}\n")

    rows = []
    total = 0.0
    for i, nb in enumerate(plan.notebooks, 1):
        params = prof["notebooks"][nb]
        specific = {k: v for k, v in params.items()
                    if k not in prof["common"] or prof["common"][k] != v}
        spec = ", ".join(f"{k}={_fmt_v(v)}" for k, v in specific.items()) or "-"
        if plan.args.resume and plan.is_done(nb):
            est, src = 0.0, "done, skipped (--resume)"
        else:
            est, src = plan.estimate(nb)
        if not plan.input_path(nb).is_file():
            src += "; MISSING notebook"
        total += est
        rows.append((str(i), nb, _fmt_s(est), src, spec))
    todo = [nb for nb in plan.notebooks if not (plan.args.resume and plan.is_done(nb))]
    step = plan.training_step(todo)
    if step:    # the first notebook that needs models trains those the cache lacks
        first, est, seeds = step
        total += est
        rows.insert(0, ("+", "(training)", _fmt_s(est),
                        f"01_models' training share: models of seed(s) {', '.join(map(str, seeds))} not in the cache",
                        f"trained first by {first}"))
    head = ("#", "notebook", "estimate", "from", "notebook parameters")
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(4)]
    w("\n")
    for r in [head, *rows]:
        w("  ".join(f"{r[c]:<{widths[c]}}" for c in range(4)) + "  " + r[4] + "\n")
    w(f"\nTotal estimate: {_fmt_s(total)} for {len(plan.notebooks)} notebook(s)"
      + (", training included" if step else "") + "\n")
    elsewhere = sorted({cpu for cpu in map(plan.measured_on_other_cpu, todo) if cpu})
    if elsewhere:
        from ..machine import cpu_name
        w(f"note: the estimates marked 'on {elsewhere[0]}'{' (and others)' if len(elsewhere) > 1 else ''} were "
          f"measured on another CPU than this one ({cpu_name()}); times scale with its speed (on 6 Dec 2026 a 2-core "
          "Intel Xeon ran the attack gradient at about half the AMD EPYC's rate: python -m snnlib.bench measures "
          "this machine)\n")
    big = plan.over_budget_text(todo)
    if big:
        w(f"note: {big}; the run asks for --yes\n")
    for msg in plan.data_notes():
        w(f"note: {msg}\n")
    for msg in plan.data_problems(todo):
        w(f"note: the run will refuse: {msg}\n" if plan.executor == "local" else f"note: {msg} (fine when the "
          "workers see the data there)\n")
    if plan.unused:
        w(f"note: parameter(s) {', '.join(plan.unused)} not used by the selected notebooks\n")
    problem = _cuda_problem(plan)
    if problem and plan.executor == "local":
        w(f"note: {problem}\n")
    if plan.executor != "local":
        _print_units(plan, out)
    return total


def _print_units(plan: _Plan, out) -> None:
    """Dry run of a cluster executor: the units, their dependencies and (SLURM) the job specs."""
    w = out.write
    todo = [nb for nb in plan.notebooks if not (plan.args.resume and plan.is_done(nb))]
    units = plan.units(todo)
    w(f"\nExecutor {plan.executor}: {len(units)} unit(s), retries {plan.retries}, cache "
      f"{plan.unit_cache} (SNNLIB_CACHE on every worker)\n")
    if plan.executor == "dask":
        where = plan.args.scheduler or (f"LocalCluster with {plan.args.workers or 'auto'} "
                                        "worker process(es), 1 thread each")
        w(f"  scheduler   : {where}\n")
    width = max(len(u.label) for u in units) if units else 0
    for i, u in enumerate(units, 1):
        deps = ", ".join(d for d in u.deps) or "-"
        extra = f"; after {len(u.after)} notebook(s)" if u.after else ""
        w(f"  [{i}/{len(units)}] {u.kind:<8} {u.label:<{width}}  needs: {deps}{extra}\n")
    if plan.executor == "slurm" and units:
        from .executors import sbatch_preview

        w(f"\nSLURM jobs (one per unit; submitit logs in {_rel(plan.slurm_folder(), plan.root)}/):\n")
        for u in units:
            spec = plan.slurm_spec(u)["parameters"]
            flags = " ".join(f"--{k.replace('_', '-')}={v}" for k, v in spec.items()
                             if k not in ("setup", "additional_parameters"))
            flags += "".join(f" --{k}={v}" for k, v in
                             (spec.get("additional_parameters") or {}).items())
            w(f"  sbatch {flags}   # {u.id}\n")
        w(f"\nScript of the first job ({units[0].id}):\n")
        w(sbatch_preview(plan.slurm_spec(units[0])))
        w("\n")


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


def _execute(plan: _Plan, nb: str) -> None:
    """Run one notebook of the plan; replace the output only on success."""
    execute_notebook(plan.input_path(nb), plan.output_path(nb), plan.params(nb),
                     kernel=plan.args.kernel, cwd=plan.root,
                     failed_copy=plan.results_dir / f"{nb}.failed.ipynb",
                     log_output=plan.args.verbose)


def _cuda_problem(plan: _Plan) -> str | None:
    """A message when the plan asks for device=cuda and no CUDA GPU is visible."""
    if not any(plan.profile["notebooks"][nb]["device"] == "cuda" for nb in plan.notebooks):
        return None
    try:
        import torch
        if torch.cuda.is_available():
            return None
    except Exception:
        pass
    return (f"profile {plan.profile['name']!r} asks for device=cuda but no CUDA GPU is visible; "
            "run it on a GPU machine or pass -p device=auto (CPU: slow)")


def _other_cpu(cpu: Any) -> str | None:
    """``cpu`` (a CPU name a time was measured on) when it is not this machine's, else None."""
    from ..machine import cpu_name
    return cpu if isinstance(cpu, str) and cpu and cpu != cpu_name() else None


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill PID``, a scheduler's stop) stops the run as Ctrl-C does: the running notebook's kernel is shut
    down, its published copy left unchanged, and the runner says how to resume.  A runner started in the background
    of a non-interactive shell ignores SIGINT, so this is the way to stop it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _named_chapters(line: str) -> set[str]:
    """The chapters (notebook names) a line of :func:`~snnlib.study.consistency.mixed_training_runs` names, besides
    01_models (the reference the others are compared with)."""
    return set(re.findall(r"\b\d\d_[a-z_]+[a-z]", line)) - {"01_models"}


class _Printer:
    """Prints the runner's lines from :func:`snnlib.study.executors.run_grid`'s callbacks and keeps the
    study log up to date."""

    def __init__(self, plan: _Plan, units: Sequence[Any], pending: Sequence[str] = ()) -> None:
        self.plan = plan
        self.index = {u.id: i for i, u in enumerate(units, 1)}
        self.n = len(units)
        self.t_start = time.monotonic()
        self.current: Any = None
        self.entries: dict[str, dict[str, Any]] = {}
        self.local = plan.executor == "local"
        self.warned_models: set[str] = set()
        self.noted_pending: set[str] = set()
        #: notebooks this run has still to execute (a finished one is removed)
        self.pending: set[str] = set(pending)

    def tag(self, st) -> str:
        return f"[{self.index[st.unit.id]}/{self.n}] {st.unit.label}"

    def started(self, st) -> None:
        self.current = st
        u = st.unit
        if u.notebook and u.id not in self.entries:
            p = self.plan
            self.entries[u.id] = {
                "parameters": p.params(u.notebook), "started_utc": utc_now(),
                "source_sha256": _source_hash(p.input_path(u.notebook)),
                "input": _rel(p.input_path(u.notebook), p.root),
                "output": _rel(p.output_path(u.notebook), p.root),
                "executor": p.executor,
                # what the runner expected, next to the wall time it measures: estimate vs actual per notebook
                "estimate_s": round(float(u.estimate_s), 1), "estimate_from": p.estimate(u.notebook)[1]}
        again = f" again (attempt {st.attempts} of {self.plan.retries + 1})" \
            if st.attempts > 1 else ""
        if self.local:
            print(f"{self.tag(st)}: running{again} (estimate {_fmt_s(u.estimate_s)}) ...",
                  flush=True)
        else:
            print(f"{self.tag(st)}: submitted{again}", flush=True)

    def retrying(self, st, error) -> None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        host = getattr(error, "host", None)
        print(f"{self.tag(st)}: attempt {st.attempts} failed"
              + (f" on {host}" if host else "") + f" after {_fmt_s(time.monotonic() - st.started)}:"
              f" {first}; retrying ({self.plan.retries + 1 - st.attempts} retr"
              f"{'y' if self.plan.retries + 1 - st.attempts == 1 else 'ies'} left)",
              file=sys.stderr, flush=True)

    def warn_mixed_models(self) -> None:
        """One warning naming each new disagreement, when the chapters in the results folder used different trained
        models (e.g. one chapter re-run on another machine, whose float rounding trains other weights from the same
        seed).  Chapters this run has still to execute (``pending``) are only named once, in a note: their results
        are about to be replaced."""
        from .consistency import mixed_training_runs

        where = _rel(self.plan.results_dir, self.plan.root)
        lines = [line for line in mixed_training_runs(self.plan.results_dir) if line not in self.warned_models]
        replaced = [line for line in lines if self._replaced_by_this_run(line)]
        now = [line for line in lines if line not in replaced]
        if now:
            self.warned_models.update(now)
            print(f"warning: the chapters in {where} used different trained models; their numbers are not from one "
                  "run: re-run the whole profile (the summary's provenance table says so too):\n"
                  + "\n".join(f"  {line}" for line in now), file=sys.stderr, flush=True)
        later = sorted({nb for line in replaced for nb in _named_chapters(line)} - self.noted_pending)
        if later:
            self.noted_pending.update(later)
            print(f"note: {', '.join(later)} in {where} used other trained models than 01_models; this run executes "
                  f"{'it' if len(later) == 1 else 'them'} again", flush=True)

    def _replaced_by_this_run(self, line: str) -> bool:
        """Whether every chapter a disagreement names, besides 01_models, is still to run in this run."""
        named = _named_chapters(line)
        return bool(named) and named <= self.pending

    def finished(self, st) -> None:
        from .executors import OK

        p, u = self.plan, st.unit
        wall = (st.result or {}).get("wall_time_s") if st.status == OK else None
        if wall is None:
            wall = time.monotonic() - (st.started or time.monotonic())
        entry = self.entries.get(u.id)
        extra = {"attempts": st.attempts}
        if st.result and st.result.get("host"):
            extra["host"] = st.result["host"]
        if u.kind != "train":
            self.pending.discard(u.notebook)
        if st.status == OK:
            if entry is not None:
                p.record(u.notebook, {**entry, "status": "ok", "wall_time_s": round(wall, 3),
                                      "finished_utc": utc_now(), **extra})
            what = ""
            if u.kind == "train":
                trained = (st.result or {}).get("trained") or []
                what = (f" ({len(trained)} artifact(s) trained)" if trained
                        else " (all models were in the cache)")
            host = f" on {st.result['host']}" if not self.local and st.result.get("host") else ""
            print(f"{self.tag(st)}: ok in {_fmt_s(wall)}{what}{host} "
                  f"(elapsed {_fmt_s(time.monotonic() - self.t_start)})", flush=True)
            if u.kind != "train":
                self.warn_mixed_models()
            return
        err = st.error
        if entry is not None:
            p.record(u.notebook, {**entry, "status": "failed", "wall_time_s": round(wall, 3),
                                  "finished_utc": utc_now(), "error": str(err), **extra})
        tries = f" ({st.attempts} attempts)" if st.attempts > 1 else ""
        print(f"{self.tag(st)}: FAILED{tries} after {_fmt_s(wall)}: {_err_text(err)}",
              file=sys.stderr)
        if getattr(st, "note", None) and st.note.startswith("not retried"):
            print(f"    {st.note}", file=sys.stderr)
        failed_copy = getattr(err, "failed_copy", None)
        if failed_copy:
            print(f"    executed copy with the traceback: {_rel(Path(failed_copy), p.root)}",
                  file=sys.stderr)
        if u.notebook:
            print(f"    {_rel(p.output_path(u.notebook), p.root)} was left unchanged",
                  file=sys.stderr)
            print(f"    rerun only this notebook: {p.rerun_command(u.notebook)}",
                  file=sys.stderr, flush=True)

    def blocked(self, st) -> None:
        print(f"{self.tag(st)}: not run: {st.note}", file=sys.stderr, flush=True)

    def progress(self, counts, elapsed) -> None:
        print(f"progress: {counts['done']}/{counts['total']} done, {counts['running']} running, "
              f"{counts['failed']} failed, {counts['remaining']} remaining "
              f"(elapsed {_fmt_s(elapsed)})", flush=True)


def _err_text(err: Any) -> str:
    text = str(err).strip()
    if not text:
        return type(err).__name__
    if type(err).__name__ in ("UnitError",):
        return text
    return text if text.startswith(type(err).__name__) else f"{type(err).__name__}: {text}"


#: environment variables that set a unit's thread count: OpenMP/MKL (read by torch when it starts, in notebook
#: kernels) and snnlib's own (read by train units running inside a worker, where torch is already started)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SNNLIB_TORCH_THREADS")


def _torch_threads() -> int:
    import torch
    return int(torch.get_num_threads())


def _make_executor(plan: _Plan):
    from .executors import DaskExecutor, LocalExecutor, SlurmExecutor

    if plan.executor == "local":
        return LocalExecutor(heartbeat_s=plan.progress_every)
    if plan.executor == "dask":
        return DaskExecutor(plan.args.scheduler, plan.args.workers, worker_env=plan.unit_env())
    if plan.executor == "slurm":
        # the plan gives each job its parameters (time from the unit's estimate, GPUs for cuda)
        return SlurmExecutor(str(plan.slurm_folder()), spec_for=plan.slurm_spec)
    raise UsageError(f"unknown executor {plan.executor!r}")


def _run(plan: _Plan) -> int:
    from .executors import BLOCKED, FAILED, NOT_RUN, OK, SKIPPED, ClusterSetupError, MissingExtra, run_grid

    missing = [nb for nb in plan.notebooks if not plan.input_path(nb).is_file()]
    if missing:
        raise UsageError("notebook(s) not found: " + ", ".join(
            _rel(plan.input_path(nb), plan.root) for nb in missing))
    problem = _cuda_problem(plan)
    if problem and plan.executor == "local":
        raise UsageError(problem)
    todo_nbs = [nb for nb in plan.notebooks if not (plan.args.resume and plan.is_done(nb))]
    data = plan.data_problems(todo_nbs)
    if data and plan.executor == "local":      # a cluster's workers may see data this machine does not
        raise UsageError(data[0] if len(data) == 1 else "\n  ".join(["", *data]))
    big = plan.over_budget_text(todo_nbs)
    if big and not plan.args.yes:
        raise UsageError(f"{big}; check the values (--dry-run shows the plan), or pass --yes to run it anyway")
    bad = plan.output_problems(create=True)      # every output folder made and written to before any work
    if bad:
        raise UsageError(bad[0] if len(bad) == 1 else "\n  ".join(["", *bad]))
    prof = plan.profile
    n = len(plan.notebooks)
    print(f"Study: profile {prof['name']!r}, {n} notebook(s), results in "
          f"{_rel(plan.results_dir, plan.root)}, notebooks written to "
          f"{_rel(plan.out_dir, plan.root)}/", flush=True)
    if plan.unused:
        print(f"note: parameter(s) {', '.join(plan.unused)} not used by the selected "
              "notebooks", flush=True)
    for msg in plan.data_notes() + (data if plan.executor != "local" else []):
        print(f"note: {msg}", flush=True)
    skip = [f"nb/{nb}" for nb in plan.notebooks if plan.args.resume and plan.is_done(nb)]
    todo = [nb for nb in plan.notebooks if f"nb/{nb}" not in skip]
    units = plan.units(todo)
    # skipped notebooks keep their place in the numbering, as before
    from .executors import NOTEBOOK, Unit
    all_units = [u for u in units if u.kind != NOTEBOOK]
    by_nb = {u.notebook: u for u in units if u.kind == NOTEBOOK}
    for nb in plan.notebooks:
        all_units.append(by_nb.get(nb) or Unit(id=f"nb/{nb}", kind=NOTEBOOK, label=nb, spec={},
                                               notebook=nb))
    printer = _Printer(plan, all_units, pending=todo)
    for uid in skip:
        print(f"[{printer.index[uid]}/{printer.n}] {uid[3:]}: skipped (done with the same "
              "parameters; --resume)", flush=True)

    env = plan.unit_env()
    t_start = time.monotonic()
    try:
        executor = _make_executor(plan)
    except (MissingExtra, ClusterSetupError) as e:
        raise UsageError(str(e)) from None
    if plan.executor != "local":
        print(f"Executor: {executor.describe()}; {len(units)} unit(s) "
              f"({sum(u.kind == 'train' for u in units)} train, "
              f"{sum(u.kind == NOTEBOOK for u in units)} notebook), retries {plan.retries}, "
              f"artifact cache {plan.unit_cache}", flush=True)
        if problem:
            print(f"note: {problem} (fine when the workers have one)", flush=True)
    printer.t_start = time.monotonic()
    try:
        with environment(env), executor, _terminate_as_interrupt():
            states = run_grid(all_units, executor, retries=plan.retries,
                              keep_going=plan.args.keep_going, reporter=printer,
                              progress_every=plan.progress_every, skip=skip)
    except KeyboardInterrupt:
        import logging
        # a kernel stopped by the same signal (SIGTERM to the whole process group) leaves its cell's task failed:
        # asyncio would log that as a traceback when the task is collected; the message below says what happened
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        cur = printer.current
        nb = cur.unit.notebook if cur is not None else None
        if plan.executor == "dask":
            # Dask cannot stop a task that has started: say so instead of promising unchanged outputs
            print("\ninterrupted: the units not yet started were cancelled. Units already running on the Dask "
                  "workers cannot be stopped from here and will still write their notebooks and results when "
                  "they finish; stop those workers to stop them. Cached models are kept: rerun with --resume "
                  "to continue.", file=sys.stderr, flush=True)
        elif nb:
            print(f"\n{printer.tag(cur)}: interrupted; {_rel(plan.output_path(nb), plan.root)} "
                  "left unchanged. Cached models are kept: rerun with --resume to continue.",
                  file=sys.stderr, flush=True)
        else:
            print("\ninterrupted. Cached models are kept: rerun with --resume to continue.",
                  file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    total = time.monotonic() - t_start

    nb_states = [states[f"nb/{nb}"] for nb in plan.notebooks]
    done = sum(s.status == OK for s in nb_states)
    skipped = sum(s.status == SKIPPED for s in nb_states)
    failed_units = [s for s in states.values() if s.status == FAILED]
    failed_nbs = [s.unit.notebook for s in nb_states if s.status == FAILED]
    blocked = [s.unit.notebook for s in nb_states if s.status == BLOCKED]
    not_run = [s.unit.notebook for s in nb_states if s.status == NOT_RUN]
    train = [s for s in states.values() if s.unit.kind == "train"]
    train_txt = (f" (+{sum(s.status == OK for s in train)}/{len(train)} train unit(s) ok)"
                 if train else "")
    retried = [s for s in states.values() if s.status == OK and s.attempts > 1]
    if retried:
        print(f"note: {len(retried)} unit(s) succeeded after a retry: "
              + ", ".join(f"{s.unit.label} ({s.attempts} attempts)" for s in retried), flush=True)
    if failed_units or blocked or not_run:
        parts = [f"{len(failed_units)} failed ({', '.join(s.unit.label for s in failed_units)})"
                 if failed_units else "0 failed"]
        parts.append(f"{done} ok")
        parts.append(f"{skipped} skipped")
        if blocked:
            parts.append(f"{len(blocked)} blocked by a failed dependency ({', '.join(blocked)})")
        if not_run:
            parts.append(f"{len(not_run)} not run")
        print(f"Study {prof['name']!r}: " + ", ".join(parts) + train_txt + f" in {_fmt_s(total)}",
              file=sys.stderr, flush=True)
        if failed_units:
            print("Failures:", file=sys.stderr)
            for s in failed_units:
                first = _err_text(s.error).splitlines()[0]
                print(f"  {s.unit.label} ({s.attempts} attempt{'s' * (s.attempts > 1)}): {first}",
                      file=sys.stderr)
        rerun = [nb for nb in plan.notebooks if nb in set(failed_nbs + blocked + not_run)]
        if rerun:
            print(f"rerun only the notebooks that did not finish: {plan.rerun_command(rerun)}",
                  file=sys.stderr, flush=True)
        return EXIT_FAILED
    print(f"Study {prof['name']!r}: {done} ok, {skipped} skipped{train_txt} in {_fmt_s(total)}",
          flush=True)
    if not plan.publish:
        print(f"executed notebooks in {_rel(plan.out_dir, plan.root)}/ (book/ unchanged); build them "
              f"into a book with: {plan.book_command()}", flush=True)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m snnlib.study",
        description="Execute the book's notebooks with papermill under a run profile.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="execute the notebooks (or --dry-run to print the plan)",
                         description="Execute the book's notebooks with papermill.")
    run.add_argument("--profile", default="smoke",
                     help="profile in snnlib/study/profiles.yaml: smoke (CI, minutes), laptop "
                          "(2-core CPU, ~5.6 h, resumable), gpu (the laptop study scaled up for one GPU), paper "
                          "(full CIFAR-10, GPU, many hours); default: smoke")
    run.add_argument("--only", action="append", metavar="NOTEBOOK",
                     help="run only these notebooks (repeatable or comma-separated; "
                          "'02_discretization', 'discretization' or '02'); an empty value is an error")
    run.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                     help="override a parameter; VALUE is YAML, e.g. -p T_bp=8 "
                          "-p T_list=[8,16] -p data_dir=null (repeatable); values that cannot mean "
                          "anything are refused before any work (exit code 2)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the notebooks, their parameters and a time estimate (scaled by a "
                          "rough cost model when parameters change); run nothing")
    run.add_argument("--yes", action="store_true",
                     help=f"run even when the parameters make the estimate more than "
                          f"{BUDGET_FACTOR:g}x the profile's own")
    run.add_argument("--resume", action="store_true",
                     help="skip notebooks whose last run succeeded with the same parameters")
    run.add_argument("--keep-going", action="store_true",
                     help="continue with the next notebooks after a failure")
    run.add_argument("--book-dir", help="folder of the input notebooks (default: book/)")
    run.add_argument("--publish", action="store_true",
                     help="write the executed notebooks over the book's own (the committed "
                          "reference run) and the results into results/<profile>/")
    run.add_argument("--out-dir", help="folder for the executed notebooks (default: "
                                       "runs/<profile>/book/ next to the book folder)")
    run.add_argument("--results-dir", help="folder for results JSON (default: "
                                           "runs/<profile>/results/; with --publish "
                                           "results/<profile>/)")
    run.add_argument("--data-dir", help="dataset folder holding cifar-10-batches-py / cifar-100-python (sets "
                                        "the data_dir parameter; must exist). Relative paths, here and in "
                                        "-p data_dir=..., are relative to the current folder")
    run.add_argument("--cache-dir", help="artifact cache folder for this run (sets "
                                         "SNNLIB_CACHE; default $SNNLIB_CACHE or "
                                         "~/.cache/snnlib)")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel (default: python3)")
    ex = run.add_argument_group(
        "executors", "Where the units of work run: 'train' units (one per model seed) then one "
                     "unit per notebook. Cluster executors need the extra: "
                     "pip install -r requirements-cluster.txt")
    ex.add_argument("--executor", choices=("local", "dask", "slurm"), default="local",
                    help="local: one notebook after another in this process (default); dask: "
                         "a Dask distributed cluster; slurm: one SLURM job per unit (submitit)")
    ex.add_argument("--threads", type=int, metavar="N",
                    help="torch threads of every unit, on every executor (default: this process's torch thread "
                         "count); results depend on it, so local, Dask and SLURM runs with the same value agree")
    ex.add_argument("--retries", type=int, metavar="N",
                    help="resubmit a failed unit up to N times (default: 1 with dask/slurm, 0 "
                         "with local)")
    ex.add_argument("--no-train-units", action="store_true",
                    help="dask/slurm: no separate train units; each notebook trains (or loads) "
                         "its models itself, as with the local executor")
    ex.add_argument("--progress-every", type=float, default=None, metavar="SECONDS",
                    help="print progress at least this often: dask/slurm the grid's (default 60), local how long "
                         "the running notebook has run and which cell it is in (default 300)")
    ex.add_argument("--scheduler", metavar="ADDRESS",
                    help="dask: scheduler address (tcp://host:8786) or scheduler file (.json); "
                         "default: start a LocalCluster")
    ex.add_argument("--workers", type=int, metavar="N",
                    help="dask LocalCluster: worker processes (1 thread each; default: CPUs, "
                         "at most 4)")
    ex.add_argument("--partition", help="slurm: partition")
    ex.add_argument("--time", help="slurm: time limit per job (minutes or [D-]HH:MM:SS; "
                                   "default: 1.5x the unit's estimate, at least 30 min)")
    ex.add_argument("--gpus-per-node", type=int, metavar="N",
                    help="slurm: GPUs per job (default: 1 when the profile's device is cuda)")
    ex.add_argument("--cpus-per-task", type=int, metavar="N", help="slurm: CPUs per job")
    ex.add_argument("--slurm-arg", action="append", metavar="KEY=VALUE",
                    help="slurm: any other sbatch option, passed through (repeatable), e.g. "
                         "--slurm-arg account=proj --slurm-arg mem=32G")
    run.add_argument("--profiles-file", help=argparse.SUPPRESS)
    run.add_argument("-v", "--verbose", action="store_true",
                     help="stream the notebooks' outputs to the log")

    book = sub.add_parser(
        "book", help="build the book from a run's executed notebooks",
        description="Copy the book's configuration, table of contents and Markdown pages next to a "
                    "run's executed notebooks (runs/<profile>/book/) and build it there with "
                    "jupyter-book; prints the path of index.html. The published reference builds "
                    "with: jupyter-book build book")
    book.add_argument("--profile", default="smoke", help="the run's profile (default: smoke)")
    book.add_argument("--from", dest="source", metavar="DIR",
                      help="folder of the executed notebooks (default: runs/<profile>/book/); the "
                           "book is assembled and built there")
    book.add_argument("--book-dir", help="the book's source folder (default: book/)")
    book.add_argument("--strict", action="store_true",
                      help="rebuild everything with warnings as errors (--all -W -n --keep-going)")
    book.add_argument("--no-build", action="store_true",
                      help="only assemble the folder; print it")
    compare = sub.add_parser(
        "compare", help="judge the claims of two runs and print their verdicts side by side",
        description="Judge every claim from two results folders (e.g. your run of a profile and the published "
                    "results/<profile>/) and print each run's verdict and effect, whether the verdicts match and "
                    "whether each effect lies inside the other run's 95 %% interval (a Markdown table). Exit code 0 "
                    "when every claim gets the same verdict, 1 when some differ.")
    compare.add_argument("run_a", metavar="RESULTS_A", help="results folder of the first run")
    compare.add_argument("run_b", metavar="RESULTS_B", help="results folder of the second run")
    sub.add_parser("profiles", help="list the profiles")
    cell = sub.add_parser("parameters-cell",
                          help="print the source of a notebook's parameters cell")
    cell.add_argument("notebook")
    cell.add_argument("--profile", default="smoke")
    return ap


def _book(args: argparse.Namespace) -> int:
    """``book``: assemble a run's executed notebooks into a book and build it."""
    from .book import BookError, assemble_book, build_book

    root, cwd = repo_root(), Path.cwd()
    book_dir = Path(os.path.abspath(cwd / args.book_dir)) if args.book_dir else root / "book"
    source = (Path(os.path.abspath(cwd / args.source)) if args.source
              else book_dir.parent / "runs" / args.profile / "book")
    try:
        folder = assemble_book(book_dir, source, profile=args.profile)
        print(f"assembled the {args.profile!r} book in {_rel(folder, root)}/", flush=True)
        if args.no_build:
            return EXIT_OK
        index = build_book(folder, strict=args.strict)
    except BookError as e:
        raise UsageError(str(e)) from None
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    print(f"book built: {index}", flush=True)
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    """``compare``: both runs' verdicts side by side (:func:`snnlib.study.replication.compare_runs`)."""
    from .consistency import mixed_training_runs
    from .records import RecordError
    from .replication import compare_runs
    from .results import chapter_one_record
    from .tables import replication_table, run_label

    cwd = Path.cwd()
    folders = [Path(os.path.abspath(cwd / d)) for d in (args.run_a, args.run_b)]
    for d in folders:
        if not d.is_dir():
            raise UsageError(f"results folder {d} does not exist; give the folder a run wrote its chapter JSON files "
                             "to (e.g. results/laptop or runs/laptop/results)")
    try:
        reps = compare_runs(*folders)
    except (RecordError, OSError, ValueError) as e:
        raise UsageError(f"cannot judge the claims of these folders: {e}") from None
    labels = [run_label(_rel(d, cwd)) for d in folders]
    print(replication_table(reps, *labels).markdown(), flush=True)
    for d in folders:
        mixed = mixed_training_runs(d)
        if mixed:
            print(f"note: {_rel(d, cwd)} mixes trained models from different training runs ({mixed[0]}"
                  f"{f'; and {len(mixed) - 1} more' if len(mixed) > 1 else ''}): its verdicts are not one run's",
                  file=sys.stderr, flush=True)
    profiles = [(chapter_one_record(d) or {}).get("profile") for d in folders]
    if None not in profiles and profiles[0] != profiles[1]:
        print(f"note: the runs used different profiles ({profiles[0]}, {profiles[1]}): their claims are judged at "
              "different scales, so a different verdict need not mean a different finding", file=sys.stderr, flush=True)
    return EXIT_OK if all(r.same_verdict for r in reps) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    ap = _parser()
    try:
        args = ap.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:          # argparse: --help (0) or bad usage (2)
        return int(e.code or 0)
    try:
        if args.command == "profiles":
            for name, desc in _profiles.available_profiles().items():
                prof = _profiles.load_profile(name)
                total = sum(prof["estimate_s"].values())
                print(f"{name:<8} ~{_fmt_s(total):>8}  {desc}")
            return EXIT_OK
        if args.command == "book":
            return _book(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "parameters-cell":
            try:
                print(_profiles.parameters_cell_source(args.notebook, args.profile), end="")
            except ValueError as e:
                raise UsageError(str(e)) from None
            return EXIT_OK
        if args.command != "run":
            ap.print_help(sys.stderr)
            return EXIT_USAGE
        if args.verbose:
            import logging
            logging.basicConfig(level=logging.INFO, format="%(message)s")
        plan = _Plan(args)
        bad = plan.output_problems()
        if bad:
            raise UsageError(bad[0] if len(bad) == 1 else "\n  ".join(["", *bad]))
        if args.dry_run:
            _print_plan(plan)
            return EXIT_OK
        return _run(plan)
    except (UsageError, ProfileError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
