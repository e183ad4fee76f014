"""Firing-rate collection and sparsity losses for any model the adapters understand.

``monitor = sg.sparsity.RateMonitor(model)`` hooks the output of every spiking layer (snnTorch, SpikingJelly,
Norse, mixed) and keeps running spike sums per layer (and per neuron) as differentiable tensors. Nothing is
stored per time step: the sums are accumulated in place of the graph, so the memory does not grow with the
sequence length beyond what the model itself keeps. ``monitor.remove()`` (or leaving its ``with`` block)
removes the hooks, which is all it added.

``loss = SparsityLoss("squared", target=0.01, schedule=LinearRamp(epochs))`` turns the rates into the paper's
``sum_layers (mean rate - f)^2`` times the schedule's current value; ``"l1"``, ``"upper"``, ``"lower"`` and
``"band"`` (stork-style bounds) are the other kinds, per layer or per neuron, with per-layer targets.
"""

from __future__ import annotations

import fnmatch
import math
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Self

import torch
from torch import Tensor, nn

from ._errors import ConfigError
from ._patching import neuron_sites
from ._validate import flag, glob_patterns, option, real
from .adapter_api import NeuronSite
from .schedules import Constant, HardSwitch, Schedule, check_schedule

__all__ = ["KINDS", "FiringRateControl", "RateMonitor", "SparsityLoss"]

_ATTACHED: weakref.WeakKeyDictionary[nn.Module, RateMonitor] = weakref.WeakKeyDictionary()


class RateMonitor:
    """Running spike counts of every spiking layer of ``model``, differentiable, reset with :meth:`reset`.

    ``layers`` restricts the layers (glob patterns on module paths). ``sync=True`` sums the counts over the
    processes of a ``torch.distributed`` run (differentiably) before rates are formed, so a loss on the rates
    is the loss on the global batch.
    """

    def __init__(self, model: nn.Module, *, layers: str | list[str] | None = None, sync: bool = False) -> None:
        sites = neuron_sites(model, "sparsity.RateMonitor")
        if model in _ATTACHED:
            raise ConfigError("a RateMonitor is already attached to this model", got=type(model).__name__,
                              allowed="one RateMonitor per model at a time",
                              fix="reuse the existing monitor, or call its remove() first")
        flag(sync, "sync", where="RateMonitor")
        if layers is not None:
            patterns = glob_patterns(layers, "layers", where="RateMonitor",
                                     allowed=f"a glob string or a list of them, over {[s.path for s in sites]}",
                                     fix="e.g. layers='lif*', or leave layers=None for every spiking layer")
            chosen = [s for s in sites if any(fnmatch.fnmatchcase(s.path, p) for p in patterns)]
            if not chosen:
                raise ConfigError("layers matched no spiking layer", got=layers,
                                  allowed=f"glob patterns over {[s.path for s in sites]}",
                                  fix="fix the patterns, or leave layers=None for all")
            sites = chosen
        self.model = model
        self.sites: list[NeuronSite] = sites
        self.sync = sync
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}
        self._hooks = [s.module.register_forward_hook(self._hook(s)) for s in sites]
        _ATTACHED[model] = self

    def _hook(self, site: NeuronSite) -> Callable[..., None]:
        driver, path = site.driver, site.path

        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            spikes = driver.spikes(out)
            if spikes is None or spikes.dim() == 0:
                return
            lead = driver.call_pattern().leading_dims(spikes)
            total = spikes.sum(tuple(range(lead)))
            previous = self._sums.get(path)
            self._sums[path] = total if previous is None else previous + total
            self._counts[path] = self._counts.get(path, 0) + math.prod(spikes.shape[:lead])

        return hook

    # -- reading ---------------------------------------------------------------------------------------------
    def _global(self, path: str) -> tuple[Tensor, float]:
        total, count = self._sums[path], float(self._counts[path])
        if self.sync and torch.distributed.is_available() and torch.distributed.is_initialized():
            import torch.distributed.nn.functional as dist_fn

            total = dist_fn.all_reduce(total)
            n = torch.tensor([count], dtype=torch.float64, device=total.device)
            torch.distributed.all_reduce(n)
            count = float(n.item())
        return total, count

    def rates(self, per_neuron: bool = False) -> dict[str, Tensor]:
        """Firing rate (spikes per neuron per step) since the last :meth:`reset`: a scalar per layer, or a tensor
        of the neuron shape with ``per_neuron=True``. Differentiable through the surrogate."""
        if not self._sums:
            raise ConfigError("no spikes were recorded since the last reset", got="an empty window",
                              allowed="rates() after running the model", fix="run a forward pass first")
        out = {}
        for path in self._sums:
            total, count = self._global(path)
            per = total / count
            out[path] = per if per_neuron else per.mean()
        return out

    def mean_rate(self) -> Tensor:
        """The mean of the per-layer rates."""
        return torch.stack(list(self.rates().values())).mean()

    def reset(self) -> None:
        """Start a new window (call at the start of every batch)."""
        self._sums.clear()
        self._counts.clear()

    # -- lifetime ----------------------------------------------------------------------------------------------
    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self.reset()
        if _ATTACHED.get(self.model) is self:
            del _ATTACHED[self.model]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _penalty(kind: str, rate: Tensor, target: float, lower: float) -> Tensor:
    if kind == "squared":
        return (rate - target).square()
    if kind == "l1":
        return (rate - target).abs()
    if kind == "upper":
        return torch.relu(rate - target).square()
    if kind == "lower":
        return torch.relu(target - rate).square()
    return torch.relu(rate - target).square() + torch.relu(lower - rate).square()  # band


KINDS = ("squared", "l1", "upper", "lower", "band")


def _rate_value(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a firing rate in [0, 1] (spikes per neuron per step)", got=value,
                          allowed="0 <= rate <= 1", fix=f"e.g. {name}=0.01 for 1 % of the steps")
    return float(value)


class SparsityLoss:
    """``weight * schedule.value * sum_layers mean_units penalty(rate, target)``.

    ``kind``: ``"squared"`` ``(r - f)^2`` (the paper's), ``"l1"`` ``|r - f|`` (f = 0: the plain L1 rate),
    ``"upper"`` ``relu(r - f)^2`` and ``"lower"`` ``relu(f - r)^2`` (stork's bounds), ``"band"`` both, with
    ``lower`` the lower bound and ``target`` the upper. ``target`` is one rate or ``{glob: rate}`` per layer
    (first match wins; ``"*"`` for the rest). ``per_neuron`` applies the penalty to every neuron's rate.
    ``schedule`` (default constant 1) scales it over epochs; ``step()``/``state_dict()`` forward to it.
    """

    def __init__(self, kind: str = "squared", target: float | Mapping[str, float] = 0.01, *, lower: float = 0.0,
                 per_neuron: bool = False, weight: float = 1.0, schedule: Schedule | None = None) -> None:
        option(kind, "sparsity loss kind", KINDS, example='kind="squared" (the paper)', where="SparsityLoss")
        if schedule is not None:
            check_schedule(schedule, "SparsityLoss")
        if isinstance(target, Mapping):
            self.targets = {str(k): _rate_value(v, f"target[{k!r}]") for k, v in target.items()}
        else:
            self.targets = {"*": _rate_value(target, "target")}
        self.kind, self.lower = kind, _rate_value(lower, "lower")
        if kind == "band" and any(t < self.lower for t in self.targets.values()):
            raise ConfigError("a band needs lower <= target (the upper bound)", got=(self.lower, self.targets),
                              allowed="lower <= target", fix="swap the bounds")
        self.per_neuron = flag(per_neuron, "per_neuron", where="SparsityLoss")
        self.weight = real(weight, "weight", minimum=0.0, example="weight=1.0", where="SparsityLoss")
        self.schedule = schedule if schedule is not None else Constant(1.0)

    def target_for(self, path: str) -> float:
        for pattern, rate in self.targets.items():
            if fnmatch.fnmatchcase(path, pattern):
                return rate
        raise ConfigError(f"no sparsity target matches layer {path!r}", got=sorted(self.targets),
                          allowed="a glob that matches every monitored layer", fix='add a "*" entry for the rest')

    def penalty(self, monitor: RateMonitor) -> Tensor:
        """The unweighted, unscheduled penalty."""
        rates = monitor.rates(per_neuron=self.per_neuron)
        terms = [_penalty(self.kind, r, self.target_for(p), self.lower).mean() for p, r in rates.items()]
        return torch.stack(terms).sum()

    def __call__(self, monitor: RateMonitor) -> Tensor:
        scale = self.weight * self.schedule.value
        return self.penalty(monitor) * scale

    @property
    def value(self) -> float:
        """The current weight (``weight * schedule.value``)."""
        return self.weight * self.schedule.value

    def step(self) -> float:
        self.schedule.step()
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state["schedule"])

    def for_snntorch_bptt(self, monitor: RateMonitor) -> Callable[[Any], Tensor]:
        """A regularizer for ``snntorch.backprop.BPTT(..., regularization=...)``: snnTorch accepts only a function
        named ``l1_rate_sparsity`` and calls it with the output spikes; this one ignores them, returns this loss
        on ``monitor`` (every layer, with the schedule) and starts a new window."""

        def l1_rate_sparsity(_spikes: Any) -> Tensor:
            value = self(monitor)
            monitor.reset()
            return value

        return l1_rate_sparsity


class FiringRateControl(SparsityLoss):
    """DECOLLE-style firing-rate control (paper.md 4.2): ``strength * |r - rate_from|`` while the epoch is below
    ``switch_epoch``, then ``strength * |r - rate_to|`` (or nothing when ``rate_to`` is None)."""

    def __init__(self, rate_from: float, *, strength: float = 100.0, switch_epoch: int = 1,
                 rate_to: float | None = None, per_neuron: bool = False) -> None:
        strength = real(strength, "strength", minimum=0.0, example="strength=100.0", where="FiringRateControl")
        super().__init__("l1", rate_from, per_neuron=per_neuron, weight=strength,
                         schedule=HardSwitch(switch_epoch, before=1.0, after=0.0))
        self.rate_to = _rate_value(rate_to, "rate_to") if rate_to is not None else None

    def __call__(self, monitor: RateMonitor) -> Tensor:
        first = self.penalty(monitor) * self.weight * self.schedule.value
        if self.rate_to is None or self.schedule.value == 1.0:
            return first
        rates = monitor.rates(per_neuron=self.per_neuron)
        second = torch.stack([(r - self.rate_to).abs().mean() for r in rates.values()]).sum()
        return first + self.weight * second
