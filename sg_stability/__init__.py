"""sg-stability: one-call surrogate-gradient patching and stability analysis for SNN frameworks.

    import sg_stability as sg
    h = sg.patch(model, surrogate="fast_sigmoid", dampening=0.3, sharpness=2.0)
    ...
    h.remove()

See README.md for the framework support matrix and the method (Herranz-Celotti & Rouat,
"Stabilizing Spiking Neuron Training", arXiv 2202.00282).
"""

from . import (
    analysis,
    anneal,
    choosing,
    datasets,
    diagnostics,
    exact,
    init,
    neurons,
    plugins,
    schedules,
    sparsity,
    stability,
    surrogates,
)
from ._checkpoint import load_state_dict
from ._errors import (
    AdapterError,
    AlreadyPatchedError,
    ConfigError,
    LayoutWarning,
    NoNeuronsFoundError,
    NotConvertibleError,
    NotCopyableError,
    PartialMatchWarning,
    PatchConflictError,
    PluginLoadWarning,
    PreflightError,
    Problem,
    RaceError,
    SGStabilityError,
    SGStabilityWarning,
    SkippedSitesWarning,
    UnknownSurrogateError,
)
from ._handle import PatchHandle
from ._landscape import LandscapeReport, landscape
from ._nir import from_nir, to_nir
from ._patching import find_neurons, is_patched, patch, unpatch
from .analysis import LayerReport, StabilityReport
from .choosing import Candidate, ChosenPatch, RaceOptions, TuneReport, analyze, candidates, stabilize, tune
from .plugins import from_native

__version__ = "0.1.0.dev0"

__all__ = [
    "AdapterError",
    "AlreadyPatchedError",
    "Candidate",
    "ChosenPatch",
    "ConfigError",
    "LandscapeReport",
    "LayerReport",
    "LayoutWarning",
    "NoNeuronsFoundError",
    "NotConvertibleError",
    "NotCopyableError",
    "PartialMatchWarning",
    "PatchConflictError",
    "PatchHandle",
    "PluginLoadWarning",
    "PreflightError",
    "Problem",
    "RaceError",
    "RaceOptions",
    "SGStabilityError",
    "SGStabilityWarning",
    "SkippedSitesWarning",
    "StabilityReport",
    "TuneReport",
    "UnknownSurrogateError",
    "__version__",
    "analysis",
    "analyze",
    "anneal",
    "candidates",
    "choosing",
    "datasets",
    "diagnostics",
    "exact",
    "find_neurons",
    "from_native",
    "from_nir",
    "init",
    "is_patched",
    "landscape",
    "load_state_dict",
    "neurons",
    "patch",
    "plugins",
    "schedules",
    "sparsity",
    "stability",
    "stabilize",
    "surrogates",
    "to_nir",
    "tune",
    "unpatch",
]

#: names that left the top level in 0.1.0.dev0 (CHANGELOG): each still works, with a DeprecationWarning
_MOVED = {
    "Transaction": "sg_stability.adapter_api",
    "NeuronSite": "sg_stability.adapter_api",
    "hookimpl": "sg_stability.adapter_api",
    "read_native": "sg_stability.plugins",
}


def __getattr__(name: str) -> object:
    if name in _MOVED:
        import importlib
        import warnings

        home = _MOVED[name]
        warnings.warn(f"sg_stability.{name} moved to {home}.{name} (adapter authors' API); the top-level name will "
                      "be removed in the next release", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(home), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
