"""The profile split of a benchmark step (snnlib.bench.breakdown)."""
from __future__ import annotations

import pytest

from snnlib.bench.breakdown import (DENSE_OPS, POOL_OPS, PROFILER_LOG_LINE, breakdown, format_breakdown, operator_label,
                                    profiler_log_filtered)


def test_breakdown_splits_every_operator_once_and_finds_the_convolutions(capfd):
    r = breakdown("snn_attack", T=6, batch=2, steps=1, threads=1)
    assert not [line for line in capfd.readouterr().err.splitlines() if PROFILER_LOG_LINE.match(line)]
    assert set(r["shares"]) == {"dense", "pooling", "other"}
    assert sum(r["shares"].values()) == pytest.approx(1.0)
    names = [n for n, _, _ in r["top"]]
    assert "aten::convolution_backward" in names                 # an input gradient runs the convolutions backward
    assert all(where == ("dense" if n in DENSE_OPS else "pooling" if n in POOL_OPS else "other")
               for n, _, where in r["top"])
    dense = sum(s for n, s, _ in r["top"] if n in DENSE_OPS)
    assert r["shares"]["dense"] >= dense > 0.0
    ann = breakdown("ann_infer", batch=2, steps=1, threads=1)
    assert ann["T"] is None and ann["shares"]["dense"] > ann["shares"]["other"]   # an ANN is its convolutions
    text = format_breakdown([r, ann])
    assert text.count("\n") == 3 and "| snn_attack | 6 | 2 |" in text
    assert not any(n in POOL_OPS for n in DENSE_OPS)


def test_breakdown_refuses_unknown_modes_and_step_counts():
    with pytest.raises(ValueError, match="unknown benchmark mode"):
        breakdown("snn_fly")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        breakdown("ann_infer", steps=0)


def test_compiled_graphs_get_one_readable_name():
    assert operator_label("## Call CompiledFxGraph fx4ygm624xubk ##") == "compiled LIF step"
    assert operator_label("aten::mm") == "aten::mm"


def test_the_profiler_log_filter_drops_only_the_profilers_cpp_lines(capfd):
    import os
    with profiler_log_filtered():
        os.write(2, b"USDT:2026-12-06 08:19:35 27905:27905 SyncActivityProfilerHandler.cpp:39] profiler_start\n")
        os.write(2, b"a warning the user should see\n")
        os.write(2, b"ERROR:2026-12-06 08:19:35 27905:27905 DeviceProperties.cpp:56] gpuGetDeviceCount failed\n")
    assert capfd.readouterr().err == "a warning the user should see\n"


def test_breakdown_on_a_gpu_is_refused_with_a_usage_error(monkeypatch, capsys):
    import torch
    from snnlib.bench.throughput import main
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)         # as on a GPU machine: the device resolves
    with pytest.raises(SystemExit) as e:
        main(["--breakdown", "--device", "cuda", "--modes", "ann_infer"])
    assert e.value.code == 2 and "--breakdown profiles the CPU" in capsys.readouterr().err
