"""FLOPs of VGG forward passes against hand counts, and the peak-fraction arithmetic."""
import pytest
import torch
from torch import nn

from snnlib.bench.flops import PASSES, forward_flops, matmul_gflops, peak_fraction
from snnlib.models import build_ann


def test_forward_flops_counts_convolutions_and_linear_layers_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(8 * 16 * 16, 10))
    conv = 8 * 32 * 32 * (3 * 3 * 3)          # outputs x (in channels x kernel)
    lin = 10 * 8 * 16 * 16
    assert forward_flops(net) == 2 * (conv + lin)
    grouped = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    assert forward_flops(grouped, (4, 8, 8)) == 2 * 4 * 8 * 8 * 9


@pytest.mark.parametrize("arch", ["vgg5", "vgg9"])
def test_vgg_flops_agree_with_torchs_flop_counter(arch):
    from torch.utils.flop_counter import FlopCounterMode
    net = build_ann(arch, seed=0).train()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()(torch.zeros(1, 3, 32, 32))
    net.train()
    assert forward_flops(net) == counter.get_total_flops()          # torch counts convolutions and matmuls
    assert net.training                                              # the caller's mode is restored


def test_peak_fraction_and_matmul_rate():
    assert peak_fraction(1000.0, "snn_bptt", 10 ** 6, 3.0) == pytest.approx(1000 * 3 * 1e6 / 3e9)
    assert PASSES["snn_infer"] == 1
    with pytest.raises(ValueError, match="unknown mode"):
        peak_fraction(1.0, "nope", 1, 1.0)
    assert matmul_gflops(n=64, seconds=0.05) > 0
    with pytest.raises(ValueError, match="n \\(matrix size\\)"):
        matmul_gflops(n=0)
