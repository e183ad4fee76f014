"""Checks of the sample an analysis runs on, and of what the recorded run consumed: values that would make every
statistic meaningless (NaN, inf, meta tensors, empty samples, NaN in the weights), the time layout (``time_dim``),
and a neuron module used at two places of the model (its two positions cannot be told apart)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError, LayoutWarning, raw
from .._validate import integer
from .records import Run


class TimeFirst:
    """A ``run`` that first moves dimension ``time_dim`` of a tensor sample (or batch) to the front: the model (or
    the given ``run``) then sees it time-first, as time-major SNN code expects."""

    def __init__(self, run: Run | None, time_dim: int) -> None:
        self.run, self.time_dim = run, time_dim

    def __call__(self, model: nn.Module, x: Any) -> Any:
        if not isinstance(x, Tensor):
            raise _time_dim_needs_a_tensor(x)
        x = x.movedim(self.time_dim, 0)
        return self.run(model, x) if self.run is not None else model(x)


def _time_dim_needs_a_tensor(sample: Any) -> ConfigError:
    return ConfigError("time_dim moves the time dimension of a tensor sample; this sample is not a tensor, and "
                       "which of its parts has time is not known", got=raw(type(sample).__name__),
                       allowed="time_dim with a tensor sample; a tuple or dict sample without time_dim",
                       fix="move the time dimension first yourself, or pass run=lambda model, s: model(...) that "
                       "feeds the model in its own layout")


def with_time_dim(run: Run | None, time_dim: Any) -> Run | None:
    """``run`` with the sample moved time-first when ``time_dim`` is given (``None``: the sample is used as it is)."""
    if time_dim is None:
        return run
    return TimeFirst(run, integer(time_dim, "time_dim", minimum=0, example="time_dim=1 for a [batch, time, ...] "
                                  "sample"))


def _tensors(sample: Any) -> Iterator[Tensor]:
    if isinstance(sample, Tensor):
        yield sample
    elif isinstance(sample, (list, tuple)):
        for item in sample:
            yield from _tensors(item)
    elif isinstance(sample, dict):
        for item in sample.values():
            yield from _tensors(item)


def check_sample(sample: Any, run: Run | None) -> None:
    """A four-part error for a sample whose values cannot be analysed (before anything runs)."""
    for t in _tensors(sample):
        if t.is_meta:
            raise ConfigError("the sample is a tensor on the meta device, which holds no values to run",
                              got=raw(f"meta tensor of shape {tuple(t.shape)}"),
                              allowed="a sample with values, on the model's device",
                              fix="pass a real batch of inputs (e.g. one batch of your training data)")
        if t.numel() == 0:
            raise ConfigError("the sample is empty", got=raw(f"tensor of shape {tuple(t.shape)}"),
                              allowed="a sample with at least one time step and one example",
                              fix="pass a real batch, e.g. [time, batch, features] with time and batch >= 1")
        if t.is_floating_point() or t.is_complex():
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                kind = "NaN" if bool(torch.isnan(t).any()) else "inf"
                raise ConfigError(f"the sample contains {bad} non-finite value(s) of {t.numel()} ({kind}): every "
                                  "statistic of the analysis would be meaningless",
                                  got=raw(f"tensor of shape {tuple(t.shape)} with {kind}"),
                                  allowed="a sample of finite values",
                                  fix="clean the batch first (e.g. torch.nan_to_num(x)) or pick another batch")
    if isinstance(run, TimeFirst) and not isinstance(sample, Tensor):
        raise _time_dim_needs_a_tensor(sample)
    if isinstance(run, TimeFirst) and isinstance(sample, Tensor) and run.time_dim >= sample.dim():
        raise ConfigError("time_dim is not a dimension of the sample", got=run.time_dim,
                          allowed=f"0 <= time_dim < {sample.dim()} for a sample of shape {tuple(sample.shape)}",
                          fix="pass the index of the time dimension, e.g. time_dim=1 for [batch, time, ...]")


def check_layout(sample: Any, run: Run | None, steps: int) -> None:
    """After the first recorded run: the steps the model took against the sample's time dimension."""
    if not isinstance(sample, Tensor) or sample.dim() < 2 or steps < 2:
        return
    if isinstance(run, TimeFirst):
        size = sample.shape[run.time_dim]
        if size != steps:
            raise ConfigError(f"the model ran {steps} time steps, but dimension {run.time_dim} of the sample "
                              f"(time_dim) has size {size}",
                              got=raw(f"sample of shape {tuple(sample.shape)}, time_dim={run.time_dim}"),
                              allowed=f"time_dim naming the dimension of size {steps}",
                              fix="pass the time dimension of your sample as time_dim (0 for [time, batch, ...], 1 "
                                  "for [batch, time, ...])")
        return
    if sample.shape[0] != steps or sample.shape[1] < 2 or sample.dim() < 3 or not sample.is_floating_point():
        return
    x = sample.detach().double()
    along_time = (x[1:] - x[:-1]).abs().mean()
    along_batch = (x[:, 1:] - x[:, :-1]).abs().mean()
    if float(along_batch) < 0.5 * float(along_time):
        warnings.warn(
            f"sg_stability: the model ran {steps} steps over dimension 0 of the sample {tuple(sample.shape)}, but "
            "the sample changes much less along dimension 1 than along dimension 0, as a batch-major [batch, time, "
            "...] sample does. If it is batch-major, pass time_dim=1 (the analysis then runs it time-first); pass "
            "time_dim=0 to confirm the layout and silence this warning", LayoutWarning, stacklevel=4)


def check_shared_neurons(model: nn.Module, calls: dict[nn.Module, int], sample: Any, run: Run | None) -> None:
    """A neuron module registered at several places and called more often than the others runs its state through
    all of them each step: the analysis would read it as one layer with several times the steps."""
    paths: dict[int, list[str]] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        if module in calls:
            paths.setdefault(id(module), []).append(path)
    for module, n in calls.items():
        where = paths.get(id(module), [])
        if len(where) < 2:
            continue
        others = [m for k, m in calls.items() if k is not module]
        steps = max(others) if others else (sample.shape[0] if isinstance(sample, Tensor) and sample.dim() else 0)
        if isinstance(run, TimeFirst) and isinstance(sample, Tensor) and not others:
            steps = sample.shape[run.time_dim]
        if steps and n >= 2 * steps:
            raise ConfigError(
                f"one neuron module is used at {len(where)} places ({', '.join(where)}) and ran {n} times where the "
                f"model takes {steps} steps: the analysis cannot tell its positions apart (and they share one state)",
                got=raw(f"{type(module).__name__} at {', '.join(where)}"),
                allowed="one neuron module per position in the model",
                fix="give each position its own neuron, e.g. copy.deepcopy(lif) for the second use")


def check_parameters(model: nn.Module) -> None:
    """A four-part error for NaN or inf in the model's parameters (every statistic would be garbage)."""
    for name, p in model.named_parameters():
        if p.is_meta or not (p.is_floating_point() or p.is_complex()):
            continue
        # the sum is finite when every entry is (NaN and inf propagate); only a sum that is not (a NaN, or an
        # overflow of finite values) needs the element-wise check: one reduction instead of a bool copy per call
        if not bool(torch.isfinite(p.detach().sum())) and not bool(torch.isfinite(p).all()):
            bad = int((~torch.isfinite(p)).sum())
            raise ConfigError(f"the model's parameter {name!r} holds {bad} NaN/inf value(s) of {p.numel()}",
                              got=raw(f"{name} of shape {tuple(p.shape)}"),
                              allowed="a model with finite parameters",
                              fix="re-initialise or reload the weights (a diverged training step leaves NaN behind)")
