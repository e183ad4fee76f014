"""Argument checks shared by the public entry points.

Each check returns the value in its canonical Python type or raises a four-part :class:`ConfigError` that names
the argument, the value received, what is allowed and how to fix it. Checks run before anything is changed, so a
rejected call leaves the model as it was.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import math
import numbers
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._errors import ConfigError, did_you_mean, raw

F = TypeVar("F", bound=Callable[..., Any])


def _bounds(minimum: float | None, maximum: float | None, above: float | None, below: float | None) -> str:
    low = f"> {above:g}" if above is not None else (f">= {minimum:g}" if minimum is not None else "")
    high = f"< {below:g}" if below is not None else (f"<= {maximum:g}" if maximum is not None else "")
    return " and ".join(p for p in (low, high) if p)


def real(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
         above: float | None = None, below: float | None = None, example: str | None = None,
         where: str = "") -> float:
    """A finite real number within the bounds (``minimum``/``maximum`` inclusive, ``above``/``below`` exclusive)."""
    bounds = _bounds(minimum, maximum, above, below)
    allowed = "a finite number" + (f" {bounds}" if bounds else "")
    fix = f"pass e.g. {example or f'{name}=1.0'}"
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{prefix}{name} must be a number", got=value, allowed=allowed,
                          fix=fix + (" (a Python number: float(t) for a tensor)" if hasattr(value, "shape") else ""))
    try:
        v = float(value)
    except OverflowError:
        v = math.inf if value > 0 else -math.inf  # type: ignore[operator]  # only an int overflows float()
    if math.isnan(v):
        raise ConfigError(f"{prefix}{name} is NaN", got=value, allowed=allowed,
                          fix=f"check where {name} was computed; {fix}")
    if math.isinf(v):
        raise ConfigError(f"{prefix}{name} must be finite", got=value, allowed=allowed, fix=fix)
    if ((minimum is not None and v < minimum) or (maximum is not None and v > maximum)
            or (above is not None and v <= above) or (below is not None and v >= below)):
        raise ConfigError(f"{prefix}{name} is out of range", got=value, allowed=allowed, fix=fix)
    return v


def integer(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
            example: str | None = None, where: str = "") -> int:
    """An integer (not a bool, not a float) within the bounds."""
    bounds = _bounds(minimum, maximum, None, None)
    allowed = "an integer" + (f" {bounds}" if bounds else "")
    prefix = f"{where}: " if where else ""
    fix = f"pass e.g. {example or f'{name}={minimum if minimum is not None else 0}'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{prefix}{name} must be an integer", got=value, allowed=allowed, fix=fix)
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ConfigError(f"{prefix}{name} is out of range", got=value, allowed=allowed, fix=fix)
    return v


def flag(value: Any, name: str, *, where: str = "") -> bool:
    """A real bool: ``"no"``, ``0`` or ``None`` are not taken for ``False``."""
    if not isinstance(value, bool):
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}{name} must be True or False", got=value, allowed="True or False",
                          fix=f"pass {name}=True or {name}=False")
    return value


def option(value: Any, name: str, options: Iterable[str], *, example: str | None = None, where: str = "") -> str:
    """One of ``options`` (strings), with a did-you-mean hint."""
    choices = list(options)
    prefix = f"{where}: " if where else ""
    if not isinstance(value, str) or value not in choices:
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        raise ConfigError(f"{prefix}unknown {name}.{hint}", got=value, allowed=f"one of {choices}",
                          fix=f"pass e.g. {example or f'{name}={choices[0]!r}'}")
    return value


def glob_patterns(value: Any, name: str, *, allowed: str, fix: str, where: str = "") -> list[str]:
    """``value`` as a non-empty list of glob patterns on module paths (a string, or a list, tuple or set of them)."""
    many = isinstance(value, list | tuple | set | frozenset)
    patterns = [value] if isinstance(value, str) else list(value) if many else [None]
    if not patterns or not all(isinstance(p, str) for p in patterns):
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}{name} must be glob patterns on module paths", got=value, allowed=allowed,
                          fix=fix)
    return [str(p) for p in patterns]


def keywords(given: Any, name: str, func: Callable[..., Any], *, skip: Iterable[str] = (),
             where: str = "") -> dict[str, Any]:
    """``given`` as keyword arguments of ``func``: a mapping with string keys that ``func`` accepts (``skip``:
    names the caller passes itself)."""
    prefix = f"{where}: " if where else ""
    accepted = sorted(p.name for p in inspect.signature(func).parameters.values()
                      if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in set(skip))
    if given is None:
        return {}
    if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
        raise ConfigError(f"{prefix}{name} must be a dict of keyword arguments", got=given,
                          allowed=f"a dict with keys among {accepted}", fix=f"pass e.g. {name}={{}}")
    unknown = [k for k in given if k not in accepted]
    if unknown:
        hint = did_you_mean(unknown[0], accepted)
        raise ConfigError(f"{prefix}{name} has keys {getattr(func, '__name__', 'it')}() does not take.{hint}",
                          got=unknown, allowed=f"keys among {accepted}",
                          fix=f"drop or rename {unknown}; see help(sg.init.{getattr(func, '__name__', '')})")
    return dict(given)


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint`` (shallowly: containers by their type and first items)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        return callable(value)
    if origin in (list, tuple, collections.abc.Sequence):
        container = {list: list, tuple: tuple}.get(origin, collections.abc.Sequence)
        if not isinstance(value, container) or isinstance(value, str):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return not args or all(_matches(v, args[0] if origin is not tuple or len(args) == 1 else a)
                               for v, a in zip(value, args * len(value), strict=False))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation this check does not read


def _describe(hint: Any) -> str:
    text = str(hint).replace("<class '", "").replace("'>", "")
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", text)  # torch.Tensor -> Tensor, sg_stability....Dynamics -> Dynamics


def checked(func: F) -> F:
    """Check the arguments of a public maths function against its annotations before it runs: a wrong type is a
    four-part error naming the argument, instead of an AttributeError deep inside. (Values -- finiteness, ranges --
    are the function's own checks: an infinite integration bound, say, is valid for some and not for others.)"""
    signature = inspect.signature(func)
    hints: dict[str, Any] = {}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not hints:
            hints.update(typing.get_type_hints(func))
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"{func.__name__}(): {exc}", got=raw(f"{len(args)} positional, keywords "
                                                                   f"{sorted(kwargs)}"),
                              allowed=f"{func.__name__}{signature}", fix="see help(" + func.__name__ + ")") from None
        for name, value in bound.arguments.items():
            hint = hints.get(name, inspect.Parameter.empty)
            if not _matches(value, hint):
                raise ConfigError(f"{func.__name__}(): {name} has the wrong type", got=value,
                                  allowed=_describe(hint), fix=f"pass {name} as a {_describe(hint)}")
        return func(*args, **kwargs)

    return typing.cast(F, wrapper)
