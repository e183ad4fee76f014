"""What an adapter author imports: the hook marker, the site and driver types, and the transaction.

An adapter is a module (or object) with ``@hookimpl`` functions for the hooks in
:mod:`sg_stability.hookspecs`, registered through the ``sg_stability`` entry-point group. Its
``sg_find_neuron`` hook returns a :class:`NeuronSite` whose :class:`NeuronDriver` does the per-site
work: say what is wrong before anything changes (``problems``), and install a surrogate through a
:class:`~sg_stability.Transaction` so that every change can be undone exactly.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, NamedTuple

import pluggy
from torch import Tensor, nn

from ._errors import Problem
from ._transaction import Transaction
from .surrogates import STRICT, Heaviside, Surrogate

PROJECT = "sg_stability"
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "STRICT",
    "AdapterInfo",
    "CallPattern",
    "Dynamics",
    "Heaviside",
    "NativeReading",
    "NeuronDriver",
    "NeuronSite",
    "PatchOptions",
    "Problem",
    "Transaction",
    "hookimpl",
]


@dataclass(frozen=True)
class NativeReading:
    """A framework-native surrogate read into the canonical form, or the reason it cannot be.

    ``source`` describes the native object (e.g. ``"snntorch.surrogate.atan(alpha=2.0)"``).
    Exactly one of ``surrogate`` and ``reason`` is set.
    """

    source: str
    surrogate: Surrogate | None = None
    reason: str | None = None


@dataclass(frozen=True)
class AdapterInfo:
    """Describes an adapter. ``framework`` is the import name of the framework it drives."""

    name: str
    framework: str
    description: str = ""
    tested_versions: str = ""

    def framework_available(self) -> bool:
        return importlib.util.find_spec(self.framework) is not None

    def framework_version(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.framework)
        except PackageNotFoundError:
            return None


class CallPattern(NamedTuple):
    """How a framework calls the surrogate for one time step of a neuron.

    ``calls_per_step`` calls happen per step; the call with index ``spike_call`` is the one whose input
    is the membrane minus threshold and whose output is the spike (snnTorch first calls ``spike_grad``
    on the previous membrane for its detached reset; Norse's refractory cells call the threshold a
    second time on the refractory counter). Observers of the surrogate (analyzers, diagnostics) count
    only the spike call, so each step is counted once. ``whole_sequence`` is True when one call covers
    a whole ``[T, B, ...]`` sequence.
    """

    calls_per_step: int = 1
    spike_call: int = 0
    whole_sequence: bool = False


@dataclass(frozen=True)
class PatchOptions:
    """Options of one ``sg.patch`` call that reach every driver.

    ``builtin``: install the framework's own surrogate class when it computes exactly the requested
    surrogate (keeps SpikingJelly 2.0's fused kernels); ``False`` installs sg_stability modules everywhere.
    """

    builtin: bool = True


@dataclass(frozen=True)
class Dynamics:
    """A neuron's membrane dynamics in the analyzer's model (``sg_stability.stability``)::

        v_{t+1} = leak * v_t + input_gain * (W_in z_{t+1} + W_rec s_t) - reset

    ``reset`` is one of ``"subtract"``, ``"multiplicative"`` (leak term zeroed on a spike), ``"zero"``
    (everything zeroed) or ``"none"``; ``reset_grad`` says whether the framework differentiates the reset, and
    ``reset_jump`` the derivative factor of the reset term at threshold when it is not the threshold itself.
    ``synapse`` is True when the input passes through a synaptic current (a second state the model leaves out;
    measurements then use the BPTT growth); ``note`` names what the model leaves out."""

    leak: float
    threshold: float
    reset: str
    reset_grad: bool = False
    reset_jump: float | None = None
    input_gain: float = 1.0
    synapse: bool = False
    note: str = ""


class NeuronDriver:
    """Per-site behaviour. Subclass it in an adapter; the defaults cover the common case of a module
    attribute (``slots``) that holds a callable surrogate."""

    #: the framework's forward step convention; installed surrogates use it (spikes stay bit-identical)
    heaviside: Heaviside = STRICT
    #: names of the module attributes that hold surrogates
    slots: tuple[str, ...] = ()
    call_pattern: CallPattern = CallPattern()

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def current(self) -> dict[str, object]:
        """The objects that currently sit in the surrogate slots."""
        return {slot: getattr(self.module, slot) for slot in self.slots}

    def neuron_shape(self) -> tuple[int, ...] | None:
        """The per-neuron shape of the state (trailing dimensions) when it is known statically."""
        return None

    def problems(self, surrogate: Surrogate, path: str, options: PatchOptions) -> list[Problem]:
        """Everything that prevents installing ``surrogate`` here; must not mutate anything."""
        return []

    def dynamics(self) -> Dynamics | None:
        """The neuron's dynamics for the stability analyzer, or None when the model does not describe it."""
        return None

    def sequence_call(self) -> bool:
        """True when one call of the module covers a whole ``[T, batch, ...]`` sequence (its input and spike
        output have time first); False when it is called once per step."""
        return self.call_pattern.whole_sequence

    def spikes(self, out: Any) -> Tensor | None:
        """The spike tensor in what the module's forward returned: the output itself, or the first element of a
        tuple (snnTorch's ``(spk, mem)``, Norse's ``(z, state)``)."""
        if isinstance(out, Tensor):
            return out
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
            return out[0]
        return None

    def leading_dims(self, spikes: Tensor) -> int:
        """How many leading dimensions of ``spikes`` are not neurons: time and batch for a sequence call, else
        batch."""
        return 2 if self.sequence_call() and spikes.dim() >= 2 else 1

    def threshold(self) -> float | Tensor | None:
        """The firing threshold, or None when the adapter does not expose it."""
        return None

    def set_threshold(self, value: float | Tensor, tx: Transaction) -> None:
        """Replace the threshold through ``tx`` (undo is exact); only called when :meth:`threshold` is not None."""
        raise NotImplementedError(f"{type(self).__name__} does not set thresholds")

    def internal_weights(self) -> dict[str, Tensor]:
        """Weights the neuron module holds itself: ``"input"`` (feed-forward) and/or ``"recurrent"``, each shaped
        like ``nn.Linear.weight`` (rows = receiving neurons). Weights in modules *before* the neuron are found by
        the analyzer from the execution order."""
        return {}

    def install(self, surrogate: Surrogate, tx: Transaction, path: str, options: PatchOptions) -> dict[str, object]:
        """Install one new surrogate module per slot (never shared, never mutating the old one)."""
        installed: dict[str, object] = {}
        for slot in self.slots:
            new = self.bind(surrogate, path, slot)
            tx.set(self.module, slot, new)
            installed[slot] = new
        return installed

    def bind(self, surrogate: Surrogate, path: str, slot: str) -> Surrogate:
        """A new instance of ``surrogate`` in this framework's forward convention, named after its site."""
        new = surrogate.replace(heaviside=self.heaviside)
        new.site_path = path if len(self.slots) <= 1 else f"{path}.{slot}"
        return new


@dataclass(frozen=True, eq=False)
class NeuronSite:
    """A spiking neuron module that an adapter claims, found at ``path`` in a model."""

    path: str
    module: nn.Module
    adapter: str
    kind: str
    driver: NeuronDriver

    def __repr__(self) -> str:
        return f"NeuronSite({self.path!r}, {self.kind}, adapter={self.adapter!r})"
