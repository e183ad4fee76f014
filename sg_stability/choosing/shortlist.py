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
  order was reversed: what learns first is not what learns best, so the race decides at the full budget.
- **Measured growth.** Every candidate's BPTT growth per step is measured (backward passes through the
  framework's own modules; the mean-square prediction under-estimates it, paper.md section 9). The forward pass
  does not depend on the surrogate, so all candidates are measured on one recorded run, its graph
  differentiated with each in turn (:mod:`sg_stability.recording.switch`).
  A candidate whose gradient grows (above :data:`GROWTH_LIMIT`) is ranked last: it lets the distant past
  swamp the gradient.
- **The incumbent.** The surrogate the model already holds (the framework's default, read into canonical form),
  when every layer holds the same one, is added last: the training race then never does worse than keeping it.
- **Preference (the prior).** Area 1/3 first, then 1, then 1/10; within an area the widest reach first (reach:
  the fraction of recorded points where the surrogate passes half its peak -- the most neurons and steps that
  receive gradient); growing candidates last. The race keeps this order among candidates that have not learned
  yet, so its survivors span the widths.
- **What ``sg.stabilize`` installs without training data** (:meth:`Shortlist.preferred`): the most preferred
  candidate that keeps the surrogate on (reach at least :data:`MIN_REACH`), provided it does not widen the spread
  of the gradient across layers (largest over smallest RMS ``dL/dI`` of the layers' input currents, for a random
  projection of the model's output) beyond :data:`SPREAD_SLACK` times what the model's own surrogates give. In a
  deep feed-forward net a low dampening shrinks the gradient by that factor at every layer, so the spread grows
  geometrically with depth (SpikingJelly's MNISTNet: 5.0e3x -> 9.7e4x with one dampening of 1/6); the
  measurement catches it without a model of the architecture. ``sg.stabilize`` then rescales the preferred
  candidate's dampening per layer (:meth:`Shortlist.depth_compensated`; within area 1 where the reset is
  differentiated, unless that bound itself widens the spread), else takes the first candidate that keeps the
  spread, else leaves each layer its own surrogate.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._errors import ConfigError
from ..recording import Trace
from ..surrogates import Surrogate
from .recorded import LayerMembranes, measure_recorded, membranes, reach, recorded_spread

#: sharpness grid in threshold units (surrogate width relative to the threshold), widest first
SHARPNESS_UNITS = (0.5, 1.5, 4.0)
#: areas (dampening / sharpness, the height of the smoothed step), in order of preference
AREAS = (1 / 3, 1.0, 0.1)
#: measured growth up to this counts as "does not grow" (the measurement's own scatter is about 1 %)
GROWTH_LIMIT = 1.01
#: a candidate may widen the layers' gradient spread by at most this factor over the model's own surrogates
SPREAD_SLACK = 1.1
#: a candidate that passes half its peak at fewer recorded points than this (where a wider one does not) switches
#: the surrogate off
MIN_REACH = 0.01
#: the origin (and label) of the candidate that keeps every layer's own surrogate
EACH_OWN = "each layer's own surrogate"


@dataclass
class Candidate:
    """One surrogate on the shortlist: why it is there, what the analysis measured, and (filled by ``sg.tune``)
    its validation score after each rung."""

    surrogate: Surrogate
    origin: str = "given"
    reach: float | None = None
    growth: float | None = None
    spread: float | None = None  # of the gradient across layers (largest / smallest layer RMS); None: unmeasured
    layer_gradients: dict[str, float] = field(default_factory=dict, repr=False)  # what the spread is made of
    scores: list[tuple[float, float]] = field(default_factory=list)  # (fraction of the budget, score)
    learned: bool = False
    diverged: bool = False
    failure: str | None = None  # where it diverged in the race (a non-finite loss, gradient or weights)
    #: one surrogate per spiking layer path instead of ``surrogate`` everywhere: the data-free choice where it
    #: rescales the dampening per layer (``surrogate`` is then the candidate it was rescaled from) or keeps each
    #: layer's own surrogate
    per_layer: dict[str, Surrogate] | None = field(default=None, repr=False)

    @property
    def score(self) -> float:
        return self.scores[-1][1] if self.scores else -math.inf

    @property
    def label(self) -> str:
        if self.origin == EACH_OWN:
            return EACH_OWN
        s = self.surrogate
        plain = f"{s.family}(γ={_number(s.dampening)}, β={_number(s.sharpness)})"
        return plain if self.per_layer is None else f"{plain} rescaled per layer"

    def patch_kwargs(self) -> dict[str, Any]:
        """What :func:`sg_stability.patch` takes to install this candidate: ``surrogate=`` or, per layer,
        ``targets=`` (paths escaped: matched as globs)."""
        if self.per_layer is None:
            return {"surrogate": self.surrogate}
        return {"targets": {glob.escape(path): s for path, s in self.per_layer.items()}}


def _number(p: Any) -> str:
    """A parameter for a label: a float, or the mean of a per-neuron or learnable tensor (detached)."""
    if isinstance(p, Tensor):
        return format(float(p.detach().float().mean()), ".3g") + ("" if p.numel() == 1 else " (mean)")
    return format(float(p), ".3g")


class Shortlist(list[Candidate]):
    """The candidates, most preferred first, and what the model's own surrogates measure (``spread_now``)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self.spread_now: float | None = None
        self.gradients_now: dict[str, float] = {}  # per layer, with the model's own surrogates
        self.own: dict[str, Surrogate] | None = None  # each layer's own surrogate in canonical form, when readable
        self.layers: list[str] = []  # every spiking layer that ran, in execution order
        self.peak_per_threshold = math.inf  # the family's peak over the layers' median threshold
        self.reset_grad: set[str] = set()  # the layers whose reset the framework differentiates
        #: measures a candidate's spread on the recorded run while it is alive (set by :func:`shortlist` with
        #: ``spreads=False``: a spread costs four backward passes through the whole model, and most are not needed)
        self.measure_spread: Callable[[Candidate], None] | None = None
        #: what ``sg.stabilize`` installs without training data, as one of the list's candidates (set by
        #: :func:`sg_stability.candidates`): the training race's prior. None: :meth:`preferred`
        self.prior: Candidate | None = None

    def spread_of(self, c: Candidate) -> float | None:
        """``c.spread``, measured now when it was left for later and the recorded run is still alive."""
        if not c.layer_gradients and self.measure_spread is not None:
            self.measure_spread(c)
        return c.spread

    def depth_compensated(self, c: Candidate, bounded: bool = True) -> tuple[dict[str, Surrogate], list[str]] | None:
        """``c`` with its dampening rescaled per layer so that every layer's gradient keeps its ratio to what the
        model's own surrogates give it, and the layers where the unit-area bound stopped the rescaling (None when
        there is nothing to rescale; ``bounded=False``: no bound).

        A layer's dampening multiplies the gradient of every layer below it, so with ``r_l`` the ratio of ``c``'s
        RMS input-current gradient to the model's own at layer ``l`` (execution order), the layers from ``l`` up
        must together multiply it by ``r_top / r_l``; going down, each layer takes what the layers above it did
        not (``f_l = r_(l+1) / r_l`` where no bound is hit). Exact for a chain of layers; on branching models it
        is a first step that the caller re-measures.

        Where the reset is not differentiated, a layer's dampening is one factor on every gradient through it:
        Adam normalises it away, plain SGD needs it, so it may rise freely. Where the framework differentiates the
        reset (Norse, SpikingJelly without ``detach_reset``), the dampening also sets how strongly each spike feeds
        back through time, and it rises at most to :meth:`dampening_cap` (area 1), where a surrogate claims a
        whole spike per threshold; a layer below makes up what a bounded one could not, as far as its own bound
        allows. The caller falls back to ``bounded=False`` where the bound keeps it from keeping the spread."""
        self.spread_of(c)
        ratios = {p: c.layer_gradients[p] / g for p, g in self.gradients_now.items()
                  if g > 0 and c.layer_gradients.get(p, 0.0) > 0}
        order = [p for p in self.gradients_now if p in ratios]
        if len(order) < 2:
            return None
        gamma = float(torch.as_tensor(c.surrogate.dampening).max())
        cap = self.dampening_cap(c)
        out = {path: c.surrogate for path in self.layers}  # a layer the output's gradient does not reach: as is
        capped: list[str] = []
        above = 1.0  # what the layers above this one already multiply its gradient by
        for path in reversed(order):
            wanted = gamma * ratios[order[-1]] / ratios[path] / above
            bound = cap if bounded and path in self.reset_grad else None
            dampening = min(max(wanted, 1e-6), 1e3 if bound is None else bound)
            if bound is not None and wanted > bound * (1 + 1e-9):
                capped.append(path)
            out[path] = c.surrogate.replace(dampening=dampening)
            above *= dampening / gamma
        return out, capped[::-1]

    def dampening_cap(self, c: Candidate) -> float:
        """The largest dampening the shortlist gives any candidate at ``c``'s sharpness: area 1 (``max(AREAS)``),
        or the family's peak over the threshold where that is lower."""
        return min(self.peak_per_threshold, max(AREAS) * float(torch.as_tensor(c.surrogate.sharpness).max()))

    def widens(self, spread: float | None) -> bool:
        """True when ``spread`` is wider than :data:`SPREAD_SLACK` times what the model's own surrogates give."""
        return spread is not None and self.spread_now is not None and spread > SPREAD_SLACK * self.spread_now

    def _reaches(self, c: Candidate, widest: float) -> bool:
        return c.reach is None or c.reach >= min(MIN_REACH, widest)

    def _reach_note(self, c: Candidate) -> str:
        return f"{c.label}: reach {c.reach:.3f} (< {MIN_REACH:g}) leaves a layer almost without surrogate gradient"

    def preferred(self) -> tuple[Candidate, list[str]]:
        """The most preferred candidate that keeps the surrogate on, and why earlier ones were passed over."""
        # a silent layer gives every candidate reach 0: only a candidate narrower than the others switches it off
        widest = max((c.reach for c in self if c.reach is not None), default=0.0)
        passed: list[str] = []
        for c in self:
            if self._reaches(c, widest):
                return c, passed
            passed.append(self._reach_note(c))
        return self[0], passed

    def first_choice(self) -> tuple[Candidate | None, list[str]]:
        """The most preferred candidate that keeps the surrogate on and does not widen the gradient's spread
        across layers, and why earlier candidates were passed over; ``(None, reasons)`` when every candidate
        widens it."""
        passed: list[str] = []
        widest = max((c.reach for c in self if c.reach is not None), default=0.0)
        for c in self:
            if not self._reaches(c, widest):
                passed.append(self._reach_note(c))
            elif self.widens(self.spread_of(c)):
                passed.append(f"{c.label}: widens the gradient's spread across layers from {self.spread_now:.3g}x "
                              f"to {c.spread:.3g}x")
            else:
                return c, passed
        return None, passed


def build_shortlist(trace: Trace, base: Surrogate, seed: int = 0, *, spreads: bool = True) -> Shortlist:
    """:func:`candidates` on a recorded run: every candidate is measured on the same forward pass, differentiated
    with each in turn (``trace.switched``). ``spreads=False`` leaves the candidates' spreads to be measured when
    asked for (``Shortlist.spread_of``) while ``trace`` is alive; the model's own (``spread_now``) is measured."""
    layers = membranes(trace)
    if not layers:
        raise ConfigError("no spiking layer recorded a membrane on the sample", got=type(trace.sample).__name__,
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
            with trace.switched(s):
                got = measure_recorded(trace, seed, spread_too=spreads)
            grows = got.growth is not None and got.growth > GROWTH_LIMIT
            cand = Candidate(s, f"b={b:g}, area {gamma / beta:.3g}", reach=r, growth=got.growth, spread=got.spread,
                             layer_gradients=got.layers)
            ranked.append(((float(grows), got.growth if grows and got.growth is not None else 0.0, k, -r), cand))
    ranked.sort(key=lambda t: t[0])
    pool = Shortlist(c for _, c in ranked)
    with trace.switched(None):
        now = measure_recorded(trace, seed)
    pool.spread_now, pool.gradients_now, pool.layers = now.spread, now.layers, [m.name for m in layers]
    pool.peak_per_threshold = peak / theta
    pool.reset_grad = {m.name for m in layers if m.reset_grad}
    if all(m.current is not None for m in layers):
        pool.own = {m.name: m.current for m in layers if m.current is not None}
    incumbent = _incumbent(layers, pool)
    if incumbent is not None:  # last: in the race, so that it never does worse than keeping what the model has
        with trace.switched(incumbent):
            got = measure_recorded(trace, seed, spread_too=spreads)
        pool.append(Candidate(incumbent, "the model's own surrogate", reach=min(reach(incumbent, m.v) for m in layers),
                              growth=got.growth, spread=got.spread, layer_gradients=got.layers))
    if not spreads:
        def measure_spread(c: Candidate) -> None:
            with trace.switched(c.surrogate):
                c.spread, c.layer_gradients = recorded_spread(trace, seed)

        pool.measure_spread = measure_spread
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
