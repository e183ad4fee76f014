"""The snnTorch adapter on every neuron class that carries spike_grad, in both usage styles."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.testing import SurrogateProbe, module_fingerprint, verify_patch
from tests.compile_check import assert_compiled_gradients_equal

snn = pytest.importorskip("snntorch")

from tests.zoo.snntorch_models import (  # noqa: E402
    MULTI_STEP,
    ConvLSTMNet,
    ExplicitNet,
    HiddenNet,
    MultiStepNet,
    T,
    TutorialNet,
    reset_state,
    runner,
    sample_input,
    single_step_factories,
)

FAMILIES = ["rectangular", "triangular", "exponential", "gaussian", "sigmoid", "fast_sigmoid", "q_pseudospike", "atan"]
SINGLE = list(single_step_factories())
# every class meets several families across the grid
GRID = [(name, style, FAMILIES[(i + j) % len(FAMILIES)])
        for i, name in enumerate(SINGLE) for j, style in enumerate(["explicit", "hidden"])]


def build(name: str, style: str) -> nn.Module:
    torch.manual_seed(0)
    make = single_step_factories()[name]
    return ExplicitNet(name, make) if style == "explicit" else HiddenNet(make)


@pytest.mark.parametrize(("name", "style", "family"), GRID)
def test_conformance_single_step_classes(name, style, family):
    report = verify_patch(build(name, style), runner(sample_input()), family, dampening=0.7, sharpness=1.5)
    assert report.ok and len(report.sites) == 2


@pytest.mark.parametrize("hidden", [False, True])
def test_conformance_sconv2dlstm(hidden):
    torch.manual_seed(0)
    assert verify_patch(ConvLSTMNet(hidden), runner(sample_input(features=16)), "gaussian").ok


@pytest.mark.parametrize("name", MULTI_STEP)
def test_conformance_multi_step_classes(name):
    torch.manual_seed(0)
    assert verify_patch(MultiStepNet(name), runner(sample_input()), "sigmoid", dampening=0.5).ok


def test_conformance_tutorial_network():
    torch.manual_seed(0)
    assert verify_patch(TutorialNet(), runner(sample_input(25, 784, scale=0.3)), "fast_sigmoid").ok


def test_conformance_float64_membrane_keeps_float32_spikes():
    """snnTorch's forward is (x > 0).float() whatever the dtype; the patch keeps exactly that."""
    lif = snn.Leaky(beta=0.8, init_hidden=True, learn_beta=True).double()

    def run(model):
        reset_state(model)
        return torch.stack([model(x) for x in sample_input().double()])

    assert run(lif).dtype == torch.float32
    assert verify_patch(lif, run, "atan").ok


@pytest.mark.parametrize("name", SINGLE + MULTI_STEP)
def test_declared_call_pattern_matches_what_snntorch_does(name):
    """The adapter says how snnTorch calls spike_grad; count the calls and the gradient-carrying ones."""
    torch.manual_seed(0)
    model = build(name, "explicit") if name in SINGLE else MultiStepNet(name)
    h = sg.patch(model, "fast_sigmoid")
    probe = SurrogateProbe(h.surrogates)
    out = runner(sample_input())(model)
    out.sum().backward()
    probe.close()
    for site in h.sites:
        pattern = site.driver.call_pattern()
        forwards = 1 if pattern.whole_sequence else T
        assert probe.calls[site.path] == forwards * pattern.calls_per_step
        assert probe.checked[site.path] == forwards  # only the spike call carries gradient in snnTorch
    h.remove()


def test_hand_computed_gradients_on_a_real_leaky_neuron():
    """frameworks.md 2.3: Leaky(beta=0.5), mem0 = 0, sigma'(v) = 0.3 / (1 + |v|)^2 (fast_sigmoid, beta = 1/2)."""
    lif = snn.Leaky(beta=0.5)
    sg.patch(lif, "fast_sigmoid", dampening=0.3, sharpness=0.5)
    for x_value, expected in [(1.3, 0.177515), (0.6, 0.153061), (1.0, 0.3)]:
        x = torch.tensor([x_value], requires_grad=True)
        spk, _ = lif(x, lif.reset_mem())
        spk.sum().backward()
        assert x.grad.item() == pytest.approx(expected, abs=1e-6)
    # two steps, spike at t1 then detached subtractive reset: m2 = 0.5 * 1.4 + 0.5 - 1 = 0.2, v2 = -0.8
    x1 = torch.tensor([1.4], requires_grad=True)
    x2 = torch.tensor([0.5], requires_grad=True)
    mem = lif.reset_mem()
    spk1, mem = lif(x1, mem)
    spk2, mem = lif(x2, mem)
    assert spk1.item() == 1.0 and mem.item() == pytest.approx(0.2)
    spk2.sum().backward()
    assert x1.grad.item() == pytest.approx(0.046296, abs=1e-6)
    assert x2.grad.item() == pytest.approx(0.092593, abs=1e-6)


def test_surrogate_disable_neurons_are_reported_not_patched():
    net = nn.Sequential(nn.Linear(3, 4), snn.Leaky(0.9, init_hidden=True),
                        nn.Linear(4, 2), snn.Leaky(0.9, init_hidden=True, surrogate_disable=True))
    before = module_fingerprint(net)
    with pytest.raises(sg.PreflightError) as e:
        sg.patch(net, "atan")
    assert "3" in str(e.value) and "surrogate_disable=True" in str(e.value)
    assert module_fingerprint(net) == before
    with pytest.warns(sg.SkippedSitesWarning, match="surrogate_disable"):
        h = sg.patch(net, "atan", strict=False)
    assert [s.path for s in h.sites] == ["1"] and [p.path for p in h.skipped] == ["3"]
    assert not isinstance(net[3].spike_grad, sg.surrogates.Surrogate)
    assert "skipped 3" in h.summary()


def test_whole_model_torch_save_works_once_patched():
    net = TutorialNet(20, 8, 3)
    with pytest.raises((AttributeError, pickle.PicklingError)):  # snnTorch's default closure
        torch.save(net, io.BytesIO())
    x = sample_input(5, 20)
    sg.patch(net, "q_pseudospike", dampening=0.4, sharpness=1.2, tail=1.3)
    buf = io.BytesIO()
    torch.save(net, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert isinstance(loaded.lif1.spike_grad, sg.surrogates.QPseudoSpike)
    assert loaded.lif1.spike_grad.tail == 1.3
    for model in (net, loaded):
        model.zero_grad()
        model(x)[0].sum().backward()
    assert torch.equal(net.fc1.weight.grad, loaded.fc1.weight.grad)


def test_deepcopy_after_state_reset_is_an_independent_model():
    net = HiddenNet(single_step_factories()["Leaky"])
    x = sample_input()
    h = sg.patch(net, "gaussian", dampening=0.4)
    net(x)
    reset_state(net)
    clone = copy.deepcopy(net)
    assert not sg.is_patched(clone) and sg.is_patched(net)
    assert clone.net[1].spike_grad is not net.net[1].spike_grad
    assert clone.net[1].spike_grad.params() == {"dampening": 0.4, "sharpness": 1.0}
    assert torch.equal(runner(x)(clone), runner(x)(net))
    h2 = sg.patch(clone, "atan")  # a copy can be patched afresh
    h.remove()
    assert isinstance(clone.net[1].spike_grad, sg.surrogates.ATan)
    h2.remove()
    assert isinstance(clone.net[1].spike_grad, sg.surrogates.Gaussian)  # the copy's own (copied) surrogate


def test_state_dict_round_trip_and_fresh_models_need_a_new_patch():
    torch.manual_seed(1)
    net = TutorialNet(20, 8, 3)
    keys = list(net.state_dict())
    sg.patch(net, "fast_sigmoid")
    assert list(net.state_dict()) == keys  # no surrogate keys: loads into unpatched models
    fresh = TutorialNet(20, 8, 3)
    fresh.load_state_dict(net.state_dict())
    assert callable(fresh.lif1.spike_grad) and not isinstance(fresh.lif1.spike_grad, sg.surrogates.Surrogate)
    sg.patch(fresh, "fast_sigmoid")
    x = sample_input(5, 20)
    assert torch.equal(net(x)[0], fresh(x)[0])


def test_learnable_per_neuron_dampening_trains_and_is_saved():
    net = MultiStepNet("LeakyParallel")
    gamma = nn.Parameter(torch.full((7,), 0.5))
    sg.patch(net, "atan", dampening=gamma)
    assert any(p is gamma for p in net.parameters())
    assert "neuron.spike_grad.dampening" in net.state_dict()
    net(sample_input()).sum().backward()
    assert gamma.grad is not None and gamma.grad.abs().sum() > 0


def test_per_neuron_shape_is_checked_before_patching_when_known():
    net = MultiStepNet("LeakyParallel")  # hidden_size 7
    before = module_fingerprint(net)
    with pytest.raises(sg.PreflightError) as e:
        sg.patch(net, "atan", dampening=torch.full((8,), 0.5))
    assert "(8,)" in str(e.value) and "(7,)" in str(e.value)
    assert module_fingerprint(net) == before


def test_user_subclass_of_an_snntorch_neuron_is_claimed():
    class MyLeaky(snn.Leaky):
        pass

    net = nn.Sequential(nn.Linear(2, 3), MyLeaky(beta=0.5, init_hidden=True))
    sites = sg.find_neurons(net)
    assert [(s.path, s.kind) for s in sites] == [("1", "snntorch.MyLeaky")]


def test_shared_neuron_module_is_one_site():
    lif = snn.Leaky(beta=0.5, init_hidden=True)
    net = nn.Sequential(nn.Linear(2, 2), lif, nn.Linear(2, 2), lif)
    assert [s.path for s in sg.find_neurons(net)] == ["1"]


@pytest.mark.slow
def test_torch_compile_gives_the_eager_gradients():
    torch.manual_seed(0)
    net = TutorialNet(20, 8, 3)
    sg.patch(net, "atan", dampening=0.6, sharpness=1.7)
    x = sample_input(5, 20)
    assert_compiled_gradients_equal(net, lambda m: m(x)[1].sum())
