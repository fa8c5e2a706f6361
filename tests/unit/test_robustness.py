"""evaluate_attack / transfer_matrix: numbers equal hand counts, and each sanity flag can fire."""
import json

import pytest
import torch
from torch import nn

from snnlib import VGG, PoissonEncoder, SpikingVGG
from snnlib.attacks import FGSM, PGD
from snnlib.robustness.evaluation import RobustnessResult, evaluate_attack, transfer_matrix

EPS = 8 / 255


class TinyNet(nn.Module):
    def __init__(self, seed=0, width=8):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.f = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(),
                               nn.Linear(width * 64, 10))
        with torch.no_grad():
            for p in self.parameters():
                if p.dim() > 1:  # He-normal weights, zero biases
                    p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
                else:
                    p.zero_()

    def forward(self, x):
        return self.f((x - 0.5) / 0.5)


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def _snn(encoder_grad="ste", T=3):
    return SpikingVGG(VGG("vgg5", seed=0), [0.5] * 5, T=T, delay=False,
                      encoder=PoissonEncoder(seed=0, grad=encoder_grad))


class Overshoot(FGSM):
    """A broken attack: steps 2 * eps and skips the projection."""

    def project(self, x_adv, x):
        return x_adv

    def _attack_batch(self, x, y, gen):
        g, _ = self.gradient(x, y)
        return x + 2 * self.eps * torch.sign(g)


def test_counts_match_hand_computation():
    model = TinyNet().eval()
    x, _ = _data()
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:6] = (y[:6] + 1) % 10  # 18 of 24 correct
    atk = PGD(model, eps=16 / 255, alpha=4 / 255, steps=3, seed=1)
    res = evaluate_attack(model, atk, x, y, batch_size=10)
    x_adv = atk(x, y)
    with torch.no_grad():
        clean_ok = model(x).argmax(1) == y
        adv_ok = model(x_adv).argmax(1) == y
    assert res.clean.correct == int(clean_ok.sum()) == 18 and res.clean.total == 24
    assert res.adversarial.correct == int(adv_ok.sum()) < 18
    assert res.success_rate.correct == int((clean_ok & ~adv_ok).sum()) and res.success_rate.total == 18
    assert res.clean.low < res.clean.value < res.clean.high
    assert res.whitebox and res.budget_ok and res.adv_not_above_clean and res.zero_grad_share == 0.0
    assert res.flags_ok and res.warnings == []
    assert abs(res.max_linf - float((x_adv - x).abs().max())) < 1e-7 and res.max_linf <= 16 / 255 + 1e-7
    d = json.loads(json.dumps(res.to_dict()))
    assert d["eps_255"] == 16 and d["adversarial"]["correct"] == res.adversarial.correct and d["flags_ok"]
    line = str(res)
    assert "\n" not in line and "16/255" in line and "white-box" in line


def test_budget_flag_fires_for_a_broken_attack():
    model = TinyNet().eval()
    x, y = _data(8)
    good = evaluate_attack(model, FGSM(model, eps=EPS), x, y)
    bad = evaluate_attack(model, Overshoot(model, eps=EPS), x, y)
    assert good.budget_ok and good.max_linf <= EPS + 1e-7
    assert not bad.budget_ok and bad.max_linf > EPS and not bad.flags_ok
    assert any("budget" in w or "[0, 1]" in w for w in bad.warnings)


def test_adv_above_clean_flag_fires():
    """A 'helpful' attack (targeted at the true labels) raises accuracy: the flag must catch it."""
    model = TinyNet().eval()
    x, y = _data(24, seed=3)
    helpful = PGD(model, eps=32 / 255, alpha=8 / 255, steps=4, targeted=True)
    res = evaluate_attack(model, helpful, x, y, target_labels=y)
    assert res.adversarial.value > res.clean.value
    assert not res.adv_not_above_clean and any("above clean" in w for w in res.warnings)
    with pytest.raises(ValueError, match="target_labels"):
        evaluate_attack(model, helpful, x, y)


def test_more_iters_check():
    model = TinyNet().eval()
    x, _ = _data(24, seed=5)
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 100 %
    strong = PGD(model, eps=16 / 255, alpha=4 / 255, steps=5, random_start=False)
    weak = PGD(model, eps=16 / 255, alpha=4 / 255, steps=1, random_start=False)
    ok = evaluate_attack(model, strong, x, y, iter_check=weak, zero_grad_check=False)
    assert ok.more_iters_not_weaker is True and ok.weaker["attack"]["steps"] == 1 and ok.zero_grad_share is None
    swapped = evaluate_attack(model, FGSM(model, eps=0.0), x, y, iter_check=strong, zero_grad_check=False)
    assert swapped.more_iters_not_weaker is False and not swapped.flags_ok


def test_zero_grad_share_detects_a_masked_snn_gradient():
    snn = _snn(encoder_grad="none")
    x, y = _data(4)
    masked = evaluate_attack(snn, FGSM(snn, eps=EPS, grad_mode="autograd"), x, y)
    assert masked.zero_grad_share == 1.0 and not masked.flags_ok
    assert any("zero input gradient" in w for w in masked.warnings)
    assert masked.max_linf == 0.0 and masked.adversarial.correct == masked.clean.correct
    real = evaluate_attack(snn, FGSM(snn, eps=EPS, grad_mode="bptt"), x, y)
    assert real.zero_grad_share < 1.0 and real.max_linf > 0
    assert snn.encoder.grad == "none"


def test_transfer_matrix_fills_every_cell():
    ann = TinyNet(seed=1).eval()
    net = VGG("vgg5", seed=0)
    snn = SpikingVGG(net, [0.5] * 5, T=2, delay=False)
    x, y = _data(4)
    sources = {"ann": ann, "snn": snn}
    targets = {"ann": ann, "snn": snn, "vgg_ann": net}
    table = transfer_matrix(sources, targets, lambda m: FGSM(m, eps=EPS), x, y, batch_size=4)
    assert set(table) == set(sources)
    for s in sources:
        assert set(table[s]) == set(targets)
        for t in targets:
            cell = table[s][t]
            assert isinstance(cell, RobustnessResult) and cell.source == s and cell.target == t
            assert cell.whitebox == (sources[s] is targets[t]) and cell.budget_ok and cell.n == 4
            json.dumps(cell.to_dict())
    # crafted once per source: the ANN->ANN cell equals a direct white-box evaluation
    direct = evaluate_attack(ann, FGSM(ann, eps=EPS), x, y, batch_size=4)
    assert table["ann"]["ann"].adversarial.correct == direct.adversarial.correct
    assert table["ann"]["ann"].clean.correct == direct.clean.correct
    with pytest.raises(ValueError, match="source"):
        transfer_matrix(sources, targets, lambda m: FGSM(ann, eps=EPS), x, y)
