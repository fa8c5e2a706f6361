"""Run the book's notebooks with papermill under a profile.

Usage::

    python -m snnlib.study run --profile smoke|laptop|paper [--only NOTEBOOK ...]
                               [-p name=value ...] [--dry-run] [--resume] [--keep-going]
                               [--out-dir DIR] [--results-dir DIR] [--data-dir DIR]
                               [--book-dir DIR] [--cache-dir DIR] [-v]
    python -m snnlib.study profiles                    # list the profiles
    python -m snnlib.study parameters-cell NOTEBOOK    # print a parameters cell (smoke defaults)

``run`` executes ``<book-dir>/<nb>.ipynb`` for every notebook (in book order, or only those named
with ``--only``: ``02_discretization``, ``discretization`` or ``02``) with
``papermill.execute_notebook(..., kernel_name="python3", cwd=<repo root>)`` and the profile's
parameters plus ``profile`` and ``results_dir``.  The executed copy replaces
``<out-dir>/<nb>.ipynb`` (default: the book folder itself, i.e. in place) only when the notebook
finished: papermill writes to a temp file that is then ``os.replace``-d, so an interrupted run never
leaves a half notebook.  A failed notebook's executed copy (with the traceback) is kept as
``<results-dir>/<nb>.failed.ipynb``.

``-p name=value`` values are parsed as YAML (``-p T_list=[4,8]``, ``-p data_dir=null``) and
validated against :data:`snnlib.profiles.KNOWN_PARAMS`.  Exit codes: 0 success, 1 a notebook
failed, 2 bad usage/profile/parameter, 130 interrupted.

The runner keeps a log ``<results-dir>/_study_log.json`` (status, wall time and parameters of the
last run of each notebook): ``--resume`` skips notebooks whose last run succeeded with the same
parameters, and ``--dry-run`` uses measured wall times for its estimate (the ``wall_time_s``
of ``<results-dir>/<nb>.json`` written by the notebook, else the log's, else the profile's
``estimate_s``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import profiles as _profiles
from .artifacts import _file_lock, atomic_write_bytes, atomic_write_json
from .profiles import NOTEBOOKS, ProfileError

__all__ = ["main", "parse_param", "repo_root", "LOG_NAME"]

#: Runner log file name inside the results folder.
LOG_NAME = "_study_log.json"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad command line / parameter: reported on stderr, exit code 2."""


def repo_root() -> Path:
    """The repository root (the folder holding ``snnlib/`` and ``book/``)."""
    here = Path(__file__).resolve().parent.parent
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
    h, rem = divmod(int(round(s)), 3600)
    return f"{h}h {rem // 60:02d}m"


def _fmt_v(v: Any) -> str:
    """Value as the user would type it in YAML (null, [4, 8], 0.99, cifar10)."""
    if isinstance(v, str):
        return v
    return json.dumps(v)


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX) when inside it, else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


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


@contextlib.contextmanager
def _env(**changes: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
        for item in args.param or []:
            name, value = parse_param(item)
            if name in _profiles.RUNNER_PARAMS:
                flag = "--profile" if name == "profile" else "--results-dir"
                raise UsageError(f"-p {item!r}: {name!r} is set by the runner; use {flag}")
            overrides[name] = value
        if args.data_dir is not None:
            if "data_dir" in overrides:
                raise UsageError("give the data folder either with --data-dir or with "
                                 "-p data_dir=..., not both")
            overrides["data_dir"] = _rel(user_path(args.data_dir, cwd), self.root)
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
        self.notebooks = [nb for nb in NOTEBOOKS if not only or nb in only]
        used = set().union(*(self.profile["notebooks"][nb] for nb in self.notebooks))
        self.unused = sorted(k for k in self.profile["overrides"] if k not in used)

        # folders
        self.book_dir = user_path(args.book_dir, self.root / "book")
        self.out_dir = user_path(args.out_dir, self.book_dir)
        self.results_dir = user_path(args.results_dir, self.root / "results" / args.profile)
        self.cache_dir = user_path(args.cache_dir, cwd) if args.cache_dir else None
        self.log_path = self.results_dir / LOG_NAME
        self.log = _read_json(self.log_path) or {}

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
        """Last run succeeded with the same parameters and the same notebook code."""
        e = self.log_entry(nb)
        return (e.get("status") == "ok"
                and e.get("parameters") == json.loads(json.dumps(self.params(nb)))
                and self.output_path(nb).is_file()
                and e.get("source_sha256") == _source_hash(self.input_path(nb)))

    def estimate(self, nb: str) -> tuple[float, str]:
        res = _read_json(self.results_dir / f"{nb}.json")
        if res and isinstance(res.get("wall_time_s"), (int, float)):
            return float(res["wall_time_s"]), "last run"
        e = self.log_entry(nb)
        if isinstance(e.get("wall_time_s"), (int, float)):
            return float(e["wall_time_s"]), "last run (runner)"
        return self.profile["estimate_s"][nb], "profile estimate"

    def rerun_command(self, nb: str) -> str:
        a = self.args
        cmd = ["python", "-m", "snnlib.study", "run", "--profile", a.profile, "--only", nb]
        for item in a.param or []:
            cmd += ["-p", item]
        for flag, val in (("--book-dir", a.book_dir), ("--out-dir", a.out_dir),
                          ("--results-dir", a.results_dir), ("--data-dir", a.data_dir),
                          ("--cache-dir", a.cache_dir), ("--profiles-file", a.profiles_file)):
            if val:
                cmd += [flag, str(val)]
        return shlex.join(cmd)

    # -- log ----------------------------------------------------------------------------------
    def record(self, nb: str, entry: dict[str, Any]) -> None:
        # locked read-modify-write: runners for other notebooks may share the results folder
        with _file_lock(self.log_path.with_name(".study_log.lock"),
                        "another runner writing the study log"):
            log = _read_json(self.log_path) or {}
            log.setdefault("notebooks", {})
            log["profile"] = self.profile["name"]
            log["notebooks"][nb] = entry
            log["updated_utc"] = _utc_now()
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
      + (" (in place)\n" if plan.out_dir == plan.book_dir else "\n"))
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
    head = ("#", "notebook", "estimate", "from", "notebook parameters")
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(4)]
    w("\n")
    for r in [head, *rows]:
        w("  ".join(f"{r[c]:<{widths[c]}}" for c in range(4)) + "  " + r[4] + "\n")
    w(f"\nTotal estimate: {_fmt_s(total)} for {len(plan.notebooks)} notebook(s)\n")
    if plan.unused:
        w(f"note: parameter(s) {', '.join(plan.unused)} not used by the selected notebooks\n")
    problem = _cuda_problem(plan)
    if problem:
        w(f"note: {problem}\n")
    return total


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


class NotebookFailed(Exception):
    def __init__(self, message: str, failed_copy: Path | None) -> None:
        super().__init__(message)
        self.failed_copy = failed_copy


def _tidy_papermill_metadata(tmp: Path, in_path: Path, out_path: Path, root: Path) -> None:
    """Replace papermill's absolute temp paths in the notebook metadata by repo paths."""
    import nbformat

    nb = nbformat.read(str(tmp), as_version=4)
    pm = nb.metadata.get("papermill")
    if isinstance(pm, dict):
        pm["input_path"] = _rel(in_path, root)
        pm["output_path"] = _rel(out_path, root)
    atomic_write_bytes(tmp, (nbformat.writes(nb) + "\n").encode("utf-8"))


def _execute(plan: _Plan, nb: str) -> None:
    """Run one notebook; replace the output only on success."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    in_path, out_path = plan.input_path(nb), plan.output_path(nb)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f".{nb}.running-{os.getpid()}.ipynb"
    failed_copy = plan.results_dir / f"{nb}.failed.ipynb"
    try:
        pm.execute_notebook(
            str(in_path), str(tmp), parameters=plan.params(nb), kernel_name=plan.args.kernel,
            cwd=str(plan.root), progress_bar=False, log_output=plan.args.verbose,
        )
    except PapermillExecutionError as e:
        index = _input_cell_index(tmp, e.cell_index)
        kept = _keep_failed(tmp, failed_copy)
        src = (e.source or "").strip().splitlines()
        snippet = "\n".join(f"      | {line}" for line in src[:5])
        if len(src) > 5:
            snippet += "\n      | ..."
        raise NotebookFailed(
            f"cell {index} (0-based, In [{e.exec_count}]) raised {e.ename}: {e.evalue}\n"
            f"{snippet}", kept) from None
    except BaseException as e:
        if isinstance(e, Exception):
            kept = _keep_failed(tmp, failed_copy)
            raise NotebookFailed(f"{type(e).__name__}: {e}", kept) from None
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    try:
        _tidy_papermill_metadata(tmp, in_path, out_path, plan.root)
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    with contextlib.suppress(OSError):
        failed_copy.unlink()


def _input_cell_index(executed: Path, index: int) -> int:
    """Index of an executed-copy cell in the input notebook (skipping injected cells)."""
    try:
        import nbformat

        cells = [c for c in nbformat.read(str(executed), as_version=4).cells   # papermill adds
                 if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
        injected = sum(1 for c in cells[:index]
                       if "injected-parameters" in c.get("metadata", {}).get("tags", []))
        return index - injected
    except Exception:
        return index


def _keep_failed(tmp: Path, failed_copy: Path) -> Path | None:
    if not tmp.is_file():
        return None
    try:
        failed_copy.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, failed_copy)
        return failed_copy
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None


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


def _run(plan: _Plan) -> int:
    missing = [nb for nb in plan.notebooks if not plan.input_path(nb).is_file()]
    if missing:
        raise UsageError("notebook(s) not found: " + ", ".join(
            _rel(plan.input_path(nb), plan.root) for nb in missing))
    problem = _cuda_problem(plan)
    if problem:
        raise UsageError(problem)
    plan.results_dir.mkdir(parents=True, exist_ok=True)
    prof = plan.profile
    n = len(plan.notebooks)
    print(f"Study: profile {prof['name']!r}, {n} notebook(s), results in "
          f"{_rel(plan.results_dir, plan.root)}, notebooks written to "
          f"{_rel(plan.out_dir, plan.root)}/", flush=True)
    if plan.unused:
        print(f"note: parameter(s) {', '.join(plan.unused)} not used by the selected "
              "notebooks", flush=True)
    env = {"PYTHONPATH": os.pathsep.join(
        [str(plan.root)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    if plan.cache_dir is not None:
        env["SNNLIB_CACHE"] = str(plan.cache_dir)

    t_start = time.monotonic()
    failures: list[str] = []
    done = skipped = 0
    with _env(**env):
        for i, nb in enumerate(plan.notebooks, 1):
            tag = f"[{i}/{n}] {nb}"
            params = plan.params(nb)
            if plan.args.resume and plan.is_done(nb):
                print(f"{tag}: skipped (done with the same parameters; --resume)", flush=True)
                skipped += 1
                continue
            est, _ = plan.estimate(nb)
            print(f"{tag}: running (estimate {_fmt_s(est)}) ...", flush=True)
            t0 = time.monotonic()
            entry = {"parameters": params, "started_utc": _utc_now(),
                     "source_sha256": _source_hash(plan.input_path(nb)),
                     "input": _rel(plan.input_path(nb), plan.root),
                     "output": _rel(plan.output_path(nb), plan.root)}
            try:
                _execute(plan, nb)
            except NotebookFailed as e:
                wall = time.monotonic() - t0
                plan.record(nb, {**entry, "status": "failed", "wall_time_s": round(wall, 3),
                                 "finished_utc": _utc_now(), "error": str(e)})
                print(f"{tag}: FAILED after {_fmt_s(wall)}: {e}", file=sys.stderr)
                if e.failed_copy is not None:
                    print(f"    executed copy with the traceback: "
                          f"{_rel(e.failed_copy, plan.root)}", file=sys.stderr)
                print(f"    {_rel(plan.output_path(nb), plan.root)} was left unchanged",
                      file=sys.stderr)
                print(f"    rerun only this notebook: {plan.rerun_command(nb)}",
                      file=sys.stderr, flush=True)
                failures.append(nb)
                if not plan.args.keep_going:
                    break
                continue
            except KeyboardInterrupt:
                print(f"\n{tag}: interrupted; {_rel(plan.output_path(nb), plan.root)} left "
                      "unchanged. Cached models are kept: rerun with --resume to continue.",
                      file=sys.stderr, flush=True)
                return EXIT_INTERRUPTED
            wall = time.monotonic() - t0
            plan.record(nb, {**entry, "status": "ok", "wall_time_s": round(wall, 3),
                             "finished_utc": _utc_now()})
            done += 1
            print(f"{tag}: ok in {_fmt_s(wall)} (elapsed {_fmt_s(time.monotonic() - t_start)})",
                  flush=True)
    total = time.monotonic() - t_start
    if failures:
        not_run = n - done - skipped - len(failures)
        print(f"Study {prof['name']!r}: {len(failures)} failed ({', '.join(failures)}), "
              f"{done} ok, {skipped} skipped"
              + (f", {not_run} not run" if not_run else "") + f" in {_fmt_s(total)}",
              file=sys.stderr, flush=True)
        return EXIT_FAILED
    print(f"Study {prof['name']!r}: {done} ok, {skipped} skipped in {_fmt_s(total)}", flush=True)
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
                     help="profile in snnlib/profiles.yaml: smoke (CI, minutes), laptop "
                          "(2-core CPU, ~2 h), paper (GPU, many hours); default: smoke")
    run.add_argument("--only", action="append", metavar="NOTEBOOK",
                     help="run only these notebooks (repeatable or comma-separated; "
                          "'02_discretization', 'discretization' or '02')")
    run.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                     help="override a parameter; VALUE is YAML, e.g. -p T_bp=8 "
                          "-p T_list=[4,8] -p data_dir=null (repeatable)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the notebooks, their parameters and a time estimate; run "
                          "nothing")
    run.add_argument("--resume", action="store_true",
                     help="skip notebooks whose last run succeeded with the same parameters")
    run.add_argument("--keep-going", action="store_true",
                     help="continue with the next notebooks after a failure")
    run.add_argument("--book-dir", help="folder of the input notebooks (default: book/)")
    run.add_argument("--out-dir", help="folder for the executed notebooks (default: the book "
                                       "folder, in place)")
    run.add_argument("--results-dir", help="folder for results JSON (default: "
                                           "results/<profile>/)")
    run.add_argument("--data-dir", help="dataset folder (sets the data_dir parameter)")
    run.add_argument("--cache-dir", help="artifact cache folder for this run (sets "
                                         "SNNLIB_CACHE; default $SNNLIB_CACHE or "
                                         "~/.cache/snnlib)")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel (default: python3)")
    run.add_argument("--profiles-file", help=argparse.SUPPRESS)
    run.add_argument("-v", "--verbose", action="store_true",
                     help="stream the notebooks' outputs to the log")

    sub.add_parser("profiles", help="list the profiles")
    cell = sub.add_parser("parameters-cell",
                          help="print the source of a notebook's parameters cell")
    cell.add_argument("notebook")
    cell.add_argument("--profile", default="smoke")
    return ap


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
