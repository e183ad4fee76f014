"""Lifecycle of a patched model in all three frameworks: deepcopy (and patching the copy again), whole-model save and
load, ``state_dict`` round trips, ``torch.compile``, several threads patching and removing at once, and learnable
parameters that an optimizer pushes out of their range."""

from __future__ import annotations

import copy
import io
import sys
import threading
import warnings

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.testing import module_fingerprint
from tests.compile_check import assert_compiled_gradients_equal
from tests.zoo import shd_networks

FRAMEWORKS = ["snntorch", "spikingjelly", "norse"]
make = shd_networks.tiny


def input_grad(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    xx = x.clone().requires_grad_()
    for site in sg.find_neurons(model):
        site.driver.reset_state()
    out = model(xx)
    (out * torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)).sum().backward()
    assert xx.grad is not None
    return xx.grad


def surrogate_objects(model: nn.Module) -> list[object]:
    return [obj for site in sg.find_neurons(model) for obj in site.driver.current().values()]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_deepcopy_of_a_patched_model_can_be_patched_again_and_undone(framework):
    model, x = make(framework)
    handle = sg.patch(model, "atan", dampening=0.5, sharpness=2.0)
    twin = copy.deepcopy(model)
    assert sg.is_patched(model) and not sg.is_patched(twin)  # the handle belongs to the original
    copied = surrogate_objects(twin)
    g_copy = input_grad(twin, x)
    assert torch.equal(g_copy, input_grad(model, x))  # the copy carries the same surrogate

    with sg.patch(twin, "gaussian", dampening=0.5, sharpness=2.0) as second:
        assert sg.is_patched(twin) and len(second.sites) == len(sg.find_neurons(twin))
        assert not torch.equal(input_grad(twin, x), g_copy)  # the new surrogate acts on the copy
        assert torch.equal(input_grad(model, x), g_copy)  # and not on the original
    assert all(a is b for a, b in zip(surrogate_objects(twin), copied, strict=True))
    assert torch.equal(input_grad(twin, x), g_copy)
    handle.remove()
    assert not sg.is_patched(model)


NORSE_PICKLE = pytest.param("norse", marks=pytest.mark.xfail(
    strict=True, raises=Exception, reason="Norse 1.1.0 limitation: its parameter records (LIFParameters, made by a "
    "pytree class factory) cannot be pickled, so torch.save(model) fails on an unpatched Norse model too"))


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", NORSE_PICKLE])
def test_whole_model_save_and_load_keeps_the_gradients_and_can_be_repatched(framework):
    model, x = make(framework)
    with sg.patch(model, "fast_sigmoid", dampening=0.4, sharpness=3.0):
        want = input_grad(model, x)
        buffer = io.BytesIO()
        torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(input_grad(loaded, x), want)
    with sg.patch(loaded, "triangular"):
        assert sg.is_patched(loaded)
    assert torch.equal(input_grad(loaded, x), want)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_state_dict_round_trip_between_patched_and_plain_models(framework):
    model, x = make(framework)
    plain_keys = list(model.state_dict())
    with sg.patch(model, "sigmoid", dampening=0.5, sharpness=1.5):
        state = copy.deepcopy(model.state_dict())
        assert list(state) == plain_keys  # patching adds no keys: checkpoints stay loadable without sg_stability
        fresh, _ = make(framework, seed=1)
        fresh.load_state_dict(state)
        with sg.patch(fresh, "sigmoid", dampening=0.5, sharpness=1.5):
            assert torch.equal(input_grad(fresh, x), input_grad(model, x))
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(input_grad(fresh, x), input_grad(model, x))


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_torch_compile_gradients_equal_eager_after_patching(framework):
    model, x = make(framework)
    with sg.patch(model, "q_pseudospike", dampening=0.5, sharpness=2.0, tail=1.5):

        def loss(m: nn.Module) -> torch.Tensor:
            for site in sg.find_neurons(model):
                site.driver.reset_state()
            return m(x).sum()

        assert_compiled_gradients_equal(model, loss)


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_learnable_surrogate_compiles_into_one_graph_with_the_eager_gradients(framework):
    """The per-forward range check of a learnable parameter reads a value back from the device; inside a compiled
    graph it is skipped, so the graph does not break (it broke twice per neuron and step), and the parameter's own
    gradient through the compiled model equals eager."""
    model, x = make(framework)
    dampening = nn.Parameter(torch.tensor(0.5))
    with sg.patch(model, surrogate=sg.surrogates.get("fast_sigmoid", dampening=dampening)):

        def loss(m: nn.Module) -> torch.Tensor:
            for site in sg.find_neurons(model):
                site.driver.reset_state()
            return m(x).square().sum()

        torch._dynamo.reset()
        with warnings.catch_warnings():  # dynamo's own warnings while tracing the frameworks' code
            warnings.simplefilter("ignore")
            explained = torch._dynamo.explain(model)(x)
        assert [str(r.reason).splitlines()[0] for r in explained.break_reasons
                if "sg_stability" in "".join(f.filename for f in r.user_stack)] == []
        assert_compiled_gradients_equal(model, loss)
        assert dampening.grad is not None and dampening.grad.abs() > 0


@pytest.fixture
def fast_switching():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    yield
    sys.setswitchinterval(interval)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_threads_patching_one_model_never_lose_the_originals(framework, fast_switching):
    model, _ = make(framework)
    fingerprint, originals = module_fingerprint(model), surrogate_objects(model)
    for _ in range(10):
        barrier = threading.Barrier(2)
        outcomes: list[object] = []

        def attempt(family: str, barrier: threading.Barrier = barrier, outcomes: list[object] = outcomes) -> None:
            barrier.wait()
            try:
                outcomes.append(sg.patch(model, family))
            except sg.AlreadyPatchedError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=attempt, args=(f,)) for f in ("atan", "gaussian")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        handles = [o for o in outcomes if isinstance(o, sg.PatchHandle)]
        assert len(handles) == 1 and len(outcomes) == 2  # one wins; the other is told the model is patched
        handles[0].remove()
        assert module_fingerprint(model) == fingerprint
        assert all(a is b for a, b in zip(surrogate_objects(model), originals, strict=True))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_patch_remove_and_analyze_from_several_threads(framework, fast_switching):
    model, x = make(framework)
    fingerprint = module_fingerprint(model)
    errors: list[BaseException] = []

    def patcher() -> None:
        for _ in range(15):
            try:
                with sg.patch(model, "exponential"):
                    pass
            except sg.AlreadyPatchedError:
                pass
            except BaseException as exc:  # noqa: BLE001 -- anything else is a bug, reported below
                errors.append(exc)

    def analyst() -> None:
        try:
            for _ in range(2):
                sg.analysis.analyze_layers(model, x)
        except BaseException as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (patcher, patcher, analyst)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not sg.is_patched(model)
    assert module_fingerprint(model) == fingerprint


@pytest.mark.parametrize("name", ["dampening", "sharpness"])
def test_a_learnable_parameter_pushed_out_of_range_stops_training_with_a_clear_error(name):
    value = torch.nn.Parameter(torch.full((4,), 0.5))
    surrogate = sg.surrogates.FastSigmoid(**{name: value})
    x = torch.randn(3, 4, requires_grad=True)
    surrogate(x).sum().backward()
    with torch.no_grad():
        value[1] = -3000.0  # what a large SGD step did to a learnable dampening
    with pytest.raises(sg.ConfigError) as info:
        surrogate(x)
    msg = str(info.value)
    assert f"learnable {name}" in msg and "-3000.0" in msg and "clamp_" in msg
    model = nn.Sequential(surrogate)
    assert sg.surrogates.clamp_learnable_(model) == 1
    assert float(value.detach().min()) == pytest.approx(sg.surrogates.RANGES[name][0], rel=1e-6)
    assert torch.isfinite(surrogate(x)).all()  # training can go on


def _norse_clones(model: nn.Module) -> list[object]:
    import types

    clones = []
    for module in model.modules():
        for name in ("activation", "forward"):
            fn = module.__dict__.get(name)
            fn = fn.__func__ if isinstance(fn, types.MethodType) else fn
            if isinstance(fn, types.FunctionType) and "_norse_mirror" in (fn.__module__ or ""):
                clones.append(fn)
    return clones


@pytest.mark.slow
def test_norse_step_function_clones_pickle_by_reference_in_this_process_and_a_fresh_one():
    import pickle
    import subprocess

    model, _ = make("norse")
    with sg.patch(model, "atan"):
        clones = _norse_clones(model)
        assert clones
        for fn in clones:
            assert pickle.loads(pickle.dumps(fn)) is fn
        payload = pickle.dumps(clones).hex()
    code = ("import pickle, sys; fns = pickle.loads(bytes.fromhex(sys.argv[1])); "
            "print(all(f.__globals__['threshold'].__name__ == 'threshold' and f.__module__.startswith("
            "'sg_stability.adapters._norse_mirror.') for f in fns))")
    out = subprocess.run([sys.executable, "-c", code, payload], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out.stderr
