"""The profile split of a benchmark step (snnlib.bench.breakdown)."""
from __future__ import annotations

import pytest

from snnlib.bench.breakdown import DENSE_OPS, POOL_OPS, breakdown, format_breakdown, operator_label


def test_breakdown_splits_every_operator_once_and_finds_the_convolutions():
    r = breakdown("snn_attack", T=6, batch=2, steps=1, threads=1)
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
