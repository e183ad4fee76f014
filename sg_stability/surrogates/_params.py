"""Parameters of the canonical surrogates: the Heaviside conventions, validation and formatting."""

from __future__ import annotations

import math
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


ALLOWED = {
    "dampening": "a positive finite float, or a tensor (or nn.Parameter) of positive finite values "
    "broadcastable to the neuron's state",
    "sharpness": "a positive finite float, or a tensor (or nn.Parameter) of positive finite values "
    "broadcastable to the neuron's state",
    "tail": "a finite float q > 1 (q = 2 is fast_sigmoid; q -> inf approaches exponential)",
}


def validated(family: str, name: str, value: Any) -> Param:
    """``value`` as a canonical parameter ``name`` of ``family``, or a four-part error."""
    symbol = {"dampening": "gamma", "sharpness": "beta", "tail": "q"}[name]
    if name == "tail":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"{family}: tail must be a Python number",
                got=value,
                allowed=ALLOWED[name],
                fix="pass tail=1.5 (a float); per-neuron tails are not supported",
            )
        q = float(value)
        if not math.isfinite(q) or q <= 1.0:
            raise ConfigError(
                f"{family}: tail q must be finite and greater than 1 (the shape is not integrable for q <= 1)",
                got=value,
                allowed=ALLOWED[name],
                fix="use e.g. tail=1.56 (the paper's default) or tail=2.0",
            )
        return q
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise ConfigError(
                f"{family}: {name} ({symbol}) must be a floating-point tensor",
                got=raw(f"tensor of dtype {value.dtype}"),
                allowed=ALLOWED[name],
                fix=f"convert it, e.g. {name}=t.float()",
            )
        data = value.detach()
        bad = ~torch.isfinite(data) | (data <= 0)
        if bool(bad.any()):
            first = data[bad].flatten()[0].item()
            raise ConfigError(
                f"{family}: every element of {name} ({symbol}) must be finite and > 0; "
                f"{int(bad.sum())} of {data.numel()} are not",
                got=raw(f"tensor{tuple(data.shape)} containing {first!r}"),
                allowed=ALLOWED[name],
                fix=f"clamp it, e.g. {name}=t.clamp_min(1e-3)",
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{family}: {name} ({symbol}) has the wrong type",
            got=value,
            allowed=ALLOWED[name],
            fix=f"pass {name}=0.5 or a torch tensor",
        )
    v = float(value)
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
            fix=f"use a positive value, e.g. {name}=1.0"
            + ("; dampening is the peak height of sigma'" if name == "dampening" else
               "; sharpness is the inverse width of sigma'"),
        )
    return v


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
