"""The stability report of a model before training: what each spiking layer does to the gradient.

- :mod:`.gradients` -- gains measured by autograd on a recorded run (:mod:`sg_stability.recording`);
- :mod:`.estimates` -- per-layer estimates (theory, data-driven) and the parameters that reach a target gain;
- :mod:`.analyzer` -- :func:`analyze_layers`: the report of every layer;
- :mod:`.report` -- :class:`StabilityReport` and :class:`LayerReport`: the table, the plot, the diagnosis.

``sg.analyze`` adds to this report what ``sg.stabilize`` would install (:mod:`sg_stability.choosing`).
"""

from .analyzer import analyze_layers
from .report import LayerReport, StabilityReport

__all__ = ["LayerReport", "StabilityReport", "analyze_layers"]
