"""The book's tables and glued values, built from the typed results records so that notebooks only call them.

:func:`markdown_table` returns a Markdown table (a string, no pandas).  The chapter builders return a :class:`Table`:
shown in a notebook (``display(table)``, or ``display_table(*table)``) it is an HTML table (``_repr_html_``, the form
the book renders), with a Markdown form (``_repr_markdown_``) for other front ends and ``str(table)`` the Markdown
text for a terminal.  The chapter builders' other results are dicts of values for :func:`glue_values`
(``myst_nb.glue``).
"""
from __future__ import annotations

import html as _html
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from ..stats import accuracy_from_counts
from .formatting import attack_label, format_accuracy, format_duration
from .records import (KINDS, TRAINED_T, ClaimRow, DiscretizationResults, GradientMaskingResults, LeakResults, ModelsResults,
                      TrainingMethodResults, AttackSourceResults, series)
from .replication import Replication, compare_runs

__all__ = ["Table", "markdown_table", "html_table", "display_table", "glue_values", "clean_accuracy_table", "threshold_table",
           "perturbation_table", "attenuation_table", "headline_table", "masking_checks_table", "cascade_table",
           "cascade_stage_table",
           "cascade_summary",
           "claims_table", "verdict_rules_table",
           "scale_text", "sweep_sentence", "claim_statements", "MarkdownText",
           "provenance_table", "breakdown_table", "cascade_throughput_table", "models_caption", "model_consistency_table", "replication_table", "replication_tables", "display_replications", "run_label", "models_glue",
           "discretization_glue", "trained_T_table", "leak_glue", "training_method_glue", "attack_source_glue", "attack_family_table",
           "gradient_masking_glue", "summary_glue", "VERDICT_BADGES", "bench_table", "bench_glue",
           "bench_machine_line", "bench_labels", "load_bench", "BENCH_MODES", "bench_bf16_text", "load_precision",
           "precision_table", "precision_text"]

#: how the summary shows each verdict: a word led by a plain text symbol that common text fonts carry (no emoji, which
#: show as empty boxes where the reader has no emoji font; the site's browser test refuses them)
VERDICT_BADGES = {"supported": "✓ supported", "contradicted": "✗ contradicted", "inconclusive": "? inconclusive",
                  "not testable": "⊘ not testable", "not run": "– not run"}


class Table(NamedTuple):
    """A table: rows (each a sequence of cells in column order, or a mapping by column), columns, caption and
    per-column alignment ("l", "r", "c"; None: left).

    In a notebook ``display(table)`` (or ``display_table(*table)``, or a table as a cell's last expression) shows
    a real table: Jupyter and the book take the HTML form (:meth:`html`), other front ends the Markdown one;
    ``str(table)`` and ``print(table)`` give the Markdown text (:meth:`markdown`)."""

    rows: List[Any]
    columns: List[str]
    caption: str = ""
    align: Optional[List[str]] = None

    def markdown(self) -> str:
        return markdown_table(self.rows, self.columns, self.caption, self.align)

    def html(self) -> str:
        return html_table(self.rows, self.columns, self.caption, self.align)

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:     # IPython's text/plain: the Markdown text
        p.text(self.markdown())

    def __str__(self) -> str:
        return self.markdown()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _checked(rows: Sequence[Union[Sequence[Any], Mapping[str, Any]]], columns: Sequence[str],
             align: Optional[Sequence[str]]) -> "tuple[List[str], List[str], List[List[Any]]]":
    """(columns as text, alignment per column, rows as lists of cells in column order), or ValueError."""
    columns = [str(c) for c in columns]
    if not columns:
        raise ValueError("columns must name at least one column")
    align = list(align) if align is not None else ["l"] * len(columns)
    if len(align) != len(columns) or any(a not in ("l", "r", "c") for a in align):
        raise ValueError(f"align must give 'l', 'r' or 'c' for each of the {len(columns)} columns, got {align!r}")
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            missing = [c for c in columns if c not in row]
            if missing:
                raise ValueError(f"row {i} lacks column(s) {missing}; it has {sorted(row)}")
            cells = [row[c] for c in columns]
        else:
            cells = list(row)
            if len(cells) != len(columns):
                raise ValueError(f"row {i} has {len(cells)} cells for {len(columns)} columns {columns}")
        out.append(cells)
    return columns, align, out


def markdown_table(rows: Sequence[Union[Sequence[Any], Mapping[str, Any]]], columns: Sequence[str],
                   caption: str = "", align: Optional[Sequence[str]] = None) -> str:
    """A Markdown table: a header of ``columns`` and one line per row (``|`` in cells escaped, None -> empty).

    rows: sequences of cells in column order, or mappings from column name to cell (a missing column is an error).
    align: per column "l", "r" or "c" (default left).  caption: a line above the table.
    """
    columns, align, cells = _checked(rows, columns, align)
    rule = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in cells]
    text = "\n".join(lines)
    return f"{caption}\n\n{text}" if caption else text


_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _html_cell(value: Any) -> str:
    """A cell's text, HTML-escaped, with Markdown ``**bold**`` (the only inline markup the tables use) as <strong>."""
    text = "" if value is None else str(value).replace("\n", " ")
    return _BOLD.sub(r"<strong>\1</strong>", _html.escape(text, quote=False))


def html_table(rows: Sequence[Union[Sequence[Any], Mapping[str, Any]]], columns: Sequence[str],
               caption: str = "", align: Optional[Sequence[str]] = None) -> str:
    """The same table as :func:`markdown_table` as one HTML ``<table>`` (caption as ``<caption>``, cells escaped,
    ``**bold**`` kept, per-column ``text-align``) in a ``<div>`` that scrolls sideways when the table is wider than
    the page (never cut at the right edge): what a notebook and the book show."""
    columns, align, cells = _checked(rows, columns, align)
    side = {"l": "left", "r": "right", "c": "center"}

    def line(tag: str, values: Sequence[Any]) -> str:
        return "<tr>" + "".join(f'<{tag} style="text-align: {side[a]}">{_html_cell(v)}</{tag}>'
                                for a, v in zip(align, values)) + "</tr>"

    parts = ['<div class="snnlib-table-wrap" style="overflow-x: auto; max-width: 100%">',
             '<table class="table snnlib-table">']
    if caption:
        parts.append(f"<caption>{_html_cell(caption)}</caption>")
    parts.append("<thead>" + line("th", columns) + "</thead>")
    parts.append("<tbody>" + "".join(line("td", row) for row in cells) + "</tbody>")
    parts.append("</table>\n</div>")
    return "\n".join(parts)


def display_table(rows: Sequence[Union[Sequence[Any], Mapping[str, Any]]], columns: Sequence[str],
                  caption: str = "", align: Optional[Sequence[str]] = None) -> None:
    """Show a :class:`Table` in a notebook: an HTML table in Jupyter and in the book (Markdown for other front
    ends, the Markdown text as text/plain)."""
    from IPython.display import display
    _checked(rows, columns, align)                      # a malformed table is an error here, not in the renderer
    display(Table(list(rows), [str(c) for c in columns], caption, list(align) if align is not None else None))


def glue_values(values: Mapping[str, Any]) -> None:
    """``myst_nb.glue(name, value, display=False)`` for every item: values the book's text cites by name."""
    from myst_nb import glue
    for name, value in values.items():
        glue(name, value, display=False)


# ------------------------------------------------------------------------------------------------- chapter 1
def clean_accuracy_table(results: ModelsResults) -> Table:
    """Clean accuracy of every kind and seed, with T and leak of the SNNs."""
    rows = [[r.kind, r.seed, format_accuracy(r.accuracy, unit=""), r.T if r.T is not None else "–",
             f"{r.leak:g}" if r.leak is not None else "–"] for r in results.clean]
    return Table(rows, ["model", "seed", "clean accuracy (%)", "T", "leak"])


def threshold_table(results: ModelsResults) -> Table:
    """The balanced firing thresholds of every seed, one column per spiking layer."""
    n = max((len(v) for v in results.thresholds.values()), default=0)
    rows = [[seed, *(f"{t:.3f}" for t in th)] + [""] * (n - len(th)) for seed, th in results.thresholds.items()]
    return Table(rows, ["seed", *(f"layer {i + 1}" for i in range(n))], "Balanced thresholds per spiking layer")


def models_glue(results: ModelsResults, seed: int, n_test: int) -> Dict[str, Any]:
    """acc_ann / acc_conv / acc_bp (the white-box targets of training seed ``seed``) and n_test."""
    out: Dict[str, Any] = {}
    for kind, key in (("ANN", "acc_ann"), ("SNN-conv", "acc_conv"), ("SNN-BP", "acc_bp")):
        acc = results.clean_accuracy(kind, seed)
        if acc is None:
            raise ValueError(f"01_models has no clean accuracy of {kind} for seed {seed}")
        out[key] = format_accuracy(acc)
    out["n_test"] = int(n_test)
    return out


# ------------------------------------------------------------------------------------------------- chapters 2-3
def sweep_sentence(rows, x: str, entry: str, num_classes: int = 10, **filters) -> str:
    """"13.0% [...] at 8 → 20.0% [...] at 24": ``entry`` from the smallest to the largest ``x`` of a sweep, each end
    point whose clean accuracy is not above chance (one-sided exact binomial test, chance = 1 / ``num_classes``)
    marked as such: a model that does not classify says nothing about robustness."""
    from ..stats import above_chance
    from .claims import trend
    t = trend(series(rows, x, entry, **filters))
    if t["first"] is None:
        return t["text"]
    clean = dict(series(rows, x, "clean", **filters))
    parts = []
    for level, acc in (t["first"], t["last"]):
        c = clean.get(level)
        dead = c is not None and not above_chance(int(c.correct), int(c.total), 1.0 / num_classes).above
        parts.append(f"{format_accuracy(acc)} at {level:g}" +
                     (f" (clean accuracy {format_accuracy(c)}: at chance level, not evidence)" if dead else ""))
    return " → ".join(parts)


def discretization_glue(results: DiscretizationResults, num_classes: int = 10) -> Dict[str, Any]:
    """eps and bp_T_trend (SNN-BP white-box PGD from the smallest to the largest T; chance-level points marked)."""
    return {"eps": f"{results.eps_255:g}/255",
            "bp_T_trend": sweep_sentence(results.rows, "T", "pgd_wb", num_classes, kind="SNN-BP", sweep="T")}


def trained_T_table(results: DiscretizationResults, T_bp: int) -> Table:
    """SNN-BP fine-tuned at each T of chapter 2's "T trained" rows next to the model fine-tuned at ``T_bp``, simulated
    at that T and at its own: clean, white-box FGSM and PGD, black-box PGD (accuracy [95 % CI]) and the white-box
    PGD zero-gradient share."""
    trained = sorted(results.select("SNN-BP", TRAINED_T), key=lambda r: r.T)
    simulated = {r.T: r for r in results.select("SNN-BP", "T")}
    rows = []
    for r in trained:
        for label, row in ((f"trained at T={r.T}", r), (f"trained at T={T_bp}, simulated at T={r.T}",
                                                         simulated.get(r.T))):
            if row is not None:
                rows.append(_robustness_cells(label, row))
    if T_bp in simulated:
        rows.append(_robustness_cells(f"trained at T={T_bp} (the study's SNN-BP)", simulated[T_bp]))
    return Table(rows, ["SNN-BP", "clean (%)", "FGSM white-box (%)", "PGD white-box (%)", "PGD black-box (%)",
                        "zero gradients (PGD)"],
                 "Accuracy [95% CI] on the attacked images; the same converted network fine-tuned at each T",
                 ["l", "r", "r", "r", "r", "r"])


def _robustness_cells(label: str, row) -> List[Any]:
    z = row.pgd_wb.zero_grad_share
    return [label, *(format_accuracy(row.entry(e), unit="") for e in ("clean", "fgsm_wb", "pgd_wb", "pgd_bb")),
            "" if z is None else f"{z:.2f}"]


def leak_glue(results: LeakResults, num_classes: int = 10) -> Dict[str, Any]:
    """eps and leak_trend (SNN-BP white-box PGD from the strongest leak to IF; chance-level points marked)."""
    return {"eps": f"{results.eps_255:g}/255",
            "leak_trend": sweep_sentence(results.rows, "leak", "pgd_wb", num_classes)}


def attenuation_table(results: LeakResults) -> Table:
    """Claim E10 per image: each SNN's noise-normalised perturbation q at its last spiking layer against the ANN's
    (``snnlib.study.claims.layer_attenuation``): images, median q of both, median difference, Wilcoxon p."""
    from .claims import layer_attenuation
    rows = [[label, a["n"], f"{a['median_q']:.3f}", f"{a['median_q_ann']:.3f}", f"{a['median_difference']:+.3f}",
             f"{a['p']:.2g}"] for label, a in layer_attenuation(results).items()]
    return Table(rows, ["model", "images", "median q", "median q of the ANN", "median q − q(ANN)", "Wilcoxon p"],
                 "q = relative perturbation at the last spiking layer under the attack / under random-sign noise of "
                 "the same L2 size, per image (below 0: the SNN passes on less of the attack than the ANN does)",
                 ["l", "r", "r", "r", "r", "r"])


def perturbation_table(results: LeakResults) -> Table:
    """Mean relative perturbation per spiking layer (3 decimals; "–" for a silent layer) of every model."""
    n = max((len(v) for v in results.perturbation.values()), default=0)
    rows = [[label, *("–" if d.mean != d.mean else f"{d.mean:.3f}" for d in layers)] + [""] * (n - len(layers))
            for label, layers in results.perturbation.items()]
    return Table(rows, ["model", *(f"layer {i + 1}" for i in range(n))],
                 "Relative perturbation ||a(x_adv) - a(x)|| / ||a(x)|| per spiking layer (mean over images)",
                 ["l"] + ["r"] * n)


# ------------------------------------------------------------------------------------------------- chapter 4
def headline_table(results: TrainingMethodResults, eps_255: float) -> Table:
    """Clean, FGSM and PGD (white- and black-box) accuracy of every kind at ``eps_255``; ⚠ marks sanity flags."""
    rows = []
    n = None
    for kind in results.clean:
        cells = [kind, format_accuracy(results.clean[kind], unit="")]
        for attack in ("FGSM", "PGD"):
            for setting in ("white-box", "black-box"):
                r = results.find(kind, attack, setting, eps_255)
                if r is None:
                    cells.append("not run")
                    continue
                n = r.n
                cells.append(format_accuracy(r.adversarial, unit="") + ("" if r.flags_ok else " ⚠"))
        rows.append(cells)
    caption = f"Accuracy (%) at epsilon {eps_255:g}/255" + (f" on {n} images" if n is not None else "")
    return Table(rows, ["model", "clean", "FGSM white-box", "FGSM black-box", "PGD white-box", "PGD black-box"],
                 caption)


def training_method_glue(results: TrainingMethodResults, eps_255: float) -> Dict[str, Any]:
    """eps_main, and bp_bb / ann_bb: black-box PGD accuracy of SNN-BP and of the ANN at ``eps_255``."""
    out: Dict[str, Any] = {"eps_main": f"{eps_255:g}/255"}
    for kind, key in (("SNN-BP", "bp_bb"), ("ANN", "ann_bb")):
        acc = results.adversarial(kind, "PGD", "black-box", eps_255)
        if acc is None:
            raise ValueError(f"04_training_method has no black-box PGD of {kind} at {eps_255:g}/255")
        out[key] = format_accuracy(acc)
    return out


# ------------------------------------------------------------------------------------------------- chapter 5
def attack_source_glue(results: AttackSourceResults, other: Optional[AttackSourceResults] = None) -> Dict[str, Any]:
    """eps, SNN-BP's PGD accuracy crafted on the twin ANN, the twin SNN-BP and on itself, and (with ``other``,
    the results of the other attacks) ``other_images``: how many images their cells use ("200 images")."""
    out: Dict[str, Any] = {"eps": f"{results.eps_255:g}/255"}
    if other is not None:
        sizes = sorted({int(c.result.adversarial.total) for c in other.cells})
        out["other_images"] = ("not run" if not sizes else f"{sizes[0]} images" if len(sizes) == 1 else
                               f"{sizes[0]}–{sizes[-1]} images")
    for source, key in (("ANN (twin)", "bp_from_ann"), ("SNN-BP (twin)", "bp_from_snn"), ("SNN-BP", "bp_from_self")):
        acc = results.adversarial("PGD", source, "SNN-BP")
        if acc is None:
            raise ValueError(f"05_attack_source has no PGD cell from {source!r} to 'SNN-BP'")
        out[key] = format_accuracy(acc)
    return out


def attack_family_table(comparisons: Sequence[Any]) -> Table:
    """Chapter 5's comparisons per attack (:func:`snnlib.study.claims.attack_family`): attack, comparison, what
    was measured (accuracies and images), A − B in points with its 95 % interval, McNemar p (raw), MDE (points,
    80 % power), images and the verdict at the raw p; a comparison that could not be made says why."""
    out = []
    for c in comparisons:
        j = c.judgement
        if j is None:
            out.append([attack_label(c.attack), c.comparison, c.reason, "", "", "", "",
                        VERDICT_BADGES.get(c.verdict, c.verdict)])
            continue
        effect = f"{_signed(j.effect)} [{_signed(j.ci_low)}, {_signed(j.ci_high)}]"
        out.append([attack_label(c.attack), c.comparison, c.measured, effect, _p_text(j.p_value),
                    "" if j.mde is None else f"{j.mde:.1f}", j.n_images, VERDICT_BADGES.get(c.verdict, c.verdict)])
    return Table(out, ["attack", "comparison", "measured", "A − B, points [95% CI]", "McNemar p (raw)",
                       "MDE (points)", "n", "verdict (raw p)"], "", ["l"] * 3 + ["r"] * 4 + ["l"])


# ------------------------------------------------------------------------------------------------- chapter 6
def masking_checks_table(results: GradientMaskingResults) -> Table:
    """Every masking check of every kind: ✓ passed, ⚠ flagged, – skipped, with its detail."""
    rows = [[kind, c.name, "–" if c.skipped else ("✓" if c.ok else "⚠"), c.detail]
            for kind, r in results.worst_case.items() for c in r.checks]
    return Table(rows, ["model", "check", "flag", "detail"])


def cascade_table(results: GradientMaskingResults) -> Table:
    """One line per target (kind, seed): images, clean accuracy, accuracy after the papers' PGD, the white-box
    cascade worst case, the worst case with the transfers, and the audit (images the cascade missed on the audit
    sample of the full suite)."""
    rows = []
    for c in results.cascades:
        clean = c.outcomes["clean"].majority()
        paper_fooled = c.stages[0].fooled if c.stages else 0
        paper = accuracy_from_counts(int(clean.sum()) - paper_fooled, c.n)
        audit = "" if c.audit is None else f"{c.audit['missed']} missed of {c.audit['n']}"
        rows.append([c.kind, c.seed, c.n, format_accuracy(accuracy_from_counts(int(clean.sum()), c.n)),
                     format_accuracy(paper), format_accuracy(c.whitebox), format_accuracy(c.worst_case), audit])
    return Table(rows, ["model", "seed", "images", "clean", "papers' PGD", "white-box worst case",
                        "worst case with transfers", "audit"], "", ["l", "r", "r", "r", "r", "r", "r", "l"])


def cascade_stage_table(results: GradientMaskingResults, kind: str, seed: int) -> Table:
    """The stages of one cascade in order: whether crafted on the target, images attacked (the survivors so far),
    images fooled, seconds."""
    c = results.cascade(kind, seed)
    if c is None:
        raise ValueError(f"no cascade of {kind} at seed {seed}; ran: "
                         f"{[(r.kind, r.seed) for r in results.cascades]}")
    rows = [[s.name, "white-box" if s.whitebox else "transfer", s.attacked, s.fooled, f"{s.seconds:.0f}"]
            for s in c.stages]
    return Table(rows, ["stage", "crafted on", "attacked", "fooled", "seconds"],
                 f"{kind}, seed {seed}: {c.n} images", ["l", "l", "r", "r", "r"])


def cascade_summary(results: GradientMaskingResults) -> "MarkdownText":
    """The cascades in two sentences: each kind's white-box worst case (first seed) and the audit's missed images;
    says so when the results hold no cascade (written before it existed)."""
    if not results.cascades:
        return MarkdownText("These results hold no cascade (written before it existed): re-run the chapter.")
    first = {}
    for c in results.cascades:
        first.setdefault(c.kind, c)
    parts = [f"{k} {format_accuracy(c.whitebox)} (seed {c.seed}, {c.n} images)" for k, c in first.items()]
    audits = [c.audit for c in results.cascades if c.audit is not None]
    missed = sum(a["missed"] for a in audits)
    audited = sum(a["n"] for a in audits)
    return MarkdownText(
        "On every attacked image, the white-box cascade worst case leaves " + ", ".join(parts) + ". "
        + (f"The audit found {missed} of {audited} audit images that a cascade called robust but the full suite "
           "fooled." if audits else "No cascade was audited."))


def gradient_masking_glue(results: GradientMaskingResults) -> Dict[str, Any]:
    """eps, n_adapt, and paper_<k> / worst_<k> (k = ann, conv, bp): the papers' PGD and the worst case on the
    audit images."""
    out: Dict[str, Any] = {"eps": f"{results.eps_255:g}/255"}
    for kind, key in (("ANN", "ann"), ("SNN-conv", "conv"), ("SNN-BP", "bp")):
        r = results.worst_case[kind]
        out["n_adapt"] = r.n
        out[f"paper_{key}"] = format_accuracy(r.paper)
        out[f"worst_{key}"] = format_accuracy(r.worst_case)
    return out


# ------------------------------------------------------------------------------------------------- chapter 7
def _signed(x: Optional[float]) -> str:
    return f"{x:+.1f}"


def _p_text(p: Optional[float]) -> str:
    return "" if p is None else f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _effect_text(r: ClaimRow) -> str:
    """A claim's effect A − B in points with its 95 % interval, or "" when it has none."""
    if r.effect is None:
        return ""
    ci = r.ci_low is not None and r.ci_high is not None
    return _signed(r.effect) + (f" [{_signed(r.ci_low)}, {_signed(r.ci_high)}]" if ci else "")


def claims_table(rows: Sequence[ClaimRow]) -> Table:
    """One line per claim, short enough to read across: id, paper, claim, verdict (with its badge), the test, the
    effect A − B in points with its 95 % interval, p (Holm-adjusted in parentheses for a primary claim), MDE
    (points, 80 % power), images and seeds.  What was measured, model by model, is in :func:`claim_statements`
    (the caption says so).  Rows of summaries written before these fields existed show empty cells."""
    out = []
    for r in rows:
        effect = _effect_text(r)
        p = _p_text(r.p_value) + (f" (Holm {_p_text(r.p_adjusted)})" if r.p_adjusted is not None else "")
        out.append([r.id, r.paper, r.claim, VERDICT_BADGES.get(r.verdict, r.verdict), r.test or "", effect, p,
                    "" if r.mde is None else f"{r.mde:.1f}", "" if r.n_images is None else r.n_images,
                    ", ".join(map(str, r.seeds))])
    caption = "What each row measured: \"Each claim in one sentence\", below."
    return Table(out, ["id", "paper", "claim", "verdict", "test", "effect, points [95% CI]", "p (Holm)",
                       "MDE (points)", "n", "seeds"], caption, ["l"] * 5 + ["r"] * 4 + ["l"])


class MarkdownText(str):
    """Markdown that a notebook displays as formatted text (and as itself in plain-text front ends)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def claim_statements(rows: Sequence[ClaimRow]) -> MarkdownText:
    """Each claim in one plain sentence (Markdown list): the verdict, then the evidence behind it: the effect
    (A − B, points) with its 95 % interval, the images and seeds, the test and its p (Holm-adjusted for a primary
    claim); for an inconclusive verdict the smallest difference the run could have detected (MDE, 80 % power); for
    an untestable one why; and the model variants the guards excluded."""
    lines = []
    for r in rows:
        head = f"- **{r.id}** ({r.paper}{', primary' if r.primary else ''}): *{r.claim}* — **{r.verdict}**"
        parts = []
        if r.effect is not None:
            ci = (f" [{_signed(r.ci_low)}, {_signed(r.ci_high)}]" if r.ci_low is not None and r.ci_high is not None
                  else "")
            on = f" on {r.n_images} images" if r.n_images else ""
            seeds = (f", target seed{'s' if len(r.seeds) > 1 else ''} {' and '.join(map(str, r.seeds))}"
                     if r.seeds else "")
            parts.append(f"{_signed(r.effect)} points{ci}{on}{seeds}")
        if r.test:
            p = f", p = {_p_text(r.p_value)}" if r.p_value is not None else ""
            holm = f" (Holm-adjusted {_p_text(r.p_adjusted)})" if r.p_adjusted is not None else ""
            parts.append(f"{r.test}{p}{holm}")
        if r.verdict == "inconclusive" and r.mde is not None:
            parts.append(f"this run could have detected a difference of {r.mde:.1f} points (80 % power)")
        if r.verdict in ("not testable", "not run") or not parts:
            parts.append(r.measured)
        elif r.measured:
            parts.append(f"measured: {r.measured}")
        if r.excluded:
            parts.append("excluded by the guards: " + "; ".join(r.excluded))
        lines.append(head + ": " + "; ".join(p.rstrip(".") for p in parts if p) + ".")
    return MarkdownText("\n".join(lines))


def verdict_rules_table() -> Table:
    """The verdict rule of every kind of claim (:data:`snnlib.study.claims.VERDICT_RULES`); the caption holds the
    guards every point passes first."""
    from .claims import GUARDS, VERDICT_RULES
    rows = [[r.name, ", ".join(r.claims), r.test, r.direction, r.margin, r.alpha, r.supported, r.contradicted,
             r.inconclusive, r.not_testable] for r in VERDICT_RULES]
    return Table(rows, ["claim kind", "claims", "test", "direction", "margin", "alpha", "supported", "contradicted",
                        "inconclusive", "not testable"], GUARDS)


def scale_text(rows: Sequence[ClaimRow]) -> str:
    """"Scale of the measurements:" and each distinct scale note of the claims' chapters, one per line."""
    return "\n  ".join(["Scale of the measurements:", *sorted({r.scale for r in rows if r.scale})])


def summary_glue(rows: Sequence[ClaimRow]) -> Dict[str, Any]:
    """n_claims and n_<verdict> (n_supported, n_contradicted, n_inconclusive, n_not_run)."""
    from .claims import count_verdicts
    out: Dict[str, Any] = {f"n_{k.replace(' ', '_')}": v for k, v in count_verdicts(rows).items()}
    out["n_claims"] = len(rows)
    return out


def provenance_table(results_dir: Union[str, Path], skip: Sequence[str] = ("07_summary",)) -> Table:
    """How each chapter of a run was computed (:func:`snnlib.study.results.run_provenance`), with a total."""
    from .results import run_provenance
    prov = [r for r in run_provenance(results_dir) if r["notebook"] not in skip]
    estimated = any(r["estimate_s"] is not None for r in prov)    # the runner recorded its estimates (Dec 2026 on)
    reused = any(r.get("reused_s") for r in prov)                 # a chapter resumed from cached attack work
    rows = [[r["notebook"], format_duration(r["wall_time_s"])]
            + ([format_duration(r["reused_s"]) if r.get("reused_s") is not None else "not recorded"] if reused else [])
            + [format_duration(r["runner_wall_time_s"])]
            + ([_estimate_cell(r)] if estimated else [])
            + [r["device"], f"{r['cpu_count']} / {r['torch_threads']}", r["torch_version"], r["git_commit"],
               (r["timestamp_utc"] or "")[:16].replace("T", " "), r["models"] or "not recorded"] for r in prov]
    total = sum(r["wall_time_s"] or 0 for r in prov)
    total_est = sum(r["estimate_s"] or 0 for r in prov)
    rows.append(["**total**", format_duration(total)]
                + ([format_duration(sum(r.get("reused_s") or 0 for r in prov))] if reused else []) + [""]
                + ([format_duration(total_est)] if estimated else []) + [""] * 6)
    caption = models_caption(results_dir, skip)
    if reused:
        caption += (" reused: attack work (crafted examples, scored cells, chapter 6's reports) a chapter loaded from "
                    "the cache instead of doing again, by the time each took when it was made: the work of an "
                    "earlier attempt that was stopped (or a cell another chapter shares); the wall time is the last "
                    "attempt's alone.")
    if estimated:
        caption += (" estimated: what the runner expected when it started the chapter (the dry run's estimate, and "
                    "where it came from), against the runner's wall time; not recorded for chapters run before the "
                    "runner kept its estimates.")
    return Table(rows, ["chapter", "wall time"] + (["reused"] if reused else []) + ["runner"]
                 + (["estimated"] if estimated else [])
                 + ["device", "CPUs / torch threads", "torch", "commit", "finished (UTC)", "models"], caption)


def _estimate_cell(row: Mapping[str, Any]) -> str:
    """The runner's estimate of one chapter and its source, or "not recorded"."""
    if row.get("estimate_s") is None:
        return "not recorded"
    return format_duration(row["estimate_s"]) + (f" ({row['estimate_from']})" if row.get("estimate_from") else "")


def models_caption(results_dir: Union[str, Path], skip: Sequence[str] = ("07_summary",)) -> str:
    """Whether the chapters of a run used the same trained models (the provenance table's caption)."""
    from .results import model_fingerprints, model_mismatches
    prints = {nb: m for nb, m in model_fingerprints(results_dir).items() if nb not in skip}
    missing = [nb for nb, m in prints.items() if m is None]
    bad = model_mismatches(results_dir)
    if bad:
        return ("**The chapters used different trained models** (the same seed and kind with different weights: "
                "different training runs, e.g. on different machines), so numbers from different chapters are not "
                "from one run: " + "; ".join(bad) + ". Re-run the whole profile to make them one run.")
    if len(missing) == len(prints):
        return ("models: the chapters of this run predate the model fingerprints, so the table cannot show that "
                "they used the same trained models; the device column shows where each was computed.")
    text = (f"models: a short id of the trained models' weights; the {len(prints) - len(missing)} chapters that "
            "record it used the same ones.")
    if missing:
        text += f" Not recorded (written before the fingerprints existed): {', '.join(missing)}."
    return text


def model_consistency_table(results_dir: Union[str, Path]) -> Table:
    """Whether every chapter scored the same trained models: each chapter's clean outcomes of the base models against
    the reference chapter's (:func:`snnlib.study.consistency.clean_agreement`), one row per chapter."""
    from .consistency import clean_agreement
    from .records import load_study
    rows_by: Dict[str, list] = {}
    for a in clean_agreement(load_study(results_dir)):
        rows_by.setdefault(a.chapter, []).append(a)
    rows, bad = [], []
    for chapter, agreements in rows_by.items():
        agree, compared = sum(a.agree for a in agreements), sum(a.compared for a in agreements)
        kinds = [k for k in KINDS if any(a.kind == k for a in agreements)]
        seeds = sorted({a.seed for a in agreements})
        models = f"{', '.join(kinds)} (seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))})"
        levels = sorted({a.level for a in agreements})
        unit = " / ".join({"draws": "image-draws", "majority": "images (majority)"}[lv] for lv in levels)
        rows.append([chapter, models, f"{compared:,} {unit}", f"{agree:,}", f"{100.0 * agree / compared:.2f} %"])
        bad += [f"{a.chapter} {a.kind} (seed {a.seed}): {a.compared - a.agree} of {a.compared}" for a in agreements
                if a.agree < a.compared]
    reference = sorted({a.reference for agreements in rows_by.values() for a in agreements})
    if not rows:
        caption = "No two chapters scored the same model on the same images, so there is nothing to compare."
    elif bad:
        caption = ("**Some chapters scored other trained models** (their clean outcomes differ from those of "
                   f"{', '.join(reference)} on the same images and draws): " + "; ".join(bad) + ". Their numbers "
                   "come from another training run; re-run the whole profile to make the run one.")
    else:
        caption = (f"Clean outcomes of each base model in each chapter against those of {', '.join(reference)}, on the images "
                   "both scored, draw by draw where the draws match (else each image's majority vote): all agree, "
                   "so every chapter used the same trained models.")
    return Table(rows, ["chapter", "models", "outcomes compared", "agree", "share"], caption,
                 ["l", "l", "r", "r", "r"])


# ------------------------------------------------------------------------------------------------- appendix
#: how the appendix names the benchmark modes
BENCH_MODES = {"infer": "inference", "bptt": "BPTT training step"}


def _read_data_json(path: Union[str, Path], name: str, command: str) -> Dict[str, Any]:
    """A JSON data file; a relative path is tried from here and from ``..`` (a notebook executed in book/).  A missing
    file is a FileNotFoundError naming the parameter ``name`` and the ``command`` that writes it."""
    p = Path(path)
    if not p.is_absolute() and not p.exists() and (Path("..") / p).exists():
        p = Path("..") / p
    try:
        return json.loads(p.read_text())
    except OSError as e:
        raise FileNotFoundError(f"{name}={str(path)!r}: cannot read {p} ({e.strerror}); run {command} to write "
                                "it") from None


def load_bench(path: Union[str, Path]) -> Dict[str, Any]:
    """The speed comparison's JSON (``python -m snnlib.bench``)."""
    return _read_data_json(path, "bench_json", "python -m snnlib.bench")


def cascade_throughput_table(results_dir: Union[str, Path]) -> Table:
    """Images per second of the study's cascade worst case (chapter 6's records): for each target and seed, the
    attacked images over the seconds of all its stages (every stage attacks only the survivors of the ones before)."""
    from .records import read_chapter
    path = Path(results_dir) / "06_gradient_masking.json"
    if not path.is_absolute() and not path.exists() and (Path("..") / path).exists():
        path = Path("..") / path                     # a notebook executed in book/
    rec = read_chapter(path, "06_gradient_masking")
    rows = []
    for c in rec.results.cascades:
        seconds = sum(st.seconds for st in c.stages)
        rows.append([c.kind, c.seed, c.n, f"{seconds:.1f}", f"{c.n / seconds:.2f}" if seconds > 0 else "–"])
    m = rec.machine or {}
    caption = (f"The cascade worst case of {rec.profile!r} (chapter 6, {rec.timestamp_utc[:10]}, "
               f"{m.get('device_name', '?')}, {m.get('torch_threads', '?')} threads): attacked images, the seconds "
               "of all its stages, and images per second.")
    return Table(rows, ["target", "seed", "images", "seconds", "images/s"], caption, ["l", "r", "r", "r", "r"])


#: how the breakdown table names the benchmark modes
BREAKDOWN_MODES = {"snn_infer": "SNN inference", "snn_bptt": "SNN BPTT step", "snn_attack": "SNN attack gradient",
                   "ann_infer": "ANN inference", "ann_train": "ANN train step"}


def breakdown_table(paths: Sequence[Union[str, Path]]) -> Table:
    """Where each benchmark step's time goes (``python -m snnlib.bench --breakdown --json``), one row per mode and T
    of the given files: dense arithmetic, pooling and the rest with its largest operators."""
    rows, machines = [], []
    for path in paths:
        rep = _read_data_json(path, "breakdown_json", "python -m snnlib.bench --breakdown --json FILE")
        m = rep.get("machine") or {}
        when = (rep.get("measured_utc") or "")[:10]
        machines.append(f"{m.get('cpu', '?')}, {m.get('threads', '?')} threads" + (f", {when}" if when else ""))
        for r in rep["rows"]:
            rest = [f"{entry[0].replace('aten::', '')} {100 * entry[1]:.1f} %" for entry in r["top"]
                    if entry[2] == "other"][:3]
            sh = r["shares"]
            rows.append([BREAKDOWN_MODES.get(r["mode"], r["mode"]), r["T"] if r["T"] is not None else "–", r["batch"],
                         f"{100 * sh['dense']:.1f} %", f"{100 * sh['pooling']:.1f} %", f"{100 * sh['other']:.1f} %",
                         ", ".join(rest)])
    caption = ("Share of each step's profiled operator time (torch.profiler, CPU self time over 3 steps after a "
               "warm-up): convolutions and matrix products (dense), pooling, and the rest with its largest operators. "
               "Machine: " + "; ".join(dict.fromkeys(machines)) + ".")
    return Table(rows, ["mode", "T", "batch", "dense", "pooling", "rest", "largest of the rest"], caption,
                 ["l", "r", "r", "r", "r", "r", "l"])


def bench_labels(report: Mapping[str, Any]) -> Dict[str, str]:
    """{system: "snnTorch 0.9.1"} with the versions measured."""
    v = report["machine"]["versions"]
    return {"snnlib": "snnlib", "snnlib_bf16": "snnlib bf16 (option)", "plain": "plain PyTorch",
            "snntorch": f"snnTorch {v.get('snntorch')}", "spikingjelly": f"SpikingJelly {v.get('spikingjelly')}"}


def bench_machine_line(report: Mapping[str, Any]) -> str:
    """One line: CPU, threads, torch and the 1-minute load average range during the runs."""
    m = report["machine"]
    loads = [m["load"][0]] + [r["load"][0] for r in report["runs"] if r.get("load")]
    return (f"{m['cpu']}, {m['threads']} threads, torch {m['torch']}; 1-min load average "
            f"{min(loads):.1f}-{max(loads):.1f} during the runs")


def bench_table(report: Mapping[str, Any]) -> Table:
    """Throughput (image-timesteps/s), peak memory and snnlib's ratio to the faster/leaner other, per mode and T."""
    label = bench_labels(report)
    summary = {(s["mode"], s["T"]): s for s in report["summary"]["rows"]}
    rows = []
    for run in report["runs"]:
        for r in run["results"]:
            s = summary.get((run["mode"], run["T"]))
            pre = {"snnlib": "", "snnlib_bf16": "bf16_"}.get(r["system"])
            mine = pre is not None and s is not None and s.get(pre + "speedup") is not None
            ratio = f"**{s[pre + 'speedup']:.2f}×** ({label[s['best_other']].split()[0]})" if mine else ""
            plain = f"{s[pre + 'plain_speedup']:.2f}×" if mine and s.get(pre + "plain_speedup") else ""
            mem = f"{s[pre + 'mem_ratio']:.2f}×" if mine and s.get(pre + "mem_ratio") else ""
            rows.append([BENCH_MODES[run["mode"]], run["T"], label[r["system"]], f"{r['rate']:.0f}",
                         f"{r['peak_mb']:.0f}", ratio, plain, mem, r["reps"]])
    for sk in report.get("skipped", []):
        rows.append([BENCH_MODES[sk["mode"]], sk["T"], label[sk["system"]], "not run",
                     f"≈{sk['need_mb'] / 1024:.1f} GB needed, {sk['available_mb'] / 1024:.1f} GB free", "", "", "", "–"])
    return Table(rows, ["mode", "T", "system", "img·T/s", "peak MB", "× vs fastest peer", "× vs plain PyTorch",
                        "memory vs leanest other", "reps"], "", ["l", "r", "l", "r", "r", "r", "r", "r", "r"])


def _target_text(rows: Sequence[Mapping[str, Any]], need: float, mem: float = 1.0,
                 need_plain: Optional[float] = None) -> str:
    """"met at every T measured" or which T missed: speed-up over the fastest peer below ``need``, over the plain
    PyTorch loop below ``need_plain`` (when given and measured), peak memory above ``mem`` times the leanest."""
    miss = [f"T = {s['T']} ({s['speedup']:.2f}×)" for s in rows if s["speedup"] < need]
    if need_plain is not None:
        miss += [f"T = {s['T']} ({s['plain_speedup']:.2f}× plain)" for s in rows
                 if s.get("plain_speedup") and s["plain_speedup"] < need_plain]
    miss += [f"T = {s['T']} (memory {s['mem_ratio']:.2f}×)" for s in rows if s.get("mem_ratio") and s["mem_ratio"] > mem]
    return "met at every T measured" if not miss else "missed at " + ", ".join(miss)


def _range(rows: Sequence[Mapping[str, Any]], key: str) -> Tuple[Optional[float], Optional[float]]:
    vals = [s[key] for s in rows if s.get(key)]
    return (min(vals), max(vals)) if vals else (None, None)


def bench_glue(report: Mapping[str, Any]) -> Dict[str, Any]:
    """The appendix's cited values: batch, speed-up and memory ranges per mode, machine line, targets met."""
    inf = [s for s in report["summary"]["rows"] if s["mode"] == "infer"]
    bp = [s for s in report["summary"]["rows"] if s["mode"] == "bptt"]
    (infer_plain_min, infer_plain_max), (bptt_plain_min, bptt_plain_max) = (_range(inf, "plain_speedup"),
                                                                            _range(bp, "plain_speedup"))
    return {"batch": report["config"]["batch"],
            "infer_min": min(s["speedup"] for s in inf), "infer_max": max(s["speedup"] for s in inf),
            "bptt_min": min(s["speedup"] for s in bp), "bptt_max": max(s["speedup"] for s in bp),
            "machine": bench_machine_line(report),
            "infer_mem_min": min(s["mem_ratio"] for s in inf), "infer_mem_max": max(s["mem_ratio"] for s in inf),
            "bptt_mem_max": max(s["mem_ratio"] for s in bp),
            "infer_target": _target_text(inf, 1.5), "bptt_target": _target_text(bp, 1.0),
            # issue 17's targets: inference >= 2x the fastest peer and 1.5x the plain loop at no more memory than the
            # leanest; BPTT >= 2x the fastest peer and 1.5x the plain loop at <= 0.6x the leanest's memory
            "infer_plain_min": infer_plain_min, "infer_plain_max": infer_plain_max,
            "bptt_plain_min": bptt_plain_min, "bptt_plain_max": bptt_plain_max,
            "infer_target17": _target_text(inf, 2.0, 1.0, 1.5), "bptt_target17": _target_text(bp, 2.0, 0.6, 1.5),
            "bf16_text": bench_bf16_text(report)}


def _bf16_rows(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The summary rows of the bf16 option, renamed to the plain keys (speedup, plain_speedup, mem_ratio)."""
    return [dict(T=s["T"], mode=s["mode"], speedup=s["bf16_speedup"], plain_speedup=s.get("bf16_plain_speedup"),
                 mem_ratio=s.get("bf16_mem_ratio")) for s in rows if s.get("bf16_speedup") is not None]


def bench_bf16_text(report: Mapping[str, Any]) -> str:
    """One sentence on snnlib's bf16 option in this run: its speed-up ranges and issue 17's targets, or why it was
    not timed."""
    rows = report["summary"]["rows"]
    inf, bp = _bf16_rows([s for s in rows if s["mode"] == "infer"]), _bf16_rows([s for s in rows if s["mode"] == "bptt"])
    if not inf and not bp:
        if report["machine"].get("bf16_native") is False:
            return "This comparison did not time the bf16 option: the CPU has no native bf16 (it would be emulated)."
        return ("The comparison shown predates the bf16 option, so it has no bf16 row; python -m snnlib.bench "
                "--compare times it next to the others where the CPU computes bf16 natively.")
    parts = []
    for name, part, need_mem in (("inference", inf, 1.0), ("BPTT", bp, 0.6)):
        if part:
            lo, hi = min(s["speedup"] for s in part), max(s["speedup"] for s in part)
            pl = [s["plain_speedup"] for s in part if s.get("plain_speedup")]
            plain = f" and {min(pl):.2f}–{max(pl):.2f}× the plain loop" if pl else ""
            parts.append(f"{name} {lo:.2f}–{hi:.2f}× the fastest peer{plain} (issue 17's targets "
                         f"{_target_text(part, 2.0, need_mem, 1.5)})")
    return "With the bf16 option snnlib runs " + "; ".join(parts) + "."


def load_precision(path: Union[str, Path]) -> Dict[str, Any]:
    """The bf16 option's accuracy effect (``python -m snnlib.study.precision --json``)."""
    return _read_data_json(path, "precision_json", "python -m snnlib.study.precision --json PATH")


def precision_text(report: Mapping[str, Any]) -> str:
    """One sentence on the bf16 option's accuracy effect: images changed, the largest |bf16 − fp32| interval end,
    and in how many settings TOST shows equivalence within the margin."""
    rows = report["rows"]
    if not rows:
        return "The precision measurement holds no rows."
    eq = sum(r["equivalent"] for r in rows)
    worst = max(rows, key=lambda r: max(abs(r["low"]), abs(r["high"])))
    changed = ", ".join(f"{r['kind']} {r['setting'].split(' ')[0]} {r['changed']} of {r['n']}" for r in rows)
    return (f"bf16 changes the majority-vote outcome of {changed} images; the widest 95 % interval of bf16 − fp32 is "
            f"[{worst['low']:+.1f}, {worst['high']:+.1f}] points ({worst['kind']}, {worst['setting']}), and "
            f"{eq} of {len(rows)} settings are equivalent to fp32 within ±{rows[0]['margin']:g} points (TOST)")


def precision_table(report: Mapping[str, Any]) -> Table:
    """The bf16 option against fp32 on the same images and draws: accuracies, bf16 − fp32 with its 95 % interval,
    the McNemar p, the images whose outcome changes and the TOST equivalence within the margin."""
    rows = []
    for r in report["rows"]:
        rows.append([r["kind"], r["setting"], r["n"], f"{r['fp32']:.1f}%", f"{r['bf16']:.1f}%",
                     f"{r['difference']:+.1f} [{r['low']:+.1f}, {r['high']:+.1f}]", f"{r['p_value']:.2g}",
                     r["changed"], ("yes" if r["equivalent"] else "no") + f" (p = {r['tost_p']:.2g})"])
    m = report["rows"][0]["margin"] if report["rows"] else None
    return Table(rows, ["model", "setting", "images", "fp32", "bf16", "bf16 − fp32 (points) [95% CI]",
                        "McNemar p", "images changed", f"equivalent within ±{m:g} points (TOST)"],
                 f"{report.get('scale', '')}; model seed {report.get('seed')}",
                 ["l", "l", "r", "r", "r", "r", "r", "r", "l"])


def replication_table(replications: Sequence[Replication], label_a: str, label_b: str) -> Table:
    """One line per claim judged by two independent runs A and B (:func:`snnlib.study.replication.compare_runs`):
    each run's verdict and effect (points, 95 % interval), whether the verdicts match and whether each effect lies
    inside the other run's interval; the caption names the runs, counts the matching verdicts and names the claims
    whose verdict differs."""
    def verdict(r: Optional[ClaimRow]) -> str:
        return "not in this run" if r is None else VERDICT_BADGES.get(r.verdict, r.verdict)

    def yes_no(v: Optional[bool]) -> str:
        return "" if v is None else ("yes" if v else "**no**")

    rows = [[x.id + (" (primary)" if x.primary else ""), x.claim, verdict(x.a),
             "" if x.a is None else _effect_text(x.a), verdict(x.b), "" if x.b is None else _effect_text(x.b),
             yes_no(x.same_verdict), yes_no(x.effects_agree)] for x in replications]
    both = [x for x in replications if x.a is not None and x.b is not None]
    same = [x for x in both if x.same_verdict]
    primary = [x for x in both if x.primary]
    differ = [f"{x.id} ({x.a.verdict} → {x.b.verdict})" for x in both if not x.same_verdict]
    caption = (f"A: {label_a}; B: {label_b}. The same verdict for {len(same)} of {len(both)} claims "
               f"({sum(x.same_verdict for x in primary)} of {len(primary)} primary)"
               + (f"; different for {', '.join(differ)}." if differ else ".")
               + " Effects are the claim's difference in points with its 95 % interval; \"within\": each run's effect "
               "lies inside the other run's interval.")
    return Table(rows, ["claim", "statement", "verdict A", "effect A", "verdict B", "effect B", "same verdict",
                        "effects within"], caption, ["l"] * 3 + ["r", "l", "r"] + ["l"] * 2)


def run_label(results_dir: Union[str, Path]) -> str:
    """A results folder as a reader knows the run: its path, and the machine and day its chapter 1 ran on."""
    from .results import chapter_one_record
    rec = chapter_one_record(results_dir)
    if rec is None:
        return str(results_dir)
    machine = (rec.get("machine") or {}).get("device_name") or rec.get("device") or "unknown machine"
    day = str(rec.get("timestamp_utc") or "")[:10]
    return f"{results_dir} ({rec.get('profile', '?')} profile, {machine}{', ' + day if day else ''})"


def replication_tables(results_dir: Union[str, Path], others: Sequence[Union[str, Path]]) -> List[Table]:
    """This run's claims beside each other run's: one :func:`replication_table` per folder of ``others`` (the
    summary's ``compare_with``); a missing folder is a clear error."""
    out = []
    for other in others:
        if not Path(other).is_dir():
            raise FileNotFoundError(f"compare_with: results folder {other} does not exist; give the folder another run "
                                    "of this study wrote its chapter JSON files to, or leave it out of compare_with")
        out.append(replication_table(compare_runs(results_dir, other), run_label(results_dir), run_label(other)))
    return out


def display_replications(results_dir: Union[str, Path], others: Sequence[Union[str, Path]]) -> None:
    """Show :func:`replication_tables` in a notebook, or say that no other run is compared."""
    from IPython.display import display
    found = replication_tables(results_dir, others)
    if not found:
        display(MarkdownText("No other run is compared here (the summary's `compare_with` parameter is empty). "
                             "`python -m snnlib.study compare RESULTS_A RESULTS_B` compares any two runs."))
    for table in found:
        display(table)
