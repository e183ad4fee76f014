"""One recorded run, many surrogates: differentiating the recorded graph with a surrogate chosen after the forward
pass (``trace.switched``) gives the gradients of the model patched with that surrogate, in every framework.

The reference is plain autograd on the patched model (``sg.patch``), which never goes through the switch.
"""

from __future__ import annotations

import glob

import pytest
import torch

import sg_stability as sg
from sg_stability.choosing.recorded import measure_recorded
from tests.zoo import shd_networks

FRAMEWORKS = ["snntorch", "spikingjelly", "norse"]


def _input_gradient(model, x, run, u):
    x = x.detach().requires_grad_(True)
    out = run(model, x) if run is not None else model(x)
    (grad,) = torch.autograd.grad((out * u).sum(), x)
    return grad


def _recorded_gradient(trace, leaf, u):
    (grad,) = torch.autograd.grad((trace.output * u).sum(), leaf, retain_graph=True)
    return grad


def _run_keeping_input(leaves):
    def run(model, x):
        leaves.append(x)  # the leaf the recorded run was fed (it requires grad)
        return model(x)

    return run


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_switched_surrogate_gives_the_gradients_of_the_model_patched_with_it(framework):
    model, x = shd_networks.tiny(framework)
    out = model(x)
    u = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    chosen = [sg.surrogates.get("fast_sigmoid", dampening=0.3, sharpness=2.0),
              sg.surrogates.get("atan", dampening=1.0, sharpness=0.5)]
    paths = [s.path for s in sg.find_neurons(model)]
    per_layer = {paths[0]: chosen[0], paths[-1]: chosen[1]}
    leaves: list[torch.Tensor] = []
    with sg.recording.traced(model, x, run=_run_keeping_input(leaves)) as trace:
        got = {}
        for k, s in enumerate(chosen):
            with trace.switched(s):
                got[k] = _recorded_gradient(trace, leaves[-1], u)
        with trace.switched(per_layer):
            got["per layer"] = _recorded_gradient(trace, leaves[-1], u)
        got["own"] = _recorded_gradient(trace, leaves[-1], u)
    own = _input_gradient(model, x, None, u)  # the model's own surrogates, unpatched
    for k, s in enumerate(chosen):
        with sg.patch(model, surrogate=s, builtin=False):
            want = _input_gradient(model, x, None, u)
        assert not torch.allclose(want, own), "the surrogate must change the gradient for the test to mean anything"
        torch.testing.assert_close(got[k], want, rtol=1e-5, atol=1e-7 * float(want.abs().max()))
    with sg.patch(model, targets={glob.escape(p): s for p, s in per_layer.items()}, builtin=False):
        want = _input_gradient(model, x, None, u)
    torch.testing.assert_close(got["per layer"], want, rtol=1e-5, atol=1e-7 * float(want.abs().max()))
    # the framework's own surrogate, read into canonical form: the same function, its own rounding (SpikingJelly)
    torch.testing.assert_close(got["own"], own, rtol=1e-5, atol=1e-6 * float(own.abs().max()))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_measurements_on_one_recorded_run_match_a_run_per_surrogate(framework):
    model, x = shd_networks.tiny(framework)
    s = sg.surrogates.get("fast_sigmoid", dampening=0.2, sharpness=3.0)
    with sg.patch(model, surrogate=s, builtin=False):  # the model as patched, measured on its own run
        want = sg.testing.measure(model, x, None)
    with sg.recording.traced(model, x) as trace, trace.switched(s):
        got = measure_recorded(trace)
    assert got.growth == pytest.approx(want.growth, rel=1e-6)
    assert got.spread == pytest.approx(want.spread, rel=1e-6)
    assert got.layers.keys() == want.layers.keys()
    for path, g in want.layers.items():
        assert got.layers[path] == pytest.approx(g, rel=1e-6)


def test_the_switch_is_left_as_it_was_after_the_block_also_on_failure():
    model, x = shd_networks.tiny("snntorch")
    s = sg.surrogates.get("gaussian")
    with sg.recording.traced(model, x) as trace:
        with pytest.raises(KeyboardInterrupt), trace.switched(s):
            assert trace.switch.choice is s
            raise KeyboardInterrupt
        assert trace.switch.choice is None


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_recorded_run_is_freed_when_its_trace_ends(framework):
    # the graph must not refer back to the records: a cycle through autograd's nodes is invisible to the garbage
    # collector, and every analysis of a large model would stay in memory (an OOM on a VGG11 found this)
    import weakref

    model, x = shd_networks.tiny(framework)
    with sg.recording.traced(model, x) as trace, trace.switched(sg.surrogates.get("gaussian")):
        recorded = weakref.ref(trace.ordered()[0].calls[-1])
        measure_recorded(trace)
    del trace
    assert recorded() is None


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_requested_surrogate_is_measured_also_on_a_model_an_sg_patch_holds(framework):
    model, x = shd_networks.tiny(framework)
    unpatched = sg.analysis.analyze_layers(model, x, surrogate="gaussian")
    with sg.patch(model, surrogate=sg.surrogates.get("atan", dampening=2.0, sharpness=0.3)):
        patched = sg.analysis.analyze_layers(model, x, surrogate="gaussian")
    for a, b in zip(unpatched.layers, patched.layers, strict=True):
        assert a.measured_gain == pytest.approx(b.measured_gain, rel=1e-6)
        assert a.bptt_growth == pytest.approx(b.bptt_growth, rel=1e-6)
