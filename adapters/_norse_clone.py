"""Norse step functions cloned with a ``threshold`` that knows sg_stability's method (see ``norse.py``).

Norse's ``threshold(x, method, alpha)`` is a module global that eleven functional modules import by name. A
clone of a step function gets a private copy of its module's globals (registered in ``sys.modules``, so
torch.compile resolves them) in which ``threshold`` dispatches :data:`MARKER` to ``alpha(x)``; helpers that
reach ``threshold`` are cloned the same way. Norse's own modules and functions are never modified.
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

import torch

MARKER = "sg_stability"
#: the package whose submodules are the mirrors (``_norse_mirror`` makes them importable, e.g. by pickle)
MIRROR_PACKAGE = "sg_stability.adapters._norse_mirror"
THRESHOLD_MODULE = "norse.torch.functional.threshold"


def _norse_threshold() -> Any:
    return sys.modules[THRESHOLD_MODULE].threshold


def _threshold_for(original: Any) -> Any:
    def threshold(x: torch.Tensor, method: str, alpha: Any) -> torch.Tensor:
        if method == MARKER:
            return alpha(x)
        return original(x, method, alpha)

    return threshold


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _is_norse_function(value: Any) -> bool:
    return isinstance(value, types.FunctionType) and (value.__module__ or "").startswith("norse.")


def _is_norse_module(value: Any) -> bool:
    return isinstance(value, types.ModuleType) and value.__name__.startswith("norse.")


def _resolve(value: Any, names: set[str], depth: int = 2) -> list[Any]:
    """``value``, or for a Norse module the attributes among ``names`` that code can reach through it
    (``encode.constant_current_lif_encode``, ``functional.lif.lif_step``)."""
    if not _is_norse_module(value):
        return [value]
    if depth == 0:
        return []
    found = []
    for name in names:
        attr = value.__dict__.get(name)
        if attr is not None:
            found += _resolve(attr, names, depth - 1)
    return found


def reaches_threshold(fn: Any) -> bool:
    """Whether calling ``fn`` (a Norse function, or a clone made here: a deepcopy of a patched model keeps
    the clones) can reach Norse's ``threshold`` through its globals."""
    return fn in _clone_set or _reaches_threshold(fn)


@functools.cache
def _reaches_threshold(fn: types.FunctionType) -> bool:
    target = _norse_threshold()
    pending, seen = [fn], {fn}
    while pending:
        f = pending.pop()
        names = _global_names(f.__code__)
        for name in names:
            for value in _resolve(f.__globals__.get(name), names):
                if value is target:
                    return True
                if _is_norse_function(value) and value not in seen:
                    seen.add(value)
                    pending.append(value)
    return False


def _modulereaches_threshold(module: types.ModuleType) -> bool:
    target = _norse_threshold()
    return any(v is target or (_is_norse_function(v) and reaches_threshold(v)) for v in vars(module).values())


_mirrors: dict[str, types.ModuleType] = {}
_clones: dict[types.FunctionType, types.FunctionType] = {}
_clone_set: set[types.FunctionType] = set()


def mirror(globals_dict: dict[str, Any]) -> types.ModuleType:
    """A private copy of a Norse module's globals with ``threshold`` (and whatever reaches it) replaced."""
    name = globals_dict["__name__"]
    if name in _mirrors:
        return _mirrors[name]
    private_name = f"{MIRROR_PACKAGE}.{name.replace('.', '__')}"
    module = types.ModuleType(private_name)
    _mirrors[name] = module  # before filling: helpers may refer back to this module
    namespace = module.__dict__
    namespace.update(globals_dict)
    namespace["__name__"] = private_name
    namespace.pop("__spec__", None)  # this copy is not the module the spec describes
    sys.modules[private_name] = module
    target = _norse_threshold()
    for key, value in globals_dict.items():
        if value is target:
            namespace[key] = _threshold_for(target)
        elif _is_norse_function(value) and reaches_threshold(value):
            namespace[key] = clone(value)
        elif _is_norse_module(value) and value.__name__ != name and _modulereaches_threshold(value):
            namespace[key] = mirror(vars(value))
    return module


def clone(fn: types.FunctionType) -> types.FunctionType:
    """``fn`` with its globals replaced by the mirror of its module (cached: one clone per function)."""
    if fn in _clone_set:  # already a clone (a deepcopy of a patched model holds them)
        return fn
    if fn in _clones:
        return _clones[fn]
    namespace = mirror(fn.__globals__).__dict__
    if fn in _clones:  # filling the mirror cloned it already: one clone per function, the one its module holds
        return _clones[fn]
    new = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__annotations__ = fn.__annotations__
    new.__dict__.update(fn.__dict__)
    new.__module__ = namespace["__name__"]
    _clones[fn] = new
    _clone_set.add(new)
    return new
