"""The interop surfaces fed wrong values, as a careless user would: specs, checkpoints and NIR (bad input to
the loggers and the Lightning callback is in test_lightning.py). Each case raises a four-part error and leaves the
model as it was (the same objects, the same weights, no patch)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.testing import module_fingerprint
from tests.zoo import shd_networks

pytest.importorskip("snntorch")


def model_and_sample() -> tuple[nn.Module, torch.Tensor]:
    return shd_networks.tiny("snntorch")


def spec() -> dict:
    model, _ = model_and_sample()
    handle = sg.patch(model, surrogate="fast_sigmoid", dampening=torch.full((8,), 0.5), targets="lif_rec")
    return json.loads(json.dumps(handle.to_dict()))


def edited(**params: Any) -> dict:
    s = spec()
    s["sites"][0]["surrogate"]["params"]["dampening"].update(params)
    return s


def learnable_state() -> dict:
    model, _ = model_and_sample()
    sg.patch(model, surrogate=sg.surrogates.get("atan", dampening=nn.Parameter(torch.tensor(0.5))))
    return model.state_dict()


# (id, call(model, sample), error class, words the message must hold)
CASES: list[tuple[str, Callable[[nn.Module, torch.Tensor], Any], type[Exception], tuple[str, ...]]] = [
    ("dict-that-is-not-a-spec", lambda m, x: sg.patch(m, {"lif_rec": "atan"}), sg.ConfigError,
     ("read as a patch spec", "targets={glob: surrogate}")),
    ("spec-values-do-not-fill-the-shape", lambda m, x: sg.patch(m, edited(values=[0.5, 0.5, 0.5])), sg.ConfigError,
     ("do not make a tensor of its shape",)),
    ("spec-ragged-values", lambda m, x: sg.patch(m, edited(values=[[1.0], [1.0, 2.0]], shape=[2])), sg.ConfigError,
     ("do not make a tensor",)),
    ("spec-nan-value", lambda m, x: sg.patch(m, edited(values=[float("nan")] * 8)), sg.ConfigError,
     ("cannot be built",)),
    ("spec-without-sites", lambda m, x: sg.patch(m, {"format": "sg_stability.patch", "version": 1}), sg.ConfigError,
     ("lists no sites",)),
    ("spec-site-without-path", lambda m, x: sg.patch(m, {**spec(), "sites": [{"surrogate": {}}]}), sg.ConfigError,
     ("it has no path",)),
    ("spec-with-targets", lambda m, x: sg.patch(m, spec(), targets="lif_rec"), sg.ConfigError,
     ("spec says every site's surrogate",)),
    ("load-a-path-not-a-state-dict", lambda m, x: sg.load_state_dict(m, "ckpt.pt"), sg.ConfigError,
     ("state_dict must be a mapping",)),
    ("load-with-a-spec-that-is-not-one", lambda m, x: sg.load_state_dict(m, m.state_dict(), {"a": 1}),
     sg.ConfigError, ("spec is not a patch spec",)),
    ("load-learnable-without-spec", lambda m, x: sg.load_state_dict(m, learnable_state()), sg.ConfigError,
     ("learnable surrogate parameters", "spec")),
    ("load-strict-missing-keys", lambda m, x: sg.load_state_dict(m, {"fc_in.weight": m.fc_in.weight.detach()}),
     sg.ConfigError, ("does not fit the model",)),
    ("to-nir-not-a-module", lambda m, x: sg.to_nir("model", x), sg.ConfigError, ("nn.Module",)),
    ("from-nir-not-a-graph", lambda m, x: sg.from_nir({"nodes": 1}, framework="snntorch"), sg.ConfigError,
     ("not a NIR graph",)),
    ("from-nir-framework-not-a-name", lambda m, x: sg.from_nir(object(), framework=["snntorch"]), sg.ConfigError,
     ("adapter's name",)),
    ("from-nir-unknown-framework", lambda m, x: sg.from_nir(object(), framework="brian2"), sg.ConfigError,
     ("no NIR exchange",)),
]


@pytest.mark.parametrize(("call", "error", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_interop_input_is_a_four_part_error_that_changes_nothing(call, error, words):
    model, x = model_and_sample()
    fingerprint, state = module_fingerprint(model), copy.deepcopy(model.state_dict())
    with pytest.raises(error) as info:
        call(model, x)
    text = str(info.value)
    assert all(part in text for part in ("got:", "allowed:", "fix:")), text
    assert all(w in text for w in words), text
    assert module_fingerprint(model) == fingerprint and not sg.is_patched(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_a_spec_written_after_remove_still_patches_a_fresh_model():
    model, _ = model_and_sample()
    handle = sg.patch(model, surrogate="triangular", dampening=0.4)
    handle.remove()
    fresh, _ = model_and_sample()
    again = sg.patch(fresh, handle.to_dict())
    assert {s.family for s in again.surrogates.values()} == {"triangular"}
