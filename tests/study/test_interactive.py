"""The interactive (Plotly) figures: the same numbers as the records, hover text with the interval, no embedded
library, the same HTML from run to run."""
import re

import pytest

pytest.importorskip("plotly", reason="plotly is in requirements.txt")

from snnlib.stats import accuracy_from_counts
from snnlib.study import interactive


def _acc(k, n):
    return accuracy_from_counts(k, n)


def test_heatmap_cells_hover_and_shape():
    m = [[_acc(3, 10), _acc(7, 10)], [_acc(10, 10), _acc(0, 10)]]
    fig = interactive.heatmap(m, ["ANN", "SNN-BP"], ["ANN", "SNN-BP"], "t", "note")
    trace = fig.figure.data[0]
    assert [list(r) for r in trace.z] == [[30.0, 70.0], [100.0, 0.0]]
    lo, hi = (100 * m[0][1].low, 100 * m[0][1].high)
    assert trace.customdata[0][1] == f"crafted on ANN, scored on SNN-BP<br>70.0 % [{lo:.1f}, {hi:.1f}] of 10 images"
    with pytest.raises(ValueError, match="2 x 2"):
        interactive.heatmap(m[:1], ["ANN", "SNN-BP"], ["ANN", "SNN-BP"], "t")


def test_lines_error_bars_are_the_intervals():
    a, b = _acc(5, 20), _acc(15, 20)
    fig = interactive.lines({"ANN": [(8, b), (0, a)]}, "t", "eps")
    tr = fig.figure.data[0]
    assert list(tr.x) == [0, 8] and list(tr.y) == pytest.approx([25.0, 75.0])
    assert list(tr.error_y.array) == pytest.approx([100 * (a.high - a.value), 100 * (b.high - b.value)])
    assert list(tr.error_y.arrayminus) == pytest.approx([100 * (a.value - a.low), 100 * (b.value - b.low)])


def test_html_is_a_fragment_without_the_library_and_is_deterministic():
    m = [[_acc(3, 10)]]
    html = interactive.heatmap(m, ["ANN"], ["ANN"], "a title")._repr_html_()
    assert interactive.PLOTLY_DIV_CLASS in html and "Plotly.newPlot" in html
    assert len(html) < 50_000 and "<html" not in html          # the 4.8 MB library is served by the site
    assert html == interactive.heatmap(m, ["ANN"], ["ANN"], "a title")._repr_html_()
    other = interactive.heatmap(m, ["ANN"], ["ANN"], "another")._repr_html_()
    assert re.search(r'id="(snnlib-\w+)"', html)[1] != re.search(r'id="(snnlib-\w+)"', other)[1]
    assert len(interactive.plotly_js()) > 1_000_000


def test_without_plotly_each_figure_is_a_note_and_bad_input_still_fails(monkeypatch):
    """A machine without plotly still runs a chapter to its end: each interactive figure displays as a note saying
    why it is missing (no Plotly div for the site to load), and a malformed matrix is still refused."""
    for name in ("plotly", "plotly.graph_objects"):
        monkeypatch.setitem(__import__("sys").modules, name, None)      # import plotly... raises ImportError
    m = [[_acc(3, 10)]]
    for fig in (interactive.heatmap(m, ["ANN"], ["ANN"], "t"), interactive.lines({"ANN": [(0, m[0][0])]}, "t", "eps")):
        html = fig._repr_html_()
        assert fig.figure is None and interactive.MISSING_PLOTLY_NOTE in html
        assert interactive.PLOTLY_DIV_CLASS not in html and "Plotly" not in html
    with pytest.raises(ValueError, match="1 x 2"):
        interactive.heatmap(m, ["ANN"], ["ANN", "SNN-BP"], "t")
