"""Interactive versions of the book's figures a reader would rather explore than read (Plotly).

Each function returns an :class:`InteractiveFigure`: displayed in a notebook it becomes an HTML ``<div>`` whose
points show, on hover, the accuracy, its 95 % Clopper-Pearson interval and the number of images.  The Plotly
library itself is not embedded in the output (4.8 MB per figure): the book's ``interactive_figures`` extension
(book/_ext) serves one copy with the site and loads it on the pages that need it.  The static matplotlib figure
(:mod:`snnlib.study.plots`) is kept next to each for print and for readers without JavaScript.

Without plotly installed (a GPU machine that cannot install it, say), each function returns a figure that displays
as a one-line note saying so, so that a chapter still runs to its end and keeps its static figures and results.
"""
from __future__ import annotations

import hashlib
import textwrap
from typing import Mapping, Optional, Sequence, Tuple

from .formatting import accuracy_fractions, attack_label
from .records import KINDS, AttackSourceResults, TrainingMethodResults

__all__ = ["InteractiveFigure", "lines", "heatmap", "transfer_matrix", "budget_curves", "plotly_js"]

#: the ``<div>`` class Plotly gives every figure; the book's extension looks for it
PLOTLY_DIV_CLASS = "plotly-graph-div"


#: the note shown in place of an interactive figure when plotly is not installed
MISSING_PLOTLY_NOTE = ("(interactive version omitted: plotly is not installed here; the static figure above shows the "
                       "same numbers. pip install -r requirements.txt adds it)")


def _go():
    """``plotly.graph_objects``, or None when plotly is not installed."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    return go


def plotly_js() -> str:
    """The Plotly JavaScript library (minified source) of the installed plotly package, for serving with a site."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ImportError("interactive figures need plotly: pip install -r requirements.txt") from None
    return get_plotlyjs()


class InteractiveFigure:
    """A Plotly figure that displays as an HTML fragment (no embedded library; ``div_id`` fixed by the title, so the
    executed notebook is the same from run to run).  ``figure`` is the ``plotly.graph_objects.Figure``."""

    def __init__(self, figure, key: str):
        self.figure = figure
        self.div_id = "snnlib-" + hashlib.sha256(key.encode()).hexdigest()[:12]

    def to_html(self) -> str:
        """The figure's ``<div>`` (no library), or a note when plotly is not installed (``figure`` is None)."""
        if self.figure is None:
            return f'<p class="snnlib-no-plotly"><em>{MISSING_PLOTLY_NOTE}</em></p>'
        return self.figure.to_html(full_html=False, include_plotlyjs=False, div_id=self.div_id,
                                   config={"displaylogo": False, "responsive": True})

    def _repr_html_(self) -> str:
        return self.to_html()


def _layout(fig, title: str, note: Optional[str], xlabel: str, ylabel: str, height: int = 420):
    """Title with the scale note under it (Plotly does not wrap text: the note is cut into lines here)."""
    lines = textwrap.wrap(note, 120) if note else []
    title_text = title + "".join(f"<br><sup>{line}</sup>" for line in lines)
    top = 60 + 16 * len(lines)
    fig.update_layout(title=dict(text=title_text, font=dict(size=14)), xaxis_title=xlabel, yaxis_title=ylabel,
                      height=height + top - 60, template="plotly_white", margin=dict(l=70, r=30, t=top + 20, b=60),
                      legend=dict(font=dict(size=11)), hoverlabel=dict(font_size=12))


def _n_images(acc) -> Optional[int]:
    """The number of images behind an accuracy (``total``), when it says."""
    n = acc.get("total") if isinstance(acc, Mapping) else getattr(acc, "total", None)
    return int(n) if n is not None else None


def _hover(acc) -> str:
    v, lo, hi = (100 * f for f in accuracy_fractions(acc))
    n = _n_images(acc)
    return f"{v:.1f} % [{lo:.1f}, {hi:.1f}]" + (f" of {n} images" if n else "")


def lines(series: Mapping[str, Sequence[Tuple[float, object]]], title: str, xlabel: str, note: Optional[str] = None,
          ylabel: str = "accuracy (%)", logx: bool = False) -> InteractiveFigure:
    """One line with asymmetric error bars per series: ``series[label] = [(x, accuracy), ...]`` (accuracy: an
    :class:`snnlib.stats.Accuracy` or a mapping with value/low/high fractions); hover shows value, interval, n."""
    go = _go()
    if go is None:
        return InteractiveFigure(None, "lines|" + title)
    fig = go.Figure()
    for label, pts in series.items():
        pts = sorted(pts, key=lambda p: p[0])
        fr = [accuracy_fractions(a) for _, a in pts]
        fig.add_trace(go.Scatter(
            x=[x for x, _ in pts], y=[100 * v for v, _, _ in fr], name=label, mode="lines+markers",
            error_y=dict(type="data", symmetric=False, array=[100 * (hi - v) for v, _, hi in fr],
                         arrayminus=[100 * (v - lo) for v, lo, _ in fr]),
            customdata=[_hover(a) for _, a in pts],
            hovertemplate=f"{label}<br>{xlabel} %{{x}}<br>%{{customdata}}<extra></extra>"))
    _layout(fig, title, note, xlabel, ylabel)
    fig.update_yaxes(range=[0, 100])
    if logx:
        fig.update_xaxes(type="log")
    return InteractiveFigure(fig, "lines|" + title)


def heatmap(matrix: Sequence[Sequence[object]], rows: Sequence[str], cols: Sequence[str], title: str,
            note: Optional[str] = None, xlabel: str = "target", ylabel: str = "source (crafted on)"
            ) -> InteractiveFigure:
    """Accuracy heatmap (percent, 0-100 colour scale) with each cell's value shown and its interval on hover;
    ``matrix[i][j]`` is the accuracy of ``cols[j]`` under the attack crafted on ``rows[i]``."""
    if len(matrix) != len(rows) or any(len(r) != len(cols) for r in matrix):
        raise ValueError(f"matrix must be {len(rows)} x {len(cols)} (rows x cols), got "
                         f"{len(matrix)} x {[len(r) for r in matrix]}")
    go = _go()
    if go is None:
        return InteractiveFigure(None, "heatmap|" + title)
    z = [[100 * accuracy_fractions(c)[0] for c in r] for r in matrix]
    text = [[f"{v:.1f}" for v in r] for r in z]
    hover = [[f"crafted on {rows[i]}, scored on {cols[j]}<br>{_hover(c)}" for j, c in enumerate(r)]
             for i, r in enumerate(matrix)]
    fig = go.Figure(go.Heatmap(z=z, x=list(cols), y=list(rows), zmin=0, zmax=100, colorscale="Viridis",
                               text=text, texttemplate="%{text}", customdata=hover,
                               hovertemplate="%{customdata}<extra></extra>",
                               colorbar=dict(title="accuracy (%)")))
    _layout(fig, title, note, xlabel, ylabel, height=110 + 55 * len(rows) + 80)
    fig.update_yaxes(autorange="reversed")            # first source on top, as in the static figure
    return InteractiveFigure(fig, "heatmap|" + title)


def transfer_matrix(results: AttackSourceResults, attack: str, note: Optional[str] = None) -> InteractiveFigure:
    """Chapter 5's source-by-target matrix under ``attack`` (rows: where the attack was crafted; columns: target)."""
    return heatmap(results.matrix(attack, KINDS), results.sources(), list(KINDS),
                   f"{attack_label(attack)} at eps {results.eps_255:g}/255: accuracy of target", note)


def budget_curves(results: TrainingMethodResults, attack: str, note: Optional[str] = None) -> InteractiveFigure:
    """Chapter 4's accuracy of every kind, white- and black-box, against epsilon (0 = clean) under ``attack``."""
    s = {f"{kind} {setting}": results.budget_series(kind, attack, setting)
         for kind in results.clean for setting in ("white-box", "black-box")}
    return lines(s, f"{attack}: accuracy against epsilon", "epsilon (/255)", note)
