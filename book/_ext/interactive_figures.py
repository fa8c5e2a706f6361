"""Serve the Plotly library with the site, once, and load it on the pages that show an interactive figure.

A local Sphinx extension of the book (``_config.yml``: ``sphinx: local_extensions``).  The notebooks' interactive
figures (:mod:`snnlib.study.interactive`) are HTML fragments that call ``Plotly.newPlot`` without embedding the
4.8 MB library; this extension writes the installed plotly package's copy to ``_static/plotly.min.js`` when the build
finishes and adds a ``<script>`` for it (in the page's head, before the figures' own scripts run) to every page whose
body holds a Plotly figure.  Nothing is fetched from a CDN: the figures work offline.
"""
from __future__ import annotations

from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

SCRIPT = "plotly.min.js"
MARKER = "plotly-graph-div"


def _add_script(app, pagename, templatename, context, doctree):
    if MARKER in (context.get("body") or ""):
        app.add_js_file(SCRIPT, priority=300)      # this page only (Sphinx >= 3.5), after the theme's scripts


def _write_library(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        logger.warning("plotly is not installed: the interactive figures will not render "
                       "(pip install -r requirements.txt)")
        return
    target = Path(app.outdir) / "_static" / SCRIPT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(get_plotlyjs(), encoding="utf-8")


def setup(app):
    app.connect("html-page-context", _add_script)
    app.connect("build-finished", _write_library)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
