"""Which run the site shows: the book's run_provenance extension (book/_ext/run_provenance.py).

Fast: the banner text of a hand-made results record (every field, and the missing ones), finding a page's results
file from the notebook's papermill parameters, and the run-book assembly carrying the extension along.  Slow: on the
built site (the ``site`` fixture of tests/site/conftest.py, or ``SNNLIB_SITE_HTML``) every chapter shows the box with
its profile and a link to its results JSON in the site, and every link of the downloads page resolves.
"""
import importlib.util
import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "book" / "_ext" / "run_provenance.py"


def _load_extension():
    spec = importlib.util.spec_from_file_location("run_provenance", EXT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rp = _load_extension()

RECORD = {
    "notebook": "03_leak", "profile": "laptop", "timestamp_utc": "2026-11-25T17:15:21+00:00",
    "git_commit": "a77c5049be1a", "torch_version": "2.14.1",
    "machine": {"cpu_count": 2, "cpu_name": "AMD EPYC", "device_name": "cpu: AMD EPYC", "torch_threads": 2},
    "wall_time_s": 258.47, "scale_note": "profile 'laptop', 100 images", "parameters": {"T_bp": 16},
}


# ------------------------------------------------------------------------------------------------ fast
def test_banner_text_names_profile_date_commit_machine_and_wall_time():
    text = rp.banner_text(RECORD)
    assert text == ("Run shown: profile laptop, 2026-11-25 17:15 UTC, commit a77c504, machine AMD EPYC CPU "
                    "(2 cores, 2 torch threads, torch 2.14.1), wall time 4 min 18 s.")
    gpu = dict(RECORD, machine={"device_name": "NVIDIA H200", "cpu_count": 16}, wall_time_s=7384,
               timestamp_utc="2026-11-25T18:15:21+01:00")
    text = rp.banner_text(gpu)
    assert "machine NVIDIA H200 (16 cores, torch 2.14.1)" in text and "wall time 2 h 3 min" in text
    assert "2026-11-25 17:15 UTC" in text                                  # converted to UTC


def test_missing_fields_read_unknown_and_never_raise():
    no_commit = {k: v for k, v in RECORD.items() if k != "git_commit"}
    assert "commit unknown" in rp.banner_text(no_commit)
    assert "commit unknown" in rp.banner_text(dict(RECORD, git_commit=None))
    assert rp.banner_text({}) == ("Run shown: profile unknown, unknown date, commit unknown, machine unknown, "
                                  "wall time unknown.")
    odd = rp.banner_text({"machine": None, "timestamp_utc": "yesterday", "wall_time_s": "n/a"})
    assert "yesterday" in odd and "wall time unknown" in odd
    # the summary records no wall time of its own: the runner's log gives it
    summary = {k: v for k, v in RECORD.items() if k != "wall_time_s"}
    assert "wall time 3 s" in rp.banner_text(summary, {"wall_time_s": 3.168})
    assert "wall time 4 min 18 s" in rp.banner_text(RECORD, {"wall_time_s": 9999})  # the notebook's own first


def _layout(tmp_path, params, record=RECORD, log=True):
    """tmp/book/03_leak.ipynb executed with ``params``; tmp/results/laptop/03_leak.json (+ the runner's log)."""
    book, results = tmp_path / "book", tmp_path / "results" / "laptop"
    book.mkdir(parents=True)
    results.mkdir(parents=True)
    nb = {"cells": [], "metadata": {"papermill": {"parameters": params}}, "nbformat": 4, "nbformat_minor": 5}
    (book / "03_leak.ipynb").write_text(json.dumps(nb))
    if record is not None:
        (results / "03_leak.json").write_text(json.dumps(record))
    if log:
        (results / "_study_log.json").write_text(json.dumps({"notebooks": {"03_leak": {"wall_time_s": 263.1}}}))
    return book


def test_find_run_reads_the_results_file_the_notebook_names(tmp_path):
    book = _layout(tmp_path, {"profile": "laptop", "results_dir": "results/laptop"})
    run = rp.find_run(book, "03_leak")
    assert run.profile == "laptop" and run.notebook == "03_leak" and run.record == RECORD
    assert run.json_path == tmp_path / "results" / "laptop" / "03_leak.json"
    assert run.site_path == "results/laptop/03_leak.json" and run.log == {"wall_time_s": 263.1}
    assert rp.find_run(book, "intro") is None                               # not a notebook


def test_no_run_without_parameters_or_results(tmp_path):
    assert rp.find_run(_layout(tmp_path / "a", {"bench_json": "x.json"}), "03_leak") is None   # not a study notebook
    assert rp.find_run(_layout(tmp_path / "b", {"results_dir": "results/laptop"}, record=None), "03_leak") is None
    run = rp.find_run(_layout(tmp_path / "c", {"results_dir": "results/laptop"}, log=False), "03_leak")
    assert run is not None and run.log == {}


def test_a_runs_book_gets_the_extension(tmp_path):
    from snnlib.study.book import assemble_book
    book = tmp_path / "book"
    (book / "_ext").mkdir(parents=True)
    (book / "_ext" / "run_provenance.py").write_text("# ext\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (book / "intro.md").write_text("# Intro\n")
    run_book = tmp_path / "runs" / "smoke" / "book"
    run_book.mkdir(parents=True)
    assemble_book(book, run_book)
    assert (run_book / "_ext" / "run_provenance.py").read_text() == "# ext\n"


# ------------------------------------------------------------------------------------------------ slow: the site
def _soup(path):
    bs4 = pytest.importorskip("bs4", reason="beautifulsoup4 (a dependency of jupyter-book's theme) is needed")
    return bs4.BeautifulSoup(path.read_text(errors="replace"), "html.parser")


def _target(site, page, href):
    """The file a relative link of ``page`` points at (None for external links)."""
    parts = urlsplit(href)
    if parts.scheme or not parts.path:
        return None
    return ((site / page).parent / unquote(parts.path)).resolve()


def _chapters():
    from snnlib.study.profiles import NOTEBOOKS
    out = []
    for nb in NOTEBOOKS:
        meta = json.loads((ROOT / "book" / f"{nb}.ipynb").read_text())["metadata"]
        out.append((nb, meta["papermill"]["parameters"]["profile"]))
    return out


@pytest.mark.slow
def test_every_chapter_shows_its_run_and_links_its_json(site):
    for nb, profile in _chapters():
        soup = _soup(site / f"{nb}.html")
        boxes = soup.select("div.run-provenance")
        assert len(boxes) == 1, f"{nb}.html: {len(boxes)} 'Run shown' boxes"
        box = boxes[0]
        assert box.find_previous_sibling().name == "h1", f"{nb}.html: the box is not right under the title"
        text = " ".join(box.get_text(" ").split())
        assert "Run shown" in text and f"profile {profile}" in text and "commit" in text, text
        links = [a["href"] for a in box.find_all("a", href=True)]
        assert links == [f"results/{profile}/{nb}.json"], links
        published = _target(site, f"{nb}.html", links[0])
        assert published.is_file(), f"{nb}.html links {links[0]}, not in the site"
        assert published.read_bytes() == (ROOT / "results" / profile / f"{nb}.json").read_bytes()
        record = json.loads(published.read_text())
        assert record["notebook"] == nb and rp.banner_text(record).split("Run shown: ")[1].split(",")[0] in text


@pytest.mark.slow
def test_downloads_page_links_every_notebook_json_and_command(site):
    page = "downloads.html"
    soup = _soup(site / page)
    main = soup.select_one("main") or soup
    broken = [a["href"] for a in main.find_all("a", href=True)
              if _target(site, page, a["href"]) is not None and not _target(site, page, a["href"]).is_file()]
    assert not broken, f"{page}: links to missing files {broken}"
    table = main.select_one("table.run-downloads")
    assert table is not None, f"{page} has no downloads table"
    rows = table.select("tbody tr")
    for nb, profile in _chapters():
        row = next((r for r in rows if f"{nb}.ipynb" in r.get_text()), None)
        assert row is not None, f"{page}: no row for {nb}"
        hrefs = [a["href"] for a in row.find_all("a", href=True)]
        notebook = [h for h in hrefs if h.endswith(f"/{nb}.ipynb")]
        assert notebook, f"{page}: no download link of {nb}.ipynb"
        assert _target(site, page, notebook[0]).read_bytes() == (ROOT / "book" / f"{nb}.ipynb").read_bytes()
        assert f"results/{profile}/{nb}.json" in hrefs
        assert f"python -m snnlib.study run --profile {profile} --only {nb}" in " ".join(row.get_text(" ").split())
    text = " ".join(main.get_text(" ").split())
    assert "python -m snnlib.study run --profile laptop --publish" in text
    assert (site / "results" / "laptop" / "_study_log.json").is_file()
    appendix = next((r for r in rows if "appendix_performance.ipynb" in r.get_text()), None)
    assert appendix is not None and "python -m snnlib.bench --compare" in appendix.get_text()
    links = [a["href"] for a in appendix.find_all("a", href=True)]
    assert "results/bench/compare_cpu.json" in links and "results/bench/precision_laptop.json" in links
    assert "python -m snnlib.study.precision --profile laptop" in appendix.get_text()
    assert all((site / link).is_file() for link in links if link.startswith("results/"))
