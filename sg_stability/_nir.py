"""``sg.to_nir`` / ``sg.from_nir``: NIR export and import through the framework's own exchange, with each neuron's
surrogate carried in its node's ``metadata`` (NIR itself has no notion of a surrogate gradient).

The metadata entry ``metadata["sg_stability"]`` of a neuron node is a JSON string: the site's entry of a patch
spec (:mod:`sg_stability._spec`), so ``nir.write`` / ``nir.read`` keep it and any NIR tool can ignore it.
"""

from __future__ import annotations

import glob
import json
import warnings
from typing import Any

from torch import nn

from . import plugins
from ._errors import ConfigError, SGStabilityWarning
from ._handle import PatchHandle, live_spec
from ._patching import neuron_sites, patch, require_module
from ._spec import spec_of, surrogate_from_dict
from .adapter_api import NeuronSite, NIRExchange

KEY = "sg_stability"


def to_nir(model: nn.Module, sample: Any, **options: Any) -> Any:
    """Export ``model`` to a NIR graph with its framework's own exporter (``options`` go to it), and write each
    neuron's surrogate into its node's ``metadata["sg_stability"]``.

    The surrogate written is the one a live patch installed, else the framework's own where it has a canonical
    form. Returns the ``nir.NIRGraph`` (``nir.write(path, graph)`` writes it). A neuron the exporter gives no node
    of its own gets an :class:`SGStabilityWarning` naming it. Our surrogate modules never become nodes, whichever
    exporter runs.
    """
    require_module(model, "to_nir")
    sites = neuron_sites(model, "to_nir")
    exchange = _exchange({s.adapter for s in sites}, "to_nir")
    graph = exchange.export(model, sample, **options)
    entries = {e["path"]: e for e in _site_entries(model, sites)["sites"]}
    missing = []
    for path, entry in entries.items():
        node = _node_of(path, graph.nodes)
        if node is None:
            missing.append(path or "(model)")
            continue
        graph.nodes[node].metadata[KEY] = json.dumps(entry)
    if missing:
        warnings.warn(f"sg_stability.to_nir: the exporter made no node for {', '.join(missing)}; their surrogates are "
                      "not in the graph", SGStabilityWarning, stacklevel=2)
    return graph


def from_nir(graph: Any, *, framework: str, **options: Any) -> tuple[nn.Module, PatchHandle | None]:
    """Import a NIR graph with ``framework``'s own importer (``options`` go to it) and patch every neuron whose
    node carries ``metadata["sg_stability"]`` (written by :func:`to_nir`) with that surrogate.

    Returns ``(model, handle)``; ``handle`` is None when no node carries a surrogate (the model then runs on the
    framework's default, and an :class:`SGStabilityWarning` says so). A node whose surrogate cannot be restored
    (no neuron under it in the imported model, or an entry that does not read) is named in a warning and in
    ``handle.notes``.
    """
    if not isinstance(framework, str):
        raise ConfigError("from_nir: framework must be an adapter's name", got=framework,
                          allowed="'snntorch', 'spikingjelly', 'norse' or a plugin adapter's name",
                          fix='pass framework="snntorch" (the framework to import into)')
    exchange = _exchange({framework}, "from_nir")
    if not isinstance(getattr(graph, "nodes", None), dict) or not hasattr(graph, "edges"):
        raise ConfigError("from_nir: graph is not a NIR graph", got=type(graph).__name__,
                          allowed="a nir.NIRGraph (sg.to_nir's result, or nir.read(path))",
                          fix="read the file first: sg.from_nir(nir.read(path), framework=...)")
    carried = {name: node.metadata[KEY] for name, node in getattr(graph, "nodes", {}).items()
               if isinstance(getattr(node, "metadata", None), dict) and KEY in node.metadata}
    model = exchange.load(graph, **options)
    if not carried:
        warnings.warn("sg_stability.from_nir: no node of the graph carries a surrogate (metadata['sg_stability']); "
                      "the model runs on the framework's default surrogates", SGStabilityWarning, stacklevel=2)
        return model, None
    sites = neuron_sites(model, "from_nir")
    targets, lost = {}, []
    for name, text in carried.items():
        site = next((s for s in sites if name in _names(s.path) or s.path.startswith(name + ".")), None)
        try:
            surrogate = surrogate_from_dict(json.loads(text).get("surrogate"), f"node {name}")
        except (ValueError, AttributeError) as error:
            lost.append(f"{name}: {str(error).splitlines()[0]}")
            continue
        if site is None:
            lost.append(f"{name}: no neuron of the imported model lies under this node")
            continue
        targets[glob.escape(site.path)] = surrogate
    if lost:
        warnings.warn("sg_stability.from_nir: surrogates not restored: " + "; ".join(lost), SGStabilityWarning,
                      stacklevel=2)
    if not targets:
        return model, None
    handle = patch(model, targets=targets)
    handle.notes = (*handle.notes, *(f"not restored from NIR: {x}" for x in lost))
    return model, handle


def _exchange(adapters: set[str], where: str) -> NIRExchange:
    if len(adapters) != 1:
        raise ConfigError(f"{where}: NIR goes through one framework's exchange", got=sorted(adapters),
                          allowed="a model whose neurons all come from one framework",
                          fix="export each framework's part on its own")
    name = next(iter(adapters))
    exchange = plugins.nir_exchange(name)
    if exchange is None:
        known = [info.name for info in plugins.adapter_infos()]
        raise ConfigError(f"{where}: no NIR exchange for {name!r}", got=name,
                          allowed="an adapter that implements sg_nir_exchange: "
                          + ", ".join(k for k in known if plugins.nir_exchange(k) is not None),
                          fix="pass framework= one of those names, or export with the framework's own tools")
    return exchange


def _site_entries(model: nn.Module, sites: list[NeuronSite]) -> dict[str, Any]:
    """The spec of every neuron site: what a live patch installed there, else the framework's own surrogate
    where it has a canonical form."""
    installed = {entry["path"]: entry for entry in (live_spec(model) or {"sites": []})["sites"]}
    native = []
    for site in sites:
        if site.path in installed:
            continue
        for obj in site.driver.current().values():
            reading = plugins.read_native(obj)
            if reading.surrogate is not None:
                native.append((site.path, site.adapter, site.kind, obj, reading.surrogate))
                break
    spec = spec_of(native, True)
    spec["sites"] += list(installed.values())
    return spec


def _names(path: str) -> tuple[str, ...]:
    """The node names exporters give module ``path``: the path, or its dots as underscores (with a leading one
    where the name would start with a digit)."""
    flat = path.replace(".", "_")
    return path, flat, "_" + flat


def _node_of(path: str, nodes: Any) -> str | None:
    """The graph node of module ``path`` among ``nodes``, or None."""
    return next((name for name in _names(path) if name in nodes), None)

