"""Parameters of the canonical surrogates: the Heaviside conventions, validation and formatting."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .._errors import ConfigError, raw

Param = float | Tensor


class Heaviside(NamedTuple):
    """The forward step convention of a framework.

    ``inclusive``: fire at exactly zero (``v >= 0``, SpikingJelly) or not (``v > 0``, snnTorch, Norse).
    ``float32``: always return float32 spikes (snnTorch's ``.float()``) instead of the input's dtype.
    """

    inclusive: bool = False
    float32: bool = False

    def __call__(self, x: Tensor) -> Tensor:
        spikes = (x >= 0) if self.inclusive else (x > 0)
        return spikes.to(torch.float32 if self.float32 else x.dtype)


STRICT = Heaviside(inclusive=False, float32=False)


@dataclass(frozen=True)
class SurrogateDescription:
    """Peak, half width at half maximum and area of sigma'(v) = gamma * f(beta * v), in units of v."""

    family: str
    peak: Param
    hwhm: Param
    area: Param
    tail: float | None = None

    def __str__(self) -> str:
        def fmt(v: Param) -> str:
            if isinstance(v, Tensor):
                return f"tensor{tuple(v.shape)}" if v.numel() > 1 else f"{v.item():.4g}"
            return f"{v:.4g}"

        tail = f", tail={self.tail:.4g}" if self.tail is not None else ""
        return f"{self.family}: peak={fmt(self.peak)}, hwhm={fmt(self.hwhm)}, area={fmt(self.area)}{tail}"


def format_param(value: Param) -> str:
    if isinstance(value, nn.Parameter):
        return f"Parameter{tuple(value.shape)}" if value.numel() > 1 else f"Parameter({value.item():.4g})"
    if isinstance(value, Tensor):
        return f"tensor{tuple(value.shape)}" if value.numel() > 1 else f"tensor({value.item():.4g})"
    return f"{value:g}"


#: accepted values of the canonical parameters (closed intervals; tail: lower bound excluded). Inside them the
#: backward of every family is computed without overflow in float16, bfloat16, float32 and float64 (a result is
#: inf only where the exact value exceeds the dtype), and learnable parameters' gradients fit in float32.
RANGES = {"dampening": (1e-8, 1e4), "sharpness": (1e-8, 1e8), "tail": (1.0, 1e6)}

ALLOWED = {
    "dampening": "a finite float in [1e-8, 1e4], or a floating-point tensor (or nn.Parameter) of such values "
    "broadcastable to the neuron's state",
    "sharpness": "a finite float in [1e-8, 1e8], or a floating-point tensor (or nn.Parameter) of such values "
    "broadcastable to the neuron's state",
    "tail": "a float q with 1 < q <= 1e6 (q = 2 is fast_sigmoid; q -> inf approaches exponential)",
}

_HINT = {"dampening": "dampening is the peak height of sigma'", "sharpness": "sharpness is the inverse width of sigma'"}


def _in_range(name: str, v: float) -> bool:
    lo, hi = RANGES[name]
    return (lo < v <= hi) if name == "tail" else (lo <= v <= hi)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range
        return math.inf if value > 0 else -math.inf


def validated(family: str, name: str, value: Any) -> Param:
    """``value`` as a canonical parameter ``name`` of ``family``, or a four-part error."""
    symbol = {"dampening": "gamma", "sharpness": "beta", "tail": "q"}[name]
    lo, hi = RANGES[name]
    if name == "tail":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(
                f"{family}: tail must be a Python number",
                got=value,
                allowed=ALLOWED[name],
                fix="pass tail=1.5 (a float); per-neuron tails are not supported",
            )
        q = _as_float(value)
        if not (math.isfinite(q) and _in_range(name, q)):
            raise ConfigError(
                f"{family}: tail q must be finite, greater than 1 (the shape is not integrable for q <= 1) and at "
                f"most {hi:g}",
                got=value,
                allowed=ALLOWED[name],
                fix="use e.g. tail=1.56 (the paper's default) or tail=2.0; for q -> inf use 'exponential'",
            )
        return q
    if isinstance(value, Tensor):
        if value.is_meta:
            raise ConfigError(
                f"{family}: {name} ({symbol}) is a tensor on the meta device, which holds no values to check or use",
                got=raw(f"meta tensor of shape {tuple(value.shape)}"),
                allowed=ALLOWED[name],
                fix="pass a float, or a tensor with values (materialize the model with to_empty() and initialize "
                "it before patching)",
            )
        if not value.is_floating_point():
            raise ConfigError(
                f"{family}: {name} ({symbol}) must be a floating-point tensor",
                got=raw(f"tensor of dtype {value.dtype}"),
                allowed=ALLOWED[name],
                fix=f"convert it, e.g. {name}=t.float()",
            )
        outside = _outside(name, value)
        if outside is not None:
            count, first = outside
            raise ConfigError(
                f"{family}: every element of {name} ({symbol}) must be finite and in [{lo:g}, {hi:g}]; "
                f"{count} of {value.numel()} are not",
                got=raw(f"tensor{tuple(value.shape)} containing {first!r}"),
                allowed=ALLOWED[name],
                fix=f"clamp it, e.g. {name}=t.clamp({lo:g}, {hi:g})",
            )
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(
            f"{family}: {name} ({symbol}) has the wrong type",
            got=value,
            allowed=ALLOWED[name],
            fix=f"pass {name}=0.5 or a torch tensor",
        )
    v = _as_float(value)
    if math.isnan(v):
        raise ConfigError(
            f"{family}: {name} ({symbol}) is NaN",
            got=value,
            allowed=ALLOWED[name],
            fix=f"check where {name} was computed; e.g. {name}=1.0",
        )
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(
            f"{family}: {name} ({symbol}) must be finite and > 0",
            got=value,
            allowed=ALLOWED[name],
            fix=f"use a positive value, e.g. {name}=1.0; {_HINT[name]}",
        )
    if not _in_range(name, v):
        raise ConfigError(
            f"{family}: {name} ({symbol}) is outside the supported range [{lo:g}, {hi:g}]",
            got=value,
            allowed=ALLOWED[name],
            fix=f"use a value in range, e.g. {name}=1.0; {_HINT[name]} (outside the range the backward would "
            "overflow or underflow in float16/float32)",
        )
    return v


def _outside(name: str, value: Tensor) -> tuple[int, float] | None:
    """How many elements of ``value`` are NaN, inf or outside ``RANGES[name]``, and the first of them."""
    lo, hi = RANGES[name]
    data = value.detach()
    bad = ~torch.isfinite(data) | (data < lo) | (data > hi)
    if not bool(bad.any()):
        return None
    return int(bad.sum()), data[bad].flatten()[0].item()


def check_learnable(family: str, site: str | None, name: str, p: Tensor) -> None:
    """A four-part error when an optimizer moved a learnable parameter out of its range (checked every forward:
    a surrogate with a negative or NaN dampening would otherwise train on silently)."""
    outside = _outside(name, p)
    if outside is not None:
        count, first = outside
        at = f" at neuron site {site!r}" if site else ""
        raise ConfigError(
            f"{family}: the learnable {name}{at} left its valid range during training ({count} of "
            f"{p.numel()} values)",
            got=raw(f"{name} containing {first!r}"),
            allowed=ALLOWED[name],
            fix="call surrogate.clamp_() (or sg.surrogates.clamp_learnable_(model)) after each optimizer step, or "
            "lower the learning rate of the surrogate parameters",
        )


def check_broadcast(family: str, site: str | None, name: str, p: Tensor, x: Tensor) -> None:
    """A four-part error when a per-neuron parameter ``p`` does not broadcast to the state ``x``."""
    try:
        ok = torch.broadcast_shapes(p.shape, x.shape) == x.shape
    except RuntimeError:
        ok = False
    if not ok:
        at = f" at neuron site {site!r}" if site else ""
        raise ConfigError(
            f"{family}: per-neuron {name} of shape {tuple(p.shape)} does not broadcast to the "
            f"neuron state of shape {tuple(x.shape)}{at}",
            got=raw(f"{name} shape {tuple(p.shape)}"),
            allowed=f"a shape that broadcasts to {tuple(x.shape)} without changing it, e.g. "
            f"{tuple(x.shape[-1:])} for one value per neuron of the last dimension",
            fix=f"build {name} with one entry per neuron (for conv layers, shape (C, 1, 1))",
        )


def reject_unknown(cls_name: str, names: tuple[str, ...], unknown: dict[str, Any]) -> None:
    """The four-part error for constructor keywords a surrogate family does not take."""
    raise ConfigError(
        f"{cls_name} got keyword argument(s) it does not take: {', '.join(map(repr, unknown))}",
        got=unknown,
        allowed=f"{', '.join(names)}, heaviside, spiking",
        fix="only q_pseudospike has a tail (fast_sigmoid is q_pseudospike with tail 2); dampening is the peak, "
        "sharpness the inverse width" if "tail" in unknown else f"use the canonical names {', '.join(names)}",
    )
