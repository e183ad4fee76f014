"""Norse adapter: every Norse module whose parameter record carries a surrogate ``method``.

Norse has no surrogate object: a string ``p.method`` plus ``p.alpha`` in an immutable parameter record
picks one of a closed set inside the module-global ``threshold(x, method, alpha)``, which eleven
functional modules import by name (shared/spec/frameworks.md section 4). Norse's globals are never
touched. Instead, per patched module:

- ``p`` is replaced by ``p._replace(method="sg_stability", alpha=<our surrogate module>)`` (nested
  records such as ``p.lif`` of the refractory cells included);
- the module's step function (``activation``, ``activation_sparse``, or ``forward`` for modules that
  call Norse's functional steps directly) is replaced by a clone whose globals are a private copy of
  its module's globals (registered in ``sys.modules``, so torch.compile resolves them) in which
  ``threshold`` dispatches the ``"sg_stability"`` method to ``p.alpha``; helpers that reach
  ``threshold`` are cloned the same way. Clones are shared by all sites: the surrogate travels in ``p``,
  so a ``deepcopy`` of a patched module uses its own copy.

Any Norse code path that was not cloned would raise Norse's own "no such function" error for the
``"sg_stability"`` method instead of silently using another surrogate. ``remove()`` restores the
identical ``p`` and function objects. Norse is not imported here.
"""

from __future__ import annotations

import functools
import math
import sys
import types
from typing import Any, cast

import torch
from torch import Tensor, nn

from sg_stability.adapter_api import (
    STRICT,
    AdapterInfo,
    CallPattern,
    Dynamics,
    Installed,
    NativeReading,
    NeuronDriver,
    NeuronSite,
    PatchOptions,
    Problem,
    Transaction,
    framework_class,
    hookimpl,
)
from sg_stability.surrogates import FastSigmoid, Gaussian, Sigmoid, Surrogate, Triangular

from ._nir import norse_exchange  # noqa: F401  (this adapter's sg_nir_exchange hook)
from ._norse_clone import MARKER, THRESHOLD_MODULE, clone, reaches_threshold

NAME = "norse"


# -- the records that carry method/alpha -------------------------------------------------------------------

def _record_path(p: Any) -> tuple[str, ...] | None:
    """Where the record with ``method``/``alpha`` sits inside ``p``: () for p itself, ("lif",) for refrac cells."""
    if hasattr(p, "method") and hasattr(p, "alpha") and hasattr(p, "_replace"):
        return ()
    for field in getattr(p, "_fields", ()):
        inner = getattr(p, field)
        if hasattr(inner, "method") and hasattr(inner, "alpha") and hasattr(inner, "_replace"):
            return (field,)
    return None


def _get(p: Any, path: tuple[str, ...]) -> Any:
    for field in path:
        p = getattr(p, field)
    return p


def _replaced(p: Any, path: tuple[str, ...], **changes: Any) -> Any:
    if not path:
        return p._replace(**changes)
    return p._replace(**{path[0]: _replaced(getattr(p, path[0]), path[1:], **changes)})


#: LIF variants described as a LIF: what the model leaves out (named in the analyzer's notes)
_LEFT_OUT = {"LIFAdEx": "the adaptation current and the exponential term", "LIFEx": "the exponential term",
             "LIFRefrac": "the refractory period",
             "LSNN": "the adaptive threshold (it starts at v_th and rises by beta at every spike; v_th is kept)"}


class NorseDriver(NeuronDriver):
    adapter = NAME
    heaviside = STRICT  # gt(x, 0).to(x.dtype)
    slots = ("p",)

    def __init__(self, module: nn.Module, record: tuple[str, ...]) -> None:
        super().__init__(module)
        self.record = record
        act = getattr(module, "activation", None)
        if isinstance(act, types.FunctionType) and reaches_threshold(act):
            self.entry = "activation"
        elif reaches_threshold(type(module).forward):
            self.entry = "forward"
        else:
            self.entry = ""

    def _record(self) -> Any:
        return _get(self.module.p, self.record)

    def current(self) -> dict[str, object]:
        record = self._record()
        return {"p": record.alpha if record.method == MARKER else record}

    def call_pattern(self) -> CallPattern:
        # refractory cells also threshold the refractory counter, after the spike; layers loop over time inside
        return CallPattern(calls_per_step=2 if self.record else 1, spike_call=0,
                           time_first=not type(self.module).__name__.endswith("Cell"))

    def threshold(self) -> float | Tensor | None:
        v_th = getattr(self._record(), "v_th", None)
        return v_th if isinstance(v_th, (float, Tensor)) else None

    def set_threshold(self, value: float | Tensor, tx: Transaction) -> None:
        old = self._record().v_th
        new = torch.as_tensor(value, dtype=old.dtype, device=old.device) if isinstance(old, Tensor) else float(value)
        tx.set(self.module, "p", _replaced(self.module.p, self.record, v_th=new))

    def dynamics(self) -> Dynamics | None:
        p = self._record()
        tau_mem_inv, v_th = getattr(p, "tau_mem_inv", None), getattr(p, "v_th", None)
        if type(self.module).__name__.startswith("IAF") and v_th is not None and not self.record:
            # v_{t+1} = v_t + I (no leak); v = (1 - z) v + z v_reset, differentiated
            v_reset = float(torch.as_tensor(getattr(p, "v_reset", 0.0)).detach().mean())
            threshold = float(torch.as_tensor(v_th).detach().mean())
            return Dynamics(leak=1.0, threshold=threshold, reset="multiplicative", reset_grad=True,
                            reset_jump=threshold - v_reset,
                            note=f"reset to v_reset = {v_reset:g} modelled as a reset to 0" if v_reset else "")
        if tau_mem_inv is None or v_th is None or not type(self.module).__name__.startswith(("LIF", "LSNN")):
            return None
        step = float(getattr(self.module, "dt", 0.001)) * float(torch.as_tensor(tau_mem_inv).mean())
        v_reset = float(torch.as_tensor(getattr(p, "v_reset", 0.0)).mean())
        notes = []
        left_out = next((v for k, v in _LEFT_OUT.items() if type(self.module).__name__.startswith(k)), None)
        if left_out:
            notes.append(f"modelled as a LIF: {left_out} left out")
        if hasattr(p, "tau_syn_inv"):
            notes.append("the synaptic current filter (tau_syn) is not modelled")
        if v_reset:
            notes.append(f"reset to v_reset = {v_reset:g} modelled as a reset to 0")
        threshold = float(torch.as_tensor(v_th).mean())
        # v' = (1 - z) v + z v_reset, decayed by the next step; Norse 1.1.0 detaches z only in its recurrent step
        recurrent = isinstance(getattr(self.module, "recurrent_weights", None), nn.Parameter)
        return Dynamics(leak=1.0 - step, threshold=threshold, reset="multiplicative", reset_grad=not recurrent,
                        reset_jump=(1.0 - step) * (threshold - v_reset), input_gain=step,
                        synapse=hasattr(p, "tau_syn_inv"), note="; ".join(notes))

    def internal_weights(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for key, attr in (("input", "input_weights"), ("recurrent", "recurrent_weights")):
            w = getattr(self.module, attr, None)
            if isinstance(w, nn.Parameter) and w.dim() == 2:
                out[key] = w
        return out

    def problems(self, surrogate: Surrogate, path: str, options: PatchOptions) -> list[Problem]:
        method = self._record().method
        if method == "adjoint":
            return [self.problem(path, "method='adjoint' computes exact adjoint gradients, not a surrogate "
                                 "(and its forward raises ValueError in Norse 1.1.0)",
                                 "build the module with a surrogate method (e.g. method='super'), or leave it out "
                                 "with targets=")]
        if not self.entry:
            return [self.problem(path, f"{type(self.module).__name__} does not reach Norse's threshold function "
                                 "through its step function or forward")]
        return []

    def install(self, surrogate: Surrogate, tx: Transaction, path: str, options: PatchOptions) -> Installed:
        m = self.module
        new = self.bind(surrogate, path, "p")
        tx.set(m, "sg_surrogate", new)  # a child module: .to() moves its tensors, optimizers see its Parameters
        tx.set(m, "p", _replaced(m.p, self.record, method=MARKER, alpha=new))
        if self.entry == "activation":
            tx.set(m, "activation", clone(cast(types.FunctionType, m.activation)))
            sparse = getattr(m, "activation_sparse", None)
            if isinstance(sparse, types.FunctionType) and reaches_threshold(sparse):
                tx.set(m, "activation_sparse", clone(sparse))
        else:
            tx.set(m, "forward", types.MethodType(clone(cast(types.FunctionType, type(m).forward)), m))
        return Installed({"p": new})


@hookimpl
def sg_adapter_info() -> AdapterInfo:
    return AdapterInfo(
        name=NAME,
        framework="norse",
        description="Norse modules whose parameter record has a surrogate method (LIF, LIFBox, LIFRefrac, LSNN, "
        "LIFAdEx, LIFEx, IAF, CobaLIF, Izhikevich, LIF encoders; cells and layers)",
        tested_versions="1.1.0",
    )


@hookimpl(trylast=True)
def sg_find_neuron(module: nn.Module, path: str) -> NeuronSite | None:
    if framework_class(module, "norse") is None:
        return None
    record = _record_path(getattr(module, "p", None))
    if record is None:
        return None
    return NorseDriver(module, record).site(path)


# -- reading Norse's methods -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def superspike_uses_alpha() -> bool:
    """Norse 1.1.0's SuperSpike ignores alpha (fixed on Norse main); probe the installed one once."""
    superspike = sys.modules[THRESHOLD_MODULE].superspike_fn
    x = torch.tensor([1.0], requires_grad=True)
    superspike(x, torch.as_tensor(3.0)).sum().backward()
    assert x.grad is not None
    return math.isclose(x.grad.item(), 1 / 16, rel_tol=1e-6)  # 1/(alpha |x| + 1)^2, not 1/(|x| + 1)^2


def read_method(method: str, alpha: float) -> tuple[Surrogate | None, str]:
    """(canonical surrogate, note) for a Norse threshold method, or (None, reason)."""
    if method == "super":
        if superspike_uses_alpha():  # 1 / (alpha |x| + 1)^2
            return FastSigmoid(1.0, alpha / 2), ""
        return FastSigmoid(1.0, 0.5), "alpha is ignored by this Norse version's SuperSpike (1 / (|x| + 1)^2)"
    if method == "triangle":  # alpha * relu(1 - |x|): alpha is the height
        return Triangular(alpha, 1.0), ""
    if method == "tanh":  # 1 - tanh(alpha x)^2 = sech^2(alpha x)
        return Sigmoid(1.0, alpha / 2), ""
    if method == "heavi_erfc":  # 2 exp(-(alpha x)^2) / sqrt(pi)
        return Gaussian(2 / math.sqrt(math.pi), alpha / math.sqrt(math.pi)), ""
    reasons = {
        "circ": "alpha^3 / (alpha^2 + x^2)^(3/2) is not one of the canonical shapes",
        "heaviside": "a plain step with no surrogate gradient",
        "adjoint": "adjoint gradients, not a surrogate",
    }
    return None, reasons.get(method, f"an unknown Norse method {method!r}")


@hookimpl(trylast=True)
def sg_read_native(obj: Any) -> NativeReading | None:
    if isinstance(obj, nn.Module) and framework_class(obj, "norse") is not None:
        obj = getattr(obj, "p", None)
    path = _record_path(obj)
    if path is None or not type(obj).__module__.startswith("norse."):
        return None
    record = _get(obj, path)
    if record.method == MARKER:
        return NativeReading(source=f"norse {type(record).__name__} patched by sg_stability", surrogate=record.alpha)
    alpha = record.alpha
    alpha_value = float(alpha.item() if isinstance(alpha, torch.Tensor) and alpha.numel() == 1 else alpha)
    source = f"norse {type(record).__name__}(method={record.method!r}, alpha={alpha_value:g})"
    surrogate, note = read_method(record.method, alpha_value)
    if surrogate is None:
        return NativeReading(source=source, reason=note)
    return NativeReading(source=f"{source} [{note}]" if note else source, surrogate=surrogate)
