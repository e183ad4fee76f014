"""Measurements by autograd that the stability estimates are validated against (tests, benchmarks): gains of the
reference :class:`RecurrentLIF` layer, and a whole model's BPTT growth and recorded membranes with a given
surrogate. The library itself measures on a recorded run (:mod:`sg_stability.recording`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._validate import checked
from ..choosing.recorded import LayerMembranes, Measured, measure_recorded, membranes
from ..recording import Run, traced
from ..stability import hutchinson_rms, probe_steps
from ..surrogates import Surrogate
from .reference import RecurrentLIF


@checked
def hutchinson_gain(pairs: Sequence[tuple[Tensor, Tensor]], probes: int, seed: int) -> float:
    """Root mean-square row norm of the Jacobians d out / d inp over ``(out, inp)`` pairs (rows = ``out`` entries),
    from ``probes`` vector-Jacobian products each (:func:`hutchinson_rms`)."""
    def vjp(k: int, u: Tensor) -> Tensor:
        out, inp = pairs[k]
        return torch.autograd.grad(out, inp, u, retain_graph=True)[0]

    gain = hutchinson_rms([out for out, _ in pairs], vjp, probes, torch.Generator().manual_seed(seed))
    return gain if gain is not None else math.nan


@checked
def measured_layer_gain(lower: RecurrentLIF, upper_weight: Tensor, z: Tensor, steps: Sequence[int] | None = None,
                        probes: int = 8, seed: int = 0) -> float:
    """Layer-to-layer gradient ratio by autograd: ``||dL/dv_lower|| / ||dL/dI_upper||`` at the same step, for
    ``L = <u, I_upper>`` (u Rademacher), root-mean-square over ``steps``, probes and batch, per receiving row."""
    with torch.no_grad():
        _, membranes = lower(z)
    steps = list(steps) if steps is not None else probe_steps(len(membranes))
    pairs = []
    for t in steps:
        y = membranes[t].detach().requires_grad_(True)
        pairs.append((lower.surrogate(y - lower.threshold) @ upper_weight.detach().T, y))
    return hutchinson_gain(pairs, probes, seed)


@checked
def measured_jacobian_gain(layer: RecurrentLIF, z: Tensor, steps: Sequence[int] | None = None,
                           probes: int = 8, seed: int = 0) -> float:
    """Root mean-square row norm of ``dy_{t+1}/dy_t`` of a :class:`RecurrentLIF`, by autograd, averaged over
    ``steps`` (default: 4 steps in the second half of the sequence) and the batch."""
    with torch.no_grad():
        _, membranes = layer(z)
    currents = layer.w_in(z).detach()
    steps = list(steps) if steps is not None else probe_steps(len(membranes) - 1)
    pairs = []
    for t in steps:
        y = membranes[t].detach().requires_grad_(True)
        pairs.append((layer.step(y, currents[t + 1]), y))
    return hutchinson_gain(pairs, probes, seed)


@checked
def bptt_norms(layer: RecurrentLIF, z: Tensor, seed: int = 0) -> Tensor:
    """``||dL/dy_t||`` for every t, with ``L = <u, y_T>`` (u Rademacher) at the last step: how a gradient
    injected at the end travels back through time."""
    membranes: list[Tensor]
    _, membranes = layer(z)
    for y in membranes:
        y.retain_grad()
    gen = torch.Generator().manual_seed(seed)
    last = membranes[-1]
    u = torch.randint(0, 2, last.shape, generator=gen).to(device=last.device, dtype=last.dtype) * 2 - 1
    (membranes[-1] * u).sum().backward()
    return torch.stack([y.grad.double().norm() if y.grad is not None
                        else torch.zeros((), dtype=torch.float64, device=y.device)
                        for y in membranes])


def record_membranes(model: nn.Module, sample: Any, run: Run | None = None) -> list[LayerMembranes]:
    """One forward pass on ``sample`` without gradient; the model is left as it was."""
    with traced(model, sample, run=run, grad=False) as trace:
        return membranes(trace)


def measure(model: nn.Module, sample: Any, surrogate: Surrogate | None, run: Run | None = None, seed: int = 0
            ) -> Measured:
    """One forward pass with ``surrogate`` (None: the model's own) and :func:`measure_recorded` on it."""
    with traced(model, sample, run=run, surrogate=surrogate) as trace:
        return measure_recorded(trace, seed)


def bptt_growth(model: nn.Module, sample: Any, surrogate: Surrogate, run: Run | None = None, seed: int = 0
                ) -> float | None:
    """The largest measured per-step growth, going back in time, of a gradient injected at the last step of any
    spiking layer, with ``surrogate`` installed (one forward, one backward per layer); None when no layer's
    gradient can be followed through time."""
    return measure(model, sample, surrogate, run, seed).growth
