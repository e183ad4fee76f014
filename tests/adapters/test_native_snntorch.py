"""from_native on every snnTorch surrogate factory: converted shapes equal snnTorch's own backward."""

from __future__ import annotations

import pytest
import torch

import sg_stability as sg

snn = pytest.importorskip("snntorch")
surrogate = snn.surrogate


def native_gradient(fn, v: torch.Tensor) -> torch.Tensor:
    x = v.clone().requires_grad_(True)
    fn(x).sum().backward()
    return x.grad


V = torch.linspace(-3, 3, 241)


@pytest.mark.parametrize(
    ("factory", "kwargs", "family"),
    [
        ("atan", {}, "atan"),
        ("atan", {"alpha": 5.0}, "atan"),
        ("atan", {"alpha": 0.7}, "atan"),
        ("fast_sigmoid", {}, "fast_sigmoid"),
        ("fast_sigmoid", {"slope": 3}, "fast_sigmoid"),
        ("sigmoid", {}, "sigmoid"),
        ("sigmoid", {"slope": 4}, "sigmoid"),
    ],
)
def test_converted_surrogate_has_snntorch_backward(factory, kwargs, family):
    native = getattr(surrogate, factory)(**kwargs)
    canonical = sg.from_native(native)
    assert canonical.family == family
    want = native_gradient(native, V)
    assert torch.allclose(canonical.derivative(V.double()).float(), want, rtol=1e-5, atol=1e-7)


def test_leaky_parallel_default_reads_as_atan_alpha_2():
    lp = snn.LeakyParallel(input_size=3, hidden_size=4)
    canonical = sg.from_native(lp.spike_grad)
    assert canonical.params() == {"dampening": 1.0, "sharpness": 1.0}
    assert torch.allclose(canonical.derivative(V.double()).float(), native_gradient(lp.spike_grad, V), rtol=1e-5)


# anchors.md section 1c (computed there from each framework's own formula; v = mem - threshold)
ANCHORS = [
    (lambda: surrogate.atan(alpha=2.0), 1.00, 0.318, 0.99),
    (lambda: surrogate.fast_sigmoid(slope=25), 1.00, 0.0166, 0.08),
    (lambda: surrogate.sigmoid(slope=25), 6.25, 0.070, 1.0),
]


@pytest.mark.parametrize(("make", "peak", "hwhm", "area"), ANCHORS)
def test_description_matches_the_anchor_table(make, peak, hwhm, area):
    d = sg.from_native(make()).describe()
    assert d.peak == pytest.approx(peak, abs=0.005)
    assert d.hwhm == pytest.approx(hwhm, rel=0.01)
    # the table integrated numerically over a finite window, so its areas are rounded down by <= 0.01
    assert d.area == pytest.approx(area, abs=0.011)


def test_converted_sigmoid_stays_finite_where_the_native_formula_overflows():
    canonical = sg.from_native(surrogate.sigmoid(slope=25))
    far = torch.tensor([-10.0, -100.0, 1e6])
    assert torch.isfinite(canonical.derivative(far)).all()


@pytest.mark.parametrize(
    ("make", "keyword"),
    [
        (lambda: surrogate.triangular(), "sign flip"),
        (lambda: surrogate.straight_through_estimator(), "not integrable"),
        (lambda: surrogate.heaviside(), "one-sided"),
        (lambda: surrogate.spike_rate_escape(), "v = 1"),
        (lambda: surrogate.SSO(), "random"),
        (lambda: surrogate.LSO(), "broken"),
        (lambda: surrogate.SFS(), "zero for v <= B"),
        (lambda: surrogate.custom_surrogate(lambda i, g, o: g), "user-defined"),
        (lambda: snn.Leaky(beta=0.5, surrogate_disable=True).spike_grad, "no gradient"),
    ],
)
def test_not_convertible_says_exactly_why(make, keyword):
    obj = make()
    with pytest.raises(sg.NotConvertibleError) as e:
        sg.from_native(obj)
    assert keyword in e.value.reason
    msg = str(e.value)
    assert "got:" in msg and "allowed:" in msg and "fix:" in msg
    reading = sg.plugins.read_native(obj)
    assert reading.surrogate is None and reading.reason == e.value.reason


def test_unknown_objects_are_not_claimed():
    with pytest.raises(sg.NotConvertibleError, match="no loaded adapter recognises"):
        sg.from_native(torch.sigmoid)


def test_our_own_surrogate_reads_as_itself():
    s = sg.surrogates.Gaussian(0.2, 3.0)
    assert sg.from_native(s) is s
