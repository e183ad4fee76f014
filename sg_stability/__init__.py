"""sg-stability: one-call surrogate-gradient patching and stability analysis for SNN frameworks.

    import sg_stability as sg
    h = sg.patch(model, surrogate="fast_sigmoid", dampening=0.3, sharpness=2.0)
    ...
    h.remove()

See README.md for the framework support matrix and the method (Herranz-Celotti & Rouat,
"Stabilizing Spiking Neuron Training", arXiv 2202.00282).
"""

from . import analysis, anneal, datasets, diagnostics, init, plugins, schedules, sparsity, stability, surrogates
from ._api import find_neurons, is_patched, patch, unpatch
from ._errors import (
    AdapterError,
    AlreadyPatchedError,
    ConfigError,
    LayoutWarning,
    NoNeuronsFoundError,
    NotConvertibleError,
    PartialMatchWarning,
    PatchConflictError,
    PluginLoadWarning,
    PreflightError,
    Problem,
    SGStabilityError,
    SGStabilityWarning,
    SkippedSitesWarning,
    UnknownSurrogateError,
)
from ._handle import PatchHandle
from ._stabilize import stabilize
from ._transaction import Transaction
from ._tune import TuneReport, tune
from .adapter_api import NeuronSite, hookimpl
from .analysis import Candidate, LayerReport, StabilityReport, analyze, candidates
from .plugins import from_native, read_native

__version__ = "0.1.0.dev0"

__all__ = [
    "AdapterError",
    "AlreadyPatchedError",
    "Candidate",
    "ConfigError",
    "LayerReport",
    "LayoutWarning",
    "NeuronSite",
    "NoNeuronsFoundError",
    "NotConvertibleError",
    "PartialMatchWarning",
    "PatchConflictError",
    "PatchHandle",
    "PluginLoadWarning",
    "PreflightError",
    "Problem",
    "SGStabilityError",
    "SGStabilityWarning",
    "SkippedSitesWarning",
    "StabilityReport",
    "Transaction",
    "TuneReport",
    "UnknownSurrogateError",
    "__version__",
    "analysis",
    "analyze",
    "anneal",
    "candidates",
    "datasets",
    "diagnostics",
    "find_neurons",
    "from_native",
    "hookimpl",
    "init",
    "is_patched",
    "patch",
    "plugins",
    "read_native",
    "schedules",
    "sparsity",
    "stability",
    "stabilize",
    "surrogates",
    "tune",
    "unpatch",
]
