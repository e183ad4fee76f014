"""The stability analysis of a model before training (re-exports only).

- :mod:`.tracing` -- the recorded run: recording surrogates, hooks, wiring, and each layer's weights;
- :mod:`.measure` -- gains measured by autograd on the recorded graph;
- :mod:`.estimates` -- per-layer estimates (theory, data-driven) and the parameters that reach a target gain;
- :mod:`.analyzer` -- :func:`analyze`: the report of every layer;
- :mod:`.shortlist` -- :func:`candidates`: the surrogates ``sg.tune`` races and ``sg.stabilize`` installs;
- :mod:`.choice` -- :class:`Choice`: what ``sg.stabilize`` installs without training data (``analyze`` reports it);
- :mod:`.report`, :mod:`.plotting` -- the report's table and plots.
"""

from .analyzer import analyze, analyze_layers
from .choice import Choice
from .report import LayerReport, StabilityReport
from .shortlist import (
    AREAS,
    GROWTH_LIMIT,
    MIN_REACH,
    SHARPNESS_UNITS,
    SPREAD_SLACK,
    Candidate,
    LayerMembranes,
    Measured,
    Shortlist,
    bptt_growth,
    candidates,
    measure,
    reach,
    record_membranes,
)
from .tracing import Record, Run, Trace, traced

__all__ = [
    "AREAS",
    "GROWTH_LIMIT",
    "MIN_REACH",
    "SHARPNESS_UNITS",
    "SPREAD_SLACK",
    "Candidate",
    "Choice",
    "LayerMembranes",
    "LayerReport",
    "Measured",
    "Record",
    "Run",
    "Shortlist",
    "StabilityReport",
    "Trace",
    "analyze",
    "analyze_layers",
    "bptt_growth",
    "candidates",
    "measure",
    "reach",
    "record_membranes",
    "traced",
]
