"""What ``sg.stabilize`` installs without training data, decided on the recorded run the shortlist came from;
``sg.analyze`` reports the same decision (``report.recommendation``), and the shortlist carries it as the
training race's prior (``shortlist.prior``), so the three never disagree."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from .._validate import integer
from ..recording import Run, Trace, traced
from ..recording.sample_checks import with_time_dim
from ..surrogates import Surrogate, get
from .recorded import recorded_spread
from .shortlist import EACH_OWN, GROWTH_LIMIT, Candidate, Shortlist, build_shortlist

#: how to reach the training race, appended where the analysis alone decided
RACE = " (pass batches= and loss_fn= to let a short training race between the candidates decide)"


@dataclass
class Choice:
    """The decision: one surrogate for every layer (``per_layer`` None), or one per layer path; ``candidate`` is
    the shortlist entry it comes from (None: each layer keeps its own surrogate); ``how`` says why, naming every
    fallback."""

    candidate: Candidate | None
    per_layer: dict[str, Surrogate] | None
    how: str

    def describe(self) -> str:
        """The candidate and its measured growth, e.g. ``fast_sigmoid(γ=0.167, β=0.5), measured BPTT growth
        1.000/step`` (``..., its dampening rescaled per layer, ...`` where it was), or ``each layer's own
        surrogate``."""
        c = self.candidate
        if c is None:
            return "each layer's own surrogate"
        growth = f", measured BPTT growth {c.growth:.3f}/step" if c.growth is not None else ""
        return f"{c.label}{', its dampening rescaled per layer' if self.per_layer is not None else ''}{growth}"


def first_choice(pool: Shortlist, trace: Trace, seed: int, keep_spread: bool = True) -> Choice:
    """The shortlist's preferred candidate (``Shortlist.preferred``); where it widens the gradient's spread
    across layers, with its dampening rescaled per layer (``Shortlist.depth_compensated``, re-measured on the same
    run), else the first candidate that does not widen it (``Shortlist.first_choice``), else each layer's own
    surrogate. ``keep_spread=False``: the preferred candidate regardless of the spread."""
    chosen, passed = pool.preferred()
    now = f"{pool.spread_now:.3g}x" if pool.spread_now is not None else "unmeasured"
    skipped = f"; passed over {'; '.join(passed)}" if passed else ""
    if not keep_spread or not pool.widens(pool.spread_of(chosen)):
        spread = (f"; gradient spread across layers {chosen.spread:.3g}x (the model's own surrogates: {now})"
                  if chosen.spread is not None else "")
        return Choice(chosen, None, "the stability analysis' first choice" + spread + skipped + _growth_caveat(chosen)
                      + RACE)
    per_layer, rescaled, note = _rescaled(pool, trace, seed, chosen)
    if per_layer is not None and rescaled is not None and not pool.widens(rescaled):
        factors = ", ".join(f"{path} {float(s.dampening):.3g}" for path, s in per_layer.items())
        return Choice(chosen, per_layer, (
            f"the stability analysis' first choice with its dampening rescaled per layer ({factors}): with one "
            f"dampening the gradient's spread across layers would be {chosen.spread:.3g}x, rescaled it is "
            f"{rescaled:.3g}x (the model's own surrogates: {now}){note}" + skipped + _growth_caveat(chosen) + RACE))
    keeping, passed = pool.first_choice()
    skipped = f"; passed over {'; '.join(passed)}" if passed else ""
    if keeping is not None:
        spread = f"{keeping.spread:.3g}x" if keeping.spread is not None else "unmeasured"
        return Choice(keeping, None, (
            f"FALLBACK: the first candidate that keeps the gradient's spread across layers ({spread}; the model's "
            f"own surrogates: {now}); rescaling the dampening per layer did not keep it" + skipped
            + _growth_caveat(keeping)))
    if pool.own is not None:
        return Choice(None, dict(pool.own), (
            f"FALLBACK: every candidate widens the gradient's spread across layers (the model's own: {now}), also "
            "with its dampening rescaled per layer" + skipped))
    least = min(pool, key=lambda c: spread if (spread := pool.spread_of(c)) is not None else math.inf)
    return Choice(least, None, (
        f"FALLBACK: every candidate widens the gradient's spread across layers (the model's own: {now}) and the "
        f"model's own surrogates cannot all be read, so the least widening is installed{skipped}"))


def _rescaled(pool: Shortlist, trace: Trace, seed: int, chosen: Candidate
              ) -> tuple[dict[str, Surrogate] | None, float | None, str]:
    """``chosen`` rescaled per layer (:meth:`Shortlist.depth_compensated`) within a unit area where the reset is
    differentiated, else (where that bound keeps it from keeping the spread) without the bound; the spread
    re-measured on the recorded run, and what the note adds about the bound."""

    def spread_with(per_layer: dict[str, Surrogate]) -> float | None:
        with trace.switched(per_layer):
            return recorded_spread(trace, seed)[0]

    compensated = pool.depth_compensated(chosen)
    if compensated is None:
        return None, None, ""
    per_layer, capped = compensated
    rescaled = spread_with(per_layer)
    if not capped:
        return per_layer, rescaled, ""
    layers = ", ".join(capped)
    if not pool.widens(rescaled):
        return per_layer, rescaled, (f"; {layers}, whose reset is differentiated, kept within area 1 or the family's "
                                     "peak (a whole spike per threshold)")
    unbounded = pool.depth_compensated(chosen, bounded=False)
    assert unbounded is not None  # the same layers as the bounded one
    within = f"{rescaled:.3g}x" if rescaled is not None else "unmeasured"
    return unbounded[0], spread_with(unbounded[0]), (f"; {layers}, whose reset is differentiated, above area 1 or the "
                                                     f"family's peak: within it the spread would be {within}")


def _growth_caveat(c: Candidate) -> str:
    if c.growth is not None and c.growth > GROWTH_LIMIT:
        return f"; every candidate's gradient grows going back in time, this one least ({c.growth:.3f}/step)"
    return ""


def candidates(model: nn.Module, sample: Any, *, run: Run | None = None, family: str | Surrogate = "fast_sigmoid",
               seed: int = 0, time_dim: int | None = None) -> Shortlist:
    """The shortlist, most preferred first (see :mod:`sg_stability.choosing.shortlist`): ``family`` at sharpness
    ``b / threshold`` for each ``b`` in :data:`SHARPNESS_UNITS` and area ``dampening / sharpness`` in
    :data:`AREAS` (dampening at most the family's peak / threshold; duplicates dropped), each with its measured
    reach, BPTT growth and gradient spread across layers; then the model's own surrogate (the incumbent), when
    every layer holds the same one. ``shortlist.prior`` is what ``sg.stabilize`` installs without training data,
    as one of the candidates: the preferred one, or (where one dampening would widen the gradient's spread
    across layers) the preferred one with its dampening rescaled per layer in its place, a fallback, or each
    layer's own surrogate; ``sg.tune`` races against it. The model is left as it was. ``time_dim`` as for
    :func:`~sg_stability.analyze`."""
    integer(seed, "seed", example="seed=0")
    base = get(family)
    with traced(model, sample, run=with_time_dim(run, time_dim)) as trace:
        return shortlist_and_choice(trace, base, seed, spreads=True)[0]


def shortlist_and_choice(trace: Trace, base: Surrogate, seed: int, *, keep_spread: bool = True,
                         spreads: bool = False) -> tuple[Shortlist, Choice]:
    """The shortlist on a recorded run and the data-free :class:`Choice`, which becomes ``shortlist.prior``."""
    pool = build_shortlist(trace, base, seed, spreads=spreads)
    choice = first_choice(pool, trace, seed, keep_spread)
    pool.measure_spread = None  # the recorded run ends with the caller's ``traced`` block
    pool.prior = _as_candidate(pool, choice)
    return pool, choice


def _as_candidate(pool: Shortlist, choice: Choice) -> Candidate:
    """The choice as one of the pool's candidates: a per-layer choice takes the place of the candidate it was
    rescaled from (so the race's cost does not grow), each layer's own surrogate is added last."""
    chosen = choice.candidate
    if chosen is not None and choice.per_layer is None:
        return chosen
    assert choice.per_layer is not None
    if chosen is None:
        own = next(iter(choice.per_layer.values()))
        pool.append(Candidate(own, EACH_OWN, per_layer=dict(choice.per_layer)))
        return pool[-1]
    rescaled = dataclasses.replace(chosen, per_layer=dict(choice.per_layer), scores=[])
    pool[next(i for i, c in enumerate(pool) if c is chosen)] = rescaled
    return rescaled
