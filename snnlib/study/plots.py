"""Figures of the book: accuracies in percent with their 95 % Clopper-Pearson intervals as error bars.

The generic functions (:func:`accuracy_bars`, :func:`accuracy_lines`, :func:`heatmap`, ...) take accuracies
(:class:`snnlib.stats.Accuracy`, or mappings with value/low/high in [0, 1]); the chapter figures
(:func:`clean_bars`, :func:`sweep_lines`, :func:`transfer_heatmap`, :func:`attack_bars`, ...) take the typed
results records of :mod:`snnlib.study.records`.  Every function returns the matplotlib Figure; a ``note`` line
under the title names the data, scale and seeds.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import matplotlib.pyplot as plt
import numpy as np

from .formatting import accuracy_fractions, attack_label, percent_with_errors
from .records import (KINDS, AttackSourceResults, DiscretizationResults, GradientMaskingResults, MaskingReport,
                      ModelsResults, RobustnessRow, TrainingMethodResults, series)

__all__ = ["accuracy_bars", "accuracy_lines", "heatmap", "training_curves", "perturbation_lines", "clean_bars",
           "timestep_curve", "sweep_lines", "bits_lines", "budget_lines", "transfer_heatmap", "attack_bars",
           "eps_lines", "bench_throughput", "ROW_ENTRIES"]

#: the four accuracies of a robustness row, with their legend labels
ROW_ENTRIES = (("clean", "clean"), ("FGSM white-box", "fgsm_wb"), ("PGD white-box", "pgd_wb"),
               ("PGD black-box (twin ANN)", "pgd_bb"))


def _finish(fig, ax, title: str, note: Optional[str]):
    ax.set_title(title, fontsize=11)
    if note:
        fig.text(0.01, 0.005, note, fontsize=7, color="0.35", ha="left", va="bottom", wrap=True)
        height = fig.get_size_inches()[1]
        fig.tight_layout(rect=(0, min(0.3, 0.75 / height), 1, 1))
    else:
        fig.tight_layout()
    return fig


def accuracy_bars(groups: Mapping[str, Mapping[str, Mapping[str, float]]], title: str, note: Optional[str] = None,
                  ylabel: str = "accuracy (%)", reference: Optional[Mapping[str, float]] = None):
    """Grouped bars: ``groups[group][series] = accuracy dict``; optional ``reference[group]`` marks (e.g. a paper's)."""
    names = list(groups)
    series = []
    for g in names:
        for s in groups[g]:
            if s not in series:
                series.append(s)
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(series), 1)
    for i, s in enumerate(series):
        xs, vs, errs = [], [], [[], []]
        for j, g in enumerate(names):
            if s in groups[g]:
                v, lo, hi = percent_with_errors(groups[g][s])
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                vs.append(v)
                errs[0].append(lo)
                errs[1].append(hi)
        ax.bar(xs, vs, width, yerr=errs, capsize=3, label=s)
    if reference:
        for j, g in enumerate(names):
            if g in reference and reference[g] is not None:
                ax.plot([j - 0.4, j + 0.4], [reference[g]] * 2, "k--", lw=1.2)
        ax.plot([], [], "k--", lw=1.2, label="paper's value (not measured here)")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, ax, title, note)


def accuracy_lines(series: Mapping[str, Sequence[Tuple[float, Mapping[str, float]]]], title: str, xlabel: str,
                   note: Optional[str] = None, ylabel: str = "accuracy (%)", logx: bool = False):
    """One line with error bars per series: ``series[label] = [(x, accuracy dict), ...]``."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, pts in series.items():
        pts = sorted(pts, key=lambda p: p[0])
        xs = [p[0] for p in pts]
        vals = [percent_with_errors(p[1]) for p in pts]
        ax.errorbar(xs, [v[0] for v in vals], yerr=[[v[1] for v in vals], [v[2] for v in vals]], marker="o",
                    capsize=3, label=label)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, ax, title, note)


def heatmap(matrix: Sequence[Sequence[Mapping[str, float]]], rows: Sequence[str], cols: Sequence[str], title: str,
            note: Optional[str] = None, xlabel: str = "target", ylabel: str = "source (crafted on)"):
    """Accuracy heatmap (percent) with each cell annotated ``value [low, high]``."""
    vals = np.array([[100 * accuracy_fractions(c)[0] for c in r] for r in matrix])
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 3.5, 0.6 * len(rows) + 2.4))
    im = ax.imshow(vals, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    for i, r in enumerate(matrix):
        for j, c in enumerate(r):
            v, lo, hi = (100 * f for f in accuracy_fractions(c))
            ax.text(j, i, f"{v:.1f}\n[{lo:.1f}, {hi:.1f}]", ha="center", va="center", fontsize=8,
                    color="w" if vals[i, j] < 60 else "k")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, label="adversarial accuracy (%)")
    return _finish(fig, ax, title, note)


def training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], title: str, note: Optional[str] = None):
    """Training loss (left axis) and training accuracy (%) per epoch for each named history."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, h in histories.items():
        if not h or not h.get("loss"):
            continue
        ep = np.arange(1, len(h["loss"]) + 1)
        a1.plot(ep, h["loss"], marker=".", label=name)
        a2.plot(ep, 100 * np.asarray(h["acc"]), marker=".", label=name)
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss (cross-entropy)")
    a2.set_xlabel("epoch")
    a2.set_ylabel("training accuracy (%)")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    if note:
        fig.text(0.01, 0.005, note, fontsize=7, color="0.35", ha="left", va="bottom", wrap=True)
        fig.subplots_adjust(bottom=0.25)
    return fig


def perturbation_lines(series: Mapping[str, Sequence[Mapping[str, float]]], title: str, note: Optional[str] = None):
    """Relative perturbation per spiking layer with its 95 % interval, one line per model.

    series[label] = [LayerPerturbation (or a mapping with mean, low, high) per layer] (nan for a silent layer).
    """
    def get(v, k):
        return v[k] if isinstance(v, Mapping) else getattr(v, k)

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, vals in series.items():
        m = np.array([get(v, "mean") for v in vals], dtype=float)
        lo = np.array([get(v, "low") for v in vals], dtype=float)
        hi = np.array([get(v, "high") for v in vals], dtype=float)
        err = np.nan_to_num(np.vstack([m - lo, hi - m]), nan=0.0)
        ax.errorbar(np.arange(1, len(vals) + 1), m, yerr=err, marker="o", capsize=3, label=label)
    ax.set_xlabel("spiking layer (1 = first conv)")
    ax.set_ylabel("relative perturbation ||a(x_adv) - a(x)|| / ||a(x)||")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, ax, title, note)


# ------------------------------------------------------------------------------------------ chapter figures
def clean_bars(results: ModelsResults, title: str, note: Optional[str] = None,
               reference: Optional[Mapping[str, float]] = None):
    """Clean accuracy per kind (groups) and training seed (bars); ``reference``: the paper's values (percent)."""
    groups: Dict[str, Dict[str, Any]] = {k: {} for k in KINDS}
    for r in results.clean:
        groups.setdefault(r.kind, {})[f"seed {r.seed}"] = r.accuracy
    return accuracy_bars(groups, title, note, reference=reference)


def timestep_curve(results: ModelsResults, label: str, title: str, note: Optional[str] = None):
    """The converted SNN's clean accuracy against the timesteps T (log axis)."""
    return accuracy_lines({label: [(p.T, p.accuracy) for p in results.conv_vs_T]}, title, "timesteps T", note,
                          logx=True)


def sweep_lines(rows: Sequence[RobustnessRow], x: str, title: str, xlabel: str, note: Optional[str] = None,
                logx: bool = False, **where):
    """Clean, white-box FGSM / PGD and black-box PGD accuracy against ``x`` (a row field: "T", "leak") of the
    rows whose fields equal ``where`` (e.g. kind="SNN-BP", sweep="T")."""
    s = {label: series(rows, x, entry, **where) for label, entry in ROW_ENTRIES}
    return accuracy_lines(s, title, xlabel, note, logx=logx)


def bits_lines(results: DiscretizationResults, kind: str, title: str, note: Optional[str] = None):
    """The four accuracies of ``kind`` against the input bit depth (8 = unquantised, at the same T)."""
    s = {label: results.bits_series(kind, entry) for label, entry in ROW_ENTRIES}
    return accuracy_lines(s, title, "input bits k (2^k levels)", note)


def budget_lines(results: TrainingMethodResults, attack: str, note: Optional[str] = None):
    """Accuracy of every kind, white- and black-box, against epsilon (0 = clean) under ``attack``."""
    s = {f"{kind} {setting}": results.budget_series(kind, attack, setting)
         for kind in results.clean for setting in ("white-box", "black-box")}
    return accuracy_lines(s, f"{attack}: accuracy against epsilon", "epsilon (/255)", note)


def transfer_heatmap(results: AttackSourceResults, attack: str, note: Optional[str] = None):
    """Accuracy of each target (columns) under ``attack`` crafted on each source (rows)."""
    return heatmap(results.matrix(attack, KINDS), results.sources(), list(KINDS),
                   f"{attack_label(attack)} at eps {results.eps_255:g}/255: accuracy of target", note)


def attack_bars(report: MaskingReport, note: Optional[str] = None):
    """Accuracy of one target under each attack of chapter 6, one horizontal bar per attack (labels read left to
    right at full size), the per-image worst case last (red)."""
    names = list(report.per_attack) + ["worst case (per image)"]
    accs = list(report.per_attack.values()) + [report.worst_case]
    vals = [percent_with_errors(a) for a in accs]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.36 * len(names)))
    ys = np.arange(len(names))[::-1]                       # the first attack on top
    ax.barh(ys, [v[0] for v in vals], xerr=[[v[1] for v in vals], [v[2] for v in vals]], capsize=3,
            color=["C0"] * (len(names) - 1) + ["C3"], height=0.7)
    ax.set_yticks(ys, names, fontsize=9)
    ax.set_xlabel("accuracy (%)")
    ax.set_xlim(0, 100)
    ax.grid(axis="x", alpha=0.3)
    return _finish(fig, ax, f"{report.kind}: accuracy under each attack (eps {report.eps_255:g}/255)\n"
                            f"{report.badge}", note)


def eps_lines(results: GradientMaskingResults, note: Optional[str] = None):
    """The papers' white-box PGD accuracy of every kind against epsilon, up to the large budgets."""
    s = {kind: r.eps_series() for kind, r in results.worst_case.items()}
    return accuracy_lines(s, "Papers' white-box PGD: accuracy against epsilon", "epsilon (/255)", note)


def bench_throughput(report: Mapping[str, Any], title: Optional[str] = None):
    """Throughput (image-timesteps/s) against T of every system, inference and BPTT side by side."""
    from .tables import BENCH_MODES, bench_labels, bench_machine_line
    cfg, runs, label = report["config"], report["runs"], bench_labels(report)
    style = {"snnlib": dict(marker="o", lw=2.2), "snnlib_bf16": dict(marker="o", lw=1.4, ls="--", mfc="none"),
             "plain": dict(marker="D", ls="-."), "snntorch": dict(marker="s", ls="--"),
             "spikingjelly": dict(marker="^", ls=":")}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for ax, mode in zip(axes, ("infer", "bptt")):
        for system in cfg["systems"]:
            pts = sorted((run["T"], r["rate"]) for run in runs if run["mode"] == mode
                         for r in run["results"] if r["system"] == system)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label[system], **style.get(system, {}))
        ax.set_xscale("log", base=2)
        ax.set_xticks(cfg["Ts"], [str(t) for t in cfg["Ts"]])
        ax.set_xlabel("timesteps T")
        ax.set_ylabel("throughput (image·timesteps / s)")
        ax.set_title(f"VGG5 LIF, {BENCH_MODES[mode]}, batch {cfg['batch']}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or bench_machine_line(report), fontsize=8)
    fig.tight_layout()
    return fig
