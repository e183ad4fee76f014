"""What an adapter author imports: the hook marker, the site and driver types, and the transaction.

An adapter is a module (or object) with ``@hookimpl`` functions for the hooks in
:mod:`sg_stability.hookspecs`, registered through the ``sg_stability`` entry-point group. Its
``sg_find_neuron`` hook returns a :class:`NeuronSite` (``driver.site(path)``) whose :class:`NeuronDriver`
does the per-site work and declares what the core needs to know: how the framework calls the surrogate
(``call_pattern``), how to reset state (``reset_state``), what is wrong before anything changes
(``problems``), and what it installed through a :class:`~sg_stability.Transaction` (``install`` returns
:class:`Installed`), so that every change can be undone exactly.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import pluggy
from torch import Tensor, nn

from ._errors import Problem
from ._transaction import Transaction
from .stability import Dynamics
from .surrogates import STRICT, Heaviside, Surrogate

PROJECT = "sg_stability"
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "SKIP_FIX",
    "STRICT",
    "AdapterInfo",
    "CallPattern",
    "Dynamics",
    "Heaviside",
    "Installed",
    "NativeReading",
    "NeuronDriver",
    "NeuronSite",
    "PatchOptions",
    "Problem",
    "Transaction",
    "framework_class",
    "hookimpl",
    "restorer",
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
    """How a framework runs a neuron module and calls its surrogate -- the one place a driver declares it.

    ``calls_per_step`` surrogate calls happen per time step; the call with index ``spike_call`` is the one
    whose input is the membrane minus threshold and whose output is the spike (snnTorch first calls
    ``spike_grad`` on the previous membrane for its detached reset; Norse's refractory cells call the threshold
    a second time on the refractory counter). Observers (analyzer, diagnostics) count only the spike call, so
    each step is counted once. ``whole_sequence``: one surrogate call covers a whole ``[T, B, ...]`` sequence.
    ``time_first``: one call of the *module* covers the sequence, so its input and spikes have time first
    (implied by ``whole_sequence``; also true of e.g. SpikingJelly's multi-step mode, which calls the surrogate
    once per step inside one module call).
    """

    calls_per_step: int = 1
    spike_call: int = 0
    whole_sequence: bool = False
    time_first: bool = False

    def leading_dims(self, spikes: Tensor) -> int:
        """How many leading dimensions of a module's ``spikes`` are not neurons: time and batch, or batch."""
        return 2 if (self.time_first or self.whole_sequence) and spikes.dim() >= 2 else 1


@dataclass(frozen=True)
class Installed:
    """What :meth:`NeuronDriver.install` put in each slot, and a note for the user (e.g. which kernel path
    the framework will now run), shown in ``handle.summary()``."""

    objects: dict[str, object]
    note: str = ""


@dataclass(frozen=True)
class NIRExchange:
    """A framework's own NIR exporter and importer, as :func:`sg_stability.to_nir` / ``from_nir`` call them:
    ``export(model, sample, **options) -> nir.NIRGraph`` (a graph ``nir.write`` can write: an adapter fixes what
    its framework's exporter leaves unwritable) and ``load(graph, **options) -> nn.Module``."""

    export: Callable[..., Any]
    load: Callable[..., nn.Module]


#: the usual fix of a problem that only leaving the site out can solve
SKIP_FIX = "leave it out with targets=, or pass strict=False to skip it"


def framework_class(module: object, package: str) -> str | None:
    """The name of the first class in ``type(module)``'s MRO defined in ``package`` (user subclasses of a
    framework's neuron included), or None: how an adapter recognises its framework's modules."""
    for cls in type(module).__mro__:
        if cls.__module__.split(".")[0] == package:
            return cls.__name__
    return None


@dataclass(frozen=True)
class PatchOptions:
    """Options of one ``sg.patch`` call that reach every driver.

    ``builtin``: install the framework's own surrogate class when it computes exactly the requested
    surrogate (keeps SpikingJelly 2.0's fused kernels); ``False`` installs sg_stability modules everywhere.
    """

    builtin: bool = True


class NeuronDriver:
    """Per-site behaviour. Subclass it in an adapter; the defaults cover the common case of a module
    attribute (``slots``) that holds a callable surrogate, called once per step on the membrane minus the
    threshold."""

    #: the adapter's name; the site's kind is ``"<adapter>.<module class>"``
    adapter: str = ""
    #: the framework's forward step convention; installed surrogates use it (spikes stay bit-identical)
    heaviside: Heaviside = STRICT
    #: names of the module attributes that hold surrogates; the first computes the spike
    slots: tuple[str, ...] = ()

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    # -- identity ---------------------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return f"{self.adapter}.{type(self.module).__name__}"

    def site(self, path: str) -> NeuronSite:
        """The :class:`NeuronSite` an ``sg_find_neuron`` hook returns for this driver's module at ``path``."""
        return NeuronSite(path=path, module=self.module, adapter=self.adapter, kind=self.kind, driver=self)

    def problem(self, path: str, what: str, fix: str = SKIP_FIX) -> Problem:
        """A preflight :class:`Problem` at this site."""
        return Problem(path, what, fix, self.kind)

    # -- the surrogate slots ------------------------------------------------------------------------------------
    def current(self) -> dict[str, object]:
        """The objects that currently sit in the surrogate slots."""
        return {slot: getattr(self.module, slot) for slot in self.slots}

    def observed(self) -> object:
        """The object in the slot that computes the spike (the first slot): what the analyzer and the
        diagnostics read and record."""
        return next(iter(self.current().values()), None)

    def call_pattern(self) -> CallPattern:
        """How the module is run and its surrogate called (may depend on the module's current mode)."""
        return CallPattern()

    def problems(self, surrogate: Surrogate, path: str, options: PatchOptions) -> list[Problem]:
        """Everything that prevents installing ``surrogate`` here; must not mutate anything."""
        return []

    def install(self, surrogate: Surrogate, tx: Transaction, path: str, options: PatchOptions) -> Installed:
        """Install one new surrogate module per slot (never shared, never mutating the old one)."""
        installed: dict[str, object] = {}
        for slot in self.slots:
            new = self.bind(surrogate, path, slot)
            tx.set(self.module, slot, new)
            installed[slot] = new
        return Installed(installed)

    def bind(self, surrogate: Surrogate, path: str, slot: str) -> Surrogate:
        """A new instance of ``surrogate`` in this framework's forward convention, named after its site."""
        new = surrogate.replace(heaviside=self.heaviside)
        new.site_path = path if len(self.slots) <= 1 else f"{path}.{slot}"
        return new

    # -- state, output, shape ---------------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the state the module keeps between calls, before the analyzer runs a sample (SpikingJelly's
        ``reset()``); the default does nothing (state passed explicitly, or reset by the model)."""

    def spikes(self, out: Any) -> Tensor | None:
        """The spike tensor in what the module's forward returned: the output itself, or the first element of a
        tuple (snnTorch's ``(spk, mem)``, Norse's ``(z, state)``)."""
        if isinstance(out, Tensor):
            return out
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
            return out[0]
        return None

    def neuron_shape(self) -> tuple[int, ...] | None:
        """The per-neuron shape of the state (trailing dimensions) when it is known statically."""
        return None

    # -- what the stability analysis needs ----------------------------------------------------------------------
    def dynamics(self) -> Dynamics | None:
        """The neuron's dynamics for the stability analyzer, or None when the model does not describe it."""
        return None

    #: per module class name, why ``dynamics()`` is None for it (what the single-leak model cannot describe)
    undescribed_reasons: ClassVar[dict[str, str]] = {}

    def undescribed(self) -> str:
        """Why the analyzer has no dynamics for this neuron (shown in ``analyze``'s notes and the initialisers'
        skipped list), when ``dynamics()`` is None."""
        name = type(self.module).__name__
        reason = next((self.undescribed_reasons[c.__name__] for c in type(self.module).__mro__
                       if c.__name__ in self.undescribed_reasons),
                      "its adapter does not describe this neuron's dynamics")
        return f"{self.adapter}.{name}: no dynamics for the analyzer ({reason}); theory and data estimates need them"

    def threshold(self) -> float | Tensor | None:
        """The firing threshold, or None when the adapter does not expose it."""
        return None

    def set_threshold(self, value: float | Tensor, tx: Transaction) -> None:
        """Replace the threshold through ``tx`` (undo is exact); only called when :meth:`threshold` is not None."""
        raise NotImplementedError(f"{type(self).__name__} does not set thresholds")

    def container_weights(self, ancestors: Sequence[nn.Module], feed: nn.Module | None) -> dict[str, Tensor]:
        """Weights that a container around the neuron applies to it (SpikingJelly's ``LinearRecurrentContainer``
        feeds the neuron's spikes back through one ``Linear`` on ``[input, spikes]``): ``"input"`` and/or
        ``"recurrent"``, as for :meth:`internal_weights` (which take precedence). ``ancestors``: the modules from
        the model down to the neuron's parent; ``feed``: the weight module the execution order wired to it. A weight
        that is neither a parameter nor a view of one (a product of two) informs the analysis; the initialisers
        list it as not written."""
        return {}

    def internal_weights(self) -> dict[str, Tensor]:
        """Weights the neuron module holds itself: ``"input"`` (feed-forward) and/or ``"recurrent"``, each shaped
        like ``nn.Linear.weight`` (rows = receiving neurons). Weights in modules *before* the neuron are found by
        the analyzer from the execution order."""
        return {}


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


def restorer(state: dict[Any, Any]) -> Callable[[], None]:
    """A function that puts ``state`` (a framework's own state dict) back to its current contents, for
    ``sg_save_state``."""
    saved = dict(state)

    def restore() -> None:
        state.clear()
        state.update(saved)

    return restore
