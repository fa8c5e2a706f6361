"""The benchmark modes run what they name (speed itself is checked by running ``python -m snnlib.bench``)."""
import pytest
from snnlib.bench.throughput import MODES, measure


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_runs_and_reports_its_units(mode):
    r = measure(mode, T=6, batch=4, seconds=0.0, min_iters=1, warmup=0)
    assert r["mode"] == mode and r["unit"] == MODES[mode][1] and r["iters"] >= 1 and r["rate"] > 0
    assert r["T"] == (6 if mode.startswith("snn") else None)


def test_unknown_mode_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown benchmark mode 'pgd'; choose from .*snn_attack"):
        measure("pgd")


@pytest.mark.parametrize("mode", ["snn_infer", "snn_attack"])
def test_snn_modes_run_at_bf16_and_say_so(mode):
    r = measure(mode, T=6, batch=4, seconds=0.0, min_iters=1, warmup=0, precision="bf16")
    assert r["precision"] == "bf16" and r["rate"] > 0
    assert measure("ann_infer", batch=2, seconds=0.0, min_iters=1, warmup=0, precision="bf16")["precision"] == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        measure(mode, T=6, batch=2, precision="half")


def test_the_attack_gradient_mode_runs_in_checkpointed_time_pieces():
    r = measure("snn_attack", T=8, batch=2, seconds=0.0, min_iters=1, warmup=0, grad_time_chunk=3)
    assert r["grad_time_chunk"] == 3 and r["rate"] > 0
    assert measure("ann_infer", batch=2, seconds=0.0, min_iters=1, warmup=0, grad_time_chunk=3)["grad_time_chunk"] is None
