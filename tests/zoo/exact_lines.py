"""Random lines through the weights of small exact networks (``sg_stability.exact``) along which a spike crosses:
the loss along each, for the continuity checks of the suite and of ``benchmarks/bench_exact.py``."""

from __future__ import annotations

from collections.abc import Callable

import torch

import sg_stability.exact as ex


def line(neuron: str, seed: int) -> tuple[Callable[[float], ex.Run], Callable[[float], float]]:
    """A random 4 -> 5 (recurrent) -> 2 network, 2 input samples and a random direction: ``(run_at, loss_at)`` of
    the step ``alpha`` along it (the spike-time loss against random targets, surplus spikes pulled out)."""
    g = torch.Generator().manual_seed(seed)
    qif = neuron == "qif"
    net = ex.Network([4, 5, 2], recurrent=[True, False], neuron=neuron, duration=3.0, init_mean=6.0 if qif else 1.5,
                     init_std=3.0 if qif else 1.0, seed=seed)
    inputs = ex.SpikeTrains.from_steps((torch.rand(12, 2, 4, generator=g) < 0.25).float(), dt=0.25)
    targets = torch.rand(1, 2, 1, generator=g, dtype=torch.float64) * 3.0
    params = list(net.parameters())
    base = [p.detach().clone() for p in params]
    direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]

    def run_at(alpha: float) -> ex.Run:
        with torch.no_grad():
            for p, b, d in zip(params, base, direction, strict=True):
                p.copy_(b + alpha * d)
            return net(inputs)

    return run_at, lambda alpha: float(ex.spike_time_loss(run_at(alpha), targets))


def crossing_lines(neuron: str, count: int) -> list[Callable[[float], float]]:
    """``count`` random lines (``alpha`` in [-1, 1]) along which the number of spikes inside the trial changes."""
    found, seed = [], 0
    while len(found) < count:
        run_at, loss_at = line(neuron, seed)
        if int(run_at(-1.0).trial_counts.sum()) != int(run_at(1.0).trial_counts.sum()):
            found.append(loss_at)
        seed += 1
    return found
