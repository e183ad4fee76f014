"""The record types of a recorded run: one :class:`Record` per neuron site, the references to its tensors, and
how a weight module's matrix is read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..adapter_api import NeuronSite
from ..stability import Dynamics, recorded_leak
from ..surrogates import Surrogate

Run = Callable[[nn.Module, Any], Any]
#: a tensor, and the index along dim 0 when it holds the whole sequence (None: the tensor is one step)
StepRef = tuple[Tensor, int | None]


@dataclass
class Record:
    """One neuron site in a recorded run."""

    site: NeuronSite
    surrogate: Surrogate
    source: str  # "installed", "requested", or how the framework's own surrogate was read
    calls: list[Tensor] = field(default_factory=list)  # inputs of the observed surrogate, one per call
    inputs: list[Tensor | None] = field(default_factory=list)  # first argument of each module call
    outputs: list[Tensor] = field(default_factory=list)  # spikes of each module call
    norms: list[nn.Module | None] = field(default_factory=list)  # per call, the normalisation its input came from
    first_event: int = -1
    feed: nn.Module | None = None
    recurrent: nn.Module | None = None
    ancestors: tuple[nn.Module, ...] = ()  # the modules from the model down to the neuron's parent

    @property
    def path(self) -> str:
        return self.site.path

    def clear(self) -> None:
        self.calls.clear()
        self.inputs.clear()
        self.outputs.clear()
        self.norms.clear()
        self.first_event, self.feed, self.recurrent = -1, None, None

    def weights(self) -> tuple[Tensor | None, Tensor | None]:
        """``(input, recurrent)`` weights as they act on this neuron: held by the neuron (its adapter says), else
        the weight modules the execution order wired to it."""
        held = self.held_weights()
        return (held.get("input", weight_of(self.feed)), held.get("recurrent", weight_of(self.recurrent)))

    def held_weights(self) -> dict[str, Tensor]:
        """Weights the neuron holds itself, or a container around it applies (its adapter says)."""
        driver = self.site.driver
        return {**driver.container_weights(self.ancestors, self.feed), **driver.internal_weights()}

    def holds_input_weight(self) -> bool:
        return "input" in self.held_weights()

    def bias(self) -> Tensor | None:
        """The bias of the feed module, when the input weight is not held by the neuron."""
        b = None if self.holds_input_weight() else getattr(self.feed, "bias", None)
        return b if isinstance(b, Tensor) else None

    @property
    def norm(self) -> nn.Module | None:
        """The normalisation layer whose output is this neuron's input at every call (e.g. conv -> BatchNorm ->
        neuron, also with a residual added in place), else None."""
        first = self.norms[0] if self.norms else None
        return first if first is not None and all(n is first for n in self.norms) else None

    def spike_steps(self) -> list[StepRef]:
        """The centred membrane of every time step (the spike call of each step)."""
        pattern = self.site.driver.call_pattern()
        calls = self.calls[pattern.spike_call::pattern.calls_per_step] if pattern.calls_per_step > 1 else self.calls
        if pattern.whole_sequence:
            return [(c, t) for c in calls for t in range(c.shape[0])]
        return [(c, None) for c in calls]

    def input_steps(self, steps: int) -> list[StepRef] | None:
        """The neuron's input current at every step, or None when the calls do not line up with ``steps``."""
        ins = [i for i in self.inputs if isinstance(i, Tensor)]
        if len(ins) == steps:
            return [(i, None) for i in ins]
        if len(ins) == 1 and ins[0].dim() > 0 and ins[0].shape[0] == steps and steps > 1:
            return [(ins[0], t) for t in range(steps)]
        return None

    def fired(self, v: Tensor) -> Tensor:
        """Where the membranes ``v`` spike, by the framework's own step convention."""
        return self.site.driver.heaviside(v) > 0

    def dynamics(self) -> Dynamics | None:
        """The driver's dynamics, with a membrane-dependent gain (QIF, EIF) taken from this recorded run."""
        dyn = self.site.driver.dynamics()
        steps = self.spike_steps()
        if dyn is None or dyn.transition is None or not steps:
            return dyn
        v = stacked(steps)
        return recorded_leak(dyn, v, self.fired(v))


def value(ref: StepRef) -> Tensor:
    return ref[0] if ref[1] is None else ref[0][ref[1]]


def stacked(refs: list[StepRef]) -> Tensor:
    """The steps' membranes as one detached ``[steps, batch, *neuron]`` tensor; a model run on an unbatched sample
    (``[steps, features]``, one vector per step) counts as a batch of one."""
    v = torch.stack([value(r).detach() for r in refs])
    return v.unsqueeze(1) if v.dim() == 2 else v


def weight_of(module: nn.Module | None) -> Tensor | None:
    """The weight matrix or kernel of a weight module (``nn.Linear``, ``nn.Conv*``, ...), else None."""
    w = getattr(module, "weight", None)
    return w if isinstance(w, Tensor) and w.dim() >= 2 else None
