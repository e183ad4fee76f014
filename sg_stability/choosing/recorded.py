"""What one recorded run measures for the shortlist, differentiated with a surrogate of choice
(``trace.switched``): every spiking layer's membranes, a surrogate's reach over them, the BPTT growth and the
gradient's spread across layers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..analysis.gradients import gradient_norms, layer_gradients, spread
from ..recording import Trace
from ..recording.records import stacked
from ..stability import late_growth
from ..surrogates import Surrogate


@dataclass
class LayerMembranes:
    """One spiking layer's recorded centred membranes (``[steps, batch, neurons]``) and threshold."""

    name: str
    v: Tensor
    threshold: float
    current: Surrogate | None = None  # the surrogate the layer holds, in canonical form (None: not readable)
    #: the framework differentiates the layer's reset, so its surrogate also sets how the spike feeds back through
    #: time (``Dynamics.reset_grad``, not ``detached``)
    reset_grad: bool = False


def membranes(trace: Trace) -> list[LayerMembranes]:
    """Every spiking layer's centred membranes and threshold in a recorded run, in execution order."""
    out = []
    for rec in trace.ordered():
        steps = rec.spike_steps()
        if not steps:
            continue
        v = stacked(steps).float().flatten(2)
        dyn = rec.site.driver.dynamics()
        thr = rec.site.driver.threshold() if dyn is None else dyn.threshold
        threshold = abs(float(torch.as_tensor(thr).float().mean())) if thr is not None else 1.0
        readable = rec.source == "installed" or rec.source.startswith("read from")
        reset_grad = dyn is not None and dyn.reset_grad and not dyn.detached and dyn.reset != "none"
        out.append(LayerMembranes(rec.site.path, v, threshold if threshold > 0 else 1.0,
                                  rec.surrogate if readable else None, reset_grad))
    return out


def reach(surrogate: Surrogate, v: Tensor) -> float:
    """Fraction of the recorded points where the surrogate passes at least half its peak."""
    return float((surrogate.unit_shape(v.double() * float(surrogate.sharpness)) >= 0.5).double().mean())


@dataclass
class Measured:
    """One recorded run with a surrogate: the largest BPTT growth of any layer and the gradient's spread across
    layers (None where they cannot be followed)."""

    growth: float | None
    spread: float | None
    layers: dict[str, float] = field(default_factory=dict)  # per layer, the RMS gradient of its input current


def measure_recorded(trace: Trace, seed: int = 0, *, spread_too: bool = True) -> Measured:
    """On a recorded run, differentiated with the trace's current surrogate choice (``trace.switched``): the
    largest per-step growth, going back in time, of a gradient injected at the last step of any spiking layer
    (one backward pass per layer, through that layer alone), and (``spread_too``) the spread across layers of the
    gradient of a random projection of the model's output (four backward passes through the whole model)."""
    gen = torch.Generator().manual_seed(seed)
    worst: float | None = None
    for rec in trace.ordered():
        xs = rec.spike_steps()
        g = late_growth(gradient_norms(xs, rec.input_steps(len(xs)), gen))
        if g is not None and math.isfinite(g):
            worst = g if worst is None else max(worst, g)
    return Measured(worst, *recorded_spread(trace, seed)) if spread_too else Measured(worst, None)


def recorded_spread(trace: Trace, seed: int = 0) -> tuple[float | None, dict[str, float]]:
    """The spread across layers of the gradient of a random projection of the model's output on a recorded run
    (with the trace's current surrogate choice), and the per-layer RMS gradients it is made of."""
    per_layer = layer_gradients(trace.output, trace.ordered(), torch.Generator().manual_seed(seed))
    return spread(per_layer), per_layer
