"""Result files of the study: one JSON per chapter with provenance, and the provenance table of a run."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from ..files import atomic_write_json
from ..machine import git_commit, machine_info, snnlib_version, torch_version, utc_now

__all__ = ["write_result", "provenance", "run_provenance", "models_id", "model_fingerprints", "model_mismatches", "chapter_one_record"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def write_result(results_dir: str | os.PathLike, name: str, payload: Mapping[str, Any],
                 wall_time_s: float | None = None) -> Path:
    """Write ``<results_dir>/<name>.json`` atomically and return its path.

    The file holds ``payload`` plus ``wall_time_s`` (if given), ``snnlib_version``,
    ``torch_version``, ``machine`` (platform, cpu count, device name), ``git_commit`` and
    ``timestamp_utc``.  Keys of ``payload`` win over these added fields.  Notebooks should call
    it with ``name`` = their stem (``"02_discretization"``) and put their parameters under
    ``payload["parameters"]``; the study runner reads ``wall_time_s`` for its time estimates.
    """
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"result name must be a simple file stem, got {name!r}")
    meta = provenance()
    if wall_time_s is not None:
        meta = {"wall_time_s": float(wall_time_s), **meta}
    out = {**meta, **payload}
    path = Path(results_dir) / f"{name}.json"
    return atomic_write_json(path, out)


def provenance() -> dict[str, Any]:
    """Where and how a result is computed now: snnlib_version, torch_version, machine (platform, cpu count,
    device name, torch threads), git_commit and timestamp_utc (ISO 8601)."""
    return {"snnlib_version": snnlib_version(), "torch_version": torch_version(), "machine": machine_info(),
            "git_commit": git_commit(), "timestamp_utc": utc_now()}


def _chapter_files(results_dir: str | os.PathLike):
    """(notebook, parsed JSON) of every chapter result in ``results_dir`` (not the summary, not ``_*`` files, not
    unreadable JSON), in name order."""
    for p in sorted(Path(results_dir).glob("*.json")):
        if p.name.startswith("_"):
            continue
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(r, dict):
            yield p.stem, r


def models_id(models: Mapping[str, Any] | None) -> str | None:
    """A short id (8 hex digits) of a chapter's ``models`` fingerprints, the same for chapters that used the same
    trained models; None when the chapter did not record them."""
    if not models:
        return None
    import hashlib
    return hashlib.sha256(json.dumps(models, sort_keys=True).encode()).hexdigest()[:8]


def model_fingerprints(results_dir: str | os.PathLike) -> dict[str, dict[str, dict[str, str]] | None]:
    """{chapter: its ``models`` field ({"seed S": {kind: weights digest}}), or None when it has none} for every
    chapter result in ``results_dir`` (the summary has no models and is left out)."""
    return {nb: (r.get("models") or None) for nb, r in _chapter_files(results_dir) if nb != "07_summary"}


def model_mismatches(results_dir: str | os.PathLike) -> list[str]:
    """One sentence per trained model on which the chapters of ``results_dir`` disagree (the same seed and kind with
    different weights: the chapters were computed from different training runs, e.g. on different machines);
    empty when every chapter that recorded its models used the same ones."""
    seen: dict[tuple[str, str], dict[str, list[str]]] = {}
    for nb, models in model_fingerprints(results_dir).items():
        for seed, kinds in (models or {}).items():
            for kind, digest in (kinds or {}).items():
                seen.setdefault((seed, kind), {}).setdefault(str(digest), []).append(nb)
    out = []
    for (seed, kind), by_digest in seen.items():
        if len(by_digest) > 1:
            parts = "; ".join(f"{', '.join(nbs)} used {d}" for d, nbs in by_digest.items())
            out.append(f"{seed} {kind}: {parts}")
    return out


def chapter_one_record(results_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The results folder's 01_models record as parsed JSON (profile, machine, timestamp, ...), or None when it has
    no readable one."""
    try:
        rec = json.loads((Path(results_dir) / "01_models.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def run_provenance(results_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per chapter result in ``results_dir``: how and where it was computed.

    Keys: notebook, wall_time_s (the notebook's own measurement, seconds), runner_wall_time_s (papermill
    execution including kernel start, from ``_study_log.json`` when the study runner made it), estimate_s and
    estimate_from (what the runner expected before it started the notebook, and from what; None when not
    recorded), reused_s (attack work loaded from the artifact cache, by its recorded build times: an earlier
    attempt's; None when not recorded), device, cpu_count,
    torch_threads, torch_version, git_commit, timestamp_utc, models (:func:`models_id` of the trained models it
    used, None when not recorded).  Files that are not result JSON are skipped.
    """
    d = Path(results_dir)
    log: dict[str, Any] = {}
    try:
        log = json.loads((d / "_study_log.json").read_text()).get("notebooks", {})
    except (OSError, ValueError):
        pass
    rows = []
    for nb, r in _chapter_files(d):
        m = r.get("machine") or {}
        entry = log.get(nb) or {}
        rows.append(dict(notebook=nb, wall_time_s=r.get("wall_time_s"), reused_s=r.get("reused_s"),
                         runner_wall_time_s=entry.get("wall_time_s"), estimate_s=entry.get("estimate_s"),
                         estimate_from=entry.get("estimate_from"),
                         device=m.get("device_name"), cpu_count=m.get("cpu_count"),
                         torch_threads=m.get("torch_threads"), torch_version=r.get("torch_version"),
                         git_commit=r.get("git_commit"), timestamp_utc=r.get("timestamp_utc"),
                         models=models_id(r.get("models"))))
    return rows
