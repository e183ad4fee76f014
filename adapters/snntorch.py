"""snnTorch adapter: every module from ``snntorch`` that carries ``spike_grad``.

Facts (shared/spec/frameworks.md section 2): the surrogate is the instance attribute ``spike_grad``,
any callable applied to ``mem - threshold`` (``|delta v| - delta_threshold`` for DeltaLeaky);
forward convention ``(x > 0).float()``; ``LeakyParallel`` is not a ``SpikingNeuron``, so modules are
claimed by duck typing. snnTorch is never imported here: a model holding snnTorch modules implies it
is imported already.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

import torch
from torch import Tensor, nn

from sg_stability.adapter_api import (
    SKIP_FIX,
    AdapterInfo,
    CallPattern,
    Dynamics,
    Heaviside,
    NativeReading,
    NeuronDriver,
    NeuronSite,
    PatchOptions,
    Problem,
    Transaction,
    framework_class,
    hookimpl,
)
from sg_stability.surrogates import ATan, FastSigmoid, Sigmoid, Surrogate

from ._nir import snntorch_exchange  # noqa: F401  (this adapter's sg_nir_exchange hook)

NAME = "snntorch"

# Classes whose forward calls spike_grad once for a whole [T, B, ...] sequence, or once per step.
_ONE_CALL_MULTI_STEP = {"LeakyParallel", "StateLeaky", "LinearLeaky", "AssociativeLeaky"}
_ONE_CALL_PER_STEP = {"DeltaLeaky"}


# neurons without a reset: the membrane is a leaky integral of the input
_NO_RESET = frozenset({"StateLeaky", "LeakyParallel"})


def _mean(x: Any) -> float:
    return float(torch.as_tensor(x).detach().double().mean())


def _leak_and_gain(m: Any, snn_class: str) -> tuple[float, float, bool, str] | None:
    """``(leak, input gain, synapse, note)`` of an snnTorch neuron in the analyzer's single-leak model, or None."""
    if snn_class in ("Leaky", "RLeaky", "Synaptic", "RSynaptic"):  # mem' = beta mem + input - reset
        beta = getattr(m, "beta", None)
        if beta is None:
            return None
        synapse = snn_class in ("Synaptic", "RSynaptic")
        return (_mean(torch.as_tensor(beta).detach().clamp(0, 1)), 1.0, synapse,
                "the synaptic current (alpha) is not modelled" if synapse else "")
    if snn_class == "Lapicque":  # mem' = (1 - T / (R C)) mem + (T / C) input
        rc, step = _mean(m.R) * _mean(m.C), _mean(m.time_step)
        return min(max(1.0 - step / rc, 0.0), 1.0), step / _mean(m.C), False, ""
    if snn_class == "Alpha":  # mem = tau_alpha (exc + inh): two currents decaying by alpha and beta
        alpha, beta = _mean(m.alpha.detach().clamp(0, 1)), _mean(m.beta.detach().clamp(0, 1))
        return (max(alpha, beta), 1.0, True,
                (f"modelled as one leaky membrane with the slower of its two currents' decays (alpha {alpha:.3g}, "
                 f"beta {beta:.3g}); the membrane is their difference"))
    if snn_class == "StateLeaky":  # mem_t = sum_k exp(-k / tau) x_(t-k): a leak exp(-1 / tau) per step, no reset
        truncated = getattr(m, "kernel_truncation_steps", None)
        return (_mean(torch.exp(-1.0 / m.tau.detach().double())), 1.0, False,
                f"its decay kernel is cut after {truncated} steps" if truncated else "")
    if snn_class == "LeakyParallel":  # h_t = relu(W_ih x_t + b + W_hh h_(t-1)), W_hh diagonal (the leak)
        w_hh = m.rnn.weight_hh_l0.detach()
        if not torch.equal(w_hh, torch.diag(torch.diagonal(w_hh))):
            return None
        return (min(max(_mean(torch.diagonal(w_hh)), 0.0), 1.0), 1.0, False,
                "nn.RNN's ReLU is left out (a membrane below 0 is clipped to 0 and passes no gradient)")
    return None


_UNDESCRIBED = {
    "LeakyParallel": "weight_hh_enable=True: a full learned matrix mixes the membranes, not a leak",
    "SLSTM": "an LSTM cell: learned gates set the state's update",
    "SConv2dLSTM": "a convolutional LSTM cell: learned gates set the state's update",
}


class SnnTorchDriver(NeuronDriver):
    adapter = NAME
    heaviside = Heaviside(inclusive=False, float32=True)
    slots = ("spike_grad",)
    undescribed_reasons = _UNDESCRIBED

    def __init__(self, module: nn.Module, snn_class: str) -> None:
        super().__init__(module)
        self.snn_class = snn_class

    def call_pattern(self) -> CallPattern:
        if self.snn_class in _ONE_CALL_MULTI_STEP:
            return CallPattern(whole_sequence=True)
        if self.snn_class in _ONE_CALL_PER_STEP:
            return CallPattern()
        return CallPattern(calls_per_step=2, spike_call=1)  # mem_reset(previous mem), detached, then fire(new mem)

    def neuron_shape(self) -> tuple[int, ...] | None:
        m = self.module
        for attr in ("hidden_size", "linear_features"):
            n = getattr(m, attr, None)
            if isinstance(n, int) and not isinstance(n, bool) and n > 0:
                return (n,)
        linear = getattr(m, "linear", None)
        if isinstance(linear, nn.Linear):
            return (linear.out_features,)
        return None

    def dynamics(self) -> Dynamics | None:
        m = self.module
        threshold, mechanism = getattr(m, "threshold", None), getattr(m, "reset_mechanism", None)
        if threshold is None:
            return None
        reset = {"subtract": "subtract", "zero": "multiplicative", "none": "none"}.get(str(mechanism))
        described = _leak_and_gain(m, self.snn_class)
        if described is None or (reset is None and self.snn_class not in _NO_RESET):
            return None
        leak, gain, synapse, note = described
        # snnTorch always detaches its reset (mem_reset(...).detach())
        return Dynamics(leak=leak, threshold=float(torch.as_tensor(threshold).detach().mean()),
                        reset="none" if self.snn_class in _NO_RESET else cast(str, reset), reset_grad=False,
                        input_gain=gain, synapse=synapse, note=note)

    def threshold(self) -> float | Tensor | None:
        t = getattr(self.module, "threshold", None)
        return t if isinstance(t, Tensor) else None

    def set_threshold(self, value: float | Tensor, tx: Transaction) -> None:
        old = cast(Tensor, self.module.threshold)
        tx.set(self.module, "threshold", torch.as_tensor(value, dtype=old.dtype, device=old.device).clone())

    def internal_weights(self) -> dict[str, Tensor]:
        rnn = getattr(self.module, "rnn", None)
        if self.snn_class == "LeakyParallel" and isinstance(rnn, nn.RNN):
            return {"input": cast(Tensor, rnn.weight_ih_l0)}
        recurrent = getattr(self.module, "recurrent", None)
        if getattr(self.module, "all_to_all", False) and isinstance(recurrent, nn.Linear):
            return {"recurrent": recurrent.weight}
        return {}

    def problems(self, surrogate: Surrogate, path: str, options: PatchOptions) -> list[Problem]:
        if getattr(self.module, "surrogate_disable", False):
            return [self.problem(path, "built with surrogate_disable=True (snnTorch's no-gradient mode for ONNX "
                                 "export); patching would silently give it a gradient",
                                 f"rebuild it with surrogate_disable=False, or {SKIP_FIX}")]
        return []


@hookimpl
def sg_adapter_info() -> AdapterInfo:
    return AdapterInfo(
        name=NAME,
        framework="snntorch",
        description="modules from snntorch that carry spike_grad (Leaky, Synaptic, ..., LeakyParallel)",
        tested_versions="0.9.4, 1.0.0",
    )


@hookimpl(trylast=True)
def sg_find_neuron(module: nn.Module, path: str) -> NeuronSite | None:
    snn_class = framework_class(module, "snntorch")
    if snn_class is None or not hasattr(module, "spike_grad"):
        return None
    return SnnTorchDriver(module, snn_class).site(path)


# -- reading snnTorch's own surrogates ---------------------------------------------------------------

_REASONS = {
    "straight_through_estimator": "its gradient is 1 everywhere: not integrable, so it has no peak/area "
    "canonical form",
    "triangular": "snnTorch's triangular returns +threshold below 0 and -threshold at or above 0: a sign flip, "
    "not a triangle (see snnTorch PR #143); sg_stability's 'triangular' is a real triangle",
    "heaviside": "its gradient is 1 only where the neuron spikes and 0 below threshold: one-sided, not a "
    "symmetric surrogate",
    "spike_rate_escape": "slope * exp(-beta * |v - 1|) peaks at v = 1, one unit above the threshold; the "
    "canonical families are centred on the threshold (v = 0)",
    "SSO": "the sub-threshold gradient is random noise (stochastic spike operator): no fixed shape",
    "LSO": "snnTorch's LSO factory is broken (it calls StochasticSpikeOperator with the wrong arguments) "
    "and a leaky one-sided gradient has no canonical form anyway",
    "SFS": "the sparse fast sigmoid is zero for v <= B: one-sided, not a symmetric surrogate",
    "custom_surrogate": "a user-defined gradient function: its shape is unknown",
}


def _from_factory(factory: str, params: dict[str, Any]) -> Surrogate | None:
    if factory == "atan":
        alpha = float(params.get("alpha", 2.0))
        return ATan(dampening=alpha / 2, sharpness=alpha / 2)  # alpha/2 / (1 + (pi/2 alpha v)^2)
    if factory == "fast_sigmoid":
        slope = float(params.get("slope", 25.0))
        return FastSigmoid(dampening=1.0, sharpness=slope / 2)  # 1 / (slope |v| + 1)^2
    if factory == "sigmoid":
        slope = float(params.get("slope", 25.0))
        return Sigmoid(dampening=slope / 4, sharpness=slope / 4)  # slope s(slope v)(1 - s(slope v))
    return None


@hookimpl(trylast=True)
def sg_read_native(obj: Any) -> NativeReading | None:
    module = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", "") or ""
    owner: Any = getattr(obj, "__self__", None)  # Function.apply bound to its class (LeakyParallel.ATan.apply)
    if inspect.isclass(owner) and owner.__module__.split(".")[0] == "snntorch":
        source = f"{owner.__module__}.{owner.__qualname__}.apply"
        if owner.__name__ == "ATan":
            alpha = inspect.signature(cast(Any, owner).forward).parameters.get("alpha")
            if alpha is not None and alpha.default is not inspect.Parameter.empty:
                return NativeReading(source=f"{source} (alpha={alpha.default})",
                                     surrogate=_from_factory("atan", {"alpha": alpha.default}))
        return NativeReading(source=source, reason="an snnTorch autograd Function whose parameters cannot be read")
    if module.split(".")[0] != "snntorch":
        return None
    if qualname.endswith("_surrogate_bypass"):
        return NativeReading(source=f"{module}.{qualname}",
                             reason="surrogate_disable=True: a plain step with no gradient at all")
    factory = qualname.split(".<locals>")[0] if ".<locals>." in qualname else None
    if factory is None or not callable(obj):
        return NativeReading(source=f"{module}.{qualname or type(obj).__qualname__}",
                             reason="not a surrogate factory result of snntorch.surrogate")
    params = {k: v for k, v in inspect.getclosurevars(obj).nonlocals.items() if isinstance(v, int | float)}
    source = f"snntorch.surrogate.{factory}({', '.join(f'{k}={v!r}' for k, v in sorted(params.items()))})"
    surrogate = _from_factory(factory, params)
    if surrogate is not None:
        return NativeReading(source=source, surrogate=surrogate)
    reason = _REASONS.get(factory, "an snnTorch surrogate this adapter does not know")
    return NativeReading(source=source, reason=reason)
