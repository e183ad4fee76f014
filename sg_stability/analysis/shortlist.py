"""The stability analysis' shortlist of surrogates, in order of preference: what ``sg.tune`` races by training
and what ``sg.stabilize`` installs when it has no training data.

Measured on the evidence harness (BENCHMARKS.md: 4 tasks x 3 frameworks x 3 seeds x a 48-point grid) and
re-derived here:

- **Set in threshold units.** A surrogate's width only means something relative to the membrane's scale, which
  the threshold sets (a spike moves ``v`` by about one threshold). Candidates are ``(a / threshold) f(b v /
  threshold)`` for ``b`` in :data:`SHARPNESS_UNITS`: a model whose threshold, weights and membranes are all 10x
  larger gets 10x wider and 10x lower surrogates, and exactly the same gradients.
- **The area is at most a unit step.** A surrogate is the derivative of a smoothed step; its area
  ``dampening / sharpness`` is the height of that step. A spike is 0 or 1, so an area above 1 claims that nudging
  the membrane changes the output by more than a whole spike (the escape-noise reading of Gygax & Zenke: the
  surrogate is the derivative of a firing probability, area 1). Wide surrogates at full peak break this, and
  they trained worst on the harness (digits: 0.29-0.48 against 0.74). Candidates have areas in :data:`AREAS`,
  with the dampening capped at the family's peak.
- **Smaller areas train slower but further.** With Adam a dampening that multiplies every path through a layer
  changes nothing by itself; it matters where surrogate paths (recurrent weights, a reset) compete with the leak
  path, i.e. in the BPTT growth per step, and through Adam's epsilon in deep stacks. On the delayed-memory task
  areas of 1/10-1/3 reached 0.7-0.8 after 16 epochs while area 1 stayed near 0.4 -- and after 8 epochs the
  order was reversed: what learns first is not what learns best, so the race looks at 3/4 of the budget.
- **Measured growth.** Every candidate's BPTT growth per step is measured (one forward and one backward pass
  through the framework's own modules; the mean-square prediction under-estimates it, paper.md section 9).
  A candidate whose gradient grows (above :data:`GROWTH_LIMIT`) is ranked last: it lets the distant past
  swamp the gradient.
- **The incumbent.** The surrogate the model already holds (the framework's default, read into canonical form),
  when every layer holds the same one, is added last: the training race then never does worse than keeping it.
- **Preference (the prior).** Area 1/3 first, then 1, then 1/10; within an area the widest reach first (reach:
  the fraction of recorded points where the surrogate passes half its peak -- the most neurons and steps that
  receive gradient); growing candidates last. The first is what ``sg.stabilize`` installs without training data;
  the race keeps this order among candidates that have not learned yet, so its survivors span the widths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError
from .._validate import integer
from ..stability import late_growth
from ..surrogates import Surrogate, get
from .measure import gradient_norms
from .sample import with_time_dim
from .tracing import Run, traced, value

#: sharpness grid in threshold units (surrogate width relative to the threshold), widest first
SHARPNESS_UNITS = (0.5, 1.5, 4.0)
#: areas (dampening / sharpness, the height of the smoothed step), in order of preference
AREAS = (1 / 3, 1.0, 0.1)
#: measured growth up to this counts as "does not grow" (the measurement's own scatter is about 1 %)
GROWTH_LIMIT = 1.01


@dataclass
class Candidate:
    """One surrogate on the shortlist: why it is there, what the analysis measured, and (filled by ``sg.tune``)
    its validation score after each rung."""

    surrogate: Surrogate
    origin: str = "given"
    reach: float | None = None
    growth: float | None = None
    scores: list[tuple[float, float]] = field(default_factory=list)  # (fraction of the budget, score)
    learned: bool = False
    diverged: bool = False

    @property
    def score(self) -> float:
        return self.scores[-1][1] if self.scores else -math.inf

    @property
    def label(self) -> str:
        s = self.surrogate
        return f"{s.family}(γ={float(s.dampening):.3g}, β={float(s.sharpness):.3g})"


@dataclass
class LayerMembranes:
    """One spiking layer's recorded centred membranes (``[steps, batch, neurons]``) and threshold."""

    name: str
    v: Tensor
    threshold: float
    current: Surrogate | None = None  # the surrogate the layer holds, in canonical form (None: not readable)


def record_membranes(model: nn.Module, sample: Any, run: Run | None = None) -> list[LayerMembranes]:
    """One forward pass on ``sample`` without gradient; the model is left as it was."""
    out = []
    with traced(model, sample, run=run, grad=False) as trace:
        for rec in trace.ordered():
            steps = rec.spike_steps()
            if not steps:
                continue
            v = torch.stack([value(s).detach().float() for s in steps]).flatten(2)
            dyn = rec.site.driver.dynamics()
            thr = rec.site.driver.threshold() if dyn is None else dyn.threshold
            threshold = abs(float(torch.as_tensor(thr).float().mean())) if thr is not None else 1.0
            readable = rec.source == "installed" or rec.source.startswith("read from")
            out.append(LayerMembranes(rec.site.path, v, threshold if threshold > 0 else 1.0,
                                      rec.surrogate if readable else None))
    return out


def reach(surrogate: Surrogate, v: Tensor) -> float:
    """Fraction of the recorded points where the surrogate passes at least half its peak."""
    return float((surrogate.unit_shape(v.double() * float(surrogate.sharpness)) >= 0.5).double().mean())


def bptt_growth(model: nn.Module, sample: Any, surrogate: Surrogate, run: Run | None = None, seed: int = 0
                ) -> float | None:
    """The largest measured per-step growth, going back in time, of a gradient injected at the last step of any
    spiking layer, with ``surrogate`` installed (one forward, one backward per layer); None when no layer's
    gradient can be followed through time."""
    gen = torch.Generator().manual_seed(seed)
    worst: float | None = None
    with traced(model, sample, run=run, surrogate=surrogate) as trace:
        for rec in trace.ordered():
            xs = rec.spike_steps()
            g = late_growth(gradient_norms(xs, rec.input_steps(len(xs)), gen))
            if g is not None and math.isfinite(g):
                worst = g if worst is None else max(worst, g)
    return worst


def candidates(model: nn.Module, sample: Any, *, run: Run | None = None, family: str | Surrogate = "fast_sigmoid",
               seed: int = 0, time_dim: int | None = None) -> list[Candidate]:
    """The shortlist, most preferred first (see the module docstring): ``family`` at sharpness ``b / threshold``
    for each ``b`` in :data:`SHARPNESS_UNITS` and area ``dampening / sharpness`` in :data:`AREAS` (dampening at
    most the family's peak / threshold; duplicates dropped), each with its measured reach and BPTT growth; then
    the model's own surrogate (the incumbent), when every layer holds the same one. The model is left as it
    was. ``time_dim`` as for :func:`~sg_stability.analyze`."""
    integer(seed, "seed", example="seed=0")
    base = get(family)
    run = with_time_dim(run, time_dim)
    layers = record_membranes(model, sample, run)
    if not layers:
        raise ConfigError("no spiking layer recorded a membrane on the sample", got=type(sample).__name__,
                          allowed="a sample that runs the model's neurons", fix="pass run=... as in training")
    theta = float(torch.tensor([m.threshold for m in layers]).median())
    peak = float(torch.as_tensor(base.dampening).max())
    ranked: list[tuple[tuple[float, ...], Candidate]] = []
    seen: set[tuple[float, float]] = set()
    for k, area in enumerate(AREAS):
        for b in SHARPNESS_UNITS:
            beta = b / theta  # in threshold units: the same surrogate on v / threshold, so an equivalent model
            gamma = min(peak, area * b) / theta  # with every scale multiplied gets the same gradients
            if (round(gamma, 12), round(beta, 12)) in seen:
                continue
            seen.add((round(gamma, 12), round(beta, 12)))
            s = base.replace(sharpness=beta, dampening=gamma)
            r = min(reach(s, m.v) for m in layers)
            growth = bptt_growth(model, sample, s, run=run, seed=seed)
            grows = growth is not None and growth > GROWTH_LIMIT
            cand = Candidate(s, f"b={b:g}, area {gamma / beta:.3g}", reach=r, growth=growth)
            ranked.append(((float(grows), growth if grows and growth is not None else 0.0, k, -r), cand))
    ranked.sort(key=lambda t: t[0])
    pool = [c for _, c in ranked]
    incumbent = _incumbent(layers, pool)
    if incumbent is not None:  # last: in the race, so that it never does worse than keeping what the model has
        pool.append(Candidate(incumbent, "the model's own surrogate", reach=min(reach(incumbent, m.v) for m in layers),
                              growth=bptt_growth(model, sample, incumbent, run=run, seed=seed)))
    return pool


def _incumbent(layers: list[LayerMembranes], pool: list[Candidate]) -> Surrogate | None:
    """The surrogate every layer holds now, when they all hold the same readable one and it is not on the list."""
    current = [m.current for m in layers]
    first = current[0]
    if first is None or any(c is None or c.family != first.family or c.params().keys() != first.params().keys()
                            for c in current):
        return None
    try:
        values = [{k: float(v) for k, v in c.params().items()} for c in current if c is not None]
    except (TypeError, ValueError, RuntimeError):  # per-neuron or learnable tensors: not one surrogate
        return None
    if any(v != values[0] for v in values):
        return None
    if any(c.surrogate.family == first.family and {k: float(v) for k, v in c.surrogate.params().items()} == values[0]
           for c in pool):
        return None
    return first.replace()
