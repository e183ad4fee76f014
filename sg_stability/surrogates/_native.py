"""Reading framework-native surrogates into the canonical form (through the adapters)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import NotConvertibleError, raw
from ._base import Surrogate


@dataclass(frozen=True)
class NativeReading:
    """A framework-native surrogate read into the canonical form, or the reason it cannot be.

    ``source`` describes the native object (e.g. ``"snntorch.surrogate.atan(alpha=2.0)"``).
    Exactly one of ``surrogate`` and ``reason`` is set.
    """

    source: str
    surrogate: Surrogate | None = None
    reason: str | None = None


def read_native(obj: Any) -> NativeReading:
    """Read ``obj`` (a framework's own surrogate) without raising: the canonical surrogate, or why not."""
    if isinstance(obj, Surrogate):
        return NativeReading(source=f"sg_stability {obj!r}", surrogate=obj)
    from .. import plugins

    reading = plugins.read_native(obj)
    if reading is not None:
        return reading
    names = [info.name for info in plugins.adapter_infos()]
    return NativeReading(
        source=_describe(obj),
        reason=f"no loaded adapter recognises it (adapters: {', '.join(names) or 'none'})",
    )


def from_native(obj: Any) -> Surrogate:
    """The canonical surrogate equivalent to a framework's own surrogate ``obj``.

    Raises :class:`~sg_stability.NotConvertibleError` with the reason when there is none (e.g.
    snnTorch's ``triangular`` is a sign flip, not a triangle).
    """
    reading = read_native(obj)
    if reading.surrogate is not None:
        return reading.surrogate
    raise NotConvertibleError(
        f"cannot convert {reading.source} to a canonical surrogate: {reading.reason}",
        reason=reading.reason or "",
        got=raw(reading.source),
        allowed="the framework surrogates listed in the README table 'Reading native surrogates'",
        fix="pick a canonical family instead, e.g. sg.patch(model, surrogate='fast_sigmoid')",
    )


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{name}"
