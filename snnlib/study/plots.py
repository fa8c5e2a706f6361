"""Figures of the book: accuracies in percent with their 95 % Clopper-Pearson intervals as error bars.

Every function takes plain rows (dicts with an ``accuracy``/``adversarial`` entry holding value/low/high in [0, 1])
and returns the matplotlib Figure; a ``note`` line under the title names the data, scale and seeds.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["accuracy_bars", "accuracy_lines", "heatmap", "training_curves", "perturbation_lines"]


def _pct(acc: Mapping[str, float]) -> Tuple[float, float, float]:
    v, lo, hi = 100 * acc["value"], 100 * acc["low"], 100 * acc["high"]
    return v, v - lo, hi - v


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
                v, lo, hi = _pct(groups[g][s])
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
        vals = [_pct(p[1]) for p in pts]
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
    vals = np.array([[100 * c["value"] for c in r] for r in matrix])
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 3.5, 0.6 * len(rows) + 2.4))
    im = ax.imshow(vals, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    for i, r in enumerate(matrix):
        for j, c in enumerate(r):
            ax.text(j, i, f"{100 * c['value']:.1f}\n[{100 * c['low']:.1f}, {100 * c['high']:.1f}]", ha="center",
                    va="center", fontsize=8, color="w" if vals[i, j] < 60 else "k")
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

    series[label] = [{'mean', 'low', 'high'} per layer] (nan for a silent layer).
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, vals in series.items():
        m = np.array([v["mean"] for v in vals], dtype=float)
        lo = np.array([v["low"] for v in vals], dtype=float)
        hi = np.array([v["high"] for v in vals], dtype=float)
        err = np.nan_to_num(np.vstack([m - lo, hi - m]), nan=0.0)
        ax.errorbar(np.arange(1, len(vals) + 1), m, yerr=err, marker="o", capsize=3, label=label)
    ax.set_xlabel("spiking layer (1 = first conv)")
    ax.set_ylabel("relative perturbation ||a(x_adv) - a(x)|| / ||a(x)||")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, ax, title, note)
