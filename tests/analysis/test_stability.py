"""Stability conditions and gain estimates (sg_stability.stability): hand-checked values, independent
references (Monte Carlo, numerical quadrature, autograd Jacobians), and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability import stability as st
from sg_stability import testing as sg_testing
from sg_stability.surrogates import families, get
from tests.zoo import shd_networks

ROOT = Path(__file__).resolve().parents[2]


# -- Condition I -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("reset", "expected"), [("subtract", 1.0), ("multiplicative", 0.75), ("zero", 1.5),
                                                 ("none", 0.5)])
def test_condition_i_hand_values(reset, expected):
    # n = 3, alpha = 1/2, theta = 1: mu = 2 * drive / 2 with drive 1, 3/4, 3/2, 1/2
    assert float(st.condition_i(3, 0.5, 1.0, reset)) == pytest.approx(expected)


@pytest.mark.parametrize("reset", ["subtract", "multiplicative", "zero", "none"])
def test_condition_i_makes_the_threshold_stationary(reset):
    # plug mu back into the mean-field update E[y'] with E[y] = theta, P(spike) = 1/2, mean input m
    n, a, th, m = 11, 0.8, 0.7, 0.05
    mu = float(st.condition_i(n, a, th, reset, input_current=m))
    r = (n - 1) * mu / 2
    nxt = {"subtract": a * th + m + r - th / 2, "multiplicative": a * th / 2 + m + r,
           "zero": (a * th + m + r) / 2, "none": a * th + m + r}[reset]
    assert nxt == pytest.approx(th)


def test_condition_i_matches_the_reference_code_for_the_subtractive_reset():
    a, th, n = 0.3, 0.01, 256
    assert float(st.condition_i(n, a, th)) == pytest.approx((3 - 2 * a) * th / (n - 1))


# -- Condition II ------------------------------------------------------------------------------------------
def test_condition_ii_hand_values_and_infeasible_verdict():
    # target = n_in Var(w_in)(var + mean^2) = 2 * 0.5 * 0.5 = 0.5; s^2 = 2 * 0.5 / 2 - mu^2 / 2
    ok = st.condition_ii(3, 2, 0.5)
    assert ok.feasible and ok.value == pytest.approx(0.5) and ok.target == pytest.approx(0.5)
    assert st.condition_ii(3, 2, 0.5, recurrent_mean=1.0).value == pytest.approx(0.0)
    bad = st.condition_ii(3, 2, 0.5, recurrent_mean=2.0)
    assert not bad.feasible and bad.value == 0.0 and bad.achieved == pytest.approx(2.0)
    assert "recurrent mean" in bad.reason and "INFEASIBLE" in str(bad)


def test_condition_ii_balances_the_currents_by_monte_carlo():
    n_rec, n_in, var_in, mu = 200, 300, 0.01, 0.002
    s2 = st.condition_ii(n_rec, n_in, var_in, recurrent_mean=mu).value
    g = torch.Generator().manual_seed(0)
    trials = 20000
    w_in = torch.randn(trials, n_in, generator=g, dtype=torch.float64) * math.sqrt(var_in)
    z = (torch.rand(trials, n_in, generator=g, dtype=torch.float64) < 0.5).double()
    w_rec = mu + torch.randn(trials, n_rec - 1, generator=g, dtype=torch.float64) * math.sqrt(s2)
    s = (torch.rand(trials, n_rec - 1, generator=g, dtype=torch.float64) < 0.5).double()
    var_input = float((w_in * z).sum(1).var())
    var_rec = float((w_rec * s).sum(1).var())
    assert var_rec == pytest.approx(var_input, rel=0.05)


# -- Condition III -----------------------------------------------------------------------------------------
W3 = torch.tensor([[0.0, 1.0, -0.5], [0.5, 0.0, -1.0], [2.0, -1.0, 0.0]])


def test_condition_iii_hand_values_subtractive():
    # gamma_i = (1 - alpha) / (S+_i (1 + theta / |S-_i|)), alpha = 1/2, theta = 1
    v = st.condition_iii(W3, HALF_LEAK)
    expected = torch.tensor([0.5 / (1 * 3), 0.5 / (0.5 * 2), 0.5 / (2 * 2)], dtype=torch.float64)
    torch.testing.assert_close(v.per_neuron, expected)
    assert v.feasible and v.value == pytest.approx(float(expected.mean()))


def test_condition_iii_equals_the_reference_code_form_c():
    # the code: gamma = S-(1 - alpha) / (S+ (S- - theta)) with signed S-
    a, th = 0.2, 0.3
    w = torch.randn(6, 6, generator=torch.Generator().manual_seed(1))
    sp, sm = w.clamp(min=0).sum(1).double(), w.clamp(max=0).sum(1).double()
    torch.testing.assert_close(st.condition_iii(w, st.Dynamics(a, th)).per_neuron, sm * (1 - a) / (sp * (sm - th)))


def test_condition_iii_multiplicative_and_input_term():
    v = st.condition_iii(W3, st.Dynamics(0.5, 1.0, "multiplicative"))
    torch.testing.assert_close(v.per_neuron, torch.tensor([0.5, 1.0, 0.25], dtype=torch.float64))
    w_in = torch.tensor([[0.1, -1.0], [0.2, 0.0], [0.0, 0.0]])
    v = st.condition_iii(W3, st.Dynamics(0.5, 1.0, "multiplicative"), w_in=w_in, input_dampening=1.0)
    torch.testing.assert_close(v.per_neuron, torch.tensor([0.4, 0.6, 0.25], dtype=torch.float64))


def test_condition_iii_infeasible_when_the_leak_already_reaches_one():
    v = st.condition_iii(W3, st.Dynamics(1.0, 1.0))
    assert not v.feasible and "leak" in v.reason


def test_condition_iii_bounds_the_largest_jacobian_entry_sum():
    # with gamma_i, the worst case alpha + gamma S+ (1 + theta/|S-|) is exactly 1 for every neuron
    a, th = 0.6, 0.5
    v = st.condition_iii(W3, st.Dynamics(a, th))
    sp, sm = W3.clamp(min=0).sum(1).double(), W3.clamp(max=0).sum(1).abs().double()
    torch.testing.assert_close(a + v.per_neuron * sp * (1 + th / sm), torch.ones(3, dtype=torch.float64))


# -- moments of sigma' under a uniform membrane ----------------------------------------------------------------
def test_uniform_moment_hand_values():
    rect = get("rectangular", dampening=2.0)  # 2 on |v| < 1/2
    assert float(st.uniform_moment(rect, 1, -1.0, 1.0)) == pytest.approx(1.0)
    assert float(st.uniform_moment(rect, 2, -1.0, 1.0)) == pytest.approx(2.0)
    tri = get("triangular")
    assert float(st.uniform_moment(tri, 1, -1.0, 1.0)) == pytest.approx(0.5)
    assert float(st.uniform_moment(tri, 2, -1.0, 1.0)) == pytest.approx(1 / 3)
    assert float(st.uniform_moment(tri, 2, -math.inf, math.inf)) == 0.0
    assert float(st.uniform_moment(tri, 2, 0.5, 0.5)) == pytest.approx(0.25)  # a point: sigma'(0.5)^2


@pytest.mark.parametrize("family", families())
@pytest.mark.parametrize("m", [1, 2])
def test_uniform_moment_matches_quadrature(family, m):
    s = get(family, dampening=0.7, sharpness=1.9)
    lo, hi = -1.3, 2.1
    v = torch.linspace(lo, hi, 400001, dtype=torch.float64)
    numeric = float(torch.trapezoid(s.derivative(v) ** m, v)) / (hi - lo)
    assert float(st.uniform_moment(s, m, lo, hi)) == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_voltage_range_hand_values():
    w_rec = torch.tensor([[0.0, 3.0], [3.0, 0.0]])
    lo, hi = st.voltage_range(w_rec, None, st.Dynamics(0.0, 1.0))  # y in [0 - 1, 3]: v = y - 1 in [-2, 2]
    torch.testing.assert_close(lo, torch.tensor([-2.0, -2.0], dtype=torch.float64))
    torch.testing.assert_close(hi, torch.tensor([2.0, 2.0], dtype=torch.float64))
    w_in = torch.tensor([[1.0, -2.0], [0.0, 0.0]])
    lo, hi = st.voltage_range(None, w_in, st.Dynamics(0.5, 1.0, "multiplicative"), input_max=2.0)
    torch.testing.assert_close(lo, torch.tensor([-8.0 - 1, -1.0], dtype=torch.float64))
    torch.testing.assert_close(hi, torch.tensor([4.0 - 1, -1.0], dtype=torch.float64))
    lo, hi = st.voltage_range(w_rec, None, st.Dynamics(1.0, 1.0))  # integrate-and-fire: unbounded
    assert torch.isinf(lo).all() and torch.isinf(hi).all()


# -- the mean-square gain ------------------------------------------------------------------------------------
HALF_LEAK = st.Dynamics(leak=0.5, threshold=1.0)  # subtract reset
W2 = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
SG1 = torch.tensor([0.2, 0.4])
SG2 = torch.tensor([0.1, 0.3])


@pytest.mark.parametrize(("reset", "grad", "expected"), [
    ("subtract", False, (4 * 0.3 + 0.25 + 0.1 * 1 + 0.25) / 2),  # rows: 1.45, 0.35
    ("subtract", True, (1.2 + 0.25 - 0.2 + 0.1 + 0.1 + 0.25 - 0.4 + 0.3) / 2),  # d = -theta = -1
    ("multiplicative", False, (1.2 + 0.125 + 0.1 + 0.125) / 2),  # quiet 1/2 on the leak
    ("zero", False, 0.5 * (1.45 + 0.35) / 2),  # quiet 1/2 on the whole row
])
def test_mean_square_gain_hand_values(reset, grad, expected):
    g2 = st.mean_square_gain(W2, st.Dynamics(0.5, 1.0, reset, reset_grad=grad), sg1=SG1, sg2=SG2, quiet=0.5)
    assert float(g2) == pytest.approx(expected)


@pytest.mark.parametrize(("reset", "reset_grad"), [("subtract", False), ("subtract", True), ("none", False),
                                                   ("multiplicative", False), ("zero", False)])
def test_data_gain_of_one_sample_is_the_autograd_jacobian(reset, reset_grad):
    """For one membrane sample the data-driven gain is exact: compare with the full autograd Jacobian.
    (Hard resets with a differentiated reset are left out: their reset derivative depends on the membrane value
    and is modelled at v = theta, a documented approximation.)"""
    torch.manual_seed(3)
    layer = sg_testing.RecurrentLIF(5, 4, leak=0.7, threshold=0.4, reset=reset, reset_grad=reset_grad,
                            surrogate="gaussian", weight_scale=2.0)
    y = torch.tensor([0.35, 0.9, 0.1, 0.45])  # two below threshold, two above
    current = torch.randn(4)
    jac = torch.autograd.functional.jacobian(lambda v: layer.step(v, current), y).double()
    measured = math.sqrt(float((jac**2).sum(1).mean()))
    predicted = st.data_gain(layer.surrogate, (y - 0.4)[None], layer.w_rec.weight,
                             st.Dynamics(0.7, 0.4, reset, reset_grad=reset_grad))
    assert predicted == pytest.approx(measured, rel=1e-6)


def test_theory_gain_hand_value_rectangular():
    # alpha = 0, theta = 1, W = [[0, 3], [3, 0]]: v uniform on [-2, 2]; rect(1, beta) has E[sigma'^2] = 1/(4 beta)
    # g^2 = 9 / (4 beta)
    for beta in (2.25, 4.0):
        w = torch.tensor([[0.0, 3.0], [3.0, 0.0]])
        g = st.theory_gain(get("rectangular", sharpness=beta), w, None, st.Dynamics(0.0, 1.0))
        assert g == pytest.approx(math.sqrt(9 / (4 * beta)))


# -- Condition IV ------------------------------------------------------------------------------------------
def test_condition_iv_hand_root_rectangular():
    v = st.condition_iv("rectangular", torch.tensor([[0.0, 3.0], [3.0, 0.0]]), st.Dynamics(0.0, 1.0))
    assert v.feasible and v.value == pytest.approx(9 / 4, rel=1e-6) and v.achieved == pytest.approx(1.0)


def test_condition_iv_infeasible_names_the_knob():
    v = st.condition_iv("rectangular", torch.tensor([[0.0, 0.5], [0.5, 0.0]]), st.Dynamics(0.0, 1.0))
    # max E[sigma'^2] = gamma^2 = 1, g^2 <= 0.25: no sharpness reaches 1
    assert not v.feasible and v.achieved == pytest.approx(0.5, rel=1e-3)
    assert "vanish" in v.reason and "dampening" in v.reason
    assert v.value == pytest.approx(1e-3)


def test_condition_iv_reproduces_the_papers_infeasibility_on_shd_defaults():
    # paper.md 3.7: 700 -> 256, Glorot, alpha ~ 4e-4, theta = 0.01: no root, the reference code returned its bound
    torch.manual_seed(0)
    n, n_in = 256, 700
    w_rec = (torch.rand(n, n) * 2 - 1) * math.sqrt(6 / (2 * n))
    w_rec.fill_diagonal_(0)
    w_in = (torch.rand(n, n_in) * 2 - 1) * math.sqrt(6 / (n + n_in))
    v = st.condition_iv("exponential", w_rec, st.Dynamics(4e-4, 0.01), w_in=w_in)
    assert not v.feasible and v.achieved < 1.0


@pytest.mark.parametrize("family", families())
def test_condition_iv_root_gives_unit_gain_for_every_family(family):
    torch.manual_seed(1)
    w = torch.randn(32, 32) * 0.8
    w.fill_diagonal_(0)
    v = st.condition_iv(family, w, HALF_LEAK)
    assert v.feasible
    assert st.theory_gain(get(family, sharpness=v.value), w, None, HALF_LEAK) == pytest.approx(1.0, abs=1e-6)


def test_condition_iv_tail_of_q_pseudospike():
    torch.manual_seed(2)
    w = torch.randn(16, 16) * 4.0
    w.fill_diagonal_(0)
    v = st.condition_iv("q_pseudospike", w, HALF_LEAK, knob="tail")
    assert v.feasible and 1.0 < v.value < 1e3
    weak = st.condition_iv("q_pseudospike", w / 4, HALF_LEAK, knob="tail")  # gain rises with q but stays < 1
    assert not weak.feasible and "widen the surrogate" in weak.reason
    assert st.theory_gain(get("q_pseudospike", tail=v.value), w, None, HALF_LEAK) == pytest.approx(1.0, abs=1e-6)


# -- depth rule, calibration ---------------------------------------------------------------------------------
def test_depth_dampening_hand_value():
    assert st.depth_dampening([torch.diag(torch.tensor([2.0, 1.0])), 8 * torch.eye(3)]) == pytest.approx(0.25)
    conv = torch.zeros(4, 2, 3, 3)
    conv[0, 0, 1, 1] = 5.0
    assert st.depth_dampening([conv]) == pytest.approx(0.2)


def test_calibrate_hits_unit_measured_gain():
    """Choose beta from recorded membranes, then measure the Jacobian with the new surrogate: g = 1."""
    torch.manual_seed(4)
    layer = sg_testing.RecurrentLIF(200, 128, leak=0.9, threshold=1.0, weight_scale=3.0, input_scale=3.0)
    z = (torch.rand(60, 16, 200) < 0.05).float()
    with torch.no_grad():
        _, membranes = layer(z)
    v = torch.stack(membranes[30:]) - 1.0
    verdict = st.calibrate(layer.surrogate, v, layer.w_rec.weight, st.Dynamics(0.9, 1.0))
    assert verdict.feasible
    layer.surrogate = layer.surrogate.replace(sharpness=verdict.value)
    # Hutchinson estimate with 8 probes over 4 x 16 x 128 rows: a few per cent of noise at most
    assert sg_testing.measured_jacobian_gain(layer, z) == pytest.approx(1.0, rel=0.03)


def test_bptt_growth_per_step_of_a_pure_leak():
    # no recurrent weights, detached reset: dL/dy_t = alpha^(T-1-t) u exactly
    layer = sg_testing.RecurrentLIF(10, 8, leak=0.8, recurrent=False)
    z = (torch.rand(20, 4, 10) < 0.3).float()
    norms = sg_testing.bptt_norms(layer, z)
    assert sg_testing.growth_per_step(norms) == pytest.approx(0.8, rel=1e-5)


# -- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("call", "words"), [
    (lambda: st.condition_i(3, 0.5, 1.0, "soft"), "unknown reset kind"),
    (lambda: st.condition_i(1, 0.5, 1.0), "n_rec must be an integer >= 2"),
    (lambda: st.condition_i(3, 1.5, 1.0), "leak"),
    (lambda: st.condition_iii(torch.zeros(2, 2, 2), HALF_LEAK), "2-D weight matrix"),
    (lambda: st.condition_iv("fast_sigmoid", W2, HALF_LEAK, knob="tail"), "tail of q_pseudospike"),
    (lambda: st.condition_iv("fast_sigmoid", W2, HALF_LEAK, target=-1.0), "target gain"),
    (lambda: st.uniform_moment(get("gaussian"), 2, 1.0, -1.0), "v_min <= v_max"),
    (lambda: st.data_moments(get("gaussian"), torch.zeros(0)), "non-empty"),
    (lambda: st.depth_dampening([]), "at least one weight"),
    (lambda: st.condition_i(3, float("nan"), 1.0), "finite"),
])
def test_bad_input_gets_a_four_part_error(call, words):
    with pytest.raises(sg.ConfigError) as info:
        call()
    text = str(info.value)
    assert words in text and "got:" in text and "allowed:" in text and "fix:" in text


# -- the shared estimators: hand values --------------------------------------------------------------------------
@pytest.mark.parametrize(("norms", "expected"), [
    ([8.0, 4.0, 2.0, 1.0], 2.0),  # second half of 4 non-zero steps: 2 -> 1 over one step
    ([0.0, 0.0, 27.0, 9.0, 3.0, 1.0], 3.0),  # leading zeros (a synaptic delay) are skipped
    ([1.0, 1.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0], 1.0),  # a transient in the first half does not count
    ([5.0, 0.0, 0.0, 1.0], None),  # fewer than 4 non-zero steps
    (None, None),
])
def test_late_growth_hand_values(norms, expected):
    got = st.late_growth(norms)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_hutchinson_is_exact_when_each_input_feeds_one_output():
    """With J = diag(d), ||J^T u||^2 = sum d^2 for every sign vector u: the estimate equals the RMS row norm."""
    d = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    out = d * x

    def vjp(k: int, u: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(out, x, u, retain_graph=True)[0]

    got = st.hutchinson_rms([out], vjp, probes=5, gen=torch.Generator().manual_seed(0))
    assert got == pytest.approx(math.sqrt((0.25 + 4.0 + 9.0) / 3))
    assert st.hutchinson_rms([out], lambda k, u: None, probes=1, gen=torch.Generator()) is None


@pytest.mark.parametrize(("reset", "drive"), [("subtract", 1.5 - 0.5), ("multiplicative", 1.0 - 0.25),
                                              ("zero", 2.0 - 0.5), ("none", 1.0 - 0.5)])
def test_threshold_drive_hand_values_and_condition_i_uses_it(reset, drive):
    # leak 0.5, threshold 2: the drive is (the bracket) * theta; Condition I spreads drive - m over (n - 1) / 2
    assert float(st.threshold_drive(0.5, 2.0, reset)) == pytest.approx(2.0 * drive)
    assert float(st.condition_i(11, 0.5, 2.0, reset, input_current=0.4)) == pytest.approx(2 * (2.0 * drive - 0.4) / 10)


@pytest.mark.parametrize("shape", [(64, 64), (300, 50), (40, 900), (512, 2304)])
def test_spectral_norm_by_lanczos_matches_the_exact_svd(shape):
    from sg_stability.stability._conditions import spectral_norm

    # random matrices: the top singular values crowd at the spectrum's edge, the hard case for iterative methods
    m = torch.randn(*shape, generator=torch.Generator().manual_seed(3)) * 0.1
    exact = float(torch.linalg.matrix_norm(m.double(), ord=2))
    assert spectral_norm(m) == pytest.approx(exact, rel=1e-3)
    assert spectral_norm(m) <= exact * (1 + 1e-5)  # from below: the depth rule's bound is never overstated
    assert spectral_norm(torch.zeros(5, 4)) == 0.0


def test_spectral_norm_of_matrices_with_known_singular_values():
    from sg_stability.stability._conditions import spectral_norm

    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(60, 60, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(90, 60, generator=gen, dtype=torch.float64))
    for top, rel in ((3.0, 1e-5), (1.001, 1e-3)):  # a clear gap, and almost none (the next value is 1.0)
        s = torch.cat([torch.tensor([top]), torch.linspace(1.0, 0.01, 59, dtype=torch.float64)])
        assert spectral_norm((u * s) @ v.T) == pytest.approx(top, rel=rel)
    rank_one = torch.outer(torch.arange(1.0, 5.0), torch.ones(7))  # singular value |a| |b| = sqrt(30) sqrt(7)
    assert spectral_norm(rank_one) == pytest.approx(30 ** 0.5 * 7 ** 0.5, rel=1e-5)
    assert spectral_norm(torch.tensor([[-2.0, 0.0, 0.0]])) == pytest.approx(2.0)


def test_a_remembered_weight_norm_follows_in_place_changes_and_is_forgotten_with_its_weight():
    import gc

    from sg_stability.stability import _checks
    from sg_stability.stability import _conditions as c

    w = torch.nn.Parameter(torch.randn(30, 20, generator=torch.Generator().manual_seed(0)))
    exact = float(torch.linalg.matrix_norm(w.detach().double(), ord=2))
    assert c.weight_norm(w) == pytest.approx(exact, rel=1e-3)
    with torch.no_grad():
        w.mul_(3.0)  # an optimizer step or an initialiser: the version moves, the norm is computed again
    assert c.weight_norm(w) == pytest.approx(3 * exact, rel=1e-3)
    key = ("spectral norm", id(w))
    assert key in _checks._REMEMBERED
    del w
    gc.collect()
    assert key not in _checks._REMEMBERED


def test_a_remembered_weight_value_is_recomputed_when_the_weights_data_is_swapped():
    """``model.to(device)``, ``model.double()`` and ``param.data = x`` keep the Parameter object and its version:
    a value remembered for the old data must not be returned (on a GPU it was a CPU tensor: a device mismatch)."""
    from sg_stability.stability._checks import per_weight

    lin = nn.Linear(6, 5)
    calls = []

    def norm() -> torch.Tensor:
        calls.append(1)
        return lin.weight.detach().double().abs().sum()

    first = per_weight("test abs sum", lin.weight, norm)
    assert per_weight("test abs sum", lin.weight, norm) is first and len(calls) == 1  # remembered
    with torch.no_grad():
        lin.weight.data = 2 * lin.weight.data  # same object, same version, new values
    assert float(per_weight("test abs sum", lin.weight, norm)) == pytest.approx(2 * float(first))
    lin.double()  # same object and version again, another dtype
    per_weight("test abs sum", lin.weight, norm)
    assert len(calls) == 3


def test_analyze_after_swapping_a_weights_data_reports_the_new_weights():
    model, x = shd_networks.tiny("snntorch")
    before = sg.analyze(model, x).layers[0].theory_gain
    with torch.no_grad():
        for p in model.parameters():
            p.data = 3 * p.data
    after = sg.analyze(model, x).layers[0].theory_gain
    fresh, _ = shd_networks.tiny("snntorch")
    fresh.load_state_dict(model.state_dict())
    assert after == pytest.approx(sg.analyze(fresh, x).layers[0].theory_gain) and after != before
