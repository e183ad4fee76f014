"""Small offline spiking datasets for checking a surrogate choice on more than one kind of task.

Every generator is deterministic per ``seed``, returns time-major spike tensors ``x`` of shape
``[steps, samples, channels]`` (float 0/1) with integer labels ``y``, and downloads nothing (decisions D6):

- :func:`randman` — spike-timing classification on smooth random manifolds (Zenke & Vogels 2021): every input
  channel fires exactly once, at a time that is a smooth random function of a point on a class's manifold.
- :func:`delayed_cue` — working memory: a cue at the start, a silent noisy delay of ``delay`` steps, then a
  go signal; the class must be read out after the delay, so gradients must cross the delay through recurrence.
- :func:`spirals` — interleaved spirals in 2-D, population-coded as Poisson rates (a smooth, strongly
  non-linear boundary that a deep feed-forward stack can learn).
- :func:`digits` — scikit-learn's 8x8 handwritten digits (shipped with scikit-learn), latency- or rate-coded.
- :func:`load_shd` — Spiking Heidelberg Digits from the HDF5 files a user has on disk, binned in time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ._errors import ConfigError
from ._validate import integer, real


@dataclass
class SpikeDataset:
    """Time-major spikes ``x`` ``[steps, samples, channels]``, labels ``y`` ``[samples]`` and the number of classes."""

    x: Tensor
    y: Tensor
    classes: int

    def split(self, fraction: float, seed: int = 0) -> tuple[SpikeDataset, SpikeDataset]:
        """A seeded random split: the first part holds ``fraction`` of the samples."""
        order = torch.randperm(self.y.numel(), generator=torch.Generator().manual_seed(seed))
        cut = round(fraction * self.y.numel())
        a, b = order[:cut], order[cut:]
        return (SpikeDataset(self.x[:, a], self.y[a], self.classes),
                SpikeDataset(self.x[:, b], self.y[b], self.classes))


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    return integer(value, name, minimum=minimum, example=f"{name}={max(minimum, 2)}")


def _fraction(name: str, value: object, low: float = 0.0, high: float = 1.0) -> float:
    return real(value, name, minimum=low, maximum=high, example=f"{name}={(low + high) / 2:g}")


def _manifold(dim: int, channels: int, alpha: float, basis: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Random Fourier coefficients of one smooth map [0, 1]^dim -> [0, 1]^channels: per channel and latent
    dimension, ``basis`` sinusoids with frequencies 1..basis, amplitudes falling off as 1/k^alpha, random phases
    and random amplitude factors."""
    k = torch.arange(1, basis + 1, dtype=torch.float64)
    amplitude = torch.rand(channels, dim, basis, generator=g, dtype=torch.float64) / k ** alpha
    frequency = k * torch.rand(channels, dim, basis, generator=g, dtype=torch.float64)
    phase = torch.rand(channels, dim, basis, generator=g, dtype=torch.float64)
    return amplitude, frequency, phase


def _evaluate(coeffs: tuple[Tensor, Tensor, Tensor], points: Tensor) -> Tensor:
    amplitude, frequency, phase = coeffs
    # points [n, dim] -> per channel: product over latent dimensions of sums of sinusoids
    arg = 2 * math.pi * (points[:, None, :, None] * frequency[None] + phase[None])
    per_dim = (amplitude[None] * torch.sin(arg)).sum(-1)  # [n, channels, dim]
    return per_dim.prod(-1)


def randman(*, classes: int = 5, channels: int = 20, dim: int = 1, samples_per_class: int = 200, steps: int = 50,
            alpha: float = 2.0, basis: int = 3, jitter: float = 0.0, seed: int = 0) -> SpikeDataset:
    """Random-manifold spike-timing data (Zenke & Vogels 2021, "The remarkable robustness of surrogate gradient
    learning"). Each class is one smooth random manifold of intrinsic dimension ``dim`` embedded in
    ``channels`` dimensions (sums of ``basis`` sinusoids per dimension, spectrum falling off as ``1/k^alpha``:
    larger ``alpha`` gives smoother manifolds). A sample is a uniform random point on its class's manifold; its
    coordinates, rescaled to [0, 1] per channel over the whole dataset, become one spike per channel at step
    ``round(coordinate * (steps - 1))``, plus Gaussian ``jitter`` in steps.

    Difficulty rises with ``classes`` and ``dim`` and falls with ``channels`` and ``alpha``."""
    classes = _positive_int("classes", classes, 2)
    channels = _positive_int("channels", channels)
    dim = _positive_int("dim", dim)
    samples_per_class = _positive_int("samples_per_class", samples_per_class)
    steps = _positive_int("steps", steps, 2)
    basis = _positive_int("basis", basis)
    alpha = real(alpha, "alpha", minimum=0.0, example="alpha=2.0 (Zenke & Vogels')", where="randman")
    jitter = _fraction("jitter", jitter, 0.0, float(steps))
    g = torch.Generator().manual_seed(integer(seed, "seed", example="seed=0"))
    coords, labels = [], []
    for c in range(classes):
        coeffs = _manifold(dim, channels, float(alpha), basis, g)
        points = torch.rand(samples_per_class, dim, generator=g, dtype=torch.float64)
        coords.append(_evaluate(coeffs, points))
        labels.append(torch.full((samples_per_class,), c, dtype=torch.long))
    z = torch.cat(coords)
    z = (z - z.min(0).values) / (z.max(0).values - z.min(0).values).clamp_min(1e-12)
    times = z * (steps - 1)
    if jitter > 0:
        times = times + jitter * torch.randn(times.shape, generator=g, dtype=torch.float64)
    times = times.round().clamp(0, steps - 1).long()  # [n, channels]
    n = z.shape[0]
    x = torch.zeros(steps, n, channels)
    x[times, torch.arange(n)[:, None], torch.arange(channels)[None, :]] = 1.0
    return _shuffled(SpikeDataset(x, torch.cat(labels), classes), g)


def _shuffled(data: SpikeDataset, g: torch.Generator) -> SpikeDataset:
    order = torch.randperm(data.y.numel(), generator=g)
    return SpikeDataset(data.x[:, order].contiguous(), data.y[order].contiguous(), data.classes)


def delayed_cue(*, classes: int = 4, samples: int = 800, cue_steps: int = 5, delay: int = 50, go_steps: int = 5,
                channels_per_class: int = 4, noise_channels: int = 8, cue_rate: float = 0.5,
                noise_rate: float = 0.05, seed: int = 0) -> SpikeDataset:
    """Delayed cue recall. Steps ``[0, cue_steps)``: the cue channels of the sample's class fire with
    probability ``cue_rate``; then ``delay`` steps in which only background noise fires (every channel at
    ``noise_rate``); then ``go_steps`` in which a go channel fires every step. The label is the cue's class, so a
    network must carry it across the delay (read the output during the go window). Channels:
    ``classes * channels_per_class`` cue channels, ``noise_channels`` noise-only channels, one go channel."""
    classes = _positive_int("classes", classes, 2)
    samples = _positive_int("samples", samples)
    cue_steps = _positive_int("cue_steps", cue_steps)
    delay = _positive_int("delay", delay, 0)
    go_steps = _positive_int("go_steps", go_steps)
    channels_per_class = _positive_int("channels_per_class", channels_per_class)
    noise_channels = _positive_int("noise_channels", noise_channels, 0)
    cue_rate = _fraction("cue_rate", cue_rate)
    noise_rate = _fraction("noise_rate", noise_rate)
    g = torch.Generator().manual_seed(integer(seed, "seed", example="seed=0"))
    steps = cue_steps + delay + go_steps
    channels = classes * channels_per_class + noise_channels + 1
    y = torch.randint(0, classes, (samples,), generator=g)
    x = (torch.rand(steps, samples, channels, generator=g) < noise_rate).float()
    x[:, :, -1] = 0.0
    cue = torch.rand(cue_steps, samples, channels_per_class, generator=g) < cue_rate
    for c in range(classes):
        rows = (y == c).nonzero().flatten()
        sl = slice(c * channels_per_class, (c + 1) * channels_per_class)
        x[:cue_steps, rows, sl] = torch.maximum(x[:cue_steps, rows, sl], cue[:, rows].float())
    x[steps - go_steps:, :, -1] = 1.0
    return SpikeDataset(x, y, classes)


def spirals(*, classes: int = 3, samples_per_class: int = 300, turns: float = 1.25, noise: float = 0.06,
            channels_per_axis: int = 16, steps: int = 20, max_rate: float = 0.6, seed: int = 0) -> SpikeDataset:
    """Interleaved spirals (``classes`` arms of ``turns`` turns in the unit disc, Gaussian ``noise``), each
    coordinate population-coded by ``channels_per_axis`` Gaussian tuning curves, and the tuning values used as
    Poisson firing probabilities (up to ``max_rate`` per step) over ``steps`` steps."""
    classes = _positive_int("classes", classes, 2)
    samples_per_class = _positive_int("samples_per_class", samples_per_class)
    channels_per_axis = _positive_int("channels_per_axis", channels_per_axis, 2)
    steps = _positive_int("steps", steps)
    max_rate = _fraction("max_rate", max_rate)
    turns = real(turns, "turns", above=0.0, example="turns=1.25", where="spirals")
    noise = real(noise, "noise", minimum=0.0, example="noise=0.06", where="spirals")
    g = torch.Generator().manual_seed(integer(seed, "seed", example="seed=0"))
    points, labels = [], []
    for c in range(classes):
        r = torch.rand(samples_per_class, generator=g).sqrt()
        angle = 2 * math.pi * (turns * r + c / classes)
        xy = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1)
        points.append(xy + noise * torch.randn(xy.shape, generator=g))
        labels.append(torch.full((samples_per_class,), c, dtype=torch.long))
    p = torch.cat(points)
    centres = torch.linspace(-1.1, 1.1, channels_per_axis)
    width = 2.2 / (channels_per_axis - 1)
    tuning = torch.exp(-((p[:, :, None] - centres) / width) ** 2).flatten(1)  # [n, 2 * channels_per_axis]
    x = (torch.rand(steps, *tuning.shape, generator=g) < max_rate * tuning).float()
    return _shuffled(SpikeDataset(x, torch.cat(labels), classes), g)


def digits(*, steps: int = 20, coding: str = "latency", max_rate: float = 0.5, seed: int = 0) -> SpikeDataset:
    """scikit-learn's 8x8 handwritten digits (1797 samples, 10 classes, 64 channels; shipped with
    scikit-learn, nothing is downloaded). ``coding="latency"``: one spike per pixel, earlier for brighter pixels,
    none for blank ones; ``coding="rate"``: Poisson spikes with probability ``max_rate * intensity`` per step."""
    steps = _positive_int("steps", steps, 2)
    if coding not in ("latency", "rate"):
        raise ConfigError("unknown spike coding", got=coding, allowed="'latency' or 'rate'",
                          fix="pass coding='latency'")
    max_rate = _fraction("max_rate", max_rate)
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
        raise ConfigError("digits() needs scikit-learn", got="scikit-learn not installed",
                          allowed="scikit-learn >= 1.0",
                          fix="pip install scikit-learn") from exc
    data = load_digits()
    intensity = torch.tensor(data.data, dtype=torch.float32) / 16.0  # [n, 64]
    g = torch.Generator().manual_seed(integer(seed, "seed", example="seed=0"))
    if coding == "rate":
        x = (torch.rand(steps, *intensity.shape, generator=g) < max_rate * intensity).float()
    else:
        t = ((1.0 - intensity) * (steps - 1)).round().long()
        x = torch.zeros(steps, *intensity.shape)
        on = intensity > 0
        n_idx, c_idx = on.nonzero(as_tuple=True)
        x[t[n_idx, c_idx], n_idx, c_idx] = 1.0
    return _shuffled(SpikeDataset(x, torch.tensor(data.target, dtype=torch.long), 10), g)


def load_shd(path: str | Path, *, steps: int = 100, max_time: float = 1.0, channels: int = 700,
             limit: int | None = None) -> SpikeDataset:
    """Spiking Heidelberg Digits from one of its HDF5 files (``shd_train.h5`` / ``shd_test.h5``, layout
    ``spikes/times``, ``spikes/units`` (one ragged array per sample) and ``labels``), binned into ``steps``
    bins over ``[0, max_time)`` seconds. Needs ``h5py``; reads only what is on disk."""
    steps = _positive_int("steps", steps)
    channels = _positive_int("channels", channels)
    file = Path(path)
    if not file.is_file():
        raise ConfigError("no SHD file at this path", got=str(path), allowed="a path to shd_train.h5 or shd_test.h5",
                          fix="download SHD once (https://zenkelab.org/datasets) and pass the file's path")
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - exercised only without h5py
        raise ConfigError("load_shd needs h5py", got="h5py not installed", allowed="h5py",
                          fix="pip install h5py") from exc
    with h5py.File(file, "r") as f:
        times, units, labels = f["spikes"]["times"], f["spikes"]["units"], f["labels"]
        n = len(labels) if limit is None else min(limit, len(labels))
        x = torch.zeros(steps, n, channels)
        for i in range(n):
            t = torch.as_tensor(times[i][()], dtype=torch.float64)
            u = torch.as_tensor(units[i][()].astype("int64"))
            keep = (t >= 0) & (t < max_time) & (u >= 0) & (u < channels)
            b = (t[keep] / max_time * steps).long().clamp(max=steps - 1)
            x[b, i, u[keep]] = 1.0
        y = torch.as_tensor(labels[:n].astype("int64"))
    return SpikeDataset(x, y, int(y.max().item()) + 1 if n else 0)
