"""Is a loss continuous along a line? A grid cannot tell a jump from a steep but continuous stretch; bisection can."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from .._validate import integer, real


@dataclass(frozen=True)
class LineJumps:
    """The loss along one line and the jumps found on it: ``alphas`` and ``loss`` on the grid; ``jumps``: per jump,
    the position it narrows down to and the loss difference left across an interval ``bisections`` halvings
    narrower than a grid step; ``median_step``: the grid's median ``|loss difference|``."""

    alphas: list[float]
    loss: list[float]
    median_step: float
    jumps: list[tuple[float, float]]


def line_jumps(loss_at: Callable[[float], float], *, radius: float = 1.0, points: int = 41, jump_factor: float = 10.0,
               bisections: int = 40) -> LineJumps:
    """Evaluate ``loss_at(alpha)`` on ``points`` values of ``alpha`` in ``[-radius, radius]``; every grid step larger
    than ``jump_factor`` times the median step is bisected ``bisections`` times towards its larger half. It is a
    jump when the difference left is still larger than ``jump_factor`` times the median step and than 1/1000 of the
    grid step it came from: a continuous loss shrinks to nothing (about ``2**-40`` of the step), a discontinuous
    one keeps its jump."""
    radius = real(radius, "radius", above=0.0)
    points = integer(points, "points", minimum=3)
    factor = real(jump_factor, "jump_factor", above=0.0)
    bisections = integer(bisections, "bisections", minimum=1)
    alphas = [-radius + 2 * radius * k / (points - 1) for k in range(points)]
    loss = [float(loss_at(a)) for a in alphas]
    steps = sorted(abs(b - a) for a, b in itertools.pairwise(loss))
    median = steps[len(steps) // 2]
    jumps = []
    for k in range(points - 1):
        if abs(loss[k + 1] - loss[k]) <= factor * median:
            continue
        where, left = bisect_jump(loss_at, alphas[k], alphas[k + 1], loss[k], loss[k + 1], bisections)
        if left > max(factor * median, 1e-3 * abs(loss[k + 1] - loss[k])):
            jumps.append((where, left))
    return LineJumps(alphas, loss, median, jumps)


def bisect_jump(loss_at: Callable[[float], float], lo: float, hi: float, f_lo: float, f_hi: float,
                bisections: int) -> tuple[float, float]:
    """Halve ``[lo, hi]`` ``bisections`` times, keeping the half with the larger change of ``loss_at``:
    ``(where it narrowed down to, the change left across it)``. A continuous loss leaves about ``2**-bisections``
    of the change; a jump leaves the jump."""
    for _ in range(bisections):
        mid = (lo + hi) / 2
        f_mid = float(loss_at(mid))
        if abs(f_mid - f_lo) >= abs(f_hi - f_mid):
            hi, f_hi = mid, f_mid
        else:
            lo, f_lo = mid, f_mid
    return (lo + hi) / 2, abs(f_hi - f_lo)
