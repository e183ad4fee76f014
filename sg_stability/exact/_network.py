"""The user-facing pieces of :mod:`sg_stability.exact`: input spike trains, the network module, what a run returns,
and the losses on spike times."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .._errors import ConfigError, SGStabilityWarning
from .._validate import integer, option, real
from ._models import LIF, QIF
from ._simulate import simulate, spike_table

#: per neuron model: the default drive in the trial and after it (QIF: excitable at rest -1, then firing)
DEFAULT_DRIVES = {"qif": (-1.0, 1.0), "lif": (0.0, 2.0)}


class SpikeTrains(NamedTuple):
    """Input spikes of a batch: ``times`` ``[B, K]`` (``inf`` pads rows with fewer spikes) and the input
    ``channels`` ``[B, K]`` (long) they arrive on."""

    times: Tensor
    channels: Tensor

    @classmethod
    def from_steps(cls, x: Tensor, dt: float = 1.0) -> SpikeTrains:
        """Binned spikes ``x`` ``[T, B, C]`` (as :mod:`sg_stability.datasets` returns) as events: a spike in step
        ``t`` arrives at time ``t * dt``."""
        if not isinstance(x, Tensor) or x.dim() != 3:
            raise ConfigError("binned spikes must be a tensor [steps, batch, channels]",
                              got=getattr(x, "shape", type(x).__name__), allowed="a 3-D tensor of 0/1 values",
                              fix="pass dataset.x from sg_stability.datasets (time first)")
        dt = real(dt, "dt", above=0.0, example="dt=0.2")
        step, sample, channel = (x.detach() != 0).nonzero(as_tuple=True)
        batch = x.shape[1]
        per = torch.bincount(sample, minlength=batch)
        width = int(per.max()) if per.numel() else 0
        order = torch.argsort(sample * (x.shape[0] + 1) + step, stable=True)  # by sample, then by time
        step, sample, channel = step[order], sample[order], channel[order]
        slot = torch.arange(step.numel()) - torch.cumsum(per, 0).sub(per).repeat_interleave(per)
        times = torch.full((batch, width), math.inf, dtype=torch.float64)
        channels = torch.zeros((batch, width), dtype=torch.long)
        times[sample, slot] = step.double() * dt
        channels[sample, slot] = channel
        return cls(times, channels)


@dataclass
class Run:
    """One forward pass of a :class:`Network`.

    ``times`` ``[B, N, k]``: each neuron's first ``k`` spike times, trial spikes first, then pseudospikes (times >=
    ``duration``); ``inf`` where a neuron has fewer (e.g. hidden neurons once the output layer has its
    pseudospikes). ``trial_counts`` ``[B, N]``: spikes inside the trial. ``truncated``: the event budget ran out;
    the output spikes it left missing then read as the time of the last event (a lower bound).
    """

    times: Tensor
    trial_counts: Tensor
    duration: float
    layers: tuple[slice, ...]
    truncated: bool = False

    @property
    def first(self) -> Tensor:
        """``[B, N]``: the first spike or pseudospike of each neuron."""
        return self.times[..., 0]

    @property
    def pseudo(self) -> Tensor:
        """Where ``times`` holds a pseudospike (after the trial's end)."""
        return torch.isfinite(self.times) & (self.times >= self.duration)

    def layer(self, index: int) -> Run:
        """The same run restricted to one layer's neurons (``-1``: the output layer)."""
        part = self.layers[integer(index, "index", minimum=-len(self.layers), maximum=len(self.layers) - 1)]
        return Run(self.times[:, part], self.trial_counts[:, part], self.duration, (slice(0, part.stop - part.start),),
                   self.truncated)

    @property
    def output(self) -> Run:
        return self.layer(-1)


class Network(nn.Module):
    """A layered network of QIF (or, for comparison, LIF) neurons, simulated event by event in continuous time with
    exact gradients (:mod:`sg_stability.exact`).

    ``sizes``: ``[inputs, layer 1, ..., output]``. ``recurrent``: per layer (or for all), whether the layer feeds its
    own spikes back (no autapses). Weights are kicks of the voltage; ``weights[l]`` ``[n_l, n_(l-1)]`` and
    ``recurrent_weights[str(l)]`` ``[n_l, n_l]`` are ordinary parameters. ``drive``: the constant current in the
    trial (QIF default -1: at rest at V = -1, a spike needs V > 1); ``pseudo_drive``: the current after it (QIF
    default +1: every neuron fires). ``spikes``: how many spikes (trial and pseudo) each output neuron must have
    before the pseudodynamics stop. ``max_events``: the loop's budget per batch (default ``20 (N spikes + inputs)``).
    Weights start as ``N(init_mean / fan_in, init_std^2 / fan_in)`` (``init_mean`` is the mean summed kick a layer
    receives when all its inputs fire), in ``dtype`` (float64 by default), drawn with ``seed``.
    """

    def __init__(self, sizes: Sequence[int], *, recurrent: bool | Sequence[bool] = False, neuron: str = "qif",
                 tau: float = 1.0, drive: float | None = None, pseudo_drive: float | None = None,
                 duration: float = 4.0, spikes: int = 1, max_events: int | None = None,
                 init_mean: float = 0.0, init_std: float = 2.0, dtype: torch.dtype = torch.float64,
                 seed: int | None = None) -> None:
        super().__init__()
        sizes = _sizes(sizes)
        layers = len(sizes) - 1
        rec = [recurrent] * layers if isinstance(recurrent, bool) else list(recurrent)
        if len(rec) != layers or not all(isinstance(r, bool) for r in rec):
            raise ConfigError("recurrent must be True/False or one bool per layer", got=recurrent,
                              allowed=f"a bool, or a list of {layers} bools (sizes has {layers} layers)",
                              fix="e.g. recurrent=[True, False]")
        self.neuron = option(neuron, "neuron", DEFAULT_DRIVES, example='neuron="qif"', where="exact.Network")
        self.tau = real(tau, "tau", above=0.0, example="tau=1.0", where="exact.Network")
        default, default_pseudo = DEFAULT_DRIVES[self.neuron]
        self.drive = real(default if drive is None else drive, "drive", example="drive=-1.0", where="exact.Network")
        floor = 0.0 if self.neuron == "qif" else 1.0  # QIF fires for any I > 0; LIF needs I above its threshold 1
        self.pseudo_drive = real(default_pseudo if pseudo_drive is None else pseudo_drive, "pseudo_drive",
                                 above=floor, example=f"pseudo_drive={default_pseudo}", where="exact.Network")
        self.duration = real(duration, "duration", above=0.0, example="duration=4.0", where="exact.Network")
        self.spikes = integer(spikes, "spikes", minimum=1, example="spikes=1")
        self.max_events = None if max_events is None else integer(max_events, "max_events", minimum=1)
        self.sizes = tuple(sizes)
        self.model = QIF(self.tau) if self.neuron == "qif" else LIF(self.tau)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        mean = real(init_mean, "init_mean")
        std = real(init_std, "init_std", minimum=0.0)

        def init(rows: int, cols: int) -> nn.Parameter:
            w = torch.randn(rows, cols, generator=gen, dtype=dtype) * (std / math.sqrt(cols)) + mean / cols
            return nn.Parameter(w)

        self.weights = nn.ParameterList([init(sizes[k + 1], sizes[k]) for k in range(layers)])
        self.recurrent_weights = nn.ParameterDict({str(k): init(sizes[k + 1], sizes[k + 1])
                                                   for k in range(layers) if rec[k]})
        starts = [sum(sizes[1:k + 1]) for k in range(layers + 1)]
        self.layer_slices = tuple(slice(starts[k], starts[k + 1]) for k in range(layers))

    def matrices(self) -> tuple[Tensor, Tensor]:
        """``(w_in [N, C], w_net [N, N])`` of the whole network, rows = receiving neurons."""
        n = self.layer_slices[-1].stop
        first = self.weights[0]
        w_in = torch.cat([first, first.new_zeros(n - first.shape[0], first.shape[1])])
        rows = []
        for k, part in enumerate(self.layer_slices):
            size = part.stop - part.start
            blocks = [first.new_zeros(size, self.layer_slices[k - 1].start if k else 0)]
            if k:
                blocks.append(self.weights[k])
            own = self.recurrent_weights.get(str(k), None)
            blocks.append(own * (1 - torch.eye(size, dtype=own.dtype, device=own.device)) if own is not None
                          else first.new_zeros(size, size))
            blocks.append(first.new_zeros(size, n - part.stop))
            rows.append(torch.cat([b for b in blocks if b.shape[1]], 1))
        return w_in, torch.cat(rows)

    def forward(self, inputs: SpikeTrains) -> Run:
        times, channels = _check_inputs(inputs, self.sizes[0])
        w_in, w_net = self.matrices()
        times = times.to(dtype=w_net.dtype, device=w_net.device)
        n = w_net.shape[0]
        budget = self.max_events or 20 * (n * self.spikes + times.shape[1]) + 20
        out = simulate(self.model, w_in, w_net, times, channels.to(w_net.device), duration=self.duration,
                       drive=self.drive, pseudo_drive=self.pseudo_drive, watch=self.layer_slices[-1],
                       spikes=self.spikes, max_events=budget)
        if out.truncated:
            warnings.warn(f"exact.Network: the event budget ({budget} events) ran out before every output neuron "
                          f"had {self.spikes} spike(s); the missing ones read as the last event's time. Pass a "
                          "larger max_events=, or a larger pseudo_drive= so that the pseudodynamics end sooner",
                          SGStabilityWarning, stacklevel=2)
        keep = max(self.spikes, int(out.trial_counts.max()) if out.trial_counts.numel() else 0)
        times = spike_table(out.events, n, keep)
        if out.truncated and out.events.time.shape[0]:  # a missing output spike is later than the last event
            last = out.events.time[-1][:, None, None].expand_as(times)
            watched = torch.zeros_like(times, dtype=torch.bool)
            watched[:, self.layer_slices[-1], :self.spikes] = True
            times = torch.where(watched & torch.isinf(times), last, times)
        return Run(times, out.trial_counts, self.duration, self.layer_slices, out.truncated)

    def extra_repr(self) -> str:
        rec = ", ".join(sorted(self.recurrent_weights.keys()))
        return (f"sizes={list(self.sizes)}, neuron={self.neuron!r}, tau={self.tau:g}, drive={self.drive:g}, "
                f"pseudo_drive={self.pseudo_drive:g}, duration={self.duration:g}"
                + (f", recurrent layers=[{rec}]" if rec else ""))


def _sizes(sizes: Any) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ConfigError("sizes must list the input channels and at least one layer", got=sizes,
                          allowed="a sequence of positive integers [inputs, layer 1, ..., output]",
                          fix="e.g. sizes=[64, 32, 10]")
    return [integer(s, f"sizes[{k}]", minimum=1) for k, s in enumerate(sizes)]


def _check_inputs(inputs: Any, channels: int) -> tuple[Tensor, Tensor]:
    if not isinstance(inputs, SpikeTrains):
        raise ConfigError("an exact.Network takes its input as SpikeTrains", got=type(inputs).__name__,
                          allowed="SpikeTrains(times [B, K], channels [B, K])",
                          fix="build it with SpikeTrains.from_steps(x) from binned spikes [T, B, C]")
    times, chans = inputs
    if (times.dim() != 2 or chans.shape != times.shape or chans.dtype != torch.long
            or torch.isnan(times).any() or (times < 0).any()):
        raise ConfigError("SpikeTrains needs times [B, K] (>= 0, inf for padding) and long channels of the same "
                          "shape", got=f"times {tuple(times.shape)} {times.dtype}, channels {tuple(chans.shape)} "
                          f"{chans.dtype}", allowed="matching [B, K] tensors", fix="use SpikeTrains.from_steps(x)")
    real_spikes = torch.isfinite(times)
    if real_spikes.any() and (int(chans[real_spikes].min()) < 0 or int(chans[real_spikes].max()) >= channels):
        raise ConfigError("an input channel is outside the network's inputs",
                          got=(int(chans[real_spikes].min()), int(chans[real_spikes].max())),
                          allowed=f"channels in [0, {channels - 1}] (sizes[0] = {channels})",
                          fix="build the network with sizes[0] = the number of input channels")
    order = torch.argsort(times, dim=1, stable=True)
    return times.gather(1, order), chans.gather(1, order)


def accuracy(run: Run, labels: Tensor) -> float:
    """The fraction of samples whose earliest output neuron (spike or pseudospike) is the label."""
    return float((run.output.first.argmin(1) == labels).double().mean())


def first_spike_loss(run: Run, labels: Tensor, *, temperature: float = 1.0) -> Tensor:
    """Cross-entropy on ``-t_first / temperature`` of the output neurons: the label's neuron should fire first."""
    first = run.output.first
    finite = torch.where(torch.isfinite(first), first, torch.full_like(first, 1e6))  # no spike at all: last
    return nn.functional.cross_entropy(-finite / real(temperature, "temperature", above=0.0), labels)


def spike_time_loss(run: Run, targets: Tensor) -> Tensor:
    """Squared distance of each output neuron's first ``m`` spikes (trial or pseudo) to ``targets`` ``[..., N, m]``,
    plus, for each further spike inside the trial, its distance to the trial's end: a pull of constant strength
    that moves the surplus spike out through the end (a squared distance would fade as the spike got there)."""
    out = run.output
    m = targets.shape[-1]
    times = out.times
    if times.shape[-1] < m:
        raise ConfigError("the run has fewer spikes per neuron than targets", got=times.shape[-1],
                          allowed=f"spikes >= {m} (one per target)", fix=f"build the network with spikes={m}")
    wanted = ((times[..., :m] - targets) ** 2).sum(-1)
    extra = times[..., m:]
    inside = torch.isfinite(extra) & (extra < run.duration)
    surplus = torch.where(inside, run.duration - torch.where(inside, extra, torch.zeros_like(extra)),
                          torch.zeros_like(extra)).sum(-1)
    return (wanted + surplus).mean()
