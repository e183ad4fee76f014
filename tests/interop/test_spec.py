"""A patch as data (``handle.to_dict()`` / ``sg.patch(model, spec)``) and checkpoints (``sg.load_state_dict``):
the surrogates come back bit for bit on a freshly built model, in this process and in a fresh one, and a spec or
checkpoint that does not fit is a four-part error that leaves the model as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.testing import module_fingerprint
from tests.zoo import shd_networks

FRAMEWORKS = ["snntorch", "spikingjelly", "norse"]
ROOT = Path(__file__).resolve().parents[2]


def grads(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    out = model(x)
    (out[0] if isinstance(out, tuple) else out).square().sum().backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def twin(framework: str, model: nn.Module) -> nn.Module:
    """A freshly built model of the same architecture, with ``model``'s weights."""
    fresh, _ = shd_networks.tiny(framework, seed=1)
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if k in fresh.state_dict()})
    return fresh


def params_of(handle: sg.PatchHandle) -> list[tuple[str, str, list]]:
    out = []
    for path, s in handle.surrogates.items():
        canonical = s if isinstance(s, sg.surrogates.Surrogate) else sg.from_native(s)
        values = [torch.as_tensor(v).detach().tolist() for v in canonical.params().values()]
        out.append((path, canonical.family, values))
    return out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_stabilized_patch_comes_back_bit_for_bit_through_json(framework):
    model, x = shd_networks.tiny(framework)
    handle = sg.stabilize(model, x, progress=False)
    spec = json.loads(json.dumps(handle.to_dict()))
    fresh = twin(framework, model)
    again = sg.patch(fresh, spec)
    assert again.to_dict() == spec
    assert params_of(again) == params_of(handle)
    assert [type(s) for s in again.surrogates.values()] == [type(s) for s in handle.surrogates.values()]
    assert all(torch.equal(a, b) for a, b in zip(grads(model, x), grads(fresh, x), strict=True))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_per_neuron_and_learnable_parameters_and_their_sharing_survive(framework):
    model, _ = shd_networks.tiny(framework)
    shared = nn.Parameter(torch.tensor(0.7))
    s = sg.surrogates.get("gaussian", dampening=shared, sharpness=1.5)
    handle = sg.patch(model, targets={"*rec*": s.replace(sharpness=torch.linspace(0.5, 2.0, 8)), "*": s})
    spec = json.loads(json.dumps(handle.to_dict()))
    entries = [site["surrogate"]["params"]["dampening"] for site in spec["sites"]]
    assert all(e["learnable"] and e["tie"] == 0 for e in entries)  # one Parameter, shared by every site
    fresh = twin(framework, model)
    again = sg.patch(fresh, spec)
    dampenings = [s.dampening for s in again.surrogates.values()]
    assert all(isinstance(d, nn.Parameter) and d is dampenings[0] for d in dampenings)
    assert params_of(again) == params_of(handle)
    sharp = [torch.as_tensor(s.sharpness) for s in again.surrogates.values()]
    assert any(t.shape == (8,) and torch.equal(t, torch.linspace(0.5, 2.0, 8)) for t in sharp)


def test_a_spikingjelly_builtin_is_installed_again_as_the_builtin():
    model, _ = shd_networks.tiny("spikingjelly")
    handle = sg.patch(model, surrogate="fast_sigmoid")  # exactly SpikingJelly's own SoftSign: the fused path
    spec = handle.to_dict()
    assert spec["builtin"] and all(site["installed"].startswith("spikingjelly.") for site in spec["sites"])
    again = sg.patch(twin("spikingjelly", model), spec)
    assert [type(s) for s in again.surrogates.values()] == [type(s) for s in handle.surrogates.values()]
    ours = sg.patch(twin("spikingjelly", model), {**spec, "builtin": False})  # what builtin=False wrote
    assert all(isinstance(s, sg.surrogates.Surrogate) for s in ours.surrogates.values())


def _spec(framework: str = "snntorch") -> dict:
    model, _ = shd_networks.tiny(framework)
    spec = sg.patch(model, surrogate="fast_sigmoid", dampening=0.3).to_dict()
    return json.loads(json.dumps(spec))


def _edit(spec: dict, **site_changes: object) -> dict:
    spec["sites"][0].update(site_changes)
    return spec


@pytest.mark.parametrize(("spec", "words"), [
    (_edit(_spec(), path="nowhere"), "site 0 (nowhere) is not a neuron site"),
    (_edit(_spec(), kind="Synaptic"), "another kind of neuron"),
    (_spec("norse"), "another kind of neuron"),
    ({**_spec(), "version": 99}, "version"),
    ({**_spec(), "sites": []}, "lists no sites"),
    (_edit(_spec(), surrogate={"family": "fast_sigmoid"}), "not a {family, params, ...} entry"),
    (_edit(_spec(), surrogate={"family": "nope", "params": {}}), "cannot be built"),
    (_edit(_spec(), surrogate={"family": "atan", "params": {"dampening": {"values": 1.0, "dtype": "float99"}}}),
     "unknown dtype"),
])
def test_a_spec_that_does_not_fit_is_a_four_part_error_and_changes_nothing(spec, words):
    model, _ = shd_networks.tiny("snntorch")
    before = module_fingerprint(model)
    with pytest.raises(sg.ConfigError) as info:
        sg.patch(model, spec)
    text = str(info.value)
    assert words in text and "got:" in text and "allowed:" in text and "fix:" in text
    assert module_fingerprint(model) == before and not sg.is_patched(model)


def test_a_spec_with_targets_or_parameters_is_refused():
    model, _ = shd_networks.tiny("snntorch")
    with pytest.raises(sg.ConfigError, match="spec says every site's surrogate"):
        sg.patch(model, _spec(), dampening=2.0)


# -- checkpoints --------------------------------------------------------------------------------------------
def _dampening(s: object) -> float:
    """The canonical dampening of an installed surrogate (ours, or a framework's own class read back)."""
    canonical = s if isinstance(s, sg.surrogates.Surrogate) else sg.from_native(s)
    return float(torch.as_tensor(canonical.dampening).detach().float().mean())


def _trained_learnable(framework: str) -> tuple[nn.Module, torch.Tensor, sg.PatchHandle]:
    model, x = shd_networks.tiny(framework)
    handle = sg.patch(model, surrogate=sg.surrogates.get("fast_sigmoid", dampening=nn.Parameter(torch.tensor(0.5))))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        opt.zero_grad()
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).square().mean().backward()
        opt.step()
        sg.surrogates.clamp_learnable_(model)
    return model, x, handle


@pytest.mark.slow  # a fresh process per case
@pytest.mark.parametrize("kind", ["learnable", "stabilized"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_checkpoint_resumes_in_a_fresh_process_with_the_same_surrogates(framework, kind, tmp_path):
    if kind == "learnable":
        model, x, handle = _trained_learnable(framework)
        assert float(next(iter(handle.surrogates.values())).dampening.detach()) != 0.5  # training moved it
    else:  # a data-dependent choice (often a dampening per layer), in plain floats: nothing in the state_dict
        model, x = shd_networks.tiny(framework)
        handle = sg.stabilize(model, x, progress=False)
    learned = [_dampening(s) for s in handle.surrogates.values()]
    torch.save({"model": model.state_dict(), "sg_spec": handle.to_dict(), "x": x,
                "grads": grads(model, x)}, tmp_path / "ckpt.pt")
    script = f"""
import torch, sg_stability as sg
from tests.zoo import shd_networks
ckpt = torch.load({str(tmp_path / "ckpt.pt")!r}, weights_only=False)
model, _ = shd_networks.tiny({framework!r}, seed=7)
handle = sg.load_state_dict(model, ckpt["model"], ckpt["sg_spec"])
def dampening(s):
    c = s if isinstance(s, sg.surrogates.Surrogate) else sg.from_native(s)
    return float(torch.as_tensor(c.dampening).detach().float().mean())
print([dampening(s) for s in handle.surrogates.values()])
model.zero_grad()
out = model(ckpt["x"])
(out[0] if isinstance(out, tuple) else out).square().sum().backward()
got = [p.grad for p in model.parameters() if p.grad is not None]
print(all(torch.equal(a, b) for a, b in zip(got, ckpt["grads"], strict=True)))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[-2]) == learned and lines[-1] == "True"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_learned_surrogate_without_its_spec_is_named_not_dropped(framework):
    model, _, handle = _trained_learnable(framework)
    state = model.state_dict()
    handle.remove()
    fresh, _ = shd_networks.tiny(framework, seed=3)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(sg.ConfigError) as info:
        sg.load_state_dict(fresh, state)
    text = str(info.value)
    assert "learnable surrogate parameters" in text and ".dampening" in text and "spec" in text
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in before.items()) and not sg.is_patched(fresh)


def test_a_checkpoint_of_other_sizes_loads_nothing_and_leaves_the_model_unpatched():
    model, _, handle = _trained_learnable("snntorch")
    spec, state = handle.to_dict(), model.state_dict()
    other = shd_networks.build("snntorch", {"n_in": 12, "n_rec": 9, "n_out": 3}, steps=6, batch=2, rate=0.3)[0]
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(sg.ConfigError) as info:
        sg.load_state_dict(other, state, spec)
    assert "other shapes" in str(info.value) or "does not fit" in str(info.value)
    assert all(torch.equal(other.state_dict()[k], v) for k, v in before.items()) and not sg.is_patched(other)
