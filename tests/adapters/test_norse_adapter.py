"""The Norse adapter: every cell, layer and encoder with a surrogate method; Norse's globals untouched."""

from __future__ import annotations

import copy
import math
import sys
import warnings

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.testing import SurrogateProbe, module_fingerprint, verify_patch
from tests.compile_check import assert_compiled_gradients_equal

pytest.importorskip("norse")
import sg_stability.adapters.norse as norse_adapter

from tests.zoo.norse_models import CellNet, H, LayerNet, T, cells, layers, nt, sample_input

norse = nt()
FAMILIES = ["rectangular", "triangular", "exponential", "gaussian", "sigmoid", "fast_sigmoid", "q_pseudospike", "atan"]
CELLS, LAYERS = list(cells()), list(layers())


def family_for(i: int) -> str:
    return FAMILIES[i % len(FAMILIES)]


@pytest.mark.parametrize("name", CELLS)
def test_conformance_every_cell(name):
    torch.manual_seed(0)
    # CobaLIFCell passes no gradient to its input (Norse behaviour), so it sits alone after its Linear
    model = CellNet(cells()[name], depth=1 if name == "CobaLIFCell" else 2)
    x = sample_input()
    assert verify_patch(model, lambda m: m(x), family_for(CELLS.index(name)), dampening=0.8).ok


@pytest.mark.parametrize("name", LAYERS)
def test_conformance_every_layer(name):
    torch.manual_seed(0)
    x = sample_input()
    assert verify_patch(LayerNet(layers()[name]), lambda m: m(x), family_for(LAYERS.index(name) + 3)).ok


@pytest.mark.parametrize("make", [lambda: norse.ConstantCurrentLIFEncoder(T), lambda: norse.SpikeLatencyLIFEncoder(T)],
                         ids=["ConstantCurrentLIFEncoder", "SpikeLatencyLIFEncoder"])
def test_conformance_lif_encoders(make):
    fc = nn.Linear(F := 4, F)
    model = nn.Sequential(fc, make())
    x = torch.rand(3, F, generator=torch.Generator().manual_seed(0)) * 40
    assert verify_patch(model, lambda m: m(x), "gaussian").ok


def test_hand_computed_gradients_on_a_real_lif_cell():
    """frameworks.md 4.3: LIFCell, v0 = v_leak = 0, dt = 1e-3, tau_mem_inv = 100: v = 0.1 x after one step
    (with i0 = x); dz/dx = 0.1 * sigma'(0.1 x - 1), sigma' = 0.3 / (1 + |v|)^2 (fast_sigmoid, beta = 1/2)."""
    cell = norse.LIFCell()
    sg.patch(cell, "fast_sigmoid", dampening=0.3, sharpness=0.5)
    for x_value, expected in [(13.0, 0.017751), (5.0, 0.013333)]:
        x = torch.tensor([x_value], requires_grad=True)
        state = norse.LIFFeedForwardState(v=torch.zeros(1), i=x)
        z, _ = cell(torch.zeros(1), state)
        z.sum().backward()
        assert x.grad.item() == pytest.approx(expected, abs=1e-6)


def _norse_snapshot():
    return {name: (mod, dict(vars(mod))) for name, mod in sys.modules.items() if name.startswith("norse")}


def test_norse_module_globals_are_never_touched():
    model = LayerNet(layers()["LIFRecurrent"])
    x = sample_input()
    model(x)  # first forward: lazy imports happen before the snapshot
    before = _norse_snapshot()
    with sg.patch(model, "atan"):
        model(x).sum().backward()
        during = _norse_snapshot()
    after = _norse_snapshot()
    for snap in (during, after):
        assert snap.keys() == before.keys()
        for name, (mod, values) in before.items():
            assert snap[name][0] is mod
            assert all(snap[name][1].get(k) is v for k, v in values.items()), name
    # and an unpatched model still runs Norse's own threshold
    other = norse.LIFCell()
    assert other.activation.__globals__["threshold"] is sys.modules["norse.torch.functional.threshold"].threshold


def test_a_path_that_escaped_the_patch_would_fail_loudly():
    """The marker method is unknown to Norse's own threshold: no silent fallback to another surrogate."""
    cell = norse.LIFCell()
    sg.patch(cell, "atan")
    from norse.torch.functional.lif import lif_feed_forward_step

    with pytest.raises(ValueError, match="sg_stability"):
        lif_feed_forward_step(torch.ones(2), cell.state_fallback(torch.ones(2)), cell.p)


def test_adjoint_modules_are_reported():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cell = norse.LIFCell(p=norse.LIFParameters(method="adjoint"))
    model = nn.Sequential(nn.Linear(2, 2), cell)
    fp = module_fingerprint(model)
    with pytest.raises(sg.PreflightError) as e:
        sg.patch(model, "atan")
    msg = str(e.value)
    assert "method='adjoint'" in msg and "method='super'" in msg and "norse.LIFCell" in msg
    assert module_fingerprint(model) == fp


def test_recurrent_autapse_hook_still_works():
    cell = norse.LIFRecurrentCell(H, H)
    sg.patch(cell, "gaussian")
    x = sample_input()
    state, outs = None, []
    for x_t in nn.Linear(4, H)(x):
        z, state = cell(x_t, state)
        outs.append(z)
    torch.stack(outs).sum().backward()
    assert torch.all(torch.diagonal(cell.recurrent_weights.grad) == 0)
    assert cell.recurrent_weights.grad.abs().sum() > 0


def test_deepcopy_uses_the_copy_surrogate():
    model = CellNet(cells()["LIFCell"])
    sg.patch(model, "fast_sigmoid", dampening=0.5)
    clone = copy.deepcopy(model)
    cell = clone.cells[0]
    assert cell.p.alpha is cell.sg_surrogate and cell.sg_surrogate is not model.cells[0].sg_surrogate
    probe = SurrogateProbe({"copy": cell.sg_surrogate, "original": model.cells[0].sg_surrogate})
    clone(sample_input()).sum().backward()
    probe.close()
    assert probe.calls["copy"] == T and probe.calls["original"] == 0


def test_learnable_per_neuron_parameters_reach_the_optimizer():
    model = CellNet(cells()["LIFCell"], depth=1)
    gamma = nn.Parameter(torch.full((H,), 0.5))
    sg.patch(model, "atan", dampening=gamma)
    assert any(p is gamma for p in model.parameters())
    model(sample_input()).sum().backward()
    assert gamma.grad is not None and gamma.grad.abs().sum() > 0


@pytest.mark.slow
def test_torch_compile_gives_the_eager_gradients():
    torch.manual_seed(0)
    model = LayerNet(layers()["LIF"])
    sg.patch(model, "atan", dampening=0.7)
    x = sample_input()
    assert_compiled_gradients_equal(model, lambda m: m(x).sum())


# -- reading Norse's methods -------------------------------------------------------------------------------

def norse_gradient(method, alpha, v):
    from norse.torch.functional.threshold import threshold

    x = v.clone().requires_grad_(True)
    threshold(x, method, alpha).sum().backward()
    return x.grad


@pytest.mark.parametrize(("method", "alpha"), [("super", 100.0), ("super", 3.0), ("triangle", 0.3), ("triangle", 2.0),
                                               ("tanh", 2.0), ("tanh", 0.7), ("heavi_erfc", 1.0), ("heavi_erfc", 3.0)])
def test_from_native_matches_norse_backward(method, alpha):
    canonical = sg.from_native(norse.LIFParameters(method=method, alpha=torch.as_tensor(alpha)))
    v = torch.linspace(-2.93, 2.93, 117)
    assert torch.allclose(canonical.derivative(v.double()).float(), norse_gradient(method, alpha, v), rtol=1e-5,
                          atol=1e-6)


def test_superspike_reading_is_version_aware():
    reading = sg.plugins.read_native(norse.LIFParameters())  # method 'super', alpha 100
    uses_alpha = norse_adapter.superspike_uses_alpha()
    # Norse 1.1.0 ignores alpha (1 / (|x| + 1)^2); Norse main (#403) uses it (1 / (alpha |x| + 1)^2)
    assert reading.surrogate.params() == {"dampening": 1.0, "sharpness": 50.0 if uses_alpha else 0.5}
    assert ("ignored" in reading.source) is (not uses_alpha)


# anchors.md section 1c: Norse triangle (alpha = 0.3) has peak 0.30, HWHM 0.500, area 0.30
def test_triangle_matches_the_anchor_table():
    d = sg.from_native(norse.LIFParameters(method="triangle", alpha=0.3)).describe()
    assert (d.peak, d.hwhm, d.area) == pytest.approx((0.30, 0.500, 0.30))


@pytest.mark.parametrize(("method", "keyword"), [("circ", "not one of the canonical"), ("heaviside", "no surrogate")])
def test_not_convertible_says_why(method, keyword):
    with pytest.raises(sg.NotConvertibleError) as e:
        sg.from_native(norse.LIFParameters(method=method))
    assert keyword in e.value.reason


def test_reading_a_patched_module_gives_our_surrogate():
    cell = norse.LIFRefracCell()
    with sg.patch(cell, "gaussian", dampening=0.4) as h:
        assert sg.from_native(cell) is h.surrogates["(model)"]
        assert cell.p.lif.method == "sg_stability" and cell.p.rho_reset == norse.LIFRefracParameters().rho_reset
    assert cell.p.lif.method == "super"
    assert math.isfinite(sg.from_native(cell).describe().area)
