"""What the book renders from a notebook: tables as HTML tables, verdicts without emoji, papermill's injected
parameters cell hidden (fast checks of the library; tests/site/test_browser.py looks at the built pages)."""
import json
import unicodedata

import nbformat
import pytest

from snnlib.study import notebooks, tables
from snnlib.study import records as R


def _table():
    return tables.Table([["a|b", "**1.50×**", None], {"x": "<c> & d", "n": 2, "z": "line\nbreak"}], ["x", "n", "z"],
                        "Cap <1>", ["l", "r", "c"])


def test_a_table_renders_as_html_markdown_and_text():
    t = _table()
    html = t._repr_html_()
    assert html.startswith('<div class="snnlib-table-wrap" style="overflow-x: auto')  # scrolls, never cut off
    assert '<table class="table snnlib-table">' in html and html.endswith("</table>\n</div>")
    assert "<caption>Cap &lt;1&gt;</caption>" in html
    assert '<th style="text-align: right">n</th>' in html and '<td style="text-align: center">ok' not in html
    assert "<td style=\"text-align: left\">a|b</td>" in html             # no Markdown escaping in HTML
    assert "<strong>1.50×</strong>" in html and "&lt;c&gt; &amp; d" in html and "line break" in html
    assert html.count("<tr>") == 3
    md = tables.markdown_table(*t)
    assert t._repr_markdown_() == md == str(t) == t.markdown()
    assert "| a\\|b | **1.50×** |  |" in md
    assert tables.html_table(*t) == html


def test_jupyter_shows_the_html_form(tmp_path):
    from IPython.core.formatters import format_display_data
    data, _ = format_display_data(_table())
    assert set(data) == {"text/plain", "text/html", "text/markdown"}
    assert data["text/html"] == _table().html() and data["text/plain"] == str(_table())


def test_display_table_checks_and_displays(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    tables.display_table([[1, 2]], ["a", "b"], "cap", ["l", "r"])
    assert isinstance(shown[0], tables.Table) and "<caption>cap</caption>" in shown[0]._repr_html_()
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        tables.display_table([[1]], ["a", "b"])
    with pytest.raises(ValueError, match="align must give"):
        tables.html_table([[1]], ["a"], align=["x"])


def _emoji_like(ch):
    """A character that browsers draw from an emoji font."""
    from site_emoji import is_emoji
    return is_emoji(ch)


def test_verdict_badges_and_table_flags_are_plain_text():
    symbols = "".join(tables.VERDICT_BADGES.values())
    assert not [c for c in symbols if _emoji_like(c)], symbols
    for verdict, badge in tables.VERDICT_BADGES.items():
        assert badge.endswith(verdict)
    rows = [R.ClaimRow(id="E1", paper="P", claim="c", chapter="04", verdict=v, measured="m", scale=None)
            for v in tables.VERDICT_BADGES]
    html = tables.claims_table(rows).html()
    assert not [c for c in html if _emoji_like(c)]
    assert "✓ supported" in html


def _executed_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("# Parameters\nx = 2\n", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(x)"),
                nbformat.v4.new_markdown_cell("text")]
    return nb


def test_the_injected_parameters_cell_is_tagged_remove_cell_and_nothing_else_changes(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(_executed_notebook(), str(path))
    before = json.loads(path.read_text())
    assert notebooks.hide_injected_parameters_in(path) == {str(path): 1}
    after = json.loads(path.read_text())
    assert after["cells"][1]["metadata"]["tags"] == ["injected-parameters", "remove-cell"]
    before["cells"][1]["metadata"]["tags"].append("remove-cell")
    assert after == before                                   # sources, outputs and other cells untouched
    text = path.read_text()
    assert notebooks.hide_injected_parameters_in([path]) == {str(path): 0} and path.read_text() == text


def test_the_runner_hides_the_injected_cell(tmp_path):
    # execute_notebook tidies papermill's output with _tidy_papermill_metadata, which now hides the cell
    tmp = tmp_path / "run.ipynb"
    nb = _executed_notebook()
    nb.metadata["papermill"] = {"input_path": "/abs/in.ipynb", "output_path": "/abs/tmp.ipynb"}
    nbformat.write(nb, str(tmp))
    notebooks._tidy_papermill_metadata(tmp, tmp_path / "book" / "in.ipynb", tmp_path / "book" / "out.ipynb", tmp_path)
    out = nbformat.read(str(tmp), as_version=4)
    assert out.metadata["papermill"]["output_path"] == "book/out.ipynb"
    assert "remove-cell" in out.cells[1].metadata["tags"] and "remove-cell" not in out.cells[0].metadata["tags"]


def test_the_committed_book_hides_every_injected_cell():
    from pathlib import Path
    for path in sorted((Path(__file__).resolve().parents[2] / "book").glob("*.ipynb")):
        if path.name.startswith("."):            # a run in progress (.<nb>.running-*.ipynb), not a page
            continue
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            tags = cell.get("metadata", {}).get("tags", [])
            if "injected-parameters" in tags:
                assert "remove-cell" in tags, f"{path.name}: run snnlib.study.notebooks.hide_injected_parameters_in"


def test_no_emoji_in_the_library_sources():
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "snnlib"
    found = []
    for path in sorted(root.rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            bad = [c for c in line if _emoji_like(c)]
            if bad:
                found.append(f"{path.relative_to(root.parent)}:{i}: {' '.join(unicodedata.name(c, hex(ord(c))) for c in bad)}")
    assert not found, "\n".join(found)


def test_the_book_cites_papers_not_files_outside_the_repository():
    # reference/*.md are the authors' notes outside this repository: the site cites the papers themselves
    from pathlib import Path
    book = Path(__file__).resolve().parents[2] / "book"
    found = [p.name for p in sorted(book.glob("*")) if p.suffix in (".md", ".ipynb", ".bib")
             and "reference/" in p.read_text(errors="replace")]
    assert not found, f"pages citing reference/...: {found}"


def test_the_runner_kernels_print_no_transport_notice(tmp_path, capfd):
    """A notebook executed by the runner leaves the terminal clean: ipykernel's start-up notice about its TCP
    transport (printed by the kernel process, on every start) is silenced at the source; the notebook still runs."""
    src = tmp_path / "in.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x = 6 * 7\nprint(x)")]
    nbformat.write(nb, str(src))
    out = tmp_path / "out.ipynb"
    notebooks.execute_notebook(src, out, {}, cwd=tmp_path, failed_copy=tmp_path / "failed.ipynb")
    assert "42" in nbformat.read(str(out), as_version=4).cells[0].outputs[0]["text"]
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out and "WARNING" not in captured.err
