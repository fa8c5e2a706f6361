"""End to end: every notebook at the smoke profile through the study runner (papermill), nbval, and a -W book build.

The smoke run reads the committed notebooks in book/ as sources and writes the executed copies and the results into
a temporary folder (with its own model cache), so the committed notebooks and the user's cache are never touched;
the book is then assembled and built there with ``python -m snnlib.study book --from DIR --strict``.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from snnlib.study.profiles import NOTEBOOKS

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
PY = sys.executable

pytestmark = pytest.mark.slow


def _toc_files():
    import yaml
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def _digests(folder):
    import hashlib
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    book = tmp / "book"
    results = tmp / "results"
    env = dict(os.environ, SNNLIB_CACHE=str(tmp / "cache"), PYTHONPATH=str(ROOT))
    before = _digests(BOOK)
    proc = subprocess.run([PY, "-m", "snnlib.study", "run", "--profile", "smoke", "--out-dir", str(book),
                           "--results-dir", str(results)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=45 * 60)
    return dict(tmp=tmp, book=book, results=results, env=env, proc=proc, before=before)


def test_the_committed_notebooks_are_left_byte_identical(smoke):
    assert smoke["proc"].returncode == 0, smoke["proc"].stderr[-4000:]
    assert _digests(BOOK) == smoke["before"]


def test_every_notebook_runs_at_smoke_profile(smoke):
    proc = smoke["proc"]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for nb in NOTEBOOKS:
        path = smoke["book"] / f"{nb}.ipynb"
        node = nbformat.read(path, as_version=4)
        errors = [o for c in node.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{nb}: {errors[0]['ename']}: {errors[0]['evalue']}"
        tags = [c.metadata.get("tags", []) for c in node.cells]
        assert sum("parameters" in t for t in tags) == 1, f"{nb} must have exactly one 'parameters' cell"
        assert any("injected-parameters" in t for t in tags), f"{nb} was not executed by papermill"


def test_every_chapter_writes_results_json(smoke):
    for nb in NOTEBOOKS:
        data = json.loads((smoke["results"] / f"{nb}.json").read_text())
        assert data["profile"] == "smoke"
        if nb != "07_summary":
            assert data["wall_time_s"] > 0
            assert data["parameters"]["n_test"] == 64
            assert "shipped real subset" in data["scale_note"] or "torchvision" in data["scale_note"]
            assert set(data["models"]) == {"seed 0", "seed 1"}                   # the trained models' fingerprints
            assert all(len(d) == 16 for kinds in data["models"].values() for d in kinds.values())
            # the first chapter trains the models, the others load them from the cache
            assert (data["training_s"] > 0) if nb == "01_models" else (data["training_s"] == 0)
    from snnlib.study.results import model_mismatches
    assert model_mismatches(smoke["results"]) == []           # one training run: every chapter used the same models
    from snnlib.study.consistency import clean_agreement
    from snnlib.study.records import load_study
    rows = clean_agreement(load_study(smoke["results"]))      # and the same clean outcomes, image by image and draw
    assert rows and all(a.agree == a.compared for a in rows)
    assert "used different trained models" not in smoke["proc"].stderr


def test_summary_verdicts_come_from_the_numbers(smoke):
    data = json.loads((smoke["results"] / "07_summary.json").read_text())
    verdicts = {c["verdict"] for c in data["claims"]}
    assert verdicts <= {"supported", "contradicted", "inconclusive", "not testable", "not run"}
    # smoke models classify at chance, so no claim may be called supported or contradicted
    assert verdicts <= {"inconclusive", "not testable", "not run"}, verdicts
    # every tested claim carries its test, effect with interval, p-value, MDE and images (issue 14)
    for c in data["claims"]:
        if c["verdict"] in ("inconclusive", "supported", "contradicted") and c["id"] != "E10":
            assert c["test"] and c["n_images"], c
            assert c["effect"] is not None and c["ci_low"] is not None and c["p_value"] is not None, c


def test_nbval_on_executed_notebooks(smoke):
    # re-execute the cheap chapters (cached models) and compare nothing but errors (--nbval-lax)
    nbs = [str(smoke["book"] / f"{nb}.ipynb") for nb in ("01_models", "07_summary")]
    proc = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--rootdir",
                           str(smoke["tmp"]), *nbs], cwd=smoke["tmp"], env=smoke["env"], capture_output=True,
                          text=True, timeout=20 * 60)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_book_builds_with_warnings_as_errors(smoke):
    book = smoke["book"]
    proc = subprocess.run([PY, "-m", "snnlib.study", "book", "--profile", "smoke", "--from", str(book), "--strict"],
                          cwd=ROOT, env=smoke["env"], capture_output=True, text=True, timeout=20 * 60)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    html = book / "_build" / "html"
    assert f"book built: {html / 'index.html'}" in proc.stdout
    for f in _toc_files():
        page = html / f"{f}.html"
        assert page.exists(), f"missing page {page.name}"
        text = page.read_text()
        if f.startswith("0") and f != "07_summary":
            assert "<img" in text, f"{f}.html has no figure"
    assert "Clopper" in (html / "intro.html").read_text()
