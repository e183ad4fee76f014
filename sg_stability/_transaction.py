"""Recorded, reversible attribute changes on modules (and plain objects).

``nn.Module`` keeps attributes in four places: ``_parameters``, ``_buffers`` (persistent or not),
``_modules`` and ``__dict__``. Replacing snnTorch's ``spike_grad`` function with a surrogate module
moves the attribute from ``__dict__`` to ``_modules``; assigning the function back with ``setattr``
would then fail. A :class:`Change` remembers where the old value lived and puts the identical object
back there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

import torch
from torch import nn

_NOTSET: Any = object()
_REGISTRIES = ("_parameters", "_buffers", "_modules")


def _locate(owner: object, name: str) -> tuple[str, Any, bool]:
    """(registry, value, persistent) of ``owner.name``; registry is ``"__dict__"`` or ``"absent"``."""
    if isinstance(owner, nn.Module):
        for registry in _REGISTRIES:
            store = owner.__dict__.get(registry, {})
            if name in store:
                persistent = name not in owner._non_persistent_buffers_set
                return registry, store[name], persistent
    if name in getattr(owner, "__dict__", {}):
        return "__dict__", owner.__dict__[name], True
    return "absent", _NOTSET, True


def _remove(owner: object, name: str) -> None:
    if isinstance(owner, nn.Module):
        for registry in _REGISTRIES:
            owner.__dict__.get(registry, {}).pop(name, None)
        owner._non_persistent_buffers_set.discard(name)
    if hasattr(owner, "__dict__"):
        owner.__dict__.pop(name, None)


def _put(owner: object, name: str, registry: str, value: Any, persistent: bool) -> None:
    if registry == "absent":
        return
    if registry == "__dict__":
        object.__setattr__(owner, name, value)
        return
    assert isinstance(owner, nn.Module)
    getattr(owner, registry)[name] = value
    if registry == "_buffers" and not persistent:
        owner._non_persistent_buffers_set.add(name)


def _registry_for(value: Any, current: str) -> str:
    """Where ``nn.Module.__setattr__`` puts ``value`` (a plain tensor stays a buffer if it was one)."""
    if isinstance(value, nn.Parameter):
        return "_parameters"
    if isinstance(value, nn.Module):
        return "_modules"
    if isinstance(value, torch.Tensor) and current == "_buffers":
        return "_buffers"
    return "__dict__"


def current_value(owner: object, name: str) -> Any:
    return _locate(owner, name)[1]


@dataclass
class Change:
    """One recorded attribute change: restoring it puts ``old`` back where it lived."""

    owner: object
    name: str
    old: Any
    old_registry: str
    old_persistent: bool
    new: Any

    def is_current(self) -> bool:
        """True when the attribute still holds exactly the value this change put there."""
        return current_value(self.owner, self.name) is self.new

    def restore(self) -> None:
        registry, _, _ = _locate(self.owner, self.name)
        if registry == self.old_registry and registry != "absent":
            # Same registry: write in place, which keeps the entry's position (module order, state_dict).
            _put(self.owner, self.name, registry, self.old, self.old_persistent)
            if registry == "_buffers" and self.old_persistent and isinstance(self.owner, nn.Module):
                self.owner._non_persistent_buffers_set.discard(self.name)
            return
        _remove(self.owner, self.name)
        _put(self.owner, self.name, self.old_registry, self.old, self.old_persistent)


@dataclass
class Transaction:
    """Every mutation goes through :meth:`set` (or registers an undo step with :meth:`on_undo`),
    so a failure part-way can be rolled back completely and a handle can undo exactly."""

    changes: list[Change | Callable[[], None]] = field(default_factory=list)

    def set(self, owner: object, name: str, value: Any) -> None:
        registry, old, persistent = _locate(owner, name)
        change = Change(owner, name, old, registry, persistent, value)
        if registry not in ("absent", _registry_for(value, registry)):
            _remove(owner, name)  # nn.Module refuses e.g. a function over a child module
        setattr(owner, name, value)
        self.changes.append(change)

    def on_undo(self, fn: Callable[[], None]) -> None:
        """Register a framework-specific undo step; steps run in reverse order with the changes."""
        self.changes.append(fn)

    def recorded(self) -> Iterator[Change]:
        return (c for c in self.changes if isinstance(c, Change))

    def rollback(self) -> None:
        """Undo everything in reverse order (no conflict checks: used right after a failure)."""
        while self.changes:
            change = self.changes[-1]  # dropped only once restored: an interrupted rollback can be resumed
            change.restore() if isinstance(change, Change) else change()
            self.changes.pop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.rollback()
