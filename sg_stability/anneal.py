"""Scheduled changes to a model during training, each undone exactly by ``remove()``.

- :class:`SharpnessAnnealing` -- the surrogates installed by ``sg.patch`` go from wide to sharp:
  ``beta = start * (end / start) ** s`` with ``s`` the schedule's value in [0, 1] (geometric, since sharpness is a
  scale).
- :class:`ThresholdAnnealing` -- every neuron's threshold goes from ``start`` times its own value to its own
  value: ``theta = theta_0 * (start + (1 - start) * s)``, through the adapters (snnTorch ``threshold``,
  SpikingJelly ``v_threshold``, Norse ``p.v_th``).
- :class:`NoiseInjection` -- Gaussian noise of standard deviation ``std * s`` added to every spiking layer's
  input current at every step, in training mode only.

Each is a schedule-driven object: call ``step()`` once per epoch (after the optimizer's epoch, like an
``lr_scheduler``); ``value`` is the current parameter; ``state_dict()``/``load_state_dict()`` checkpoint the
schedule. Remove them in the reverse order of creation (and before removing the patch they act on).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ._errors import ConfigError
from ._patching import neuron_sites
from ._transaction import Transaction
from ._validate import real
from .adapter_api import NeuronSite
from .schedules import Schedule, check_schedule
from .surrogates import RANGES, Surrogate

__all__ = ["NoiseInjection", "SharpnessAnnealing", "ThresholdAnnealing"]


def _positive(value: Any, name: str, where: str) -> float:
    return real(value, name, above=0.0, example=f"{name}=0.5", where=where)


class _Scheduled:
    def __init__(self, schedule: Schedule) -> None:
        self.schedule = check_schedule(schedule, type(self).__name__)
        self.removed = False

    def _apply(self) -> None:
        raise NotImplementedError  # pragma: no cover

    @property
    def value(self) -> float:
        raise NotImplementedError  # pragma: no cover

    def step(self) -> float:
        if self.removed:
            raise ConfigError(f"{type(self).__name__} was removed", got="step() after remove()",
                              allowed="step() while attached", fix="create a new one")
        saved = self.schedule.state_dict()
        try:
            self.schedule.step()
            self._apply()
        except BaseException:  # the schedule and the model stay at the previous epoch
            self.schedule.load_state_dict(saved)
            self._apply()
            raise
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "schedule" not in state:
            raise ConfigError(f"{type(self).__name__}.load_state_dict needs the dict state_dict() returned",
                              got=state, allowed="{'schedule': {...}}", fix="pass what state_dict() saved")
        saved = self.schedule.state_dict()
        try:
            self.schedule.load_state_dict(state["schedule"])
            self._apply()
        except BaseException:
            self.schedule.load_state_dict(saved)
            self._apply()
            raise

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        raise NotImplementedError  # pragma: no cover


class SharpnessAnnealing(_Scheduled):
    """Anneal the sharpness of every surrogate ``sg.patch`` installed in ``model`` from ``start`` to ``end``."""

    def __init__(self, model: nn.Module, start: float, end: float, schedule: Schedule) -> None:
        super().__init__(schedule)
        lo, hi = RANGES["sharpness"]
        self.start, self.end = (real(v, name, minimum=lo, maximum=hi, example=f"{name}=1.0",
                                     where="SharpnessAnnealing") for v, name in ((start, "start"), (end, "end")))
        self._targets: list[tuple[Surrogate, float]] = []
        foreign = []
        for site in neuron_sites(model, "anneal.SharpnessAnnealing"):
            for obj in site.driver.current().values():
                if isinstance(obj, Surrogate):
                    if isinstance(obj.sharpness, Tensor):
                        raise ConfigError("cannot anneal a tensor (per-neuron or learnable) sharpness",
                                          got=f"{site.path}: sharpness of shape {tuple(obj.sharpness.shape)}",
                                          allowed="a float sharpness", fix="patch with a float sharpness")
                    self._targets.append((obj, float(obj.sharpness)))
                else:
                    foreign.append(site.path)
        if foreign or not self._targets:
            raise ConfigError("sharpness annealing needs the surrogates sg.patch installs",
                              got=f"framework surrogates at {foreign or 'every site'}",
                              allowed="a model patched with sg.patch(..., builtin=False)",
                              fix="h = sg.patch(model, 'fast_sigmoid', builtin=False) first (builtin=False: "
                                  "SpikingJelly's own fused classes have no sharpness to change)")
        self._apply()

    @property
    def value(self) -> float:
        s = min(max(self.schedule.value, 0.0), 1.0)  # geometric between start and end, never outside them
        return min(max(math.exp(math.log(self.start) + s * math.log(self.end / self.start)),
                       min(self.start, self.end)), max(self.start, self.end))

    def _apply(self) -> None:
        for surrogate, _ in self._targets:
            surrogate.sharpness = self.value

    def remove(self) -> None:
        if not self.removed:
            for surrogate, original in self._targets:
                surrogate.sharpness = original
            self.removed = True


class ThresholdAnnealing(_Scheduled):
    """Anneal every neuron's threshold from ``start`` times its own value up to its own value."""

    def __init__(self, model: nn.Module, start: float, schedule: Schedule) -> None:
        super().__init__(schedule)
        self.start = _positive(start, "start", "ThresholdAnnealing")
        self._sites: list[tuple[NeuronSite, float | Tensor]] = []
        missing = []
        for site in neuron_sites(model, "anneal.ThresholdAnnealing"):
            theta = site.driver.threshold()
            if theta is None:
                missing.append(site.path)
            else:
                self._sites.append((site, theta.detach().clone() if isinstance(theta, Tensor) else theta))
        if missing:
            raise ConfigError("these neurons do not expose a threshold through their adapter", got=missing,
                              allowed="snnTorch, SpikingJelly and Norse LIF-family neurons",
                              fix="leave them out of the model you pass, or anneal them by hand")
        self._tx = Transaction()
        with self._tx:  # a failure at any site puts every threshold back
            for site, theta in self._sites:
                site.driver.set_threshold(theta * self.factor, self._tx)  # records the original objects

    @property
    def factor(self) -> float:
        return self.start + (1.0 - self.start) * self.schedule.value

    @property
    def value(self) -> float:
        return self.factor

    def _apply(self) -> None:
        scratch = Transaction()  # the originals stay recorded in self._tx
        for site, theta in self._sites:
            site.driver.set_threshold(theta * self.factor, scratch)

    def remove(self) -> None:
        if not self.removed:
            self._tx.rollback()
            self.removed = True


class NoiseInjection(_Scheduled):
    """Add ``N(0, (std * s)^2)`` to every spiking layer's input current at every step, in training mode."""

    def __init__(self, model: nn.Module, std: float, schedule: Schedule) -> None:
        super().__init__(schedule)
        self.std = _positive(std, "std", "NoiseInjection")
        sites = neuron_sites(model, "anneal.NoiseInjection")
        self._hooks = [site.module.register_forward_pre_hook(self._hook) for site in sites]

    @property
    def value(self) -> float:
        return self.std * self.schedule.value

    def _apply(self) -> None:
        pass  # the hook reads the current value

    def _hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not module.training or not args or not isinstance(args[0], Tensor) or self.value == 0.0:
            return None
        x = args[0]
        return (x + torch.randn_like(x) * self.value, *args[1:])

    def remove(self) -> None:
        if not self.removed:
            for h in self._hooks:
                h.remove()
            self.removed = True
