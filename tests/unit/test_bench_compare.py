"""snnlib vs snnTorch vs SpikingJelly: the comparison's twins compute the same network (issue #8).

The equivalence tests need the optional packages (requirements-compare.txt) and skip cleanly without them; the
last two tests check that ``python -m snnlib.bench --compare`` without them exits with a clear message.
"""
import subprocess
import sys
import textwrap

import pytest
import torch


def _check(system, **kw):
    from snnlib.bench.compare import check_equivalence
    return check_equivalence(batch=2, T=6, seed=0, systems=("snnlib", system), **kw)


@pytest.mark.parametrize("system, module", [("snntorch", "snntorch"),
                                            ("spikingjelly", "spikingjelly.activation_based")])
@pytest.mark.parametrize("channels_last", [True, False])
def test_twin_matches_snnlib(system, module, channels_last):
    pytest.importorskip(module)
    r = _check(system, channels_last=channels_last)
    ref, other = r["systems"]["snnlib"], r["systems"][system]
    assert all(c > 0 for c in ref["counts"][:3]), ref["counts"]  # the conv layers spike
    assert other["allclose"], other["max_abs_diff"]
    assert other["counts_equal"], (ref["counts"], other["counts"])
    assert other["train_logits_allclose"]  # the training-mode path computes the same forward
    assert other["grad_allclose"], other["grad_rel_diff"]  # same surrogate, detached reset: same BPTT gradient
    assert r["ok"]


def test_snntorch_twin_layers_share_the_snnlib_weights():
    pytest.importorskip("snntorch")
    pytest.importorskip("spikingjelly.activation_based")
    from snnlib.bench.compare import build_systems
    from snnlib.models import build_ann
    net = build_ann("vgg5", seed=3)
    ms = build_systems(net, [1.0] * 5, 0.99, T=4)
    w = net.features[0].weight
    assert torch.equal(ms["snntorch"].conv1.weight, w) and ms["snntorch"].conv1.weight is not w
    assert torch.equal(ms["spikingjelly"].body[0].weight, w)
    assert torch.equal(ms["snnlib"].net.output.weight, net.output.weight)


def test_linear_spike_surrogate_matches_snnlib():
    from snnlib.bench.compare import LinearSpike
    from snnlib.neurons import get_surrogate
    th = 1.7
    u = torch.linspace(-1.0, 5.0, 301, dtype=torch.float64, requires_grad=True)
    s1 = LinearSpike.apply(u - th, th, 0.3)
    s1.sum().backward()
    g1 = u.grad.clone()
    u.grad = None
    s2 = get_surrogate("linear")(u / th - 1.0)
    s2.sum().backward()
    assert torch.equal(s1, s2)
    assert torch.allclose(g1, u.grad)


_HIDE = textwrap.dedent("""
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('snntorch', 'spikingjelly'):
                raise ModuleNotFoundError('blocked for the test: ' + name, name=name)
            return None
    sys.meta_path.insert(0, _Block())
""")


def test_compare_without_packages_exits_with_install_hint():
    code = _HIDE + "from snnlib.bench.throughput import main\nsys.exit(main(['--compare']))\n"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "requirements-compare.txt" in p.stderr and "snntorch" in p.stderr
    assert "Traceback" not in p.stderr


def test_require_packages_raises_compare_unavailable():
    code = _HIDE + textwrap.dedent("""
        from snnlib.bench.compare import CompareUnavailable, require_packages
        try:
            require_packages()
        except CompareUnavailable as exc:
            print('OK', exc)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("OK") and "pip install -r requirements-compare.txt" in p.stdout


@pytest.mark.parametrize("channels_last", [True, False])
def test_plain_pytorch_baseline_matches_snnlib(channels_last):
    """The plain-PyTorch baseline (no SNN library, no custom kernels) computes the same network: logits, spike
    counts of every layer, and the BPTT gradient; it needs no optional package."""
    from snnlib.bench.compare import check_equivalence
    r = check_equivalence(batch=2, T=16, seed=0, systems=("snnlib", "plain"), channels_last=channels_last)
    ref, other = r["systems"]["snnlib"], r["systems"]["plain"]
    assert all(c > 0 for c in ref["counts"]), ref["counts"]
    assert other["allclose"] and other["counts_equal"], (other["max_abs_diff"], ref["counts"], other["counts"])
    assert other["train_logits_allclose"] and other["grad_allclose"], other["grad_rel_diff"]


def test_plain_baseline_detects_a_different_network():
    """The equivalence check is not vacuous: the baseline with another leak disagrees with snnlib."""
    from snnlib.bench import compare
    from snnlib.models import build_ann
    net = build_ann("vgg5", seed=0)
    th = compare.calibrate_thresholds(net, seed=0)
    seq = compare.make_input(2, 16, 0)
    a = compare.logits("snnlib", compare.build_snnlib(net, th, 0.99, 16).eval(), seq)
    b = compare.logits("plain", compare.PlainTorchVGG5(net, th, 0.9).eval(), seq)
    c = compare.logits("plain", compare.PlainTorchVGG5(net, th, 0.99).eval(), seq)
    assert a.abs().sum() > 0
    assert torch.allclose(a, c, rtol=1e-4, atol=1e-5) and not torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_compare_summary_reports_the_fastest_peer_and_the_plain_baseline():
    from snnlib.bench.throughput import compare_summary
    run = dict(mode="infer", T=8, results=[_res("snnlib", 300.0, 100.0), _res("plain", 200.0, 80.0),
                                           _res("snntorch", 100.0, 150.0), _res("spikingjelly", 150.0, 120.0)])
    (row,) = compare_summary(dict(runs=[run]))["rows"]
    assert row["best_other"] == "spikingjelly" and row["speedup"] == pytest.approx(2.0)
    assert row["plain_speedup"] == pytest.approx(1.5)
    assert row["leanest_other"] == "plain" and row["mem_ratio"] == pytest.approx(100 / 80)


def test_compare_summary_keeps_snnlib_bf16_out_of_the_peers_and_reports_it():
    from snnlib.bench.throughput import compare_summary
    run = dict(mode="bptt", T=8, results=[_res("snnlib", 300.0, 100.0), _res("snnlib_bf16", 600.0, 50.0),
                                          _res("plain", 200.0, 80.0), _res("snntorch", 100.0, 150.0)])
    (row,) = compare_summary(dict(runs=[run]))["rows"]
    assert row["best_other"] == "snntorch" and row["speedup"] == pytest.approx(3.0)      # bf16 is not a peer
    assert row["leanest_other"] == "plain" and row["mem_ratio"] == pytest.approx(100 / 80)
    assert row["bf16_speedup"] == pytest.approx(6.0) and row["bf16_plain_speedup"] == pytest.approx(3.0)
    assert row["bf16_mem_ratio"] == pytest.approx(50 / 80)
    run["results"].pop(1)
    (row,) = compare_summary(dict(runs=[run]))["rows"]
    assert row["bf16_speedup"] is None and row["bf16_rate"] is None


def test_bf16_check_bounds_the_spikes_that_move():
    from snnlib.bench import compare

    r = compare.check_bf16()
    assert r["ok"] and max(r["count_change"]) <= r["max_count_change"] and sum(r["counts_fp32"]) > 0
    assert r["counts_bf16"] != r["counts_fp32"]                 # bf16 is a deviation: some spikes do move
    assert not compare.check_bf16(max_count_change=0.0)["ok"]


def _res(system, rate, peak):
    return dict(system=system, rate=rate, peak_mb=peak)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_measure_compare_times_every_system_on_the_device(device):
    pytest.importorskip("snntorch")
    pytest.importorskip("spikingjelly.activation_based")
    from snnlib.bench import compare
    from snnlib.bench.throughput import measure_compare
    r = measure_compare(T=4, mode="bptt", batch=2, reps=1, device=device)
    assert r["device"] == device
    assert [x["system"] for x in r["results"]] == list(compare.SYSTEMS)
    assert all(x["rate"] > 0 and x["reps"] == 1 for x in r["results"])
