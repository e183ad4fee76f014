"""The event loop: every sample of a batch steps from one event to the next (an input spike, a network spike, or
the trial's end), all neurons advance in closed form, and autograd records the event times themselves, so the
gradient of any loss on spike times is exact.

After the trial's end (``duration``) the *pseudodynamics* run: the inputs stop, every neuron's drive becomes
``pseudo_drive`` (> 0 for QIF: every neuron then fires), and the network keeps running, kicks included, until each
watched neuron (the output layer) has ``spikes`` spikes. Kicks fade after the trial as ``exp(-(t - duration) /
tau)`` (a continuous factor, 1 at the trial's end), so that inhibition cannot hold a neuron back for ever. A
spike that leaves the trial through its end becomes a pseudospike just after it -- its time, and its kicks, move
continuously -- and a neuron that never fired in the trial gets a pseudospike time that gradient descent can pull
into the trial.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ._models import EventModel


class Events(NamedTuple):
    """What the loop recorded, ``[L, B]`` each: event time, neuron (for spikes), whether it was a spike, and the
    spike's rank among that neuron's spikes."""

    time: Tensor
    neuron: Tensor
    spike: Tensor
    rank: Tensor


class Outcome(NamedTuple):
    events: Events
    trial_counts: Tensor  # [B, N] spikes before the trial's end
    truncated: bool  # max_events ran out before every watched neuron had its spikes


def simulate(model: EventModel, w_in: Tensor, w_net: Tensor, in_times: Tensor, in_channels: Tensor, *, duration: float,
             drive: float, pseudo_drive: float, watch: slice, spikes: int, max_events: int) -> Outcome:
    """Run a batch: ``w_in`` ``[N, C]`` (input channel -> neuron), ``w_net`` ``[N, N]`` (neuron -> neuron, rows
    receive), ``in_times``/``in_channels`` ``[B, K]`` sorted per row, ``inf`` padded."""
    batch, n = in_times.shape[0], w_net.shape[0]
    dtype, device = w_net.dtype, w_net.device
    in_times = torch.where(in_times < duration, in_times, math.inf)
    in_times = torch.cat([in_times, torch.full((batch, 1), math.inf, dtype=dtype, device=device)], 1)
    in_channels = torch.cat([in_channels, torch.zeros((batch, 1), dtype=torch.long, device=device)], 1)
    # one table of kicks, row = what happened: neuron j spiked (j < N), input channel c (N + c), nothing (last row)
    kicks = torch.cat([w_net.t(), w_in.t(), w_net.new_zeros(1, n)])
    nothing = kicks.shape[0] - 1
    state = model.initial((batch, n), drive, dtype, device)
    now = torch.zeros(batch, dtype=dtype, device=device)
    ptr = torch.zeros((batch, 1), dtype=torch.long, device=device)
    counts = torch.zeros((batch, n), dtype=torch.long, device=device)
    trial_counts = counts
    pseudo = torch.zeros(batch, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)
    log: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    end = torch.full((batch, 1), duration, dtype=dtype, device=device)
    for _ in range(max_events):
        mixed = bool(pseudo.any())
        done = pseudo & (counts[:, watch] >= spikes).all(1)
        to_spike = model.time_to_spike(state, drive)
        if mixed:
            to_spike = torch.where(pseudo[:, None], model.time_to_spike(state, pseudo_drive), to_spike)
        next_input = in_times.gather(1, ptr)
        switch = torch.where(pseudo[:, None], math.inf, end)
        when, which = torch.cat([now[:, None] + to_spike, next_input, switch], 1).min(1)
        active = ~done & torch.isfinite(when)
        if not bool(active.any()):
            return Outcome(_stacked(log, batch, device), torch.where(pseudo[:, None], trial_counts, counts), False)
        step = torch.where(active, when - now, 0.0)[:, None]
        moved = model.advance(state, step, drive)
        if mixed:
            moved = model.select(pseudo[:, None], model.advance(state, step, pseudo_drive), moved)
        now = torch.where(active, when, now)
        is_spike, is_input = active & (which < n), active & (which == n)
        fired = which.clamp(max=n - 1)
        onehot = torch.zeros((batch, n), dtype=torch.bool, device=device)
        onehot[rows, fired] = is_spike
        channel = in_channels.gather(1, ptr)[:, 0]
        row = torch.where(is_spike, fired, torch.where(is_input, n + channel, nothing))
        kick = kicks.index_select(0, row)
        if mixed:  # kicks fade after the trial's end, so inhibition cannot hold a neuron back for ever
            kick = kick * torch.where(pseudo, torch.exp((duration - now) / model.tau), 1.0)[:, None]
        state = model.normalised(model.kick(model.reset(moved, onehot.to(dtype), now), kick, now))
        log.append((now, fired, is_spike, counts[rows, fired]))
        counts = counts + onehot
        ptr = ptr + is_input[:, None].long()
        switching = active & (which == n + 1)
        if bool(switching.any()):
            trial_counts = torch.where((switching & ~pseudo)[:, None], counts, trial_counts)
            pseudo = pseudo | switching
    return Outcome(_stacked(log, batch, device), torch.where(pseudo[:, None], trial_counts, counts), True)


def _stacked(log: list[tuple[Tensor, Tensor, Tensor, Tensor]], batch: int, device: torch.device) -> Events:
    if not log:
        empty = torch.zeros((0, batch), dtype=torch.long, device=device)
        return Events(empty.double(), empty, empty.bool(), empty)
    time, neuron, spike, rank = (torch.stack(parts) for parts in zip(*log, strict=True))
    return Events(time, neuron, spike, rank)


def spike_table(events: Events, neurons: int, keep: int) -> Tensor:
    """``[B, N, keep]``: each neuron's first ``keep`` spike times (trial and pseudo), ``inf`` where it has fewer;
    differentiable in the event times."""
    batch = events.time.shape[1]
    table = torch.full((batch, neurons, keep), math.inf, dtype=events.time.dtype, device=events.time.device)
    chosen = events.spike & (events.rank < keep)
    if not bool(chosen.any()):
        return table
    step, sample = chosen.nonzero(as_tuple=True)
    return table.index_put((sample, events.neuron[step, sample], events.rank[step, sample]),
                           events.time[step, sample])
