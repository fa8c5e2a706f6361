"""Where a benchmark step spends its time: convolutions and linear layers against everything else.

``python -m snnlib.bench --breakdown`` profiles the modes of :mod:`snnlib.bench.throughput` with
``torch.profiler`` (CPU self time of every operator, summed over a few steps after a warm-up) and splits it into
three parts: the dense arithmetic (convolution and matrix products, forward and backward), pooling, and the rest
(the neurons' elementwise work, the Poisson encoder, copies and the optimizer).  The rest is the most any change
to the neurons, the encoder or the memory traffic between them could save; the dense part is bounded by the
machine's arithmetic rate (``--peak``).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Dict, Iterator, List, Optional

from .steps import MODES, build_step

__all__ = ["DENSE_OPS", "POOL_OPS", "PROFILER_LOG_LINE", "profiler_log_filtered", "operator_label", "breakdown", "format_breakdown"]

#: operators counted as the dense arithmetic (convolutions and matrix products, forward and backward)
DENSE_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution", "aten::convolution",
             "aten::conv2d", "aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear",
             "aten::_mkldnn_convolution_backward", "aten::mkldnn_convolution_backward",
             "aten::cudnn_convolution", "aten::_conv_depthwise2d")
#: operators counted as pooling
POOL_OPS = ("aten::avg_pool2d", "aten::avg_pool2d_backward", "aten::max_pool2d", "aten::max_pool2d_with_indices",
            "aten::max_pool2d_with_indices_backward", "aten::adaptive_avg_pool2d")


def operator_label(name: str) -> str:
    """A readable name of a profiled operator: torch.compile's generated graphs (snnlib's fused LIF steps, see
    ``SNNLIB_LIF_BACKEND``) under one name instead of their hashes."""
    if name.startswith("## Call CompiledFxGraph"):
        return "compiled LIF step"
    if name.startswith("Torch-Compiled Region"):
        return "compiled region (dispatch)"
    return name


#: a line of the profiler's C++ log (Kineto writes "USDT:<date> <pid>:<tid> <file>.cpp:<line>] profiler_start" and,
#: on a machine without a GPU, "ERROR:... gpuGetDeviceCount failed" straight to file descriptor 2)
PROFILER_LOG_LINE = re.compile(r"^[A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \S+\.cpp:\d+\]")


@contextlib.contextmanager
def profiler_log_filtered() -> Iterator[None]:
    """Keep the profiler's C++ log lines (:data:`PROFILER_LOG_LINE`) off stderr: file descriptor 2 goes to a temporary
    file for the block, and every other line written there is passed on to stderr afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not PROFILER_LOG_LINE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def breakdown(mode: str = "snn_attack", model: str = "vgg5", T: int = 16, batch: int = 64, steps: int = 3,
              warmup: int = 1, threads: Optional[int] = None, seed: int = 0, top: int = 8) -> Dict:
    """Profile ``steps`` steps of ``mode`` (after ``warmup``) on the CPU; returns {mode, T, batch, threads, steps,
    total_ms (per step), shares: {"dense", "pooling", "other"} (fractions of the operators' self time), top: the
    ``top`` operators by self time as [name, share, part]}."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    if mode not in MODES:
        raise ValueError(f"unknown benchmark mode {mode!r}; choose from {sorted(MODES)}")
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    if threads is not None:
        torch.set_num_threads(int(threads))
    step, _ = build_step(mode, model, T, batch, seed)
    for _ in range(warmup):
        step()
    with profiler_log_filtered():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
        averages = prof.key_averages()
    merged: Dict[str, float] = {}
    for e in averages:
        label = operator_label(e.key)
        merged[label] = merged.get(label, 0.0) + float(e.self_cpu_time_total)
    events = list(merged.items())
    total = sum(t for _, t in events) or 1.0
    parts = {"dense": 0.0, "pooling": 0.0, "other": 0.0}
    for name, t in events:
        parts["dense" if name in DENSE_OPS else "pooling" if name in POOL_OPS else "other"] += t
    ranked = sorted(events, key=lambda e: -e[1])[:top]

    def part(name: str) -> str:
        return "dense" if name in DENSE_OPS else "pooling" if name in POOL_OPS else "other"

    return dict(mode=mode, model=model, T=T if mode.startswith("snn") else None, batch=batch,
                threads=torch.get_num_threads(), steps=steps, total_ms=total / 1000.0 / steps,
                shares={k: v / total for k, v in parts.items()}, top=[[n, t / total, part(n)] for n, t in ranked])


def format_breakdown(rows: List[Dict]) -> str:
    """A Markdown table of :func:`breakdown` results, one row per mode."""
    out = ["| mode | T | batch | ms per step (profiled) | dense | pooling | other | largest other operators |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        others = [f"{n.replace('aten::', '')} {100 * s:.1f} %" for n, s, where in r["top"] if where == "other"][:4]
        sh = r["shares"]
        out.append(f"| {r['mode']} | {r['T'] or '-'} | {r['batch']} | {r['total_ms']:.0f} | {100 * sh['dense']:.1f} % | "
                   f"{100 * sh['pooling']:.1f} % | {100 * sh['other']:.1f} % | {', '.join(others)} |")
    return "\n".join(out)
