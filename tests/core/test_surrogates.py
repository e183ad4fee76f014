"""The canonical surrogate families: values, conventions, gradients, properties, numerics, memory."""

from __future__ import annotations

import copy
import io
import itertools
import math
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

import sg_stability as sg
from sg_stability.surrogates import Heaviside

S = sg.surrogates
FAMILIES = ["rectangular", "triangular", "exponential", "gaussian", "sigmoid", "fast_sigmoid", "q_pseudospike", "atan"]


def make(family: str, gamma=0.5, beta=2.0, **kw) -> sg.surrogates.Surrogate:
    if family == "q_pseudospike":
        kw.setdefault("tail", 1.5)
    return S.get(family, dampening=gamma, sharpness=beta, **kw)


V = [0.0, 0.1, -0.3, 0.7]
# gamma = 0.5, beta = 2, q = 1.5; computed by hand from the f(u) table of paper.md section 2.
EXPECTED_DERIVATIVE = {
    "rectangular": [0.5, 0.5, 0.0, 0.0],
    "triangular": [0.5, 0.4, 0.2, 0.0],
    "exponential": [0.5, 0.33516002, 0.15059711, 0.030405031],
    "gaussian": [0.5, 0.44095569, 0.16135949, 0.0010587474],
    "sigmoid": [0.5, 0.42781939, 0.15251, 0.0073413326],
    "fast_sigmoid": [0.5, 0.25510204, 0.10330579, 0.034626039],
    "q_pseudospike": [0.5, 0.20704333, 0.079753845, 0.029488596],
    "atan": [0.5, 0.3584784, 0.10981631, 0.024576758],
}
# sigma(v) = (gamma / beta) (1/2 + G_1(beta v)), same parameters.
EXPECTED_PRIMITIVE = {
    "rectangular": [0.125, 0.175, 0.0, 0.25],
    "triangular": [0.125, 0.17, 0.02, 0.25],
    "exponential": [0.125, 0.16620999, 0.037649276, 0.24239874],
    "gaussian": [0.125, 0.17298226, 0.016573412, 0.24994383],
    "sigmoid": [0.125, 0.17249362, 0.020793174, 0.24907894],
    "fast_sigmoid": [0.125, 0.16071429, 0.056818182, 0.21710526],
    "q_pseudospike": [0.125, 0.1568305, 0.067790768, 0.20134382],
    "atan": [0.125, 0.16964154, 0.038814843, 0.23220938],
}
# integral of f^2 (c_f), paper.md section 2 (q = 1.5: (q-1)/(2q-1) = 0.25)
EXPECTED_CF = {
    "rectangular": 1.0, "triangular": 2 / 3, "exponential": 0.5, "gaussian": 1 / math.sqrt(2),
    "sigmoid": 2 / 3, "fast_sigmoid": 1 / 3, "q_pseudospike": 0.25, "atan": 0.5,
}
# half width at half maximum of f (unit shape), solved by hand: f(u) = 1/2
EXPECTED_HWHM_UNIT = {
    "rectangular": 0.5, "triangular": 0.5, "exponential": 0.34657359, "gaussian": 0.46971864,
    "sigmoid": 0.44068679, "fast_sigmoid": 0.20710678, "q_pseudospike": 0.14685026, "atan": 0.31830989,
}


def test_builtin_families_are_the_eight_of_d2():
    assert set(S.families()) >= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_backward_equals_hand_computed_values(family):
    s = make(family)
    x = torch.tensor(V, dtype=torch.float64, requires_grad=True)
    s(x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor(EXPECTED_DERIVATIVE[family], dtype=torch.float64), rtol=1e-7, atol=1e-9)
    x32 = torch.tensor(V, requires_grad=True)
    s(x32).sum().backward()
    assert torch.allclose(x32.grad, torch.tensor(EXPECTED_DERIVATIVE[family]), rtol=1e-5, atol=1e-7)
    assert torch.allclose(s.derivative(torch.tensor(V, dtype=torch.float64)),
                          torch.tensor(EXPECTED_DERIVATIVE[family], dtype=torch.float64), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_primitive_equals_hand_computed_values(family):
    s = make(family)
    got = s.primitive(torch.tensor(V, dtype=torch.float64))
    assert torch.allclose(got, torch.tensor(EXPECTED_PRIMITIVE[family], dtype=torch.float64), rtol=1e-7, atol=1e-9)
    smooth = make(family, spiking=False)
    assert torch.allclose(smooth(torch.tensor(V, dtype=torch.float64)), got)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("heaviside", "reference"),
    [
        (Heaviside(inclusive=False, float32=True), lambda x: (x > 0).float()),  # snnTorch
        (Heaviside(inclusive=False, float32=False), lambda x: (x > 0).to(x.dtype)),  # Norse
        (Heaviside(inclusive=True, float32=False), lambda x: (x >= 0).to(x.dtype)),  # SpikingJelly
    ],
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_forward_is_exactly_the_framework_heaviside(family, heaviside, reference, dtype):
    x = torch.tensor([-1.0, -1e-30, -0.0, 0.0, 1e-30, 1e-3, 2.0, float("inf"), float("-inf")], dtype=dtype)
    out = make(family, heaviside=heaviside)(x)
    want = reference(x)
    assert out.dtype == want.dtype
    assert torch.equal(out, want)


def _kink_free(family: str, beta: float, n: int = 7) -> torch.Tensor:
    # points where the primitive is smooth: away from |beta v| = 1/2 (rect) and v = 0, |beta v| = 1 (tri)
    u = torch.tensor([-1.7, -0.81, -0.33, 0.21, 0.37, 0.63, 1.4][:n], dtype=torch.float64)
    return u / beta


@pytest.mark.parametrize("family", FAMILIES)
def test_gradcheck_primitive_with_learnable_parameters(family):
    """Smooth mode: forward is the primitive, backward our derivative and our dsigma/dgamma, dsigma/dbeta."""
    x = _kink_free(family, 2.0).requires_grad_(True)
    gamma = torch.full((7,), 0.5, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)

    def f(x, g, b):
        return make(family, gamma=g, beta=b, spiking=False)(x)

    assert torch.autograd.gradcheck(f, (x, gamma, beta))


@pytest.mark.parametrize("family", ["atan", "fast_sigmoid", "gaussian"])
def test_spiking_parameter_gradients_are_those_of_an_independent_primitive(family):
    """In spiking mode the gradients for gamma and beta equal those of sigma(v) written out here."""
    prim = {
        "atan": lambda x, g, b: g / b * (0.5 + torch.atan(math.pi * b * x) / math.pi),
        "fast_sigmoid": lambda x, g, b: g / b * (0.5 + b * x / (1 + 2 * (b * x).abs())),
        "gaussian": lambda x, g, b: g / b * (0.5 + 0.5 * torch.erf(math.sqrt(math.pi) * b * x)),
    }[family]
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    gamma = torch.nn.Parameter(torch.tensor([0.3, 0.7, 1.1, 0.5, 0.9, 0.2, 0.4, 0.6, 0.8], dtype=torch.float64))
    beta = torch.nn.Parameter(torch.tensor(1.3, dtype=torch.float64))
    weights = torch.arange(1.0, 10.0, dtype=torch.float64)
    (make(family, gamma=gamma, beta=beta)(x) * weights).sum().backward()
    g_ref, b_ref = gamma.detach().clone().requires_grad_(), beta.detach().clone().requires_grad_()
    (prim(x, g_ref, b_ref) * weights).sum().backward()
    assert torch.allclose(gamma.grad, g_ref.grad, rtol=1e-10)
    assert torch.allclose(beta.grad, b_ref.grad, rtol=1e-10)


family_and_params = st.sampled_from(FAMILIES).flatmap(
    lambda fam: st.tuples(
        st.just(fam),
        st.floats(0.05, 5.0),
        st.floats(0.05, 10.0),
        st.floats(1.1, 20.0) if fam == "q_pseudospike" else st.just(2.0),
    )
)


def _surrogate(fam, gamma, beta, tail):
    kw = {"tail": tail} if fam == "q_pseudospike" else {}
    return S.get(fam, dampening=gamma, sharpness=beta, **kw)


@settings(max_examples=60, deadline=None)
@given(family_and_params, st.lists(st.floats(-50, 50), min_size=1, max_size=20))
def test_shape_is_nonnegative_symmetric_with_peak_gamma(params, points):
    s = _surrogate(*params)
    v = torch.tensor(points, dtype=torch.float64)
    d = s.derivative(v)
    assert (d >= 0).all()
    assert torch.equal(d, s.derivative(-v))
    assert (d <= s.dampening * (1 + 1e-12)).all()
    assert s.derivative(torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(s.dampening, rel=1e-12)


def _quad(fn, breakpoints=()):
    """Integral over the real line, split at kinks, by adaptive quadrature (independent of our CDFs)."""
    pts = sorted({0.0, *breakpoints, *(-b for b in breakpoints)})
    total = integrate.quad(fn, -math.inf, pts[0], limit=400)[0] + integrate.quad(fn, pts[-1], math.inf, limit=400)[0]
    for a, b in itertools.pairwise(pts):
        total += integrate.quad(fn, a, b, limit=400)[0]
    return total


@settings(max_examples=40, deadline=None)
@given(family_and_params)
def test_area_is_gamma_over_beta(params):
    s = _surrogate(*params)
    fam, gamma, beta, _ = params
    kinks = {"rectangular": (0.5 / beta,), "triangular": (1 / beta,)}.get(fam, ())

    def d(v: float) -> float:
        return s.derivative(torch.tensor(v, dtype=torch.float64)).item()

    assert _quad(d, kinks) == pytest.approx(gamma / beta, rel=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("m", [1, 2, 3])
def test_moments_match_quadrature(family, m):
    s = make(family)
    for u in [0.05, 0.3, 0.5, 1.2, 4.0]:
        want = integrate.quad(lambda t: s.unit_shape(torch.tensor(t, dtype=torch.float64)).item() ** m, 0, u,
                              points=[p for p in (0.5, 1.0) if p < u] or None, limit=200)[0]
        assert s.moment(u, m).item() == pytest.approx(want, rel=1e-7, abs=1e-12)
        assert s.moment(-u, m).item() == pytest.approx(-want, rel=1e-7, abs=1e-12)  # odd


@pytest.mark.parametrize("family", FAMILIES)
def test_squared_integral_and_description(family):
    s = make(family)  # gamma 0.5, beta 2
    assert s.squared_integral() == pytest.approx(EXPECTED_CF[family], rel=1e-12)
    d = s.describe()
    assert d.family == family
    assert d.peak == 0.5
    assert d.area == pytest.approx(0.25)
    assert d.hwhm == pytest.approx(EXPECTED_HWHM_UNIT[family] / 2.0, rel=1e-7)
    if family != "rectangular":  # a boxcar's half maximum sits on its edge
        at = s.derivative(torch.tensor(d.hwhm, dtype=torch.float64)).item()
        assert at == pytest.approx(0.25, rel=1e-6)


EXTREMES = [0.0, 1e-30, -1e-30, 1e-5, -3.0, 1.0, 300.0, -7e4, 1e30, -1e30]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("tensor_params", [False, True])
def test_finite_everywhere(family, dtype, tensor_params):
    x = torch.tensor(EXTREMES, dtype=dtype)  # 1e30 becomes inf in float16: covered too
    gamma, beta = (torch.full((len(EXTREMES),), 0.5, dtype=dtype), torch.tensor(3.0, dtype=dtype)) \
        if tensor_params else (0.5, 3.0)
    for spiking in (True, False):
        s = make(family, gamma=gamma, beta=beta, spiking=spiking)
        xi = x.clone().requires_grad_(True)
        out = s(xi)
        out.sum().backward()
        assert torch.isfinite(out).all()
        assert torch.isfinite(xi.grad).all()
        assert xi.grad.dtype == dtype
    assert torch.isfinite(s.derivative(x)).all()
    assert torch.isfinite(s.primitive(x)).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_learnable_parameter_gradients_are_finite_for_extreme_inputs(family):
    x = torch.tensor(EXTREMES + [float("inf"), float("-inf")])
    gamma = torch.nn.Parameter(torch.tensor(0.5))
    beta = torch.nn.Parameter(torch.tensor(2.0))
    make(family, gamma=gamma, beta=beta)(x).sum().backward()
    assert torch.isfinite(gamma.grad).all() and torch.isfinite(beta.grad).all()


def test_per_neuron_parameters_equal_per_column_scalars():
    gamma = torch.tensor([0.2, 0.5, 1.0])
    beta = torch.tensor([1.0, 2.0, 4.0])
    x = torch.randn(5, 3, dtype=torch.float32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    S.ATan(gamma, beta)(x).sum().backward()
    for j in range(3):
        xj = x.detach()[:, j].clone().requires_grad_(True)
        S.ATan(gamma[j].item(), beta[j].item())(xj).sum().backward()
        assert torch.allclose(x.grad[:, j], xj.grad, rtol=1e-6)


def test_per_neuron_parameter_of_wrong_shape_fails_at_forward_with_shapes():
    s = S.FastSigmoid(dampening=torch.full((4,), 0.5))
    with pytest.raises(sg.ConfigError) as e:
        s(torch.zeros(2, 3))
    msg = str(e.value)
    assert "(4,)" in msg and "(2, 3)" in msg and "fix:" in msg


def _saved_bytes(fn) -> list[tuple[torch.dtype, int]]:
    saved = []

    def pack(t):
        saved.append((t.dtype, t.numel() * t.element_size()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return saved


@pytest.mark.parametrize("family", FAMILIES)
def test_backward_saves_only_the_input(family):
    x = torch.randn(1000, requires_grad=True)
    saved = _saved_bytes(lambda: make(family)(x * 1.0))
    # x * 1.0 saves nothing (scalar multiply); the surrogate saves one tensor the size of x at most
    assert len(saved) == 1
    dtype, nbytes = saved[0]
    if family == "rectangular":
        assert dtype == torch.bool and nbytes == 1000  # only the mask the backward needs
    else:
        assert nbytes == 4000


def test_rectangular_lean_mask_gives_the_same_gradient():
    x = torch.linspace(-1, 1, 101, dtype=torch.float64, requires_grad=True)
    S.Rectangular(0.7, 1.5)(x).sum().backward()
    want = (x.detach().abs() < 0.5 / 1.5).double() * 0.7
    assert torch.equal(x.grad, want)


@pytest.mark.parametrize("family", FAMILIES)
def test_pickle_deepcopy_and_replace(family):
    s = make(family)
    for clone in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert type(clone) is type(s) and clone.params() == s.params()
    buf = io.BytesIO()
    torch.save(s, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=False).params() == s.params()
    p = torch.nn.Parameter(torch.tensor(0.5))
    learnable = make(family, gamma=p)
    assert learnable.replace(heaviside=Heaviside(True)).dampening is p  # shared, so an optimizer keeps it
    assert repr(s).startswith(type(s).__name__ + "(")


def test_tensor_parameters_are_not_in_state_dict_but_move_with_to():
    s = S.ATan(dampening=torch.tensor([0.5, 0.6]))
    assert list(s.state_dict()) == []
    assert s.double().dampening.dtype == torch.float64
    learnable = S.ATan(dampening=torch.nn.Parameter(torch.tensor(0.5)))
    assert list(learnable.state_dict()) == ["dampening"]


def test_setting_a_parameter_validates_and_reregisters():
    s = S.ATan(0.5, 1.0)
    s.sharpness = torch.tensor([1.0, 2.0])
    assert "sharpness" in s._buffers and "sharpness" not in s.__dict__
    s.sharpness = 3.0
    assert "sharpness" not in s._buffers and s.sharpness == 3.0
    with pytest.raises(sg.ConfigError):
        s.dampening = -1.0


def test_fast_sigmoid_is_q_pseudospike_at_q2_and_q_large_approaches_exponential():
    v = torch.linspace(-3, 3, 61, dtype=torch.float64)
    assert torch.allclose(S.FastSigmoid(0.7, 1.3).derivative(v), S.QPseudoSpike(0.7, 1.3, tail=2.0).derivative(v))
    assert torch.allclose(S.QPseudoSpike(1, 1, tail=1e6).derivative(v), S.Exponential(1, 1).derivative(v), atol=1e-5)


def test_names_aliases_and_instances():
    assert type(S.get("ArcTan")) is S.ATan
    assert type(S.get("FastSigmoid")) is S.FastSigmoid
    assert type(S.get("q-pseudospike", tail=1.3)) is S.QPseudoSpike
    inst = S.ATan()
    assert S.get(inst) is inst


def test_surrogate_is_usable_as_a_plain_snntorch_spike_grad():
    snn = pytest.importorskip("snntorch")
    lif = snn.Leaky(beta=0.5, spike_grad=S.FastSigmoid(0.3, 0.5, heaviside=Heaviside(float32=True)))
    x = torch.tensor([1.3], requires_grad=True)
    spk, _ = lif(x, lif.reset_mem())
    spk.sum().backward()
    assert x.grad.item() == pytest.approx(0.177515, abs=1e-6)  # 0.3 / (1 + 0.3)^2
