import math

import pytest
import torch

from snnlib.neurons import (IF, LIF, SURROGATES, get_surrogate, lif_multistep, lif_step, register_surrogate, spike,
                            Surrogate)


def run_steps(current, threshold, leak, surrogate="linear", reset="subtract", delay=True):
    state, out = None, []
    for t in range(current.shape[0]):
        s, state = lif_step(current[t], state, threshold, leak, surrogate, reset, delay)
        out.append(s)
    return torch.stack(out), state


# ------------------------------------------------------------------ known answers
@pytest.mark.parametrize("I,th", [(0.25, 1.0), (0.3, 1.0), (1.0 / 7, 2.0), (0.5, 1.0)])
def test_if_constant_input_fires_at_expected_rate(I, th):
    # IF with subtract reset and constant input I fires floor(I*t/th)-ish: over T steps the count is within 1 of I*T/th
    T = 700
    cur = torch.full((T, 1), I, dtype=torch.float64)
    s, _ = run_steps(cur, th, 1.0, delay=False)
    count = s.sum().item()
    assert abs(count - I * T / th) <= 1.0
    # exact: with delay=False the spike count after t steps is floor(t*I/th) (strict >, so ties do not fire)
    cum = s.cumsum(0).squeeze(1)
    expected = torch.tensor([math.floor((t + 1) * I / th - 1e-9) for t in range(T)], dtype=torch.float64)
    assert torch.equal(cum, expected)


def test_delay_shifts_spikes_by_one_step():
    cur = torch.rand(50, 8, dtype=torch.float64) * 0.8
    s_nodelay, _ = run_steps(cur, 1.0, 1.0, delay=False)
    s_delay, _ = run_steps(cur, 1.0, 1.0, delay=True)
    # for IF (leak 1) the delayed neuron emits at t+1 exactly the spike the textbook order emits at t
    assert torch.equal(s_delay[1:], s_nodelay[:-1])
    assert s_delay[0].sum() == 0


@pytest.mark.parametrize("k", [1, 3, 10])
def test_lif_silent_decay_is_leak_power_k(k):
    leak = 0.9
    cur = torch.zeros(k + 1, 3, dtype=torch.float64)
    cur[0] = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)  # below threshold 1: no spike
    s, state = run_steps(cur, 1.0, leak)
    assert s.sum() == 0
    assert torch.allclose(state.u, cur[0] * leak ** k)


def test_soft_reset_keeps_residue_and_hard_reset_does_not():
    cur = torch.tensor([[1.3], [0.0], [0.0]], dtype=torch.float64)
    s, st = run_steps(cur, 1.0, 1.0, reset="subtract")
    assert s[:, 0].tolist() == [0.0, 1.0, 0.0]
    assert st.u.item() == pytest.approx(0.3)
    s, st = run_steps(cur, 1.0, 1.0, reset="zero")
    assert s[:, 0].tolist() == [0.0, 1.0, 0.0]
    assert st.u.item() == pytest.approx(0.0)


def test_released_code_reset_is_not_leaked():
    # papers.md 1.14.1: u_t = leak*u_{t-1} + I_t - Vth*S_t (reset not multiplied by leak)
    cur = torch.tensor([[1.5], [0.0]], dtype=torch.float64)
    s, st = run_steps(cur, 1.0, 0.5)
    # t0: u=1.5 ; t1: S=1, u = 0.5*1.5 + 0 - 1 = -0.25
    assert st.u.item() == pytest.approx(-0.25)


# ------------------------------------------------------------------ surrogates vs analytic derivatives
ANALYTIC = {
    "linear": lambda v, w: w * max(0.0, 1 - abs(v)),
    "fast_sigmoid": lambda v, w: 1 / (1 + w * abs(v)) ** 2,
    "arctan": lambda v, w: (w / 2) / (1 + (math.pi / 2 * w * v) ** 2),
    "rectangle": lambda v, w: (1.0 / w) if abs(v) < w / 2 else 0.0,
}


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_gradient_matches_analytic(name):
    sg = get_surrogate(name)
    v = torch.linspace(-2.3, 2.3, 47, dtype=torch.float64, requires_grad=True)
    out = sg(v)
    assert torch.equal(out.detach(), (v > 0).double())
    (g,) = torch.autograd.grad(out.sum(), v)
    ref = torch.tensor([ANALYTIC[name](float(x), sg.width) for x in v.detach()], dtype=torch.float64)
    assert torch.allclose(g, ref)


@pytest.mark.parametrize("name", ["fast_sigmoid", "arctan"])
def test_smooth_surrogates_are_derivatives_of_their_primitive(name):
    # the derivative is the finite difference of the primitive it comes from
    sg = get_surrogate(name)
    w = sg.width
    prims = {"fast_sigmoid": lambda v: v / (1 + w * abs(v)),  # d/dv = 1 / (1 + w|v|)^2
             "arctan": lambda v: math.atan(math.pi / 2 * w * v) / math.pi + 0.5}
    prim = prims[name]
    h = 1e-6
    for v in [-1.7, -0.3, 0.05, 0.9]:
        fd = (prim(v + h) - prim(v - h)) / (2 * h)
        got = sg.grad(torch.tensor(v, dtype=torch.float64)).item()
        assert got == pytest.approx(fd, rel=1e-5)


def test_linear_default_is_papers_gamma():
    assert get_surrogate("linear").width == 0.3


def test_registry_errors_and_extension():
    with pytest.raises(ValueError, match="unknown surrogate"):
        get_surrogate("sigmoidish")
    with pytest.raises(ValueError, match="width"):
        get_surrogate("linear", width=-1)
    with pytest.raises(TypeError):
        get_surrogate(3)

    class Triangle2(Surrogate):
        name = "tri2_test"
        default_width = 1.0

        def grad(self, v):
            return torch.clamp(1 - v.abs(), min=0)

    register_surrogate(Triangle2)
    assert isinstance(get_surrogate("tri2_test"), Triangle2)
    SURROGATES.pop("tri2_test")


# ------------------------------------------------------------------ fused multi-step == single-step loop
@pytest.mark.parametrize("delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("leak", [1.0, 0.9])
@pytest.mark.parametrize("sg", ["linear", "arctan"])
def test_multistep_equals_single_step_forward_and_backward(delay, reset, leak, sg):
    torch.manual_seed(0)
    T, B, N = 12, 3, 5
    th = 0.7
    x = (torch.randn(T, B, N, dtype=torch.float64) * 0.6 + 0.3).requires_grad_()
    w = torch.randn(T, B, N, dtype=torch.float64)
    s_ref, _ = run_steps(x, th, leak, sg, reset, delay)
    (g_ref,) = torch.autograd.grad((s_ref * w).sum(), x)
    s = lif_multistep(x, th, leak, sg, reset, delay)
    (g,) = torch.autograd.grad((s * w).sum(), x)
    assert torch.equal(s, s_ref)
    assert torch.allclose(g, g_ref, atol=1e-12)
    assert g.abs().sum() > 0  # the surrogate actually carries gradient


def test_multistep_nograd_path_equals_grad_path():
    x = torch.randn(9, 4, 6) + 0.5
    with torch.no_grad():
        a = lif_multistep(x, 1.0, 0.95)
    b = lif_multistep(x.clone().requires_grad_(), 1.0, 0.95)
    assert torch.equal(a, b.detach())


def test_modules_single_and_multi_step_agree():
    m = LIF(threshold=0.8, leak=0.95)
    x = torch.rand(10, 2, 3)
    seq = m(x)
    state, steps = None, []
    for t in range(10):
        s, state = m.step(x[t], state)
        steps.append(s)
    assert torch.equal(seq, torch.stack(steps))
    assert IF(1.0).leak == 1.0


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_bad_leak_is_clear(bad):
    with pytest.raises(ValueError, match="leak must be in"):
        LIF(leak=bad)


def test_bad_leak_type_and_reset_and_threshold():
    with pytest.raises(TypeError, match="leak"):
        LIF(leak="0.9")
    with pytest.raises(ValueError, match="unknown reset"):
        LIF(reset="soft")
    with pytest.raises(ValueError, match="threshold"):
        LIF(threshold=0.0)


def test_spike_helper():
    v = torch.tensor([-0.5, 0.0, 0.5])
    assert spike(v).tolist() == [0.0, 0.0, 1.0]
