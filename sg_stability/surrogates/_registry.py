"""Family names -> surrogate classes, with aliases, plugin-added families and "did you mean"."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from .._errors import ConfigError, UnknownSurrogateError, did_you_mean
from ._base import Surrogate
from ._families import ALIASES, BUILTIN_FAMILIES

_FAMILIES: dict[str, type[Surrogate]] = {cls.family: cls for cls in BUILTIN_FAMILIES}
_ALIASES: dict[str, str] = dict(ALIASES)
_PLUGIN_NAMES: set[str] = set()


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def register_family(cls: type[Surrogate], aliases: Iterable[str] = ()) -> None:
    """Add a surrogate family (used by plugins through the ``sg_register_surrogates`` hook)."""
    if not (inspect.isclass(cls) and issubclass(cls, Surrogate) and cls.family):
        raise ConfigError(
            "a surrogate family must be a Surrogate subclass with a non-empty `family` name",
            got=cls,
            allowed="class MyShape(sg_stability.surrogates.Surrogate): family = 'my_shape'; ...",
            fix="subclass sg_stability.surrogates.Surrogate and set `family`",
        )
    name = _normalize(cls.family)
    taken = _FAMILIES.get(name) or _FAMILIES.get(_ALIASES.get(name, ""))
    if taken is not None and taken is not cls:
        raise ConfigError(
            f"surrogate family name {cls.family!r} is already taken by {taken.__module__}.{taken.__qualname__}",
            got=cls,
            allowed=f"a name not in {sorted(_FAMILIES)} or their aliases",
            fix="choose another `family` name for the plugin's class",
        )
    _FAMILIES[name] = cls
    _PLUGIN_NAMES.add(name)
    for alias in aliases:
        _ALIASES[_normalize(alias)] = name


def forget_plugin_families() -> None:
    for name in _PLUGIN_NAMES:
        _FAMILIES.pop(name, None)
    for alias in [a for a, target in _ALIASES.items() if target in _PLUGIN_NAMES]:
        del _ALIASES[alias]
    _PLUGIN_NAMES.clear()


_discovery: list[Callable[[], object]] = []


def set_discovery(load: Callable[[], object]) -> None:
    """Called by the plugin layer: ``load()`` registers the plugins' families (once; later calls are cheap).

    The registry itself knows nothing of plugins; before a lookup it asks the discovery function, if one was
    set, so that a plugin's family can be named before any model was patched."""
    _discovery[:] = [load]


_native_reader: list[Callable[[Any], Surrogate]] = []


def set_native_reader(read: Callable[[Any], Surrogate]) -> None:
    """Called by the plugin layer, which asks the adapters: ``read(obj)`` is :func:`from_native`."""
    _native_reader[:] = [read]


def from_native(obj: Any) -> Surrogate:
    """The canonical surrogate equivalent to a framework's own surrogate ``obj`` (the adapters read it); raises
    :class:`~sg_stability.NotConvertibleError` with the reason when there is none. The same as
    ``sg.from_native``."""
    if not _native_reader:  # only before the package's own __init__ has run, which sets it
        raise RuntimeError("import sg_stability first: the plugin layer reads native surrogates")
    return _native_reader[0](obj)


def _load_plugins() -> None:
    for load in _discovery:
        load()


def families() -> tuple[str, ...]:
    """The canonical family names (built-in and from plugins)."""
    _load_plugins()
    return tuple(sorted(_FAMILIES))


def family_class(name: str) -> type[Surrogate]:
    """The class of family ``name`` (case-insensitive; aliases such as ``'arctan'`` accepted)."""
    _load_plugins()
    if not isinstance(name, str):
        raise ConfigError(
            "a surrogate family name must be a string",
            got=name,
            allowed=f"one of {', '.join(sorted(_FAMILIES))}",
            fix='pass e.g. surrogate="fast_sigmoid"',
        )
    key = _normalize(name)
    key = _ALIASES.get(key, key)
    if key not in _FAMILIES:
        raise UnknownSurrogateError(
            f"unknown surrogate family {name!r}.{did_you_mean(key, list(_FAMILIES) + list(_ALIASES))}",
            got=name,
            allowed=", ".join(sorted(_FAMILIES)),
            fix="use one of the allowed names (plugins can add families: sg_stability.surrogates.families())",
        )
    return _FAMILIES[key]


def get(spec: str | Surrogate, **params: Any) -> Surrogate:
    """A surrogate from a family name and canonical parameters, e.g. ``get("atan", dampening=0.5)``.

    A :class:`Surrogate` instance is returned as it is (then ``params`` must be empty).
    """
    if isinstance(spec, Surrogate):
        if params:
            raise ConfigError(
                "parameters were given together with a surrogate instance",
                got=sorted(params),
                allowed="either a family name with parameters, or an instance alone",
                fix=f"pass them to the constructor instead, e.g. {type(spec).__name__}(**{params!r})",
            )
        return spec
    if not isinstance(spec, str):
        raise ConfigError(
            "surrogate must be a family name or a Surrogate instance",
            got=spec,
            allowed=f"a string in {sorted(_FAMILIES)} or an sg_stability.surrogates.Surrogate",
            fix='pass surrogate="fast_sigmoid" or surrogate=sg.surrogates.FastSigmoid(0.3, 2.0); '
            "for a framework's own surrogate use sg.from_native(obj)",
        )
    cls = family_class(spec)
    unknown = sorted(set(params) - set(cls.param_names) - {"spiking", "heaviside"})
    if unknown:
        raise ConfigError(
            f"surrogate family {cls.family!r} has no parameter {', '.join(map(repr, unknown))}",
            got={k: params[k] for k in unknown},
            allowed=", ".join(cls.param_names),
            fix="dampening is the peak (gamma), sharpness the inverse width (beta); "
            "only q_pseudospike has a tail (q)",
        )
    return cls(**params)
