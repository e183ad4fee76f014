"""SpikingJelly adapter, both API generations (0.0.0.0.14 with ``backend=``, and 2.0.x with fused ops).

Facts (shared/spec/frameworks.md section 3): the surrogate is the child module ``surrogate_function``
(``surrogate_function1/2`` on the spiking RNN cells), applied to ``h - v_threshold`` with the forward
``(x >= 0).to(x)``. The default ``surrogate.Sigmoid()`` is one object shared by every neuron built
without one, so a new module is installed per neuron and the old one is never mutated. SpikingJelly 2.0
runs fused kernels only for its 7 built-in classes (matched by module and class name, scalar alpha);
when the requested surrogate is exactly one of them, that class is installed. Capabilities are probed
(``backend`` attribute, ``spikingjelly._ops``), never version strings. SpikingJelly is not imported here.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sg_stability.adapter_api import (
    AdapterInfo,
    CallPattern,
    Dynamics,
    Heaviside,
    Installed,
    NativeReading,
    NeuronDriver,
    NeuronSite,
    PatchOptions,
    Problem,
    Transaction,
    framework_class,
    hookimpl,
    restorer,
)
from sg_stability.surrogates import (
    ATan,
    Exponential,
    FastSigmoid,
    Gaussian,
    QPseudoSpike,
    Rectangular,
    Sigmoid,
    Surrogate,
    Triangular,
)

from ._nir import spikingjelly_exchange  # noqa: F401  (this adapter's sg_nir_exchange hook)
from ._spikingjelly_dynamics import spikingjelly_dynamics

NAME = "spikingjelly"
SURROGATE_MODULE = "spikingjelly.activation_based.surrogate"
SLOTS = ("surrogate_function", "surrogate_function1", "surrogate_function2")
# Spiking neurons that have no surrogate module to replace.
NO_SURROGATE = {
    "FlexSN": "computes spikes and gradients inside its own (user-written Triton) dynamics",
    "DSRIFNode": "is trained with differentiation on spike representation, not a surrogate gradient",
    "DSRLIFNode": "is trained with differentiation on spike representation, not a surrogate gradient",
    "STBIFNode": "is a converted (SpikeZIP) neuron without a surrogate_function",
}
# Surrogate classes whose forward is not the Heaviside step: replacing them would change the spikes.
NOT_A_STEP = {
    "MultiLevelSpikeCount": "fires integer spike counts (I-LIF)",
    "PoissonPass": "samples Bernoulli spikes in its forward",
    "DeterministicPass": "passes its own forward through",
}
TWO_CALLS = {"TernaryIFNode", "TernaryLIFNode"}  # surrogate(h - thr) and surrogate(-h - thr)
WHOLE_SEQUENCE = {"PSN", "MaskedPSN", "SlidingPSN"}
TORCH_BACKENDS = {"torch", "inductor"}

_SQRT_PI = math.sqrt(math.pi)

# SpikingJelly built-in -> canonical, by its formula (x = h - v_threshold):
READERS: dict[str, Callable[[Any], Surrogate]] = {
    "Sigmoid": lambda a: Sigmoid(a / 4, a / 4),  # a s(a x)(1 - s(a x))
    "ATan": lambda a: ATan(a / 2, a / 2),  # a/2 / (1 + (pi/2 a x)^2)
    "PiecewiseQuadratic": lambda a: Triangular(a, a),  # max(0, a - a^2 |x|)
    "PiecewiseExp": lambda a: Exponential(a / 2, a / 2),  # a/2 exp(-a |x|)
    "SoftSign": lambda a: FastSigmoid(a / 2, a / 2),  # 1 / (2a (1/a + |x|)^2)
    "SuperSpike": lambda a: FastSigmoid(a, 0.5),  # a / (|x| + 1)^2: alpha is the height
    "Erf": lambda a: Gaussian(a / _SQRT_PI, a / _SQRT_PI),  # a/sqrt(pi) exp(-a^2 x^2)
    "QPseudoSpike": lambda a: QPseudoSpike(1.0, 1.0, tail=float(a)),  # (1 + 2|x|/(a-1))^(-a)
    "Rect": lambda a: Rectangular(a, a),  # a 1[|x| < 0.5/a]
}
# canonical -> SpikingJelly built-in, when exact: (family, condition on (gamma, beta), class, alpha)
BUILTIN_FORMS: list[tuple[str, Callable[[float, float], bool], str, Callable[[float, float], float]]] = [
    ("sigmoid", lambda g, b: math.isclose(g, b, rel_tol=1e-12), "Sigmoid", lambda g, b: 4 * g),
    ("atan", lambda g, b: math.isclose(g, b, rel_tol=1e-12), "ATan", lambda g, b: 2 * g),
    ("triangular", lambda g, b: math.isclose(g, b, rel_tol=1e-12), "PiecewiseQuadratic", lambda g, b: g),
    ("exponential", lambda g, b: math.isclose(g, b, rel_tol=1e-12), "PiecewiseExp", lambda g, b: 2 * g),
    ("fast_sigmoid", lambda g, b: math.isclose(g, b, rel_tol=1e-12), "SoftSign", lambda g, b: 2 * g),
    ("fast_sigmoid", lambda g, b: math.isclose(b, 0.5, rel_tol=1e-12), "SuperSpike", lambda g, b: g),
    ("gaussian", lambda g, b: math.isclose(g, b, rel_tol=1e-12), "Erf", lambda g, b: _SQRT_PI * g),
]
NOT_CONVERTIBLE = {
    "NonzeroSignLogAbs": "its gradient 1 / (1/alpha + |x|) decays like 1/|x|: not integrable",
    "SquarewaveFourierSeries": "a periodic Fourier-series gradient: not a single bump around the threshold",
    "S2NN": "asymmetric (sigmoid derivative below the threshold, beta / (x + 1) above)",
    "LeakyKReLU": "a constant gradient on each side of the threshold: not integrable",
    "FakeNumericalGradient": "min(sign(x)/x, alpha): not a surrogate bump of finite area",
    "LogTailedReLU": "a ReLU-like gradient with a log tail: not integrable",
    "DeterministicPass": "a straight-through pass for stochastic spikes: gradient 1 everywhere",
    "PoissonPass": "a straight-through pass for Poisson spikes: gradient 1 everywhere",
    "MultiLevelSpikeCount": "a window for integer spike counts (ILIF), not a binary spike's surrogate",
}


def _fused_ids() -> dict[str, int] | None:
    """SpikingJelly 2.0's fusable surrogate classes, or None where there are no fused ops."""
    ops = sys.modules.get("spikingjelly._ops.surrogate")
    return getattr(ops, "_SURROGATE_IDS", None)


def builtin_for(surrogate: Surrogate) -> tuple[str, float] | None:
    """The SpikingJelly class (and alpha) that computes exactly ``surrogate``, if there is one."""
    params = surrogate.params()
    if not surrogate.spiking or any(isinstance(v, Tensor) for v in params.values()) or "tail" in params:
        return None
    gamma, beta = float(params["dampening"]), float(params["sharpness"])
    for family, condition, cls_name, alpha in BUILTIN_FORMS:
        if surrogate.family == family and condition(gamma, beta):
            return cls_name, float(alpha(gamma, beta))
    return None


_UNDESCRIBED = {
    "IzhikevichNode": "two coupled state variables (membrane and recovery)",
    "KLIFNode": "a learned scaling and ReLU of the membrane before the threshold",
    "GatedLIFNode": "learned gates mix the leak, the input and the reset",
    "PSN": "a parallel spiking neuron: the membrane is a learned linear map of the whole input sequence",
    "MaskedPSN": "a parallel spiking neuron: the membrane is a learned, masked map of the input sequence",
    "SlidingPSN": "a parallel spiking neuron: the membrane is a learned sliding-window map of the input",
}


class SpikingJellyDriver(NeuronDriver):
    adapter = NAME
    heaviside = Heaviside(inclusive=True, float32=False)
    undescribed_reasons = _UNDESCRIBED

    def __init__(self, module: nn.Module, sj_class: str, slots: tuple[str, ...]) -> None:
        super().__init__(module)
        self.sj_class = sj_class
        self.slots = slots

    def call_pattern(self) -> CallPattern:
        multi_step = getattr(self.module, "step_mode", "s") == "m"
        if self.sj_class in TWO_CALLS:
            return CallPattern(calls_per_step=2, spike_call=0, time_first=multi_step)
        return CallPattern(whole_sequence=self.sj_class in WHOLE_SEQUENCE, time_first=multi_step)

    def reset_state(self) -> None:
        reset = getattr(self.module, "reset", None)
        if callable(reset):  # MemoryModule.reset(): state kept between calls
            reset()

    @property
    def backend(self) -> str:
        return str(getattr(self.module, "backend", "torch"))

    def _builtin_class(self, surrogate: Surrogate, options: PatchOptions) -> tuple[type, float] | None:
        """SpikingJelly's own class to install, where it keeps fused kernels (2.0) or is required (triton)."""
        if not options.builtin:
            return None
        fused = _fused_ids()
        if fused is None and self.backend != "triton":
            return None
        form = builtin_for(surrogate)
        module = sys.modules.get(SURROGATE_MODULE)
        if form is None or module is None or (fused is not None and form[0] not in fused):
            return None
        return getattr(module, form[0]), form[1]

    def threshold(self) -> float | Tensor | None:
        t = getattr(self.module, "v_threshold", None)
        return t if isinstance(t, (int, float, Tensor)) and not isinstance(t, bool) else None

    def set_threshold(self, value: float | Tensor, tx: Transaction) -> None:
        tx.set(self.module, "v_threshold", float(value) if not isinstance(value, Tensor) or value.numel() == 1
               else value)

    def dynamics(self) -> Dynamics | None:
        return spikingjelly_dynamics(self.module, self.sj_class)

    def container_weights(self, ancestors: Sequence[nn.Module], feed: nn.Module | None) -> dict[str, Tensor]:
        # LinearRecurrentContainer: i[t] = rc([x[t], y[t-1]]), y[t] = sub_module(i[t]); rc.weight is [in, in + out]
        container: Any = next((a for a in reversed(ancestors)
                               if framework_class(a, "spikingjelly") == "LinearRecurrentContainer"), None)
        if container is None:
            return {}
        w = container.rc.weight
        n_in = w.shape[0]
        inside = feed is not None and feed is not container.rc and any(
            m is feed for m in container.sub_module.modules())
        if not inside:  # the neuron takes rc's output: the columns of x and of its own spikes
            return {"input": w[:, :n_in], "recurrent": w[:, n_in:]}
        inner = getattr(feed, "weight", None)  # rc, then a Linear inside sub_module: the product acts on the neuron
        if not isinstance(inner, Tensor) or inner.dim() != 2 or inner.shape[1] != n_in:
            return {}
        return {"recurrent": (inner @ w[:, n_in:]).detach()}

    def problems(self, surrogate: Surrogate, path: str, options: PatchOptions) -> list[Problem]:
        if not self.slots:
            return [self.problem(path, f"{self.sj_class} {NO_SURROGATE[self.sj_class]}: there is no surrogate to "
                                 "replace")]
        for slot, old in self.current().items():
            reason = NOT_A_STEP.get(type(old).__name__) if type(old).__module__ == SURROGATE_MODULE else None
            if reason:
                return [self.problem(path, f"its {slot} {type(old).__name__} {reason}; a surrogate gradient for "
                                     "binary spikes would change the neuron's forward")]
        builtin = self._builtin_class(surrogate, options)
        tensors = [n for n, v in surrogate.params().items() if isinstance(v, Tensor)]
        backend = self.backend
        if backend == "cupy" and tensors:
            return [self.problem(path, f"backend='cupy' bakes the surrogate into CUDA source, so per-neuron or "
                                 f"learnable {', '.join(tensors)} cannot be used",
                                 "pass scalar dampening/sharpness, or switch this neuron to backend='torch'")]
        if backend == "triton" and builtin is None:
            return [self.problem(path, f"backend='triton' runs only SpikingJelly's 7 built-in surrogates; "
                                 f"{surrogate!r} is not one of them",
                                 "use an exact built-in form (atan/sigmoid/triangular/exponential/gaussian/"
                                 "fast_sigmoid with dampening == sharpness, or fast_sigmoid with sharpness 0.5), or "
                                 "backend='torch'")]
        if backend not in TORCH_BACKENDS | {"cupy", "triton"}:
            return [self.problem(path, f"unknown SpikingJelly backend {backend!r}",
                                 "use backend='torch' (or 'cupy') for this neuron")]
        if getattr(self.module, "_neuron_precision", None) is not None and builtin is None:
            return [self.problem(path, "explicit neuron precision (SpikingJelly 2.0) requires one of SpikingJelly's "
                                 f"built-in surrogates; {surrogate!r} is not one",
                                 "use an exact built-in form (e.g. atan with dampening == sharpness) or remove the "
                                 "neuron precision setting")]
        return []

    def install(self, surrogate: Surrogate, tx: Transaction, path: str, options: PatchOptions) -> Installed:
        builtin = self._builtin_class(surrogate, options)
        installed: dict[str, object] = {}
        for slot, old in self.current().items():
            spiking = bool(getattr(old, "spiking", True))  # keep SpikingJelly's ANN mode if it was on
            if builtin:
                new: nn.Module = builtin[0](alpha=builtin[1], spiking=spiking)
            else:
                new = self.bind(surrogate, path, slot)
                new.spiking = spiking
            tx.set(self.module, slot, new)
            installed[slot] = new
        note = ""
        if builtin:
            note = f"kept SpikingJelly's fused kernels: installed surrogate.{builtin[0].__name__}(alpha={builtin[1]:g})"
        elif _fused_ids() is not None:
            note = (f"{surrogate.family} with these parameters is not a SpikingJelly built-in, so this neuron runs "
                    "SpikingJelly's reference (non-fused) path")
        return Installed(installed, note)


@hookimpl
def sg_adapter_info() -> AdapterInfo:
    return AdapterInfo(
        name=NAME, framework="spikingjelly",
        description="modules from spikingjelly with surrogate_function (also surrogate_function1/2 of RNN cells)",
        tested_versions="0.0.0.0.14 (torch, cupy), 2.0.0 (torch reference and fused ops)",
    )


@hookimpl(trylast=True)
def sg_find_neuron(module: nn.Module, path: str) -> NeuronSite | None:
    sj_class = framework_class(module, "spikingjelly")
    if sj_class is None:
        return None
    slots = tuple(s for s in SLOTS if isinstance(getattr(module, s, None), nn.Module))
    if not slots and sj_class not in NO_SURROGATE:
        return None
    return SpikingJellyDriver(module, sj_class, slots).site(path)


@hookimpl(trylast=True)
def sg_save_state(module: nn.Module) -> Callable[[], None] | None:
    """Memory modules (neurons, recurrent containers) keep their state (v, y, ...) in ``_memories``."""
    memories = module.__dict__.get("_memories")
    if not isinstance(memories, dict) or framework_class(module, "spikingjelly") is None:
        return None
    return restorer(memories)


def _gradient_at_zero(obj: Any) -> float:
    """The installed class's own backward at x = 0 (a capability probe, not a version check)."""
    x = torch.zeros(1, requires_grad=True)
    type(obj).spiking_function(x, *(getattr(obj, k) for k in ("w", "c"))).sum().backward()
    assert x.grad is not None
    return float(x.grad.item())


@hookimpl(trylast=True)
def sg_read_native(obj: Any) -> NativeReading | None:
    sj_name = next((c.__name__ for c in type(obj).__mro__ if c.__module__ == SURROGATE_MODULE), None)
    if sj_name is None:
        return None
    params = {k: getattr(obj, k) for k in ("alpha", "w", "c", "beta") if hasattr(obj, k)}
    source = f"spikingjelly surrogate.{type(obj).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
    if type(obj).__module__ != SURROGATE_MODULE:
        return NativeReading(source=f"{type(obj).__module__}.{type(obj).__qualname__}",
                             reason=f"a subclass of SpikingJelly's {sj_name} defined elsewhere: its formula may differ")
    if sj_name in READERS:
        return NativeReading(source=source, surrogate=READERS[sj_name](params["alpha"]))
    if sj_name == "PiecewiseLeakyReLU":
        w, c = params["w"], params["c"]
        if c == 0:  # a boxcar of width 2w; its height is 1/w in 0.0.0.0.14 and 1/(2w) in 2.0: measure it
            return NativeReading(source=source, surrogate=Rectangular(_gradient_at_zero(obj), 1 / (2 * w)))
        return NativeReading(source=source, reason=f"the leak c={c!r} adds a constant gradient outside |x| < w: "
                             "not integrable (c=0 reads as rectangular)")
    return NativeReading(source=source, reason=NOT_CONVERTIBLE.get(sj_name, "a SpikingJelly surrogate this adapter "
                                                                  "does not know"))
