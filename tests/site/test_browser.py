"""The built book opened in a real headless browser, page by page, as a reader would see it.

Builds the book from the committed executed notebooks (the ``site`` fixture of tests/site/conftest.py: copies of
book/ and results/ in a temp folder; no notebook is executed) and opens every page of the table of contents in
Debian's headless Chromium (``--dump-dom``: the DOM after the page's scripts ran; ``--screenshot`` of the summary).
Checks that every page loads, every image exists and is not empty, no page shows an error output, a traceback,
progress-bar residue, stderr or warning spam, a raw Markdown pipe table, an emoji (an empty box where the reader has
no emoji font), papermill's injected ``# Parameters`` cell or an object repr such as ``PosixPath(...)``; every
internal link (and its #anchor) resolves; and the search page finds a chapter.

Skipped, saying why, where Chromium is not installed (``apt-get install chromium``; ``.ci/run`` installs it where
apt-get exists).  ``SNNLIB_SITE_HTML=DIR`` checks an already built site (``DIR`` = ``.../_build/html``) instead.
"""
import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from snnlib.study.book import toc_files

from site_emoji import is_emoji

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"))
                 if p and Path(p).is_file()), None)
SUMMARY = "07_summary"

PIPE_RULE = re.compile(r"\|\s*:?(-{3,}|—):?\s*\|")            # a table's | --- | line (--- may be smartened to —)
TQDM = re.compile(r"(it/s\]|s/it\]|\d+%\|[█▏▎▍▌▋▊▉ ]*\|)")     # tqdm's rate or bar
EXCEPTION = re.compile(r"\b[A-Z]\w*(Error|Exception)\b")         # ValueError, RuntimeError, ...
WARNING_SPAM = re.compile(r"\b\w*Warning: |^\s*warnings\.warn\(", re.M)
REPR = re.compile(r"\b(PosixPath|WindowsPath)\(|<[\w.]+ object at 0x|<IPython\.core\.display\.\w+ object>")


def _bs4():
    return pytest.importorskip("bs4", reason="beautifulsoup4 (a dependency of jupyter-book's theme) is needed")


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        pytest.skip("no Chromium browser: install Debian's package (apt-get install -y chromium); .ci/run does so "
                    "where apt-get is available")
    return CHROMIUM


@pytest.fixture(scope="module")
def pages():
    return toc_files(ROOT / "_toc.yml")


@pytest.fixture(scope="module")
def browse(chromium, site, tmp_path_factory):
    """browse(page, query="") -> BeautifulSoup of the DOM Chromium rendered (cached per page)."""
    bs4 = _bs4()
    profile = tmp_path_factory.mktemp("chromium-profile")

    @lru_cache(maxsize=None)
    def dom(page, query=""):
        path = site / page
        url = path.as_uri() + (f"?{query}" if query else "")
        proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "<html" in proc.stdout, f"Chromium could not open {url}: {proc.stderr[-2000:]}"
        return bs4.BeautifulSoup(proc.stdout, "html.parser")

    return dom


def _page_file(name):
    return f"{Path(name).with_suffix('')}.html"


def _visible_text(el):
    for bad in el.find_all(["script", "style", "noscript", "template"]):
        bad.decompose()
    return el.get_text(" ")


def _outputs(soup):
    """Every output of every code cell (the children of myst-nb's cell_output containers)."""
    return soup.select("div.cell_output > *")


# ------------------------------------------------------------------------------------------------ tests
def test_every_toc_page_loads(browse, site, pages):
    for name in pages:
        f = _page_file(name)
        assert (site / f).is_file(), f"{f} (in _toc.yml) was not built"
        soup = browse(f)
        h1 = soup.find("h1")
        assert h1 is not None and h1.get_text(strip=True), f"{f}: no title: the page did not render"
        assert soup.select_one("article, main"), f"{f}: no article/main element"


def test_every_image_exists_and_is_not_empty(browse, site, pages):
    for name in pages:
        f = _page_file(name)
        for img in browse(f).find_all("img"):
            src = img.get("src", "")
            assert src, f"{f}: an <img> without src"
            parts = urlsplit(src)
            if parts.scheme == "data":
                assert "," in src and len(src.split(",", 1)[1]) > 16, f"{f}: empty data: image"
                continue
            assert parts.scheme in ("", "file"), f"{f}: image from outside the site: {src}"
            target = (site / f).parent / unquote(parts.path) if parts.scheme == "" else Path(unquote(parts.path))
            assert target.is_file(), f"{f}: image {src} does not exist"
            assert target.stat().st_size > 0, f"{f}: image {src} is empty"


def test_no_page_shows_errors_tracebacks_progress_bars_or_stderr(browse, pages):
    problems = []
    for name in pages:
        f = _page_file(name)
        soup = browse(f)
        for out in _outputs(soup):
            cls = " ".join(out.get("class", []))
            text = out.get_text(" ")
            if re.search(r"\b(traceback|stderr|error)\b", cls):
                problems.append(f"{f}: an output of class '{cls}': {text.strip()[:200]!r}")
            for pattern, what in ((TQDM, "progress-bar residue"), (EXCEPTION, "an exception"),
                                  (WARNING_SPAM, "a warning"), (REPR, "an object repr")):
                m = pattern.search(text)
                if m:
                    problems.append(f"{f}: {what} in an output: ...{text[max(0, m.start() - 80):m.end() + 80]!r}")
        body = _visible_text(soup.body)
        if "Traceback (most recent call last)" in body:
            problems.append(f"{f}: a raw traceback")
    assert not problems, "\n".join(problems)


def test_tables_render_as_tables_not_pipe_text(browse, pages):
    problems = []
    for name in pages:
        f = _page_file(name)
        soup = browse(f)
        for el in soup.find_all("p") + _outputs(soup):
            text = el.get_text(" ")
            if PIPE_RULE.search(text) or (el.name == "p" and text.lstrip().startswith("| ")):
                line = f"{f}: raw Markdown table text: {text.strip()[:160]!r}"
                if line not in problems:
                    problems.append(line)
    assert not problems, "\n".join(problems)


def test_no_emoji_that_needs_an_emoji_font(browse, pages):
    problems = []
    for name in pages:
        f = _page_file(name)
        text = _visible_text(browse(f).body)
        found = sorted({ch for ch in text if is_emoji(ch)})
        if found:
            i = next(i for i, ch in enumerate(text) if is_emoji(ch))
            problems.append(f"{f}: {', '.join(f'U+{ord(c):04X}' for c in found)} e.g. "
                            f"{text[max(0, i - 60):i + 20].strip()!r}")
    assert not problems, "emoji shown (use words or plain text symbols such as ✓ U+2713):\n" + "\n".join(problems)


def test_papermill_injected_parameters_are_not_shown(browse, pages):
    for name in pages:
        f = _page_file(name)
        soup = browse(f)
        injected = len(soup.select(".tag_injected-parameters"))
        assert not injected, (f"{f}: papermill's injected parameters cell is on the page: tag it remove-cell "
                              "(snnlib.study.notebooks.hide_injected_parameters_in)")
        for cell in soup.select("div.cell_input"):
            if cell.find_parent("details") is None and cell.get_text().lstrip().startswith("# Parameters\n"):
                pytest.fail(f"{f}: a visible '# Parameters' cell")


def test_internal_links_resolve(browse, site, pages):
    bs4 = _bs4()

    @lru_cache(maxsize=None)
    def ids(path):
        soup = bs4.BeautifulSoup(path.read_text(errors="replace"), "html.parser")
        return {el["id"] for el in soup.find_all(id=True)}

    broken = []
    for name in pages:
        f = _page_file(name)
        soup = browse(f)
        here = {el["id"] for el in soup.find_all(id=True)}
        for a in soup.find_all("a", href=True):
            href = a["href"]
            parts = urlsplit(href)
            if parts.scheme in ("http", "https", "mailto", "javascript", "data") or href in ("", "#"):
                continue
            if parts.scheme == "file":
                target = Path(unquote(parts.path))
            elif parts.path:
                target = ((site / f).parent / unquote(parts.path)).resolve()
            else:
                if parts.fragment and unquote(parts.fragment) not in here:
                    broken.append(f"{f}: #{parts.fragment} is not on the page")
                continue
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{f}: {href} -> missing {target}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids(target):
                broken.append(f"{f}: {href}: no #{parts.fragment} in {target.name}")
    assert not broken, "\n".join(broken)


def test_search_finds_a_chapter(browse, site, pages):
    chapters = [_page_file(p) for p in pages if Path(p).name[:2].isdigit()]
    assert chapters
    # a word of a chapter's title (longest first), which the search index holds
    title = browse(chapters[-1]).find("h1").get_text(" ", strip=True)
    word = max(re.findall(r"[A-Za-z]{5,}", title), key=len).lower()
    soup = browse("search.html", f"q={word}")
    hits = [a["href"].split("?")[0].split("#")[0] for a in soup.select("#search-results a[href], ul.search a[href]")]
    assert hits, f"search.html?q={word} shows no results: {soup.select_one('#search-results')}"
    assert set(hits) & set(chapters), f"search.html?q={word} found {hits}, none of them a chapter"


def test_summary_screenshot(chromium, site, tmp_path):
    out = tmp_path / "summary.png"
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1280,2400",
                           "--virtual-time-budget=5000", f"--screenshot={out}", (site / f"{SUMMARY}.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, "the summary's screenshot is blank or broken"
    keep = os.environ.get("SNNLIB_SITE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, Path(keep) / out.name)


def test_math_renders_offline_and_every_script_is_served_with_the_site(browse, site, pages):
    """MathJax comes with the site (book/_mathjax), not from a CDN: the reader's browser typesets the formulas
    without network access (the intro's rate code, $s_t = ...$, becomes MathJax's output), and no page loads a
    script from outside the site."""
    soup = browse("intro.html")
    assert soup.find("mjx-container"), "intro.html: no formula was typeset (MathJax did not run)"
    assert (site / "mathjax" / "tex-mml-chtml.js").is_file()
    remote = []
    for name in pages:
        f = _page_file(name)
        for tag in browse(f).find_all("script", src=True):
            if urlsplit(tag["src"]).scheme in ("http", "https") or tag["src"].startswith("//"):
                remote.append(f"{f}: {tag['src']}")
    assert not remote, "scripts loaded from outside the site:\n" + "\n".join(remote)


def test_interactive_figures_render_from_the_sites_own_plotly(browse, site, pages):
    """Every Plotly figure (chapters 4 and 5) is drawn by the browser (an svg inside its div) with the library the
    site serves, and the pages whose executed notebook made one show it."""
    import json

    drawn = []
    for name in pages:
        f = _page_file(name)
        soup = browse(f)
        divs = soup.select("div.plotly-graph-div")
        src = BOOK / Path(name).with_suffix(".ipynb")
        made = src.is_file() and "plotly-graph-div" in json.dumps(
            [c.get("outputs", []) for c in json.loads(src.read_text())["cells"]])
        assert bool(divs) == made, f"{f}: the notebook made {'a' if made else 'no'} Plotly figure, the page shows " \
                                   f"{len(divs)}"
        for div in divs:
            assert div.select_one("svg.main-svg"), f"{f}: Plotly figure {div.get('id')} was not drawn"
            drawn.append(f)
        if divs:
            assert any(s["src"].endswith("_static/plotly.min.js") for s in soup.find_all("script", src=True)), f
    if drawn:
        assert (site / "_static" / "plotly.min.js").stat().st_size > 1_000_000
