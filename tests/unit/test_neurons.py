import dataclasses
import math

import pytest
import torch

from snnlib.neurons import (IF, LIF, SURROGATES, LIFParameters, LIFState, Surrogate, get_surrogate, lif_multistep,
                            lif_sequence, lif_step, register_surrogate, spike)


def run_steps(current, threshold, leak, surrogate="linear", reset="subtract", delay=True, state=None):
    """The reference: T calls of the pure step function (autograd through every step)."""
    params = LIFParameters(threshold, leak, reset, delay, surrogate)
    out = []
    for t in range(current.shape[0]):
        s, state = lif_step(current[t], state, params)
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
    seq, final = m(x)
    state, steps = None, []
    for t in range(10):
        s, state = m.step(x[t], state)
        steps.append(s)
    assert torch.equal(seq, torch.stack(steps))
    assert torch.equal(final.u, state.u)
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


# ------------------------------------------------------------------ parameter record
def test_parameters_record_is_validated_and_frozen():
    p = LIFParameters(threshold=0.5, leak=0.9, surrogate="arctan")
    assert p.surrogate.name == "arctan" and p.threshold == 0.5 and p.reset == "subtract" and p.delay is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.leak = 0.5
    q = p.replace(leak=1.0)
    assert q.leak == 1.0 and p.leak == 0.9 and q.surrogate is p.surrogate
    with pytest.raises(ValueError, match="leak must be in"):
        LIFParameters(leak=0.0)
    with pytest.raises(ValueError, match="unknown reset"):
        LIFParameters(reset="hard")
    with pytest.raises(TypeError, match="LIFParameters"):
        lif_step(torch.zeros(2, 3), None, 1.0)
    with pytest.raises(TypeError, match="LIFParameters"):
        lif_sequence(torch.zeros(4, 2, 3), None, {"threshold": 1.0})


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), torch.tensor([1.0, 0.0, 2.0]),
                                 torch.tensor(-0.5), [0.5, -0.1]])
def test_non_positive_threshold_refused_everywhere(bad):
    with pytest.raises(ValueError, match="threshold must be > 0"):
        LIFParameters(threshold=bad)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        LIF(threshold=bad)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        lif_multistep(torch.zeros(3, 2, 3), bad)
    m = LIF(threshold=1.0)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        m.set_threshold(bad)
    assert float(m.threshold) == 1.0


def test_threshold_shape_errors_are_clear():
    with pytest.raises(ValueError, match="one value per channel"):
        LIFParameters(threshold=torch.ones(2, 3))
    with pytest.raises(TypeError, match="bool"):
        LIFParameters(threshold=True)
    # a per-channel threshold must match dim 1 of each step
    with pytest.raises(ValueError, match="3 values needs steps shaped \\(B, 3, ...\\)"):
        lif_multistep(torch.zeros(4, 2, 5), torch.ones(3))
    with pytest.raises(ValueError, match="3 values needs steps shaped"):
        lif_step(torch.zeros(2, 5), None, LIFParameters(torch.ones(3)))


# ------------------------------------------------------------------ explicit state over sequences
@pytest.mark.parametrize("delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_sequence_state_gradients_match_step_loop(delay, reset):
    """lif_sequence from a given state, with the final state used downstream: forward and BPTT (to the currents and
    to the initial membrane) equal autograd through T calls of lif_step."""
    g = torch.Generator().manual_seed(1)
    T, B, N, th, leak = 9, 3, 4, 0.7, 0.9
    x = (torch.randn(T, B, N, dtype=torch.float64, generator=g) * 0.6 + 0.3).requires_grad_()
    u0 = (torch.rand(B, N, dtype=torch.float64, generator=g) * 1.2).requires_grad_()
    w = torch.randn(T, B, N, dtype=torch.float64, generator=g)
    wu = torch.randn(B, N, dtype=torch.float64, generator=g)
    params = LIFParameters(th, leak, reset, delay)

    s_ref, st_ref = run_steps(x, th, leak, reset=reset, delay=delay, state=LIFState(u0))
    g_ref = torch.autograd.grad((s_ref * w).sum() + (st_ref.u * wu).sum(), (x, u0))
    s, st = lif_sequence(x, LIFState(u0), params)
    grads = torch.autograd.grad((s * w).sum() + (st.u * wu).sum(), (x, u0))
    assert torch.equal(s, s_ref) and torch.allclose(st.u, st_ref.u, atol=1e-12)
    for a, b in zip(grads, g_ref):
        assert torch.allclose(a, b, atol=1e-12)
    assert grads[1].abs().sum() > 0 and s.sum() > 0


def test_sequence_in_two_pieces_equals_one_piece_with_gradient():
    """Carrying the returned state into the next call is the same layer over the whole sequence (truncation-free)."""
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(12, 2, 5, dtype=torch.float64, generator=g) * 0.7 + 0.4).requires_grad_()
    w = torch.randn(12, 2, 5, dtype=torch.float64, generator=g)
    m = LIF(threshold=0.9, leak=0.95)
    s_all, st_all = m(x)
    (g_all,) = torch.autograd.grad((s_all * w).sum(), x)
    s1, st1 = m(x[:5])
    s2, st2 = m(x[5:], st1)
    (g_two,) = torch.autograd.grad((torch.cat([s1, s2]) * w).sum(), x)
    assert torch.equal(torch.cat([s1, s2]), s_all) and torch.equal(st2.u, st_all.u)
    assert torch.allclose(g_two, g_all, atol=1e-12) and g_all.abs().sum() > 0
    with torch.no_grad():  # the no-graph loop carries the state the same way
        a, sa = m(x[:5].detach())
        b, sb = m(x[5:].detach(), sa)
    assert torch.equal(torch.cat([a, b]), s_all.detach()) and torch.equal(sb.u, st_all.u.detach())


def test_inplace_writes_spikes_over_the_current():
    x = torch.rand(8, 2, 3, 4) * 0.8
    ref, st_ref = lif_sequence(x.clone(), None, LIFParameters(0.5, 0.9))
    cur = x.clone()
    with torch.no_grad():
        s, st = LIF(0.5, 0.9)(cur, inplace=True)
    assert s.data_ptr() == cur.data_ptr() and torch.equal(s, ref) and torch.equal(st.u, st_ref.u)
    with pytest.raises(ValueError, match="inplace=True"):
        LIF(0.5)(x.clone().requires_grad_(), inplace=True)


def test_state_errors_are_clear():
    m = LIF(1.0)
    with pytest.raises(ValueError, match="state.u has shape"):
        m(torch.zeros(3, 2, 4), LIFState(torch.zeros(2, 5)))
    with pytest.raises(TypeError, match="LIFState"):
        m(torch.zeros(3, 2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="\\(T, B, ...\\)"):
        m(torch.zeros(4))


# ------------------------------------------------------------------ per-channel thresholds
@pytest.mark.parametrize("delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_per_channel_threshold_equals_one_layer_per_channel(delay, reset, channels_last):
    """A (C,) threshold gives channel c exactly the scalar-threshold layer of th[c] (forward and BPTT), and the
    sequence loop equals the step loop, also on channels-last convolution outputs."""
    g = torch.Generator().manual_seed(3)
    T, B, C = 7, 2, 3
    th = torch.tensor([0.4, 0.9, 1.7], dtype=torch.float64)
    x = torch.randn(T, B, C, 4, 4, dtype=torch.float64, generator=g) * 0.8 + 0.4
    if channels_last:
        x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (T, B))
    x.requires_grad_()
    w = torch.randn(T, B, C, 4, 4, dtype=torch.float64, generator=g)
    s, st = lif_sequence(x, None, LIFParameters(th, 0.9, reset, delay))
    (gx,) = torch.autograd.grad((s * w).sum(), x)
    s_ref, st_ref = run_steps(x, th, 0.9, reset=reset, delay=delay)
    (g_ref,) = torch.autograd.grad((s_ref * w).sum(), x)
    assert torch.equal(s, s_ref) and torch.allclose(gx, g_ref, atol=1e-12)
    for c in range(C):
        xc = x.detach()[:, :, c].clone().requires_grad_()
        sc = lif_multistep(xc, float(th[c]), 0.9, reset=reset, delay=delay)
        (gc,) = torch.autograd.grad((sc * w[:, :, c]).sum(), xc)
        assert torch.equal(s[:, :, c], sc) and torch.allclose(gx[:, :, c], gc, atol=1e-12)
        assert torch.allclose(st.u[:, c], st_ref.u[:, c], atol=1e-12)
    assert s.sum() > 0
    with torch.no_grad():
        s_ng, _ = LIF(th, 0.9, reset=reset, delay=delay)(x.detach())
    assert torch.equal(s_ng, s.detach())


def test_per_channel_threshold_on_linear_layers_and_module_buffer():
    """Known answer: IF, no delay, constant input I < th fires floor(T * I / th) times (as for a scalar threshold)."""
    m = LIF(threshold=torch.tensor([0.45, 0.7, 1.3], dtype=torch.float64), leak=1.0, delay=False)
    assert m.threshold.shape == (3,)
    x = torch.full((20, 1, 3), 0.3, dtype=torch.float64)
    s, _ = m(x)
    assert s.sum((0, 1)).tolist() == [math.floor(20 * 0.3 / th) for th in (0.45, 0.7, 1.3)] == [13, 8, 4]
    assert "per-channel (3)" in repr(m)


# ------------------------------------------------------------------ modules: hooks, state, backend
def test_forward_hook_sees_spikes_and_state():
    m = LIF(threshold=0.3, leak=0.9)
    seen = []
    m.register_forward_hook(lambda mod, inp, out: seen.append(out))
    x = torch.rand(6, 2, 4)
    s, st = m(x)
    assert len(seen) == 1 and seen[0][0] is s and seen[0][1] is st
    assert seen[0][0].shape == (6, 2, 4)


def test_backend_is_a_module_setting(monkeypatch):
    from snnlib import neurons
    monkeypatch.setattr(neurons, "_default_backend", None)
    monkeypatch.setenv("SNNLIB_LIF_BACKEND", "eager")
    assert neurons.get_lif_backend() == "eager" and LIF().backend == "eager"
    monkeypatch.delenv("SNNLIB_LIF_BACKEND")
    assert neurons.get_lif_backend() == "auto" and LIF().backend == "auto"
    assert LIF(backend="compile").backend == "compile"
    built = LIF()
    old = neurons.set_lif_backend("eager")  # the default for modules built afterwards only
    assert old == "auto" and LIF().backend == "eager" and built.backend == "auto"
    with pytest.raises(ValueError, match="unknown LIF backend"):
        LIF(backend="fast")
    with pytest.raises(ValueError, match="unknown LIF backend"):
        neurons.set_lif_backend("fast")
    monkeypatch.setenv("SNNLIB_LIF_BACKEND", "compile")
    assert neurons.set_lif_backend(None) == "eager" and neurons.get_lif_backend() == "compile"
    monkeypatch.setattr(neurons, "_default_backend", None)
    monkeypatch.setenv("SNNLIB_LIF_BACKEND", "turbo")
    with pytest.raises(ValueError, match="SNNLIB_LIF_BACKEND='turbo'"):
        LIF()


def test_from_params_and_params_round_trip():
    p = LIFParameters(threshold=0.7, leak=0.8, reset="zero", delay=False, surrogate="rectangle")
    m = LIF.from_params(p, backend="eager")
    q = m.params
    assert (float(q.threshold), q.leak, q.reset, q.delay, q.surrogate.name) == (pytest.approx(0.7), 0.8, "zero",
                                                                              False, "rectangle")
    x = torch.rand(5, 2, 3)
    assert torch.equal(m(x)[0], lif_sequence(x, None, q)[0])
    assert m.state_dict().keys() == {"threshold"}


# ------------------------------------------------------------------ mixed precision
@pytest.mark.parametrize("backend, delay, reset", [("eager", True, "subtract"), ("eager", False, "subtract"),
                                                   ("eager", True, "zero"), ("compile", False, "subtract")])
def test_bf16_currents_integrate_in_a_float32_membrane(backend, delay, reset):
    """A bf16 current is integrated in a float32 membrane: exactly the spikes (and BPTT gradients) of the float32
    neuron fed the same bf16-rounded currents, the spikes in bf16 for the next bf16 layer.  (A bf16 membrane keeps
    8 significant bits and would drift.)"""
    from snnlib.neurons import membrane_dtype

    g = torch.Generator().manual_seed(3)
    cur16 = (torch.randn(24, 3, 40, generator=g) * 0.6).bfloat16()
    params = LIFParameters(0.8, 0.97, reset, delay, "linear")
    ref, ref_state = lif_sequence(cur16.float(), None, params, backend=backend)
    s16, state16 = lif_sequence(cur16, None, params, backend=backend)
    assert s16.dtype == torch.bfloat16 and state16.u.dtype == torch.float32
    assert torch.equal(s16.float(), ref) and torch.equal(state16.u, ref_state.u) and ref.sum() > 0
    a = cur16.clone().requires_grad_()
    b = cur16.float().requires_grad_()
    w = torch.randn(ref.shape, generator=g).bfloat16().float()   # the spikes' gradient arrives in their dtype
    (lif_sequence(a, None, params, backend=backend)[0].float() * w).sum().backward()
    (lif_sequence(b, None, params, backend=backend)[0] * w).sum().backward()
    assert a.grad.dtype == torch.bfloat16 and torch.equal(a.grad, b.grad.bfloat16()) and b.grad.abs().sum() > 0
    assert membrane_dtype(torch.bfloat16) == membrane_dtype(torch.float16) == torch.float32
    assert membrane_dtype(torch.float64) == torch.float64


def test_a_bf16_threshold_is_not_rounded_to_bf16():
    """Next to 0.703125 bf16 steps by 2**-8: thresholds 0.7031 and 0.7032 both round to it in bf16, where neither
    would fire on a current of 0.703125; the float32 membrane fires against the first and not the second."""
    cur = torch.full((1, 1, 1), 0.703125).bfloat16()
    assert float(cur) == 0.703125 and float(torch.tensor(0.7031).bfloat16()) == 0.703125
    fired = [lif_sequence(cur, None, LIFParameters(th, 1.0, "subtract", False, "linear"), backend="eager")[0].item()
             for th in (0.7031, 0.7032)]
    assert fired == [1.0, 0.0]
