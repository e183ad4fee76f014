"""Bad input: every error names what was wrong, the value received, what is allowed and the fix."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.testing import module_fingerprint

snn = pytest.importorskip("snntorch")


def four_part(err: BaseException, *got: str) -> str:
    msg = str(err)
    lines = msg.splitlines()
    assert any(line.strip().startswith("got:") for line in lines), msg
    assert any(line.strip().startswith("allowed:") for line in lines), msg
    assert any(line.strip().startswith("fix:") for line in lines), msg
    got_line = next(line for line in lines if line.strip().startswith("got:"))
    for needle in got:
        assert needle in got_line or needle in msg, (needle, msg)
    return msg


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), snn.Leaky(0.9, init_hidden=True), nn.Linear(4, 2),
                         snn.Leaky(0.9, init_hidden=True))


def unchanged(model, fp) -> None:
    assert module_fingerprint(model) == fp
    assert not sg.is_patched(model)


def test_unknown_family_with_did_you_mean():
    model = net()
    fp = module_fingerprint(model)
    with pytest.raises(sg.UnknownSurrogateError) as e:
        sg.patch(model, "atn")
    msg = four_part(e.value, "'atn'")
    assert "Did you mean 'atan'?" in msg and "fast_sigmoid" in msg
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    unchanged(model, fp)


@pytest.mark.parametrize(("kwargs", "got", "words"), [
    ({"dampening": 0.0}, "0.0", "dampening (gamma) must be finite and > 0"),
    ({"dampening": -0.3}, "-0.3", "dampening (gamma) must be finite and > 0"),
    ({"sharpness": 0}, "0", "sharpness (beta) must be finite and > 0"),
    ({"sharpness": -2.0}, "-2.0", "sharpness (beta) must be finite and > 0"),
    ({"dampening": math.nan}, "nan", "is NaN"),
    ({"sharpness": math.inf}, "inf", "must be finite"),
    ({"dampening": "0.3"}, "'0.3'", "wrong type"),
    ({"dampening": torch.tensor([0.5, -1.0])}, "-1.0", "every element"),
    ({"sharpness": torch.tensor([1, 2])}, "torch.int64", "floating-point"),
])
def test_bad_dampening_and_sharpness(kwargs, got, words):
    model = net()
    fp = module_fingerprint(model)
    with pytest.raises(sg.ConfigError) as e:
        sg.patch(model, "fast_sigmoid", **kwargs)
    assert words in four_part(e.value, got)
    unchanged(model, fp)


@pytest.mark.parametrize("tail", [1.0, 0.5, -3, math.nan])
def test_tail_must_exceed_one(tail):
    with pytest.raises(sg.ConfigError) as e:
        sg.patch(net(), "q_pseudospike", tail=tail)
    assert "q must be finite, greater than 1" in four_part(e.value, repr(tail))


def test_parameter_the_family_does_not_have():
    with pytest.raises(sg.ConfigError) as e:
        sg.patch(net(), "atan", tail=1.5)
    assert "has no parameter 'tail'" in four_part(e.value, "'tail': 1.5")


def test_per_neuron_tensor_of_the_wrong_shape_before_patching():
    model = snn.LeakyParallel(input_size=3, hidden_size=5)
    fp = module_fingerprint(model)
    with pytest.raises(sg.PreflightError) as e:
        sg.patch(model, "atan", sharpness=torch.ones(6))
    assert "(6,)" in four_part(e.value) and "(5,)" in str(e.value)
    unchanged(model, fp)


def test_per_neuron_tensor_of_the_wrong_shape_at_forward_names_the_site():
    model = net()  # Leaky does not know its width before the first forward
    sg.patch(model, "atan", dampening=torch.full((3,), 0.5))
    with pytest.raises(sg.ConfigError) as e:
        model(torch.randn(2, 3))
    msg = four_part(e.value, "(3,)")
    assert "'1'" in msg and "(2, 4)" in msg


def test_model_without_spiking_neurons_lists_adapters_and_module_types():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with pytest.raises(sg.NoNeuronsFoundError) as e:
        sg.patch(model, "atan")
    msg = four_part(e.value, "Sequential")
    assert "snntorch (snntorch 1." in msg and "Linear x2" in msg and "ReLU x1" in msg
    assert "adapter" in msg.split("fix:")[1]


def test_targets_that_match_nothing():
    model = net()
    fp = module_fingerprint(model)
    with pytest.raises(sg.NoNeuronsFoundError) as e:
        sg.patch(model, "atan", targets="encoder.*")
    msg = four_part(e.value, "'encoder.*'")
    assert "1, 3" in msg  # the paths that exist
    unchanged(model, fp)


def test_some_target_patterns_match_nothing_in_strict_mode():
    model = net()
    with pytest.raises(sg.NoNeuronsFoundError) as e:
        sg.patch(model, "atan", targets=["1", "lif9"])
    assert "strict=False" in four_part(e.value, "['lif9']")
    assert not sg.is_patched(model)


def test_bad_targets_type():
    with pytest.raises(sg.ConfigError) as e:
        sg.patch(net(), "atan", targets=[1, 2])
    four_part(e.value, "[1, 2]")


def test_patching_twice():
    model = net()
    h = sg.patch(model, "atan")
    fp = module_fingerprint(model)
    with pytest.raises(sg.AlreadyPatchedError) as e:
        sg.patch(model, "gaussian")
    assert "handle.remove()" in four_part(e.value, "live PatchHandle") and "1, 3" in str(e.value)
    assert module_fingerprint(model) == fp
    h.remove()


def test_removing_twice_is_a_no_op():
    model = net()
    h = sg.patch(model, "atan")
    assert h.remove() is True
    fp = module_fingerprint(model)
    assert h.remove() is False
    assert module_fingerprint(model) == fp and h.removed


def test_removing_after_someone_else_replaced_the_surrogate():
    model = net()
    h = sg.patch(model, "atan")
    model[3].spike_grad = sg.surrogates.Gaussian()  # by hand, behind the handle's back
    with pytest.raises(sg.PatchConflictError) as e:
        h.remove()
    msg = four_part(e.value, "3.spike_grad holds gaussian")
    assert "force=True" in msg
    assert isinstance(model[1].spike_grad, sg.surrogates.ATan)  # nothing restored


@pytest.mark.parametrize("thing", [None, "model", torch.zeros(2), [nn.Linear(1, 1)]])
def test_something_that_is_not_an_nn_module(thing):
    for fn in (lambda: sg.patch(thing, "atan"), lambda: sg.find_neurons(thing), lambda: sg.unpatch(thing)):
        with pytest.raises(sg.ConfigError) as e:
            fn()
        four_part(e.value, type(thing).__name__)


def test_surrogate_missing_or_given_twice():
    with pytest.raises(sg.ConfigError) as e:
        sg.patch(net())
    assert "needs a surrogate" in four_part(e.value, "None")
    with pytest.raises(sg.ConfigError) as e:
        sg.patch(net(), "atan", targets={"1": "gaussian"})
    four_part(e.value, "surrogate='atan'")
    with pytest.raises(sg.ConfigError) as e:
        sg.patch(net(), sg.surrogates.ATan(), dampening=0.3)
    four_part(e.value, "dampening")
    with pytest.raises(sg.ConfigError) as e:
        sg.patch(net(), 3.0)
    four_part(e.value, "3.0")


def test_surrogate_base_class_and_bad_moment_order():
    with pytest.raises(sg.ConfigError) as e:
        sg.surrogates.Surrogate()
    four_part(e.value, "Surrogate")
    with pytest.raises(sg.ConfigError) as e:
        sg.surrogates.ATan().moment(0.5, m=0)
    four_part(e.value, "0")
