"""Shared parts of the stability conditions: the verdict of a solved condition, the neuron model's parameters
(:class:`Dynamics`) and argument checks with four-part errors."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor

from .._errors import ConfigError
from .._validate import checked, real

Reset = Literal["subtract", "multiplicative", "zero", "none"]
RESETS: tuple[str, ...] = ("subtract", "multiplicative", "zero", "none")
Number = float | Tensor


@dataclass(frozen=True)
class Dynamics:
    """A neuron's membrane dynamics in the analyzer's model (``sg_stability.stability``)::

        v_{t+1} = leak * v_t + input_gain * (W_in z_{t+1} + W_rec s_t) - reset

    ``reset`` is one of ``"subtract"``, ``"multiplicative"`` (leak term zeroed on a spike), ``"zero"``
    (everything zeroed) or ``"none"``; ``reset_grad`` says whether the framework differentiates the reset, and
    ``reset_jump`` the derivative factor of the reset term at threshold when it is not the threshold itself.
    ``synapse`` is True when the input passes through a synaptic current (a second state the model leaves out;
    measurements then use the BPTT growth); ``detached`` when the framework detaches the membrane between steps
    (online training, e.g. SpikingJelly's OTTT and SLTT neurons): the leak and the reset then pass no gradient
    back in time, only recurrent weights do; ``note`` names what the model leaves out. Adapters return one from
    ``NeuronDriver.dynamics()``; the condition functions take one (weights as they act on the membrane, i.e.
    already times ``input_gain``).

    A membrane equation that is not linear (QIF, EIF) has a step-to-step gain that depends on the membrane:
    ``transition(v, fired)`` maps centred membranes (the surrogate's input) and their spikes to ``(a, c)`` per
    entry, so that the diagonal of the transition derivative is ``a (1 - s) + (W_ii - c) sigma'(v)``: ``a`` is the
    membrane's own gain ``dh_(t+1)/dv_t`` after the reset, ``c`` the reset's derivative with respect to the spike
    (0 without ``reset_grad``). ``leak`` is ``a`` at rest; the analysis replaces it by the root mean square of ``a``
    over a recorded run (:func:`recorded_leak`), which may exceed 1 where the membrane amplifies itself, and the
    data-driven gains average the diagonal entry by entry (:func:`recorded_diagonal`)."""

    leak: float
    threshold: float
    reset: str = "subtract"
    reset_grad: bool = False
    reset_jump: float | None = None
    input_gain: float = 1.0
    synapse: bool = False
    detached: bool = False
    note: str = ""
    transition: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = field(default=None, compare=False,
                                                                                 repr=False)

    def __post_init__(self) -> None:
        for name in ("leak", "threshold", "input_gain") + (("reset_jump",) if self.reset_jump is not None else ()):
            value = getattr(self, name)
            if isinstance(value, Tensor) and value.numel() == 1:  # an adapter's 0-d tensor reads as its number
                value = value.item()
            object.__setattr__(self, name, real(value, name, example=f"{name}=0.9", where="Dynamics"))
        check_reset(self.reset)


@dataclass(frozen=True)
class Verdict:
    """The outcome of solving one condition.

    ``value`` is the root when ``feasible``; otherwise the best achievable value inside ``bounds`` (the one
    whose ``achieved`` is closest to ``target``), and ``reason`` says why no root exists and which knob to turn.
    """

    quantity: str
    value: float
    feasible: bool
    target: float
    achieved: float
    reason: str = ""
    bounds: tuple[float, float] = (math.nan, math.nan)
    per_neuron: Tensor | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        head = f"{self.quantity} = {self.value:.4g}"
        if self.feasible:
            return f"{head} (gives {self.achieved:.4g}, target {self.target:g})"
        return f"{head} INFEASIBLE (best achievable {self.achieved:.4g}, target {self.target:g}): {self.reason}"


# -- validation --------------------------------------------------------------------------------------------
def check_reset(reset: str) -> str:
    """``reset`` if it is one of :data:`RESETS`, else a four-part error."""
    if reset not in RESETS:
        raise ConfigError("unknown reset kind", got=reset, allowed=f"one of {list(RESETS)}",
                          fix='use "subtract" for a soft reset, "multiplicative" for a hard reset to 0 '
                              '(SpikingJelly, Norse, snnTorch\'s reset_mechanism="zero")')
    return reset


def as64(x: Number, name: str) -> Tensor:
    """``x`` as a float64 tensor, or a four-part error when it is not finite."""
    t = torch.as_tensor(x, dtype=torch.float64) if not isinstance(x, Tensor) else x.detach().double()
    if not torch.isfinite(t).all():
        raise ConfigError(f"{name} must be finite", got=x, allowed="finite floats or tensors",
                          fix=f"check how {name} was computed")
    return t


def dynamics_leak(dynamics: Dynamics) -> Tensor:
    """``dynamics.leak`` checked: in [0, 1], or >= 0 for a membrane-dependent gain (``transition``)."""
    return check_leak(dynamics.leak, amplifying=dynamics.transition is not None)


@checked
def recorded_leak(dynamics: Dynamics, v: Tensor, fired: Tensor) -> Dynamics:
    """``dynamics`` with ``leak`` set to the root mean square of the membrane's own gain over the non-spiking
    entries of recorded membranes ``v`` (centred, any shape; ``fired`` marks the spikes); unchanged without a
    ``transition``."""
    if dynamics.transition is None:
        return dynamics
    quiet = ~fired.bool()
    if not bool(quiet.any()):
        return dynamics
    gains = dynamics.transition(v.detach().double(), fired.bool())[0][quiet]
    leak = math.sqrt(float((gains * gains).mean()))
    note = f"membrane-dependent gain: leak {leak:.3g} (root mean square over the recorded run, {dynamics.leak:.3g} "
    note += "at rest)"
    return dataclasses.replace(dynamics, leak=leak, note="; ".join(n for n in (dynamics.note, note) if n))


def check_leak(alpha: Number, amplifying: bool = False) -> Tensor:
    a = as64(alpha, "leak")
    if amplifying and bool((a >= 0).all()):
        return a
    if ((a < 0) | (a > 1)).any():
        raise ConfigError("leak (membrane decay per step) must lie in [0, 1]", got=alpha,
                          allowed="0 <= leak <= 1 (1 is integrate-and-fire)",
                          fix="pass the decay factor, e.g. snnTorch's beta or SpikingJelly's 1 - 1/tau")
    return a


def check_matrix(w: Tensor | None, name: str, double: bool = True) -> Tensor | None:
    if w is None:
        return None
    if not isinstance(w, Tensor) or w.dim() != 2:
        raise ConfigError(f"{name} must be a 2-D weight matrix (rows = receiving neurons, like nn.Linear.weight)",
                          got=getattr(w, "shape", type(w).__name__), allowed="a tensor of shape (n_out, n_in)",
                          fix="pass layer.weight; for a convolution pass weight.flatten(1)")
    return w.detach().double() if double else w.detach()


def check_fan(n: int, name: str, minimum: int = 2) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}", got=n, allowed=f"{minimum}, {minimum + 1}, ...",
                          fix=f"pass the number of neurons in the layer as {name}")
    return n


def raw64(x: Number) -> Tensor:
    return torch.as_tensor(x).detach().double() if isinstance(x, Tensor) else torch.tensor(float(x),
                                                                                           dtype=torch.float64)


T = TypeVar("T")
#: values computed from a weight, per (what, tensor): id -> (a weak reference to it, its version, the value).
#: analyze, candidates and stabilize's report all need the same weights' norms and sums; a VGG classifier's
#: (4096 x 25088) take seconds
_REMEMBERED: dict[tuple[str, int], tuple[weakref.ref[Tensor], tuple[Any, ...], Any]] = {}


def _state(w: Tensor) -> tuple[Any, ...]:
    """What must not have changed for a remembered value to hold. The version alone is not enough:
    ``model.to("cuda")``, ``model.double()`` and ``param.data = x`` keep the Parameter object and its version but
    give it new data, on another device or of another dtype."""
    return w._version, w.data_ptr(), w.device, w.dtype, tuple(w.shape)


def per_weight(what: str, w: Tensor, compute: Callable[[], T]) -> T:
    """``compute()``, remembered for the tensor ``w`` until its data change (in place: an optimizer step, an
    initialiser; or swapped: a move to another device or dtype, ``param.data = ...``) or it is freed. Pass the
    weight itself (a ``.detach()`` is a new object each time, so it would never be found again)."""
    key = (what, id(w))
    known = _REMEMBERED.get(key)
    if known is not None and known[0]() is w and known[1] == _state(w):
        return known[2]
    value = compute()

    def forget(_: object) -> None:
        _REMEMBERED.pop(key, None)

    with contextlib.suppress(TypeError):  # a tensor subclass without weak references is not remembered
        _REMEMBERED[key] = (weakref.ref(w, forget), _state(w), value)
    return value
