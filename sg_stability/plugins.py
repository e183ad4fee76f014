"""Adapter discovery through pluggy and the ``sg_stability`` entry-point group.

- Every adapter, built-in or third-party, is an entry point of the group ``sg_stability``.
- ``SG_STABILITY_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the adapters that ship with sg-stability.
- ``SG_STABILITY_DISABLED_PLUGINS=name1,name2`` blocks plugins by entry-point name (built-ins too).
- A plugin that fails to import or to validate is reported with a :class:`PluginLoadWarning` naming
  it, and discovery goes on without it.
- :func:`register` adds a plugin object by hand (e.g. an adapter defined in a notebook).
- Plugins' surrogate families are pushed into the (passive) surrogate registry; reading a framework's own
  surrogate (:func:`read_native`, :func:`from_native`) asks the adapters.

Plugins are loaded once, on first use; call :func:`reload` after installing one in a running process.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy
from torch import nn

from . import hookspecs
from ._errors import ConfigError, NotConvertibleError, PluginLoadWarning, raw
from .adapter_api import PROJECT, AdapterInfo, NativeReading, NeuronSite, NIRExchange
from .surrogates import Surrogate
from .surrogates._registry import forget_plugin_families, register_family, set_discovery, set_native_reader

ENTRY_POINT_GROUP = "sg_stability"
DISABLE_AUTOLOAD_ENV = "SG_STABILITY_DISABLE_PLUGIN_AUTOLOAD"
DISABLED_PLUGINS_ENV = "SG_STABILITY_DISABLED_PLUGINS"
DISTRIBUTION = "sg-stability"

# Used only when sg-stability runs from a source tree without installed metadata; an installed
# package registers the same modules through its entry points (pyproject.toml).
_SOURCE_TREE_ADAPTERS = {
    "snntorch": "sg_stability.adapters.snntorch",
    "spikingjelly": "sg_stability.adapters.spikingjelly",
    "norse": "sg_stability.adapters.norse",
    "neurons": "sg_stability.adapters.neurons",
}

__all__ = [
    "DISABLED_PLUGINS_ENV",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginInfo",
    "adapter_infos",
    "failures",
    "from_native",
    "loaded",
    "manager",
    "read_native",
    "register",
    "reload",
    "unregister",
]


@dataclass(frozen=True)
class PluginInfo:
    name: str
    source: str
    adapter: AdapterInfo | None


@dataclass(frozen=True)
class PluginFailure:
    name: str
    source: str
    error: str


_manager: pluggy.PluginManager | None = None
_sources: dict[str, str] = {}
_failures: list[PluginFailure] = []


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _env_names(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def _normalize(dist_name: str | None) -> str:
    return (dist_name or "").lower().replace("_", "-")


def _try_register(pm: pluggy.PluginManager, name: str, load: Callable[[], Any], source: str) -> None:
    plugin = None
    try:
        plugin = load()
        pm.register(plugin, name=name)
        pm.check_pending()
    except Exception as exc:  # noqa: BLE001 -- a broken third-party plugin must never break discovery
        if plugin is not None and pm.is_registered(plugin):
            pm.unregister(plugin)
        error = f"{type(exc).__name__}: {exc}"
        _failures.append(PluginFailure(name, source, error))
        warnings.warn(
            f"sg_stability: adapter plugin {name!r} ({source}) failed to load and is ignored: {error}. "
            f"Fix or uninstall it, or block it with {DISABLED_PLUGINS_ENV}={name}.",
            PluginLoadWarning,
            stacklevel=3,
        )
        return
    _sources[name] = source


def _build() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in _env_names(DISABLED_PLUGINS_ENV):
        pm.set_blocked(name)
    autoload = not _env_flag(DISABLE_AUTOLOAD_ENV)
    found_own = False
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        own = _normalize(dist.name if dist else None) == DISTRIBUTION
        found_own |= own
        if (not own and not autoload) or pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        source = f"{dist.name} {dist.version}" if dist else "unknown distribution"
        _try_register(pm, ep.name, ep.load, f"{source}, entry point {ep.value}")
    if not found_own:
        for name, module in _SOURCE_TREE_ADAPTERS.items():
            if not pm.is_blocked(name) and not pm.has_plugin(name):
                _try_register(pm, name, functools.partial(importlib.import_module, module), "sg-stability source tree")
    pm.hook.sg_register_surrogates.call_historic(kwargs={"register": register_family})
    return pm


def manager() -> pluggy.PluginManager:
    """The plugin manager, with plugins loaded on first use."""
    global _manager
    if _manager is None:
        _manager = _build()
    return _manager


def reload() -> pluggy.PluginManager:
    """Forget loaded plugins and discover them again (after installing one, or changing the env vars)."""
    global _manager
    _manager = None
    _sources.clear()
    _failures.clear()
    forget_plugin_families()
    return manager()


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin object by hand (same hooks as an entry-point plugin). Returns its name."""
    pm = manager()
    try:
        registered = pm.register(plugin, name=name)
        pm.check_pending()
    except (ValueError, pluggy.PluginValidationError) as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        raise ConfigError(
            "cannot register the plugin",
            got=plugin,
            allowed="an object or module with @sg_stability.hookimpl functions named after the hooks in "
            "sg_stability.hookspecs, registered under a new name",
            fix=f"check the hook names and arguments ({exc})",
        ) from exc
    assert registered is not None
    if not pm.get_hookcallers(plugin):
        pm.unregister(plugin)
        raise ConfigError("the plugin implements none of sg_stability's hooks", got=plugin,
                          allowed="an object or module with @sg_stability.hookimpl functions named after the hooks in "
                          "sg_stability.hookspecs (sg_find_neuron, sg_adapter_info, ...)",
                          fix="decorate the plugin's functions with @sg_stability.hookimpl (README 'Writing an "
                          "adapter')")
    _sources[registered] = "registered by hand"
    return registered


def unregister(plugin_or_name: object) -> None:
    """Remove a plugin registered by entry point or by :func:`register`."""
    pm = manager()
    name: str | None
    if isinstance(plugin_or_name, str):
        plugin, name = pm.get_plugin(plugin_or_name), plugin_or_name
    else:
        plugin, name = plugin_or_name, pm.get_name(plugin_or_name)
    if plugin is None or name is None:
        raise ConfigError(
            "no such plugin is registered",
            got=plugin_or_name,
            allowed=f"one of {sorted(n for n, p in pm.list_name_plugin() if p is not None)}",
            fix="pass the name shown by sg_stability.plugins.loaded()",
        )
    pm.unregister(plugin, name=name)
    _sources.pop(name, None)


def loaded() -> list[PluginInfo]:
    """The registered plugins, with where they came from and what they describe."""
    pm = manager()
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        info = getattr(plugin, "sg_adapter_info", None)
        out.append(PluginInfo(name, _sources.get(name, "?"), info() if callable(info) else None))
    return out


def failures() -> list[PluginFailure]:
    """Plugins that failed to load in this process (each was also reported with a warning)."""
    manager()
    return list(_failures)


def adapter_infos() -> list[AdapterInfo]:
    return [info for info in manager().hook.sg_adapter_info() if info is not None]


def find_neuron(module: Any, path: str) -> NeuronSite | None:
    return manager().hook.sg_find_neuron(module=module, path=path)


def save_state(module: nn.Module) -> Callable[[], None] | None:
    """A function that restores the framework state ``module`` keeps outside torch's registries (an adapter's
    ``sg_save_state``), or None."""
    restore: Callable[[], None] | None = manager().hook.sg_save_state(module=module)
    return restore


def nir_exchange(adapter: str) -> NIRExchange | None:
    """The NIR exporter and importer of adapter ``adapter``'s framework (its ``sg_nir_exchange``), or None."""
    exchange: NIRExchange | None = manager().hook.sg_nir_exchange(adapter=adapter)
    return exchange


def read_native(obj: Any) -> NativeReading:
    """Read ``obj`` (a framework's own surrogate) without raising: the canonical surrogate, or why not."""
    if isinstance(obj, Surrogate):
        return NativeReading(source=f"sg_stability {obj!r}", surrogate=obj)
    reading: NativeReading | None = manager().hook.sg_read_native(obj=obj)
    if reading is not None:
        return reading
    names = [info.name for info in adapter_infos()]
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return NativeReading(source=f"{module}.{name}",
                         reason=f"no loaded adapter recognises it (adapters: {', '.join(names) or 'none'})")


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


set_discovery(manager)  # a family name a plugin adds resolves before any model is patched
set_native_reader(from_native)  # sg.surrogates.from_native (decisions D3) is this function
