"""The built site, shared by the site tests that need it (tests/site/test_browser.py, test_provenance.py)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The built site's html folder: ``SNNLIB_SITE_HTML``, or one fresh build per test session.

    The build uses copies of book/ (symlinks resolved: _config.yml, _toc.yml) and results/ laid out as in the
    repository, so the book's run_provenance extension finds each chapter's results JSON; no notebook is executed.
    """
    given = os.environ.get("SNNLIB_SITE_HTML")
    if given:
        html = Path(given).resolve()
        assert (html / "index.html").is_file(), f"SNNLIB_SITE_HTML={given} has no index.html"
        return html
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if jb is None:
        pytest.skip("jupyter-book is not installed (pip install -r requirements.txt)")
    tmp = tmp_path_factory.mktemp("site")
    book = tmp / "book"
    shutil.copytree(ROOT / "book", book, symlinks=False, ignore=shutil.ignore_patterns("_build", ".*", "__pycache__"))
    shutil.copytree(ROOT / "results", tmp / "results")
    proc = subprocess.run([jb, "build", str(book)], cwd=tmp, capture_output=True, text=True, timeout=15 * 60)
    html = book / "_build" / "html"
    assert proc.returncode == 0 and (html / "index.html").is_file(), (proc.stdout + proc.stderr)[-4000:]
    return html
