"""Property-based fuzz of every surrogate family over its whole accepted parameter range (``sg.surrogates.RANGES``)
and every floating dtype, on inputs that include 0, subnormals, +-1e30, +-max, +-inf and NaN.

The reference is written here from the definitions (``dampening * f(sharpness * v)`` and the closed-form
primitives), evaluated element by element with Python's ``math`` in double precision, independent of the package.
Profiles (tests/conftest.py): the default replays the same examples on every run, so CI cannot meet a new one
by chance; ``HYPOTHESIS_PROFILE=wide`` tries 3,000 fresh random cases per test to look for new ones.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import sg_stability as sg
from sg_stability.surrogates import RANGES

FAMILIES = ("rectangular", "triangular", "exponential", "gaussian", "sigmoid", "fast_sigmoid", "q_pseudospike",
            "atan")
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _unit(family: str, u: float, q: float) -> float:
    """f(u), f(0) = 1, unit area -- the textbook forms, written so that no intermediate raises in Python."""
    a = abs(u)
    if family == "rectangular":
        return 1.0 if a < 0.5 else 0.0
    if family == "triangular":
        return max(0.0, 1.0 - a)
    if family == "exponential":
        return math.exp(-2.0 * a)
    if family == "gaussian":
        return math.exp(-math.pi * a * a) if a < 1e150 else 0.0
    if family == "sigmoid":
        e = math.exp(-4.0 * a)
        return 4.0 * e / ((1.0 + e) * (1.0 + e))
    if family == "fast_sigmoid":
        r = 1.0 / (1.0 + 2.0 * a)
        return r * r
    if family == "q_pseudospike":
        return math.exp(-q * math.log1p(2.0 * a / (q - 1.0)))
    w = math.pi * a  # atan
    return 1.0 / (1.0 + w * w) if w < 1e150 else (1.0 / w) / w  # 1/w^2 stays normal up to w ~ 1e154


def _lower(family: str, a: float, q: float) -> float:
    """Phi(-a) for a >= 0: the area of f below -a (closed forms, small where Phi is small)."""
    if family == "rectangular":
        return max(0.5 - a, 0.0)
    if family == "triangular":
        return (1.0 - min(a, 1.0)) ** 2 / 2.0
    if family == "exponential":
        return math.exp(-2.0 * a) / 2.0
    if family == "gaussian":
        return math.erfc(math.sqrt(math.pi) * a) / 2.0
    if family == "sigmoid":
        return 1.0 / (1.0 + math.exp(4.0 * a)) if a < 100 else math.exp(-4.0 * a)
    if family == "fast_sigmoid":
        return 0.5 / (1.0 + 2.0 * a)
    if family == "q_pseudospike":
        return math.exp((1.0 - q) * math.log1p(2.0 * a / (q - 1.0))) / 2.0
    return math.atan2(1.0, math.pi * a) / math.pi  # atan: 1/2 - atan(pi a)/pi


def _cdf(family: str, u: float, q: float) -> float:
    """Phi(u) = integral of f up to u."""
    low = _lower(family, abs(u), q)
    return low if u < 0 else 1.0 - low


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log(lo), math.log(hi)).map(math.exp).filter(lambda v: lo <= v <= hi)


def _params(family: str) -> st.SearchStrategy[tuple[float, float, float]]:
    tails = _log_uniform(1.0 + 1e-9, RANGES["tail"][1]) if family == "q_pseudospike" else st.just(2.0)
    edges_g = st.sampled_from(RANGES["dampening"])
    edges_b = st.sampled_from(RANGES["sharpness"])
    return st.tuples(st.one_of(edges_g, _log_uniform(*RANGES["dampening"])),
                     st.one_of(edges_b, _log_uniform(*RANGES["sharpness"])), tails)


def _special(dtype: torch.dtype) -> list[float]:
    info = torch.finfo(dtype)
    return [0.0, -0.0, info.smallest_normal, -info.smallest_normal, float(info.smallest_normal) / 4, 1e-30, -1e-30,
            1e30, -1e30, info.max, -info.max, math.inf, -math.inf, math.nan, 1.0, -0.3]


def _inputs(dtype: torch.dtype) -> st.SearchStrategy[list[float]]:
    return st.lists(st.one_of(st.sampled_from(_special(dtype)), st.floats(-1e3, 1e3), st.floats(-1e-3, 1e-3),
                              st.floats(allow_nan=False)), min_size=1, max_size=24)


def _make(family: str, gamma: object, beta: object, tail: float) -> sg.surrogates.Surrogate:
    kw = {"tail": tail} if family == "q_pseudospike" else {}
    return sg.surrogates.get(family, dampening=gamma, sharpness=beta, **kw)


def _tolerance(dtype: torch.dtype, gamma: float) -> tuple[float, float]:
    """(rtol, atol) of one rounding to ``dtype`` after float32 (float64 for float64) arithmetic: f in [0, 1] is
    computed there, so values of f below that dtype's smallest normal number are only good to it (times gamma)."""
    info = torch.finfo(dtype)
    compute = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32)
    rtol = max(4 * info.eps, 1e-5) if dtype != torch.float64 else 1e-9
    return rtol, max(float(info.smallest_normal), gamma * float(compute.smallest_normal))


def _check_backward(family: str, gamma: float, beta: float, tail: float, dtype: torch.dtype,
                    values: list[float], per_neuron: bool) -> None:
    x = torch.tensor(values, dtype=torch.float64).to(dtype).requires_grad_()
    if per_neuron:  # tensor parameters take the general (non-fused) path
        s = _make(family, torch.full((len(values),), gamma), torch.full((len(values),), beta), tail)
    else:
        s = _make(family, gamma, beta, tail)
    y = s(x)
    assert y.dtype == dtype
    y.backward(torch.ones_like(y))
    got = x.grad.double()
    rtol, atol = _tolerance(dtype, gamma)
    g32, b32 = (float(torch.tensor(gamma)), float(torch.tensor(beta))) if per_neuron else (gamma, beta)
    for xv, gv in zip(x.detach().double().tolist(), got.tolist(), strict=True):
        if math.isnan(xv):
            # the forward spike of NaN is 0 (every convention compares v with 0); the gradient is NaN or 0
            assert math.isnan(gv) or gv == 0.0, f"NaN input gave the gradient {gv}"
            continue
        u = b32 * xv if math.isfinite(xv) else math.copysign(math.inf, xv)
        exact = g32 * _unit(family, u, tail)
        assert math.isfinite(gv), f"{family} {dtype} gamma={gamma} beta={beta} q={tail}: gradient {gv} at x={xv}"
        want = float(torch.tensor(exact, dtype=torch.float64).to(dtype))  # the exact value rounded to the dtype
        # beta * x is formed in floating point: f may move by as much as a few roundings of u move it (near a
        # kink of the triangle, at the box edge, far in a steep tail)
        h = 4 * float(torch.finfo(dtype if dtype in (torch.float32, torch.float64) else torch.float32).eps)
        if math.isfinite(u):
            conditioning = max(abs(_unit(family, u * (1 + h), tail) - _unit(family, u, tail)),
                               abs(_unit(family, u * (1 - h), tail) - _unit(family, u, tail)))
        else:
            conditioning = 0.0
        assert abs(gv - want) <= atol + rtol * abs(want) + rtol * abs(exact) + g32 * conditioning, \
            f"{family} {dtype} gamma={gamma} beta={beta} q={tail}: at x={xv} got {gv}, want {want}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_a_half_membrane_just_inside_the_box_gets_the_full_gradient(dtype):
    # found by the fuzz below: 0.5 * 0.99994 = 0.49997 is inside the box, but rounds to 0.5 in half precision
    _check_backward("rectangular", 1.0, 0.9999389667063573, 2.0, dtype, [0.5], per_neuron=False)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_backward_is_finite_and_matches_the_definition(family, dtype):
    @given(_params(family), _inputs(dtype), st.booleans())
    def check(params, values, per_neuron):
        gamma, beta, tail = params
        _check_backward(family, gamma, beta, tail, dtype, values, per_neuron)

    check()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_learnable_parameter_gradients_match_closed_forms(family, dtype):
    """d/dgamma and d/dbeta of the primitive sigma = (gamma/beta) Phi(beta x), the gradients a learnable surrogate
    defines, against the closed-form Phi above: finite everywhere in the accepted range, equal within rounding."""

    @given(_params(family), st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=16))
    def check(params, values):
        gamma, beta, tail = params
        g = torch.nn.Parameter(torch.tensor(gamma, dtype=dtype))
        b = torch.nn.Parameter(torch.tensor(beta, dtype=dtype))
        gv, bv = g.item(), b.item()
        assume(RANGES["dampening"][0] <= gv <= RANGES["dampening"][1])  # float32 rounding at the range edges
        assume(RANGES["sharpness"][0] <= bv <= RANGES["sharpness"][1])
        x = torch.tensor(values, dtype=dtype)
        s = _make(family, g, b, tail)
        s(x).sum().backward()
        want_g = want_b = scale_b = 0.0
        for xv in x.double().tolist():
            u = bv * xv
            want_g += _cdf(family, u, tail) / bv
            term = gv * xv * _unit(family, u, tail) / bv - gv * _cdf(family, u, tail) / (bv * bv)
            want_b += term
            scale_b += abs(gv * xv * _unit(family, u, tail) / bv) + abs(gv * _cdf(family, u, tail) / (bv * bv))
        rtol = 1e-9 if dtype == torch.float64 else 2e-4
        floor = 4 * gv * float(torch.finfo(dtype).smallest_normal) / min(bv, 1.0) ** 2  # f, Phi below it: subnormal
        assert math.isfinite(g.grad.item()) and math.isfinite(b.grad.item())
        assert g.grad.item() == pytest.approx(want_g, rel=rtol, abs=rtol * len(values) / bv + floor)
        # beta's gradient is a difference of two terms: compare relative to their size
        assert abs(b.grad.item() - want_b) <= rtol * 4 * scale_b + floor * len(values)

    check()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("name", "value"), [("dampening", 1e-9), ("dampening", 2e4), ("sharpness", 1e-9),
                                             ("sharpness", 2e8), ("dampening", 1e300), ("sharpness", 10**400)])
def test_parameters_outside_the_range_are_rejected_at_construction(family, name, value):
    with pytest.raises(sg.ConfigError) as e:
        _make(family, **{"gamma": 1.0, "beta": 1.0, **({"gamma": value} if name == "dampening" else {"beta": value})},
              tail=2.0)
    msg = str(e.value)
    assert name in msg and "got:" in msg and "allowed:" in msg and "fix:" in msg


@pytest.mark.parametrize("tail", [1.0, 1e7, math.inf, math.nan, 10**400])
def test_tail_outside_the_range_is_rejected(tail):
    with pytest.raises(sg.ConfigError, match="tail q"):
        sg.surrogates.QPseudoSpike(tail=tail)
