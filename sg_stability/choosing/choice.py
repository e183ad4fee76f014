"""What ``sg.stabilize`` installs without training data, decided on the recorded run the shortlist came from;
``sg.analyze`` reports the same decision (``report.recommendation``), so the two never disagree."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..recording import Trace
from ..surrogates import Surrogate
from .shortlist import GROWTH_LIMIT, Candidate, Shortlist, recorded_spread

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
    per_layer = pool.depth_compensated(chosen)
    if per_layer is not None:
        with trace.switched(per_layer):
            rescaled, _ = recorded_spread(trace, seed)
        if not pool.widens(rescaled):
            factors = ", ".join(f"{path} {float(s.dampening):.3g}" for path, s in per_layer.items())
            return Choice(chosen, per_layer, (
                f"the stability analysis' first choice with its dampening rescaled per layer ({factors}): with one "
                f"dampening the gradient's spread across layers would be {chosen.spread:.3g}x, rescaled it is "
                f"{rescaled:.3g}x (the model's own surrogates: {now})" + skipped + _growth_caveat(chosen) + RACE))
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


def _growth_caveat(c: Candidate) -> str:
    if c.growth is not None and c.growth > GROWTH_LIMIT:
        return f"; every candidate's gradient grows going back in time, this one least ({c.growth:.3f}/step)"
    return ""
