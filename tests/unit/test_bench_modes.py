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


def test_device_cpu_is_the_default_and_is_reported():
    r = measure("snn_infer", T=6, batch=2, seconds=0.0, min_iters=1, warmup=0, device="cpu")
    assert r["device"] == "cpu" and r["gpu_peak_mb"] is None


def test_a_missing_gpu_or_unknown_device_is_a_clear_error(monkeypatch):
    import subprocess
    import sys

    import torch
    from snnlib.machine import resolve_device
    with pytest.raises(ValueError, match="device must be one of"):
        measure("snn_infer", T=6, batch=2, device="tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA GPU here.*device 'cpu'"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu" and resolve_device(None).type == "cpu"   # auto falls back
    if not torch.cuda.is_available():        # the CLI says so in one line, exit code 2, no traceback
        p = subprocess.run([sys.executable, "-m", "snnlib.bench", "--device", "cuda", "--modes", "ann_infer"],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 2 and "no CUDA GPU" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", ["snn_infer", "snn_attack"])
def test_modes_run_on_the_gpu_and_report_its_memory(mode):
    r = measure(mode, T=6, batch=4, seconds=0.0, min_iters=1, warmup=0, device="cuda")
    assert r["device"] == "cuda" and r["rate"] > 0 and r["gpu_peak_mb"] is not None and r["gpu_peak_mb"] >= 0
