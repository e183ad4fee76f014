"""The SpikingJelly adapter on every neuron class that takes a surrogate, in both step modes.

These tests run in the main environment (SpikingJelly 2.0) and again in .venv-sj014 (0.0.0.0.14);
./dev test runs both. Tests that need one generation's API say so in their skip reason.
"""

from __future__ import annotations

import copy
import io
import math
import warnings

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.testing import module_fingerprint, verify_patch
from tests.compile_check import assert_compiled_gradients_equal
from tests.zoo import reference_shapes

pytest.importorskip("spikingjelly")
from tests.zoo.spikingjelly_models import (
    SJNet,
    available,
    legacy_api,
    make_neuron,
    runner,
    sample_input,
    sj,
)

neuron, layer, functional, surrogate = sj()
LEGACY = legacy_api()
FUSED = not LEGACY and hasattr(__import__("spikingjelly"), "_ops")
needs_fused = pytest.mark.skipif(not FUSED, reason="needs SpikingJelly 2.0's fused ops (this environment has "
                                 "0.0.0.0.14; the main environment runs it)")
needs_legacy = pytest.mark.skipif(not LEGACY, reason="needs SpikingJelly 0.0.0.0.14's backend= API (./dev test "
                                  "runs it in .venv-sj014)")

FAMILIES = ["rectangular", "triangular", "exponential", "gaussian", "sigmoid", "fast_sigmoid", "q_pseudospike", "atan"]
PAIRS = available()
# (family, parameters): exact SpikingJelly built-ins (fused on 2.0) alternate with shapes it does not have
CHOICES = [("atan", {}), ("gaussian", {"dampening": 0.6, "sharpness": 1.3}), ("sigmoid", {}),
           ("q_pseudospike", {"tail": 1.4}), ("fast_sigmoid", {"sharpness": 0.5}), ("rectangular", {"dampening": 0.8}),
           ("triangular", {}), ("exponential", {"dampening": 0.4})]


@pytest.mark.parametrize(("name", "mode"), PAIRS, ids=[f"{n}-{m}" for n, m in PAIRS])
def test_conformance_every_neuron_class(name, mode):
    family, params = CHOICES[PAIRS.index((name, mode)) % len(CHOICES)]
    torch.manual_seed(0)
    report = verify_patch(SJNet(name, mode), runner(sample_input()), family, **params)
    assert report.ok and len(report.sites) == 2


def test_the_set_of_classes_covers_the_common_neurons():
    names = {n for n, _ in PAIRS}
    assert {"IFNode", "LIFNode", "ParametricLIFNode", "QIFNode", "EIFNode", "IzhikevichNode"} <= names
    assert len(PAIRS) >= (30 if not LEGACY else 10)


def test_shared_default_surrogate_is_replaced_per_neuron_and_never_mutated():
    net = SJNet("LIFNode", "s")
    shared = net.net[1].surrogate_function
    assert net.net[3].surrogate_function is shared  # SpikingJelly's default argument object
    alpha = shared.alpha
    other_model = make_neuron("LIFNode", "s")  # built elsewhere with the same default
    assert other_model.surrogate_function is shared
    h = sg.patch(net, "gaussian", dampening=0.7)
    a, b = net.net[1].surrogate_function, net.net[3].surrogate_function
    assert a is not b and a is not shared and b is not shared
    assert other_model.surrogate_function is shared and shared.alpha == alpha and type(shared).__name__ == "Sigmoid"
    h.remove()
    assert net.net[1].surrogate_function is shared and net.net[3].surrogate_function is shared


def test_spiking_rnn_cells_patch_every_surrogate_slot():
    from spikingjelly.activation_based import rnn

    x = sample_input()[0]
    single = rnn.SpikingLSTMCell(6, 5)  # surrogate_function2=None: every gate uses surrogate_function1
    with sg.patch(single, "atan", dampening=0.4) as h:
        assert set(h.surrogates) == {"(model)"} and single.surrogate_function2 is None
    both = rnn.SpikingLSTMCell(6, 5, surrogate_function2=surrogate.ATan())
    with sg.patch(both, "atan", dampening=0.4) as h:
        assert set(h.surrogates) == {"(model).surrogate_function1", "(model).surrogate_function2"}
        assert both.surrogate_function1 is not both.surrogate_function2
    for cell in (single, both):
        assert verify_patch(cell, lambda m: m(x)[0], "fast_sigmoid", dampening=0.6).ok


@needs_fused
@pytest.mark.parametrize(("family", "params", "cls", "alpha"), [
    ("atan", {}, "ATan", 2.0),
    ("sigmoid", {}, "Sigmoid", 4.0),
    ("triangular", {"dampening": 0.5, "sharpness": 0.5}, "PiecewiseQuadratic", 0.5),
    ("exponential", {"dampening": 2.0, "sharpness": 2.0}, "PiecewiseExp", 4.0),
    ("fast_sigmoid", {"dampening": 1.5, "sharpness": 1.5}, "SoftSign", 3.0),
    ("fast_sigmoid", {"dampening": 0.7, "sharpness": 0.5}, "SuperSpike", 0.7),
    ("gaussian", {}, "Erf", math.sqrt(math.pi)),
])
def test_exact_builtins_keep_the_fused_kernels(family, params, cls, alpha):
    from spikingjelly._ops.surrogate import _surrogate_spec

    net = SJNet("LIFNode", "m")
    h = sg.patch(net, family, **params)
    installed = net.net[1].surrogate_function
    assert type(installed).__name__ == cls and installed.alpha == pytest.approx(alpha, rel=1e-12)
    assert _surrogate_spec(installed) is not None  # SpikingJelly will run its fused op
    assert "kept SpikingJelly's fused kernels" in h.summary()
    # SpikingJelly's own backward of the installed class is exactly the surrogate that was asked for
    v = torch.linspace(-3, 3, 61, dtype=torch.float64)
    want = reference_shapes.derivative(family, v, params.get("dampening", 1.0), params.get("sharpness", 1.0))
    assert torch.allclose(native_gradient(installed, v), want, rtol=1e-9, atol=1e-12)
    h.remove()
    with sg.patch(net, family, builtin=False, **params) as h2:
        assert isinstance(net.net[1].surrogate_function, sg.surrogates.Surrogate)
        assert _surrogate_spec(net.net[1].surrogate_function) is None
        assert "reference (non-fused) path" in h2.summary()


@needs_fused
def test_fused_and_reference_paths_give_the_same_gradients():
    x = sample_input(scale=3.0)
    for family in ("atan", "sigmoid", "gaussian"):
        net = SJNet("LIFNode", "m")
        grads = []
        for builtin in (True, False):
            with sg.patch(net, family, builtin=builtin):
                net.zero_grad()
                runner(x)(net).sum().backward()
                grads.append([p.grad.clone() for p in net.parameters()])
        for a, b in zip(*grads, strict=True):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


@needs_fused
def test_explicit_neuron_precision_needs_a_builtin():
    net = SJNet("LIFNode", "m")
    # SpikingJelly sets this through its CUDA/Triton precision policy; preflight only reads it.
    net.net[1]._neuron_precision = (torch.float16, "fp32", "fp32")
    fp = module_fingerprint(net)
    with pytest.raises(sg.PreflightError) as e:
        sg.patch(net, "q_pseudospike")
    assert "explicit neuron precision" in str(e.value) and "net.1" in str(e.value)
    assert module_fingerprint(net) == fp
    sg.patch(net, "atan").remove()  # an exact built-in is accepted


@needs_legacy
def test_cupy_backend_refuses_per_neuron_parameters_with_the_fix():
    lif = neuron.LIFNode(step_mode="m")
    lif._backend = "cupy"  # CuPy is not installed on CPU CI; the preflight only reads the backend
    fp = module_fingerprint(lif)
    with pytest.raises(sg.PreflightError) as e:
        sg.patch(lif, "atan", dampening=torch.full((4,), 0.5))
    msg = str(e.value)
    assert "backend='cupy'" in msg and "dampening" in msg and "backend='torch'" in msg
    assert module_fingerprint(lif) == fp
    with sg.patch(lif, "atan", dampening=0.5) as h:  # scalars are fine: they are baked into CUDA source
        code = h.surrogates["(model)"].cuda_codes(y="const float g", x="over_th", dtype="float")
        assert "5.000000000e-01f" in code


@needs_legacy
def test_legacy_kernel_cache_sees_parameter_changes():
    """0.0.0.0.14 reuses a cached kernel while `check_attributes(surrogate_function=sg.cuda_codes)` holds."""
    from spikingjelly.activation_based.auto_cuda import neuron_kernel

    lif = neuron.LIFNode(step_mode="m")
    sg.patch(lif, "atan", dampening=0.5)
    sgf = lif.surrogate_function
    kernel = neuron_kernel.LIFNodeBPTTKernel(decay_input=True, surrogate_function=sgf.cuda_codes, hard_reset=True,
                                             detach_reset=False, dtype="float")
    assert kernel.check_attributes(surrogate_function=sgf.cuda_codes)
    sgf.dampening = 0.9  # in place: a new kernel must be built
    assert not kernel.check_attributes(surrogate_function=sgf.cuda_codes)


@pytest.mark.parametrize("build", [
    lambda: neuron.DSRIFNode(T=4) if hasattr(neuron, "DSRIFNode") else None,
    lambda: neuron.STBIFNode(q_threshold=1.0, level=4) if hasattr(neuron, "STBIFNode") else None,
    lambda: neuron.ILIFNode() if hasattr(neuron, "ILIFNode") else None,
], ids=["DSRIFNode", "STBIFNode", "ILIFNode"])
def test_neurons_that_cannot_take_a_surrogate_are_reported(build):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        node = build()
    if node is None:
        pytest.skip("this SpikingJelly generation does not have the class")
    net = nn.Sequential(layer.Linear(3, 3), node, layer.Linear(3, 3), neuron.IFNode())
    fp = module_fingerprint(net)
    with pytest.raises(sg.PreflightError) as e:
        sg.patch(net, "atan")
    msg = str(e.value)
    assert f"spikingjelly.{type(node).__name__}" in msg and "targets=" in msg
    assert module_fingerprint(net) == fp
    with pytest.warns(sg.SkippedSitesWarning):
        h = sg.patch(net, "atan", strict=False)
    assert [s.path for s in h.sites] == ["3"]


def test_ann_mode_is_kept():
    lif = neuron.LIFNode()
    lif.surrogate_function = surrogate.ATan(spiking=False)
    x = torch.tensor([[0.3, 1.7, 2.5]])
    before = lif(x)
    functional.reset_net(lif)
    with sg.patch(lif, "gaussian", builtin=False):
        assert lif.surrogate_function.spiking is False
        after = lif(x)  # the smooth primitive of our gaussian instead of SpikingJelly's arctan one
        functional.reset_net(lif)
    assert not torch.equal(before, after) and torch.all((after > 0) & (after < 1))


def test_deepcopy_save_and_state_dict():
    net = SJNet("ParametricLIFNode", "m")
    keys = list(net.state_dict())
    h = sg.patch(net, "q_pseudospike", dampening=0.5, tail=1.7)
    assert list(net.state_dict()) == keys
    x = sample_input()
    out = runner(x)(net)
    functional.reset_net(net)
    clone = copy.deepcopy(net)
    assert torch.equal(runner(x)(clone), out) and not sg.is_patched(clone)
    buf = io.BytesIO()
    torch.save(net, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert torch.equal(runner(x)(loaded), out)
    assert isinstance(loaded.net[1].surrogate_function, sg.surrogates.QPseudoSpike)
    h.remove()


@pytest.mark.slow
def test_torch_compile_gives_the_eager_gradients():
    torch.manual_seed(0)
    net = SJNet("LIFNode", "m")
    sg.patch(net, "fast_sigmoid", dampening=0.6, builtin=False)
    x = sample_input()
    assert_compiled_gradients_equal(net, lambda m: runner(x)(m).sum())


# -- reading SpikingJelly's own surrogates ----------------------------------------------------------------

def native_gradient(sg_module, v):
    x = v.clone().requires_grad_(True)
    sg_module(x).sum().backward()
    return x.grad


READABLE = [("Sigmoid", {"alpha": 4.0}), ("Sigmoid", {"alpha": 2.5}), ("ATan", {"alpha": 2.0}),
            ("ATan", {"alpha": 3.0}),
            ("PiecewiseQuadratic", {"alpha": 1.0}), ("PiecewiseExp", {"alpha": 1.5}), ("SoftSign", {"alpha": 2.0}),
            ("SuperSpike", {"alpha": 1.0}), ("Erf", {"alpha": 2.0}), ("QPseudoSpike", {"alpha": 2.0}),
            ("QPseudoSpike", {"alpha": 1.3}), ("Rect", {"alpha": 1.0}), ("PiecewiseLeakyReLU", {"w": 0.5, "c": 0.0})]


@pytest.mark.parametrize(("cls", "kwargs"), READABLE, ids=[f"{c}-{k}" for c, k in READABLE])
def test_from_native_matches_spikingjelly_backward(cls, kwargs):
    if not hasattr(surrogate, cls):
        pytest.skip(f"{cls} does not exist in this SpikingJelly generation")
    native = getattr(surrogate, cls)(**kwargs)
    v = torch.linspace(-2.93, 2.93, 117)  # never exactly on a kink (|x| = 0.5, 1) of the piecewise shapes
    for read in (sg.from_native, sg.surrogates.from_native):  # decisions D3 names the second
        canonical = read(native)
        assert torch.allclose(canonical.derivative(v.double()).float(), native_gradient(native, v), rtol=1e-5,
                              atol=1e-6)


# anchors.md section 1c: SpikingJelly defaults, peak / HWHM / area (x = v - threshold)
@pytest.mark.parametrize(("cls", "peak", "hwhm", "area"), [
    ("Sigmoid", 1.00, 0.441, 1.0),
    ("ATan", 1.00, 0.318, 0.99),
    ("SuperSpike", 1.00, 0.414, 1.9),
    ("QPseudoSpike", 1.00, 0.207, 0.98),
    ("PiecewiseExp", 0.50, 0.693, 1.0),
    ("Erf", 1.13, 0.416, 1.0),
])
def test_description_matches_the_anchor_table(cls, peak, hwhm, area):
    if not hasattr(surrogate, cls):
        pytest.skip(f"{cls} does not exist in this SpikingJelly generation")
    d = sg.from_native(getattr(surrogate, cls)()).describe()
    assert d.peak == pytest.approx(peak, abs=0.005)
    assert d.hwhm == pytest.approx(hwhm, abs=0.0015)
    # the table integrated over a finite window: heavy tails read up to 0.1 low
    assert area - 0.011 <= d.area <= area + 0.11


@pytest.mark.parametrize(("make", "keyword"), [
    (lambda: surrogate.PiecewiseLeakyReLU(w=1.0, c=0.01), "not integrable"),
    (lambda: surrogate.S2NN(), "asymmetric"),
    (lambda: surrogate.NonzeroSignLogAbs(), "not integrable"),
    (lambda: surrogate.LeakyKReLU(), "not integrable"),
])
def test_not_convertible_says_why(make, keyword):
    with pytest.raises(sg.NotConvertibleError) as e:
        sg.from_native(make())
    assert keyword in e.value.reason


def test_subclass_defined_elsewhere_is_not_trusted():
    class MyATan(surrogate.ATan):
        pass

    with pytest.raises(sg.NotConvertibleError, match="defined elsewhere"):
        sg.from_native(MyATan())


def test_hook_sg_save_state():
    """A recorded run puts back SpikingJelly's memories (the membrane ``v`` lives in ``_memories``, outside
    torch's registries): after ``preserved_state`` the neuron holds the membrane it had before, also when the run
    inside failed; modules of other frameworks get no restorer."""
    from spikingjelly.activation_based import neuron

    from sg_stability._state import preserved_state

    lif = neuron.LIFNode(tau=2.0)
    lif(torch.full((3,), 0.8))  # v = 0.8 / 2 = 0.4, below the threshold 1
    before = lif.v.clone()
    assert torch.allclose(before, torch.full((3,), 0.4))
    with pytest.raises(RuntimeError, match="inside"), preserved_state(nn.Sequential(lif)):
        lif(torch.full((3,), 5.0))  # fires and resets: v is now 0
        assert torch.equal(lif.v, torch.zeros(3))
        raise RuntimeError("a failure inside the run")
    assert torch.equal(lif.v, before)
    assert sg.plugins.save_state(nn.Linear(2, 2)) is None
    assert callable(sg.plugins.save_state(lif))
