"""Which run each chapter shows, and where its numbers are: a local Sphinx extension of the book.

Registered in ``_config.yml`` (``sphinx: local_extensions: {run_provenance: _ext}``).  The build does not execute
the notebooks: ``python -m snnlib.study run`` (papermill) did, and the executed copy keeps the parameters papermill
injected in ``metadata.papermill.parameters``, among them ``profile`` and ``results_dir`` (relative to the repository
root, or absolute).  For every notebook page whose results file ``<results_dir>/<notebook>.json`` exists, this extension

* puts a "Run shown" box under the page title: profile, date (UTC), commit, machine, wall time, the scale note and a
  link to the JSON (:func:`banner_text` is its text, :func:`banner_node` the box);
* copies that run's ``*.json`` (the chapters' results and ``_study_log.json``) into the site as
  ``results/<profile>/<file>`` when the build finishes, so the links are stable URLs;
* fills the ``run-downloads`` directive (book/downloads.md) with a table: per notebook page its executed notebook,
  its results JSON and the command that reproduces it.  Pages that the study runner does not execute (the appendix)
  are described by the config value ``run_provenance_extra``: ``{page: {json: <repo path>, command: <text>}}``
  (each may also be a list: several data files, the commands that make them).

A relative path is looked up in the book folder and then in each folder above it (``book/`` -> the repository
root; a run's book in ``runs/<profile>/book/`` -> the root three levels up); an extra file that is not found (a run's
book built outside the repository) gets no link.  Only the standard library, docutils and Sphinx are used: the
JSON is read directly, nothing imports snnlib (or torch).
"""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx import addnodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

SITE_DIR = "results"          # the site's folder of published JSON: <html>/results/<profile>/<file>.json


class Run(NamedTuple):
    """The results of one notebook page: the parsed JSON, where it is, where the site has it, the runner's log."""

    notebook: str
    profile: str
    json_path: Path
    site_path: str            # relative to the html root, "/"-separated
    record: Dict[str, Any]
    log: Dict[str, Any]       # this notebook's entry of <results_dir>/_study_log.json ({} when none)


# ------------------------------------------------------------------------------------------------ text (pure)
def _duration(seconds: Any) -> Optional[str]:
    """3599.0 -> '59 min 59 s'; 3.2 -> '3 s'; 7384 -> '2 h 3 min'; None/junk -> None."""
    try:
        s = int(round(float(seconds)))
    except (TypeError, ValueError):
        return None
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m} min"
    return f"{m} min {sec} s" if m else f"{sec} s"


def _when(stamp: Any) -> str:
    """'2026-11-25T16:55:15+00:00' -> '2026-11-25 16:55 UTC' (the text as it is when it is not ISO 8601)."""
    if not stamp:
        return "unknown date"
    try:
        t = datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _machine(record: Mapping[str, Any]) -> str:
    """'AMD EPYC CPU (2 cores, 2 torch threads, torch 2.14.1)' from the record's machine and torch_version."""
    m = record.get("machine")
    m = m if isinstance(m, Mapping) else {}
    device = str(m.get("device_name") or m.get("cpu_name") or "unknown")
    if device.startswith("cpu: "):
        device = f"{device[5:]} CPU"
    bits = []
    if m.get("cpu_count"):
        bits.append(f"{m['cpu_count']} cores")
    if m.get("torch_threads"):
        bits.append(f"{m['torch_threads']} torch threads")
    if record.get("torch_version"):
        bits.append(f"torch {record['torch_version']}")
    return f"{device} ({', '.join(bits)})" if bits else device


def banner_commit(record: Mapping[str, Any]) -> str:
    """The record's git commit, short (7 hex digits), or "unknown"."""
    return str(record.get("git_commit") or "").strip()[:7] or "unknown"


def banner_text(record: Mapping[str, Any], log: Optional[Mapping[str, Any]] = None) -> str:
    """One line saying which run a results JSON comes from; missing fields read "unknown", never raise.

    record: a chapter's results JSON (snnlib.study.records.ChapterFile / SummaryFile as a dict); log: the notebook's
    entry of the runner's ``_study_log.json``, whose wall time is used when the record has none (the summary).
    """
    log = log or {}
    commit = banner_commit(record)
    wall = _duration(record.get("wall_time_s"))
    if wall is None:
        wall = _duration(log.get("wall_time_s"))
    return (f"Run shown: profile {record.get('profile') or 'unknown'}, {_when(record.get('timestamp_utc'))}, "
            f"commit {commit}, machine {_machine(record)}, wall time {wall or 'unknown'}.")


# ------------------------------------------------------------------------------------------------ finding runs
def _find(base: Path, rel: Any) -> Optional[Path]:
    """The file ``rel`` (absolute, or relative to the repository root) seen from the book folder ``base``."""
    if not rel:
        return None
    p = Path(str(rel))
    if p.is_absolute():
        return p if p.is_file() else None
    for root in [base, *base.parents]:
        if (root / p).is_file():
            return root / p
    return None


@lru_cache(maxsize=256)
def _read_json(path: str, mtime_ns: int) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _load(path: Path) -> Any:
    try:
        return _read_json(str(path), path.stat().st_mtime_ns)
    except (OSError, ValueError):
        return None


def _parameters(srcdir: Path, docname: str) -> Optional[Dict[str, Any]]:
    """The papermill parameters of page ``docname`` (None: not a notebook, or papermill did not execute it)."""
    nb = _load(srcdir / f"{docname}.ipynb")
    if not isinstance(nb, dict):
        return None
    params = ((nb.get("metadata") or {}).get("papermill") or {}).get("parameters")
    return params if isinstance(params, dict) and params else None


def find_run(srcdir: Path, docname: str) -> Optional[Run]:
    """The run whose results page ``docname`` shows, or None (not a study notebook, or no results file)."""
    params = _parameters(Path(srcdir), docname)
    if not params or "results_dir" not in params:
        return None
    notebook = Path(docname).name
    path = _find(Path(srcdir), f"{params['results_dir']}/{notebook}.json")
    record = _load(path) if path else None
    if not isinstance(record, dict):
        return None
    profile = str(record.get("profile") or params.get("profile") or "unknown")
    log = _load(path.parent / "_study_log.json")
    entry = ((log or {}).get("notebooks") or {}).get(notebook) if isinstance(log, dict) else None
    return Run(notebook, profile, path, f"{SITE_DIR}/{profile}/{path.name}", record,
               entry if isinstance(entry, dict) else {})


def _href(docname: str, site_path: str) -> str:
    """A link from page ``docname`` to ``site_path`` (both relative to the html root)."""
    return "../" * docname.count("/") + site_path


# ------------------------------------------------------------------------------------------------ the box
def banner_node(run: Run, docname: str) -> nodes.Element:
    """The "Run shown" admonition: :func:`banner_text`, the scale note and the link to the results JSON."""
    box = nodes.admonition(classes=["note", "run-provenance"])
    box += nodes.title(text="Run shown")
    box += nodes.paragraph(text=banner_text(run.record, run.log).replace("Run shown: ", "", 1))
    if run.record.get("scale_note"):
        box += nodes.paragraph(text=f"Scale: {run.record['scale_note']}.")
    link = nodes.reference("", "", nodes.literal(text=run.site_path), refuri=_href(docname, run.site_path),
                           internal=True)
    box += nodes.paragraph("", "", nodes.Text("Results: "), link,
                           nodes.Text(" (every number on this page; the downloads page lists them all)."))
    return box


def add_banner(app, doctree: nodes.document) -> None:
    """doctree-read: put the box under the first title of every page that has a run."""
    docname = app.env.docname
    params = _parameters(Path(app.srcdir), docname)
    run = find_run(Path(app.srcdir), docname)
    if run is None:
        if params and "results_dir" in params:
            logger.warning(f"no results file {params['results_dir']}/{Path(docname).name}.json for this executed "
                           "notebook: its page shows no run provenance", location=docname,
                           type="run_provenance", subtype="missing")
        return
    app.env.note_dependency(str(run.json_path))       # a changed JSON re-reads the page
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        doctree.insert(0, banner_node(run, docname))
    else:
        at = 1 if section.children and isinstance(section[0], nodes.title) else 0
        section.insert(at, banner_node(run, docname))


# ------------------------------------------------------------------------------------------------ downloads table
def _notebook_pages(env) -> List[str]:
    """The notebook pages of the book, in name order (the chapters are number-prefixed; the appendix sorts last)."""
    return sorted(d for d in env.found_docs if str(env.doc2path(d)).endswith(".ipynb"))


def _cell(*lines: List[nodes.Node]) -> nodes.entry:
    """A table cell of one paragraph per line."""
    return nodes.entry("", *(nodes.paragraph("", "", *line) for line in lines))


class RunDownloads(Directive):
    """``run-downloads``: a table of every notebook page's executed notebook, results JSON and command."""

    has_content = False

    def run(self) -> List[nodes.Node]:
        env = self.state.document.settings.env
        srcdir, here = Path(env.srcdir), env.docname
        extra = env.config.run_provenance_extra or {}
        heads = ["Chapter", "Executed notebook and results JSON", "Command that reproduces it"]
        tbody, runs = nodes.tbody(), {}
        for doc in _notebook_pages(env):
            run, more = find_run(srcdir, doc), extra.get(doc)
            if run is None and not more:
                continue
            if run is not None:
                runs.setdefault(run.profile, run)
                env.note_dependency(str(run.json_path))
            title = addnodes.pending_xref("", nodes.inline(text=doc), refdomain="std", reftype="doc",
                                          reftarget="/" + doc, refexplicit=False, refdoc=here)
            notebook = addnodes.download_reference("", "", nodes.literal(text=f"{Path(doc).name}.ipynb"),
                                                   refdomain="", reftype="download", refexplicit=True,
                                                   reftarget=f"/{doc}.ipynb", refdoc=here)
            if run is not None:
                site = run.site_path
                command = f"python -m snnlib.study run --profile {run.profile} --only {run.notebook}"
            else:
                sites, commands = _as_list(more.get("json")), _as_list(more.get("command"))
                for site in [s for s in sites if _find(srcdir, s) is None]:   # e.g. a book built outside the repo
                    logger.info(f"run_provenance_extra: {site} not found above {srcdir}: no link", location=here)
                sites = [s for s in sites if _find(srcdir, s) is not None]
            if run is not None:
                sites, commands = [site], [command]
            links: List[nodes.Node] = []
            for k, site in enumerate(sites):
                links += ([nodes.Text(", ")] if k else []) + [
                    nodes.reference("", "", nodes.literal(text=Path(site).name), refuri=_href(here, site), internal=True)]
            json_cell = links or [nodes.Text("—")]
            how = [[nodes.literal(text=c)] for c in commands] or [[nodes.Text("—")]]
            if run is not None:                   # the code the shown run used (the profile may have changed since)
                how.append([nodes.Text(f"run shown: commit {banner_commit(run.record)}")])
            tbody += nodes.row("", _cell([title]), _cell([notebook], json_cell), _cell(*how))
        tgroup = nodes.tgroup(cols=len(heads))
        tgroup.extend(nodes.colspec(colwidth=1) for _ in heads)
        tgroup += nodes.thead("", nodes.row("", *(_cell([nodes.Text(h)]) for h in heads)))
        tgroup += tbody
        out: List[nodes.Node] = [nodes.table("", tgroup, classes=["run-downloads"])]
        for profile, run in sorted(runs.items()):       # the whole run, and the runner's log when there is one
            para = nodes.paragraph("", "", nodes.Text(f"The whole run (profile {profile}): "),
                                   nodes.literal(text=f"python -m snnlib.study run --profile {profile} --publish"),
                                   nodes.Text(", then "), nodes.literal(text="jupyter-book build book"))
            if (run.json_path.parent / "_study_log.json").is_file():
                log = f"{SITE_DIR}/{profile}/_study_log.json"
                para += [nodes.Text("; the runner's log (status, wall time and parameters of each notebook): "),
                         nodes.reference("", "", nodes.literal(text=log), refuri=_href(here, log), internal=True)]
            para += nodes.Text(".")
            out.append(para)
        return out


def _as_list(value) -> List[str]:
    """A config value that is one string, a list of strings or empty, as a list of non-empty strings."""
    if not value:
        return []
    return [str(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if v]


# ------------------------------------------------------------------------------------------------ copying the JSON
def copy_results(app, exception: Optional[BaseException]) -> None:
    """build-finished: copy every shown run's ``*.json`` and the extra files into the html output."""
    if exception is not None or app.builder.format != "html":
        return
    srcdir, out = Path(app.srcdir), Path(app.outdir)
    copies: Dict[Path, Path] = {}
    for doc in app.env.found_docs:
        run = find_run(srcdir, doc)
        if run is not None:
            for f in run.json_path.parent.glob("*.json"):
                copies[out / SITE_DIR / run.profile / f.name] = f
    for more in (app.config.run_provenance_extra or {}).values():
        for site in _as_list(more.get("json")):
            src = _find(srcdir, site)
            if src is not None:
                copies[out / Path(site)] = src
    for dest, src in sorted(copies.items()):
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


def setup(app) -> Dict[str, Any]:
    app.add_config_value("run_provenance_extra", {}, "env")
    app.add_directive("run-downloads", RunDownloads)
    app.connect("doctree-read", add_banner)
    app.connect("build-finished", copy_results)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
