"""Loss landscapes around a model's current weights: ``sg.landscape(model, loss_fn, batch)``.

The loss and the gradient norm are measured along 1 or 2 random directions through the weights,
``theta + a * d1 (+ b * d2)`` for ``a, b`` on a grid in ``[-radius, radius]``. The directions are
*filter-normalised* (Li et al., "Visualizing the Loss Landscape of Neural Nets", 2018): a Gaussian direction is
drawn per weight tensor, and each of its filters (its slices along the first dimension) is rescaled to the norm
of the same filter of the weights, so that a step of 1 moves every filter by its own size. One-dimensional
parameters (biases, leaks, thresholds, learnable surrogate parameters) stay fixed, as in Li et al.

The gradient norm is that of the loss's gradient with respect to every trainable parameter, through whatever
surrogates the model carries: for a patched spiking model it is the gradient that training would follow.

**Fragmentation** (``report.fragmentation``: the fraction of steps that are jumps) of a 1-D profile
``L_0 .. L_n`` (each line of a 2-D grid counts as one profile), with steps ``s_i = |L_{i+1} - L_i|``:

- ``jumps``: the steps larger than ``k`` times the profile's median step (``k = jump_factor``, 10 by
  default; a step below 1e-7 of the profile's range never counts, even where the median step is 0): a smooth
  profile sampled finely has none; the loss of a LIF network, which moves in discrete events, has them where a
  spike appears or vanishes inside the trial;
- ``roughness``: the total variation ``sum(s_i)`` over the range ``max L - min L``: 1 for a monotone profile,
  at most 2 for one that only falls then rises (or rises then falls), larger with every further wiggle.
  The report gives the median over profiles.

A grid cannot tell a jump from a stretch that is steep but continuous. With ``refine=n`` every jump is bisected
``n`` times along its profile (the loss alone, no gradient): a continuous loss leaves about ``2**-n`` of the
step, and the jump is dropped when what is left is below 1/1000 of its grid step. What stays is a discontinuity
(perhaps one of several spikes that flip within the grid step). ``jump_factor`` just above 1 with ``refine``
counts the discontinuities among all steps above the median.

The model is left exactly as it was: weights, gradients, hidden state, buffers (BatchNorm statistics) and
training mode, also when ``loss_fn`` fails.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._errors import ConfigError
from ._plotting import save_figure, subplots
from ._state import preserved_state
from ._validate import flag, integer, real
from .exact import bisect_jump

__all__ = ["LandscapeReport", "landscape"]

LossFn = Callable[[nn.Module, Any], Tensor]


@dataclass
class LandscapeReport:
    """What :func:`landscape` measured. ``loss`` and ``grad_norm`` have shape ``[points]`` (1 direction) or
    ``[points, points]`` (2, indexed ``[a, b]``), with a leading sample axis when ``per_sample``."""

    coordinates: list[float]
    directions: int
    loss: Tensor
    grad_norm: Tensor
    per_sample: bool = False
    jump_factor: float = 10.0
    jumps: int = 0
    steps: int = 0
    roughness: float = 1.0
    profiles: list[dict[str, float]] = field(default_factory=list)

    @property
    def fragmentation(self) -> float:
        """The landscape's fragmentation: the fraction of its steps that are jumps (larger than ``jump_factor``
        times their profile's median step), 0 for a loss that varies smoothly at this resolution."""
        return self.jumps / self.steps if self.steps else 0.0

    def __str__(self) -> str:
        shape = "x".join(str(s) for s in self.loss.shape)
        finite = self.loss[torch.isfinite(self.loss)]
        span = f"loss {finite.min():.4g} .. {finite.max():.4g}" if finite.numel() else "no finite loss"
        return (f"LandscapeReport: {self.directions} direction(s), grid {shape}, radius {max(self.coordinates):g}; "
                f"{span}; fragmentation {self.fragmentation:.1%} ({self.jumps} jumps > {self.jump_factor:g}x the "
                f"median step in {self.steps} steps); roughness {self.roughness:.3f} (1 monotone, <= 2 one valley)")

    def plot(self, path: str | Path | None = None) -> Any:
        """Loss and gradient norm: against the step for 1 direction (one curve per sample with ``per_sample``),
        as filled contours for 2. Returns the figure, or writes it to ``path`` as PNG and returns the path."""
        fig, axes = subplots(2, (10.0, 4.0))
        xs = self.coordinates
        for ax, values, label in ((axes[0], self.loss, "loss"), (axes[1], self.grad_norm, "gradient norm")):
            grids = values if self.per_sample else values.unsqueeze(0)
            if self.directions == 1:
                for k, g in enumerate(grids):
                    ax.plot(xs, g.tolist(), marker=".", lw=1, label=f"sample {k}" if self.per_sample else None)
                ax.set_xlabel("step along the direction (filter-normalised)")
                ax.set_ylabel(label)
            else:
                filled = ax.contourf(xs, xs, grids.mean(0).T.numpy(), levels=20)
                fig.colorbar(filled, ax=ax)
                ax.set_xlabel("direction 1")
                ax.set_ylabel("direction 2")
            ax.set_title(label + (" (mean over samples)" if self.per_sample and self.directions == 2 else ""))
        fig.suptitle(f"jumps {self.jumps}/{self.steps}, roughness {self.roughness:.2f}")
        if path is None:
            return fig
        return save_figure(fig, path, dpi=100)


def jump_steps(profile: Sequence[float], jump_factor: float = 10.0) -> tuple[list[int], float]:
    """The indices ``i`` of the steps ``L_i -> L_(i+1)`` of a 1-D profile that are jumps (larger than
    ``jump_factor`` times its median step), and that threshold; steps touching a non-finite value are left out."""
    steps = {i: abs(b - a) for i, (a, b) in enumerate(itertools.pairwise(profile))
             if math.isfinite(a) and math.isfinite(b)}
    if not steps:
        return [], math.inf
    finite = [v for v in profile if math.isfinite(v)]
    # a step below a millionth of the profile's range is rounding, not a jump, even where the median step is 0
    floor = max(1e-12 * max(1.0, max(abs(v) for v in finite)), 1e-7 * (max(finite) - min(finite)))
    threshold = jump_factor * max(statistics.median(steps.values()), floor)
    return [i for i, step in steps.items() if step > threshold], threshold


def profile_fragmentation(profile: Sequence[float], jump_factor: float = 10.0) -> dict[str, float]:
    """``jumps``, ``steps`` and ``roughness`` of one 1-D profile (module docstring); non-finite values are
    skipped."""
    values = [v for v in profile if math.isfinite(v)]
    steps = [abs(b - a) for a, b in itertools.pairwise(values)]
    if not steps:
        return {"jumps": 0, "steps": 0, "roughness": 1.0}
    floor = 1e-12 * max(1.0, max(abs(v) for v in values))
    jumps = len(jump_steps(values, jump_factor)[0])
    span = max(values) - min(values)
    total = sum(steps)
    roughness = total / span if span > floor else 1.0
    return {"jumps": jumps, "steps": len(steps), "roughness": roughness}


def _direction(params: list[Tensor], generator: torch.Generator) -> list[Tensor]:
    out = []
    for p in params:
        if p.dim() < 2:
            out.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.device, p.dtype)
        w_norm = p.detach().flatten(1).norm(dim=1)
        d_norm = d.flatten(1).norm(dim=1).clamp_min(torch.finfo(p.dtype).tiny)
        out.append(d * (w_norm / d_norm).view(-1, *([1] * (p.dim() - 1))))
    return out


def _check(model: Any, loss_fn: Any, directions: Any, points: Any, radius: Any, per_sample: Any,
           jump_factor: Any, batch: Any, refine: Any) -> tuple[int, int, float, bool, float, int]:
    where = "landscape"
    if not isinstance(model, nn.Module):
        raise ConfigError("landscape: model must be a torch.nn.Module", got=type(model).__name__,
                          allowed="an nn.Module", fix="pass the model itself")
    if not callable(loss_fn):
        raise ConfigError("landscape: loss_fn must be callable", got=loss_fn, allowed="loss_fn(model, batch) -> "
                          "a scalar tensor", fix="pass e.g. lambda m, b: F.cross_entropy(m(b[0]), b[1])")
    directions = integer(directions, "directions", minimum=1, maximum=2, example="directions=2", where=where)
    points = integer(points, "points", minimum=3, maximum=401, example="points=21", where=where)
    radius = real(radius, "radius", above=0.0, example="radius=1.0", where=where)
    per_sample = flag(per_sample, "per_sample", where=where)
    jump_factor = real(jump_factor, "jump_factor", above=1.0, example="jump_factor=10.0", where=where)
    refine = integer(refine, "refine", minimum=0, maximum=60, example="refine=30 (bisections per jump)", where=where)
    if per_sample and (not isinstance(batch, list) or not batch):
        raise ConfigError("landscape: with per_sample=True, batch must be a list of single-sample batches",
                          got=type(batch).__name__, allowed="a non-empty list, one batch per sample",
                          fix="pass e.g. [(x[:, i:i + 1], y[i:i + 1]) for i in range(8)]")
    if not any(p.requires_grad and p.dim() >= 2 for p in model.parameters()):
        raise ConfigError("landscape: the model has no trainable weight matrix to move along",
                          got=[tuple(p.shape) for p in model.parameters()],
                          allowed="at least one trainable parameter with 2 or more dimensions",
                          fix="set requires_grad=True on the weights to explore")
    return directions, points, radius, per_sample, jump_factor, refine


def landscape(model: nn.Module, loss_fn: LossFn, batch: Any, *, directions: int = 1, points: int = 21,
              radius: float = 1.0, per_sample: bool = False, seed: int = 0, jump_factor: float = 10.0,
              refine: int = 0, progress: bool = True) -> LandscapeReport:
    """The loss and gradient norm of ``loss_fn(model, batch)`` along ``directions`` (1 or 2) random
    filter-normalised directions, at ``points`` steps (per direction) in ``[-radius, radius]``, with the
    fragmentation of the loss (module docstring). ``loss_fn`` must reset any hidden state itself, as a training
    step does. ``per_sample=True``: ``batch`` is a list of single-sample batches, one landscape each (the
    single-sample analysis of Klos & Memmesheimer), on the same directions. ``seed`` draws the directions.
    ``refine``: bisections per jump, to drop the steep but continuous stretches a grid takes for jumps."""
    directions, points, radius, per_sample, jump_factor, refine = _check(
        model, loss_fn, directions, points, radius, per_sample, jump_factor, batch, refine)
    from tqdm.auto import tqdm

    params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(int(seed))
    dirs = [_direction(params, generator) for _ in range(directions)]
    coords = torch.linspace(-radius, radius, points, dtype=torch.float64).tolist()
    samples = list(batch) if per_sample else [batch]
    grid = [(a,) for a in coords] if directions == 1 else [(a, b) for a in coords for b in coords]
    shape = (len(samples), *([points] * directions))
    loss = torch.full(shape, math.nan, dtype=torch.float64)
    grad_norm = torch.full(shape, math.nan, dtype=torch.float64)
    originals = [p.detach().clone() for p in params]
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    try:
        with preserved_state(model), tqdm(total=len(grid) * len(samples), desc="loss landscape",
                                          disable=not progress, leave=False) as bar:
            for k, step in enumerate(grid):
                _move(params, originals, dirs, step)
                index = (k,) if directions == 1 else divmod(k, points)
                for s, sample in enumerate(samples):
                    value = _loss(model, loss_fn, sample)
                    gs = torch.autograd.grad(value, params, allow_unused=True)
                    loss[(s, *index)] = float(value.detach())
                    grad_norm[(s, *index)] = math.sqrt(sum(float(g.double().pow(2).sum()) for g in gs
                                                           if g is not None))
                    bar.update()
            dropped = _refined(model, loss_fn, samples, loss, coords, params, originals, dirs, jump_factor,
                               refine) if refine else 0
    finally:
        with torch.no_grad():
            for p, p0, g in zip(params, originals, grads, strict=True):
                p.copy_(p0)
                p.grad = g
    profiles = [profile_fragmentation(line.tolist(), jump_factor) for s in range(len(samples))
                for line in _lines(loss[s], directions)]
    finite = [p["roughness"] for p in profiles if math.isfinite(p["roughness"])]
    return LandscapeReport(coords, directions, loss if per_sample else loss[0],
                           grad_norm if per_sample else grad_norm[0], per_sample, jump_factor,
                           int(sum(p["jumps"] for p in profiles)) - dropped, int(sum(p["steps"] for p in profiles)),
                           statistics.median(finite) if finite else math.inf, profiles)


def _move(params: list[Tensor], originals: list[Tensor], dirs: list[list[Tensor]], step: Sequence[float]) -> None:
    with torch.no_grad():
        for p, p0, *ds in zip(params, originals, *dirs, strict=True):
            p.copy_(p0 + sum(c * d for c, d in zip(step, ds, strict=True)))


def _refined(model: nn.Module, loss_fn: LossFn, samples: list[Any], loss: Tensor, coords: list[float],
             params: list[Tensor], originals: list[Tensor], dirs: list[list[Tensor]], jump_factor: float,
             bisections: int) -> int:
    """How many grid jumps bisection shows to be steep but continuous stretches (module docstring)."""
    dropped = 0
    for s, sample in enumerate(samples):
        lines = [(None, loss[s])] if len(dirs) == 1 else \
            [(("row", i), loss[s][i]) for i in range(len(coords))] + [(("col", j), loss[s][:, j])
                                                                      for j in range(len(coords))]
        for fixed, line in lines:
            values = line.tolist()
            found, _ = jump_steps(values, jump_factor)

            def value_at(c: float, fixed: tuple[str, int] | None = fixed, sample: Any = sample) -> float:
                step = (c,) if fixed is None else ((coords[fixed[1]], c) if fixed[0] == "row"
                                                   else (c, coords[fixed[1]]))
                _move(params, originals, dirs, step)
                with torch.no_grad():  # the grid pass has checked that loss_fn returns a scalar tensor
                    return float(loss_fn(model, sample).detach().reshape(()))

            for i in found:
                _, left = bisect_jump(value_at, coords[i], coords[i + 1], values[i], values[i + 1], bisections)
                if left <= 1e-3 * abs(values[i + 1] - values[i]):
                    dropped += 1
    return dropped


def _lines(values: Tensor, directions: int) -> list[Tensor]:
    return [values] if directions == 1 else [*values, *values.T]


def _loss(model: nn.Module, loss_fn: LossFn, sample: Any) -> Tensor:
    value = loss_fn(model, sample)
    if not isinstance(value, Tensor) or value.numel() != 1 or not value.is_floating_point():
        raise ConfigError("landscape: loss_fn(model, batch) must return a scalar floating-point tensor",
                          got=value if not isinstance(value, Tensor) else f"tensor of shape {tuple(value.shape)}",
                          allowed="a 0-d (or 1-element) float tensor with a graph to the parameters",
                          fix="reduce it, e.g. return loss.mean()")
    if not value.requires_grad:
        raise ConfigError("landscape: the loss does not depend on the trainable parameters",
                          got="a tensor without grad_fn", allowed="a loss computed from model(...)",
                          fix="compute the loss from the model's output, outside torch.no_grad()")
    return value.reshape(())
