"""patch / remove semantics: targets, transactions, rollback, conflicts, lifetime."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.adapter_api import Transaction
from sg_stability.testing import module_fingerprint, verify_patch
from tests.zoo.toy_adapter import ToyAdapter, ToyDriver, ToyNet, toy_step

snn = pytest.importorskip("snntorch")


@pytest.fixture
def toy():
    adapter = ToyAdapter()
    sg.plugins.register(adapter, name="toy")
    yield adapter
    sg.plugins.unregister("toy")
    ToyDriver.fail_on = set()
    ToyDriver.refuse = set()


def mixed_net() -> nn.Module:
    net = ToyNet()
    net.lif = snn.Leaky(beta=0.9, init_hidden=True)
    return net


def test_find_neurons_lists_sites_in_module_order(toy):
    sites = sg.find_neurons(mixed_net())
    assert [(s.path, s.adapter) for s in sites] == [
        ("encoder.a", "toy"), ("encoder.b", "toy"), ("readout", "toy"), ("lif", "snntorch")]


def test_one_call_patches_a_model_mixing_adapters(toy):
    net = mixed_net()
    fp = module_fingerprint(net)
    h = sg.patch(net, "triangular", dampening=0.8)
    assert {s.adapter for s in h.sites} == {"toy", "snntorch"}
    assert all(isinstance(s, sg.surrogates.Triangular) for s in h.surrogates.values())
    assert net.encoder["a"].act.heaviside.float32 is False and net.lif.spike_grad.heaviside.float32 is True
    h.remove()
    assert module_fingerprint(net) == fp
    assert net.encoder["a"].act is toy_step


def test_toy_adapter_passes_the_conformance_battery(toy):
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)) * 2
    assert verify_patch(ToyNet(), lambda m: m(x), "gaussian", dampening=0.6).ok


def test_targets_glob_list_and_callable(toy):
    net = mixed_net()
    with sg.patch(net, "atan", targets="encoder.*") as h:
        assert [s.path for s in h.sites] == ["encoder.a", "encoder.b"]
    with sg.patch(net, "atan", targets=["readout", "l*"]) as h:
        assert [s.path for s in h.sites] == ["readout", "lif"]
    with sg.patch(net, "atan", targets=lambda path, module: isinstance(module, snn.Leaky)) as h:
        assert [s.path for s in h.sites] == ["lif"]
    assert net.encoder["a"].act is toy_step  # the context manager removed each patch


def test_targets_mapping_gives_different_surrogates_first_match_wins(toy):
    net = mixed_net()
    h = sg.patch(net, targets={"encoder.a": "exponential", "encoder.*": sg.surrogates.ATan(0.3, 2.0),
                               "lif": "gaussian"}, dampening=0.5)
    kinds = {p: (type(s).__name__, s.dampening) for p, s in h.surrogates.items()}
    assert kinds == {"encoder.a": ("Exponential", 0.5), "encoder.b": ("ATan", 0.3), "lif": ("Gaussian", 0.5)}
    assert net.readout.act is toy_step
    h.remove()


def test_partial_target_match_warns_with_strict_false(toy):
    net = mixed_net()
    with pytest.warns(sg.PartialMatchWarning, match="nothing_here"):
        h = sg.patch(net, "atan", targets=["readout", "nothing_here"], strict=False)
    assert [s.path for s in h.sites] == ["readout"]


def test_adapter_failure_rolls_everything_back(toy):
    net = mixed_net()
    fp = module_fingerprint(net)
    ToyDriver.fail_on = {"readout"}  # fails after encoder.a and encoder.b were installed
    with pytest.raises(sg.AdapterError) as e:
        sg.patch(net, "atan")
    assert isinstance(e.value.__cause__, RuntimeError)
    assert "readout" in str(e.value) and "rolled back" in str(e.value)
    assert module_fingerprint(net) == fp
    assert not sg.is_patched(net)


def test_preflight_collects_every_problem_before_changing_anything(toy):
    net = mixed_net()
    fp = module_fingerprint(net)
    ToyDriver.refuse = {"encoder.a", "readout"}
    with pytest.raises(sg.PreflightError) as e:
        sg.patch(net, "atan")
    assert [p.path for p in e.value.problems] == ["encoder.a", "readout"]
    assert "nothing was changed" in str(e.value)
    assert module_fingerprint(net) == fp
    with pytest.warns(sg.SkippedSitesWarning):
        h = sg.patch(net, "atan", strict=False)
    assert [s.path for s in h.sites] == ["encoder.b", "lif"]


def test_remove_detects_a_later_replacement_and_force_restores(toy):
    net = mixed_net()
    h = sg.patch(net, "atan")
    net.readout.act = nn.Tanh()  # someone else's change after the patch
    with pytest.raises(sg.PatchConflictError) as e:
        h.remove()
    assert "readout.act" in str(e.value) and "force=True" in str(e.value)
    assert isinstance(net.encoder["a"].act, sg.surrogates.ATan)  # nothing restored on conflict
    assert h.remove(force=True) is True
    assert net.readout.act is toy_step and net.encoder["a"].act is toy_step


def test_unpatch_and_is_patched(toy):
    net = mixed_net()
    assert not sg.is_patched(net)
    sg.patch(net, "atan", targets="encoder.*")
    sg.patch(net, "gaussian", targets=["readout"])  # other sites: allowed
    assert sg.is_patched(net)
    assert sg.unpatch(net) == 2
    assert not sg.is_patched(net) and net.readout.act is toy_step and net.encoder["a"].act is toy_step
    assert sg.unpatch(net) == 0


def test_summary_names_sites_before_and_after(toy):
    net = mixed_net()
    h = sg.patch(net, "fast_sigmoid", dampening=0.3, sharpness=2.0)
    text = h.summary()
    for needle in ["4 neuron sites patched", "encoder.a", "toy.ToyNeuron", "toy_adapter.toy_step",
                   "snntorch.surrogate.atan(alpha=2.0)", "fast_sigmoid(γ=0.3, β=2)", "remove()"]:
        assert needle in text, needle
    h.remove()
    assert "(removed)" in h.summary()


def test_the_model_is_collectable_after_remove_and_instances_do_not_grow():
    instances = len(snn.SpikingNeuron.instances)
    net = nn.Sequential(nn.Linear(2, 2), snn.Leaky(0.5, init_hidden=True))
    for _ in range(20):
        sg.patch(net, "atan").remove()
    assert len(snn.SpikingNeuron.instances) == instances + 1  # the one neuron built above; none by patch
    ref = weakref.ref(net[0])
    del net
    gc.collect()
    assert ref() is None


# -- the transaction ------------------------------------------------------------------------------------

class Holder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.register_buffer("b", torch.zeros(2))
        self.register_buffer("nb", torch.zeros(2), persistent=False)
        self.child = nn.Linear(1, 1)
        self.fn = toy_step


@pytest.mark.parametrize("name", ["w", "b", "nb", "child", "fn", "absent"])
@pytest.mark.parametrize("new", ["module", "tensor", "function"])
def test_transaction_restores_every_registry(name, new):
    h = Holder()
    fp, keys = module_fingerprint(h), list(h.state_dict())
    value = {"module": nn.ReLU(), "tensor": torch.ones(1), "function": torch.tanh}[new]
    tx = Transaction()
    tx.set(h, name, value)
    assert getattr(h, name) is value
    tx.rollback()
    assert module_fingerprint(h) == fp and list(h.state_dict()) == keys
    assert ("nb" in h._non_persistent_buffers_set) and not hasattr(h, "absent")


def test_transaction_context_rolls_back_on_error_in_reverse_order():
    h = Holder()
    fp = module_fingerprint(h)
    order = []
    with pytest.raises(KeyError), Transaction() as tx:
        tx.set(h, "fn", torch.tanh)
        tx.on_undo(lambda: order.append("undo-1"))
        tx.set(h, "fn", torch.sigmoid)
        tx.on_undo(lambda: order.append("undo-2"))
        raise KeyError("boom")
    assert order == ["undo-2", "undo-1"]
    assert module_fingerprint(h) == fp
