"""Schedules for sparsity weights, annealing and noise, shaped like ``torch.optim.lr_scheduler``.

Every schedule has ``step()`` (advance one epoch, or whatever unit you call it with), ``value`` (the current
value), ``last_epoch``, ``state_dict()`` and ``load_state_dict()`` (checkpoint and resume). Values are a pure
function of ``last_epoch``, so every process of a distributed run that steps the same number of times holds
the same value.

- :class:`LinearRamp` -- the paper's "introduced gradually" (paper.md 4.1): 0 until E/5, linear to 1 at 3E/5.
- :class:`ExponentialApproach` -- the reference code's ``ea``: ``s <- 1 - r (1 - s)`` each epoch inside a window.
- :class:`HardSwitch` -- one value before an epoch, another from it on (the code's ``ha`` switches at E/2).
- :class:`Constant` -- a fixed value (the fixed-weight baseline).
- :class:`FiringRateControl` (in :mod:`sg_stability.sparsity`) -- DECOLLE-style control, built on HardSwitch.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from ._errors import ConfigError
from ._validate import integer, option, real

__all__ = ["Constant", "ExponentialApproach", "HardSwitch", "LinearRamp", "Schedule", "get_schedule"]


def _epochs(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer number of epochs", got=value, allowed="1, 2, ...",
                          fix=f"pass the planned number of epochs as {name}")
    return value


def _fraction(value: Any, name: str) -> float:
    return real(value, name, minimum=0.0, maximum=1.0, example=f"{name}=0.2 (a fifth of the planned epochs)")


class Schedule:
    """Base class: subclasses implement :meth:`value_at`. ``total_epochs`` (if set) bounds ``step()``."""

    total_epochs: int | None = None

    def __init__(self) -> None:
        self.last_epoch = 0

    def value_at(self, epoch: int) -> float:
        raise NotImplementedError  # pragma: no cover

    @property
    def value(self) -> float:
        return self.value_at(self.last_epoch)

    def step(self) -> float:
        """Advance one epoch and return the new value."""
        if self.total_epochs is not None and self.last_epoch >= self.total_epochs:
            raise ConfigError(f"{type(self).__name__} stepped past its last epoch",
                              got=f"step {self.last_epoch + 1} of {self.total_epochs}",
                              allowed=f"at most total_epochs = {self.total_epochs} steps",
                              fix="build the schedule with the number of epochs you train for, or stop stepping it")
        self.last_epoch += 1
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint; every value is checked first (a wrong one changes nothing)."""
        own = self.state_dict()
        if not isinstance(state, dict):
            raise ConfigError(f"{type(self).__name__}.load_state_dict needs a dict", got=state,
                              allowed=f"a dict with keys {sorted(own)}", fix="pass schedule.state_dict() as saved")
        unknown = set(state) - set(own)
        if unknown:
            raise ConfigError(f"state_dict has keys {type(self).__name__} does not know", got=sorted(unknown),
                              allowed=f"keys {sorted(own)}",
                              fix="load the state_dict of the same schedule class")
        checked: dict[str, Any] = {}
        for key, value in state.items():
            where = f"{type(self).__name__}.load_state_dict"
            if key == "last_epoch":
                checked[key] = integer(value, "last_epoch", minimum=0, maximum=self.total_epochs, where=where)
            elif isinstance(own[key], bool) or not isinstance(own[key], int | float):
                checked[key] = value
            elif isinstance(own[key], int):
                checked[key] = integer(value, key, minimum=0, where=where)
            else:
                checked[key] = real(value, key, where=where)
        self.__dict__.update(checked)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.state_dict().items() if k != "last_epoch")
        return f"{type(self).__name__}({params}; epoch {self.last_epoch}, value {self.value:.4g})"


class Constant(Schedule):
    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.constant = real(value, "value", example="Constant(1.0)", where="Constant")

    def value_at(self, epoch: int) -> float:
        return self.constant


class LinearRamp(Schedule):
    """``low`` until ``start * E``, then linear to ``high`` at ``end * E``, then ``high`` (defaults: the paper's
    0 until E/5, 1 at 3E/5)."""

    def __init__(self, total_epochs: int, start: float = 0.2, end: float = 0.6, low: float = 0.0,
                 high: float = 1.0) -> None:
        super().__init__()
        self.total_epochs: int = _epochs(total_epochs, "total_epochs")
        self.start, self.end = _fraction(start, "start"), _fraction(end, "end")
        if self.end <= self.start:
            raise ConfigError("the ramp must end after it starts", got=(start, end), allowed="start < end",
                              fix="e.g. start=0.2, end=0.6 (the paper's ramp)")
        self.low = real(low, "low", example="low=0.0", where="LinearRamp")
        self.high = real(high, "high", example="high=1.0", where="LinearRamp")

    def value_at(self, epoch: int) -> float:
        e0, e1 = self.start * self.total_epochs, self.end * self.total_epochs
        if epoch < e0:
            return self.low
        if epoch >= e1:
            return self.high
        return self.low + (self.high - self.low) * (epoch - e0) / (e1 - e0)


class ExponentialApproach(Schedule):
    """0 until ``start * E``; then ``s <- 1 - ratio (1 - s)`` per epoch, i.e. ``1 - ratio^k`` after k epochs;
    1 from ``end * E`` on (defaults: the reference code's E/5, 3E/4 and 0.6), scaled to ``[low, high]``."""

    def __init__(self, total_epochs: int, start: float = 0.2, end: float = 0.75, ratio: float = 0.6,
                 low: float = 0.0, high: float = 1.0) -> None:
        super().__init__()
        self.total_epochs: int = _epochs(total_epochs, "total_epochs")
        self.start, self.end = _fraction(start, "start"), _fraction(end, "end")
        self.ratio = real(ratio, "ratio", above=0.0, below=1.0, example="ratio=0.6 (the reference code)",
                          where="ExponentialApproach")
        self.low = real(low, "low", example="low=0.0", where="ExponentialApproach")
        self.high = real(high, "high", example="high=1.0", where="ExponentialApproach")

    def value_at(self, epoch: int) -> float:
        e0, e1 = math.ceil(self.start * self.total_epochs), self.end * self.total_epochs
        if epoch < e0:
            s = 0.0
        elif epoch >= e1:
            s = 1.0
        else:
            s = 1.0 - self.ratio ** (epoch - e0 + 1)
        return self.low + (self.high - self.low) * s


class HardSwitch(Schedule):
    """``before`` for epochs < ``switch_epoch``, ``after`` from it on."""

    def __init__(self, switch_epoch: int, before: float = 0.0, after: float = 1.0) -> None:
        super().__init__()
        if isinstance(switch_epoch, bool) or not isinstance(switch_epoch, int) or switch_epoch < 0:
            raise ConfigError("switch_epoch must be a non-negative integer", got=switch_epoch, allowed="0, 1, ...",
                              fix="pass the epoch at which the value changes")
        self.switch_epoch = switch_epoch
        self.before = real(before, "before", example="before=0.0", where="HardSwitch")
        self.after = real(after, "after", example="after=1.0", where="HardSwitch")

    def value_at(self, epoch: int) -> float:
        return self.before if epoch < self.switch_epoch else self.after


_NAMES = {"linear": LinearRamp, "exponential": ExponentialApproach, "switch": HardSwitch, "constant": Constant}


def check_schedule(schedule: Any, where: str) -> Schedule:
    """``schedule`` if it is a :class:`Schedule`, else a four-part error (a name is not a schedule)."""
    if not isinstance(schedule, Schedule):
        raise ConfigError(f"{where}: schedule must be an sg_stability.schedules.Schedule", got=schedule,
                          allowed="LinearRamp, ExponentialApproach, HardSwitch, Constant (or a subclass)",
                          fix="e.g. schedule=sg.schedules.LinearRamp(total_epochs=50), or "
                              'sg.schedules.get_schedule("linear", total_epochs=50)')
    return schedule


def get_schedule(name: str, **kwargs: Any) -> Schedule:
    """A schedule by name: ``"linear"``, ``"exponential"``, ``"switch"`` or ``"constant"``."""
    option(name, "schedule", sorted(_NAMES), example='get_schedule("linear", total_epochs=50) for the paper\'s ramp',
           where="get_schedule")
    cls = _NAMES[name]
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        params = [f"{p.name}" + ("" if p.default is inspect.Parameter.empty else f"={p.default!r}")
                  for p in inspect.signature(cls).parameters.values()]
        raise ConfigError(f"get_schedule({name!r}): {exc}", got=kwargs, allowed=f"{cls.__name__}({', '.join(params)})",
                          fix=f"e.g. get_schedule({name!r}, {params[0].split('=')[0]}=...)") from None
    return cls(**kwargs)
