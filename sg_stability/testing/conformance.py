"""Conformance checks a user (or an adapter author) can run on their own model in one call.

    from sg_stability.testing import verify_patch
    report = verify_patch(model, run)          # raises AssertionError naming what failed
    print(report)

``run(model)`` must reset the model's state, run a forward pass on a fixed input and return the output
tensor (spikes or membrane); it is called several times and must be deterministic.

Checked, for every neuron site the adapters claim:

1. patching then removing at once leaves every module attribute the identical object it was;
2. after patching, the forward output is bitwise unchanged (the Heaviside convention is kept);
3. every installed surrogate is called, and the gradient it passes back equals
   ``surrogate.derivative(v) * incoming_gradient`` for the exact ``v`` it received; where an adapter
   installed the framework's own class instead (SpikingJelly's fused built-ins), the model's gradients
   equal those of a ``builtin=False`` patch (our module on the framework's reference path);
4. patching keeps the ``state_dict`` keys; patch + remove keeps its tensors; after ``remove()``, outputs
   and parameter gradients are bitwise equal to the unpatched model's and the surrogate slots hold
   the original objects;
5. patching twice raises :class:`~sg_stability.AlreadyPatchedError`; removing twice is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import AlreadyPatchedError, ConfigError, raw
from .._handle import live_handles
from .._patching import find_neurons, patch, require_module
from .._state import preserved_state
from .._validate import flag
from ..surrogates import Surrogate, get

Fingerprint = dict[str, tuple[Any, ...]]


def module_fingerprint(model: nn.Module) -> Fingerprint:
    """Type and object identity of every attribute of every module (``__dict__`` and registries)."""
    out: Fingerprint = {}
    for path, module in model.named_modules(remove_duplicate=False):
        entries = []
        for registry in ("_parameters", "_buffers", "_modules"):
            entries += [(registry, k, id(v)) for k, v in module.__dict__[registry].items()]
        entries += [("__dict__", k, id(v)) for k, v in module.__dict__.items()
                    if k not in ("_parameters", "_buffers", "_modules")]
        out[path] = (type(module), tuple(sorted(entries, key=lambda e: (e[0], e[1]))))
    return out


def _diff(before: Fingerprint, after: Fingerprint) -> list[str]:
    problems = [f"module {p!r} appeared" for p in after.keys() - before.keys()]
    problems += [f"module {p!r} disappeared" for p in before.keys() - after.keys()]
    for path in before.keys() & after.keys():
        if before[path] != after[path]:
            b = {(e[0], e[1]): e[2] for e in before[path][1]}
            a = {(e[0], e[1]): e[2] for e in after[path][1]}
            changed = sorted({k[1] for k in b.keys() | a.keys() if b.get(k) != a.get(k)})
            problems.append(f"module {path!r}: attributes {changed} are not the identical objects")
    return problems


class SurrogateProbe:
    """Observes sg_stability surrogates in a model during forward/backward.

    For each call it records how many times it ran and compares the gradient the surrogate's backward
    produced with ``derivative(v) * grad_output`` (an independent evaluation of the canonical formula).
    """

    def __init__(self, surrogates: dict[str, Surrogate], rtol: float = 1e-5, atol: float = 1e-7) -> None:
        self.calls: dict[str, int] = dict.fromkeys(surrogates, 0)
        self.checked: dict[str, int] = dict.fromkeys(surrogates, 0)
        self.mismatches: list[str] = []
        self._handles = [s.register_forward_hook(self._forward_hook(name, rtol, atol))
                         for name, s in surrogates.items()]

    def _forward_hook(self, name: str, rtol: float, atol: float) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Tensor) -> None:
            self.calls[name] += 1
            if out.grad_fn is None:
                return
            x = args[0].detach()
            surrogate = module

            def node_hook(grad_inputs: tuple[Tensor | None, ...], grad_outputs: tuple[Tensor | None, ...]) -> None:
                got, g = grad_inputs[0], grad_outputs[0]
                if got is None or g is None:
                    return
                assert isinstance(surrogate, Surrogate)
                want = surrogate.derivative(x.double()) * g.double()
                self.checked[name] += 1
                # rounding scales with the gradient: the absolute tolerance is relative to its largest entry
                scale = float(want.abs().max()) if want.numel() else 0.0
                if not torch.allclose(got.double(), want, rtol=rtol, atol=max(atol, rtol * scale)):
                    err = (got.double() - want).abs().max().item()
                    self.mismatches.append(f"{name}: gradient differs from derivative(v) * grad (max {err:.3g})")

            out.grad_fn.register_hook(node_hook)

        return hook

    def close(self) -> None:
        for h in self._handles:
            h.remove()


@dataclass
class ConformanceReport:
    sites: list[str]
    calls: dict[str, int]
    gradient_checks: dict[str, int]
    failures: list[str] = field(default_factory=list)
    framework_classes: list[str] = field(default_factory=list)  # sites checked against our reference path
    unused: list[str] = field(default_factory=list)  # called, but the output does not depend on their spikes

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        head = f"sg_stability conformance: {'PASS' if self.ok else 'FAIL'} on {len(self.sites)} sites"
        rows = [f"  {s}: {self.calls.get(s, 0)} calls, {self.gradient_checks.get(s, 0)} gradients checked"
                for s in self.calls]
        rows += [f"  {s}: framework's own surrogate class, gradients equal to our reference path"
                 for s in self.framework_classes]
        rows += [f"  {s}: no gradient reached this surrogate: the output does not depend on its spikes (e.g. a "
                 "loss on the output layer's membrane); not a failure" for s in self.unused]
        return "\n".join([head, *rows, *(f"  FAIL: {f}" for f in self.failures)])


def _forward_backward(model: nn.Module, run: Callable[[nn.Module], Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    model.zero_grad(set_to_none=True)
    out = run(model)
    if not isinstance(out, Tensor) or not out.is_floating_point():
        raise ConfigError("verify_patch: run(model) must return the output as one floating-point tensor",
                          got=raw(f"{type(out).__name__}" + (f" of dtype {out.dtype}" if isinstance(out, Tensor)
                                                              else "")),
                          allowed="a tensor of spikes or membranes (e.g. torch.stack(outputs))",
                          fix="return one tensor from run, e.g. lambda m: m(x)[0] for a (spikes, state) pair")
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=torch.float64, device=out.device).reshape(out.shape)
    loss = (out.double() * weights).sum()
    if loss.requires_grad:
        loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach().clone(), grads


def verify_patch(
    model: nn.Module,
    run: Callable[[nn.Module], Tensor],
    surrogate: str | Surrogate = "fast_sigmoid",
    *,
    raise_on_failure: bool = True,
    **params: Any,
) -> ConformanceReport:
    """Run the conformance battery (module docstring) on ``model``; leaves it unpatched (also when it raises)."""
    require_module(model, "verify_patch")
    if not callable(run):
        raise ConfigError("verify_patch: run must be a callable run(model) -> output tensor", got=run,
                          allowed="a function that resets the model, runs a fixed input and returns a tensor",
                          fix="pass e.g. run=lambda m: m(x)")
    get(surrogate, **params)  # a bad surrogate is a four-part error before anything is patched
    flag(raise_on_failure, "raise_on_failure", where="verify_patch")
    before = len(live_handles(model))
    try:
        with preserved_state(model):  # the runs leave no hidden state behind either
            return _verify(model, run, surrogate, raise_on_failure, params)
    except BaseException:
        for handle in live_handles(model)[before:]:  # the patches this call made
            handle.remove(force=True)
        raise


def _verify(model: nn.Module, run: Callable[[nn.Module], Tensor], surrogate: str | Surrogate,
            raise_on_failure: bool, params: dict[str, Any]) -> ConformanceReport:
    failures: list[str] = []
    sites = find_neurons(model)
    paths = [s.path for s in sites]
    if not sites:
        failures.append("no neuron sites found")
    originals = {(s.path, slot): obj for s in sites for slot, obj in s.driver.current().items()}
    state_before = {k: v.detach().clone() for k, v in model.state_dict().items()}

    fp = module_fingerprint(model)
    handle = patch(model, surrogate, **params)
    if model.state_dict().keys() != state_before.keys():
        failures.append("the patch changed the state_dict keys (only learnable surrogate parameters may add keys)")
    handle.remove()
    failures += [f"patch+remove: {p}" for p in _diff(fp, module_fingerprint(model))]
    state_after = model.state_dict()
    if state_after.keys() != state_before.keys() or not all(
        torch.equal(state_before[k], state_after[k]) for k in state_before
    ):
        failures.append("patch+remove changed state_dict tensors")

    out0, grads0 = _forward_backward(model, run)

    handle = patch(model, surrogate, **params)
    installed = {k: v for k, v in handle.surrogates.items() if isinstance(v, Surrogate)}
    framework_own = sorted(k for k, v in handle.surrogates.items() if not isinstance(v, Surrogate))
    probe = SurrogateProbe(installed)
    try:
        out1, grads1 = _forward_backward(model, run)
    finally:
        probe.close()
    if not torch.equal(out0, out1):
        failures.append("forward output changed by the patch (spikes must stay bit-identical)")
    failures += probe.mismatches
    failures += [f"{name}: surrogate never called" for name, n in probe.calls.items() if n == 0]
    # a surrogate whose spikes the output does not use (the loss on the last layer's membrane, the snnTorch
    # tutorials' style) receives no gradient: reported, not a failure, unless no surrogate received any
    unused = [name for name, n in probe.checked.items() if n == 0 and probe.calls.get(name, 0) > 0]
    if probe.checked and not any(probe.checked.values()):
        failures.append("no gradient reached any surrogate: check that run(model) returns an output that depends "
                        "on the spikes")
        unused = []
    if framework_own:
        # The framework's own class was installed (e.g. to keep fused kernels): its gradients must equal
        # those of our module on the framework's reference path.
        handle.remove()
        with patch(model, surrogate, builtin=False, **params):
            out_ref, grads_ref = _forward_backward(model, run)
        if not torch.equal(out_ref, out1):
            failures.append(f"{framework_own}: forward differs between the framework's class and ours")
        # fused kernels round differently, and a gradient summed with cancellation (a BatchNorm bias) keeps
        # the rounding of its terms: compare relative to the largest gradient entry of the model
        scale = max((float(g.abs().max()) for g in grads_ref.values() if g.numel()), default=0.0)
        differ = [k for k in grads_ref if k not in grads1 or not torch.allclose(
            grads1[k], grads_ref[k], rtol=1e-4, atol=1e-5 * scale + 1e-12)]
        if differ:
            failures.append(f"{framework_own}: gradients of the framework's own class differ from ours on {differ}")
        handle = patch(model, surrogate, **params)
    try:
        patch(model, surrogate, **params)
        failures.append("patching twice did not raise AlreadyPatchedError")
    except AlreadyPatchedError:
        pass
    handle.remove()
    if handle.remove() is not False:
        failures.append("second remove() was not a no-op")

    for (path, slot), obj in originals.items():
        site = next(s for s in find_neurons(model) if s.path == path)
        if site.driver.current()[slot] is not obj:
            failures.append(f"{path}.{slot}: not the identical original object after remove()")
    out2, grads2 = _forward_backward(model, run)
    if not torch.equal(out0, out2):
        failures.append("forward output after remove() differs from the unpatched model")
    bad = [k for k in grads0 if k not in grads2 or not torch.equal(grads0[k], grads2[k])]
    if bad or grads0.keys() != grads2.keys():
        failures.append(f"gradients after remove() differ from the unpatched model: {bad}")

    report = ConformanceReport(paths, dict(probe.calls), dict(probe.checked), failures, framework_own, unused)
    if raise_on_failure and failures:
        raise AssertionError(str(report))
    return report
