"""A patch as data: what :meth:`PatchHandle.to_dict` writes and ``sg.patch(model, spec)`` reads back.

A spec is plain JSON: ``{"format": "sg_stability.patch", "version": 1, "builtin": bool, "sites": [...]}``, one
entry per patched neuron site with its path, the adapter and neuron kind that claimed it, how the surrogate was
installed (ours, or the framework's own class), and the surrogate itself: family, canonical parameters (a float,
or a tensor written out value by value with its shape and dtype, and whether it is learnable), the Heaviside
convention and the spiking mode. Values are written exactly (a float32 value is a Python float without loss), so
patching a freshly built model from a spec reproduces the same surrogates bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ._errors import ConfigError, raw
from .surrogates import Heaviside, Surrogate, get

FORMAT, VERSION = "sg_stability.patch", 1


def is_spec(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("format") == FORMAT


def surrogate_to_dict(s: Surrogate, ties: dict[int, int] | None = None) -> dict[str, Any]:
    """``s`` as JSON data. ``ties`` numbers learnable parameters shared between sites (the same object)."""
    params: dict[str, Any] = {}
    for name, value in s.params().items():
        if isinstance(value, Tensor):
            entry: dict[str, Any] = {"values": value.detach().cpu().tolist(), "shape": list(value.shape),
                                     "dtype": str(value.dtype).removeprefix("torch."),
                                     "learnable": isinstance(value, nn.Parameter) and value.requires_grad}
            if entry["learnable"] and ties is not None:
                entry["tie"] = ties.setdefault(id(value), len(ties))
            params[name] = entry
        else:
            params[name] = float(value)
    return {"family": s.family, "params": params, "heaviside": list(s.heaviside), "spiking": bool(s.spiking)}


def surrogate_from_dict(data: Any, where: str, ties: dict[int, nn.Parameter] | None = None) -> Surrogate:
    """The surrogate a :func:`surrogate_to_dict` entry describes; a four-part error naming ``where`` otherwise."""
    if not isinstance(data, Mapping) or not isinstance(data.get("family"), str) or not isinstance(
            data.get("params"), Mapping):
        raise _bad(where, "its surrogate is not a {family, params, ...} entry", data)
    params: dict[str, Any] = {}
    for name, value in data["params"].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            params[name] = float(value)
            continue
        if not (isinstance(value, Mapping) and "values" in value and "dtype" in value):
            raise _bad(where, f"parameter {name!r} is neither a number nor a {{values, shape, dtype}} tensor", value)
        dtype = getattr(torch, str(value["dtype"]), None)
        if not isinstance(dtype, torch.dtype):
            raise _bad(where, f"parameter {name!r} has an unknown dtype", value["dtype"])
        try:
            tensor = torch.tensor(value["values"], dtype=dtype).reshape(value.get("shape", []))
        except (TypeError, ValueError, RuntimeError) as error:  # ragged values, or a shape they do not fill
            raise _bad(where, f"parameter {name!r}'s values do not make a tensor of its shape: {error}",
                       value) from error
        if value.get("learnable"):
            tie = value.get("tie")
            shared = ties.get(tie) if ties is not None and tie is not None else None
            tensor = shared if shared is not None else nn.Parameter(tensor)
            if ties is not None and tie is not None:
                ties[tie] = tensor
        params[name] = tensor
    heaviside = data.get("heaviside", [False, False])
    try:
        return get(data["family"], **params, heaviside=Heaviside(*heaviside), spiking=bool(data.get("spiking", True)))
    except ConfigError as error:
        raise _bad(where, f"its surrogate cannot be built: {error.what}", data) from error


def spec_of(records: list[tuple[str, str, str, object, Surrogate]], builtin: bool) -> dict[str, Any]:
    """The spec of a patch: ``(path, adapter, kind, installed object, requested surrogate)`` per site."""
    ties: dict[int, int] = {}
    sites = []
    for path, adapter, kind, installed, surrogate in records:
        how = "sg_stability" if isinstance(installed, Surrogate) else \
            f"{type(installed).__module__}.{type(installed).__qualname__}"
        sites.append({"path": path, "adapter": adapter, "kind": kind, "installed": how,
                      "surrogate": surrogate_to_dict(surrogate, ties)})
    return {"format": FORMAT, "version": VERSION, "builtin": builtin, "sites": sites}


def surrogates_of(spec: Any, sites: Mapping[str, tuple[str, str]]) -> tuple[dict[str, Surrogate], bool]:
    """Check ``spec`` against the model's neuron sites (``path -> (adapter, kind)``) and build its surrogates by
    path. A four-part error names the first site of the spec the model does not have (or has as another kind)."""
    if spec.get("version") != VERSION:
        raise ConfigError("the patch spec has a version this sg_stability does not read", got=spec.get("version"),
                          allowed=f"version {VERSION} (written by handle.to_dict())",
                          fix="write the spec again with this version's handle.to_dict()")
    entries = spec.get("sites")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("the patch spec lists no sites", got=raw(repr(entries)[:200]),
                          allowed="a non-empty list of sites, as handle.to_dict() writes it",
                          fix="pass the dict that handle.to_dict() returned (e.g. read back with json.load)")
    ties: dict[int, nn.Parameter] = {}
    out: dict[str, Surrogate] = {}
    for k, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
            raise _bad(f"site {k}", "it has no path", entry)
        path = entry["path"]
        where = f"site {k} ({path or '(model)'})"
        if path not in sites:
            near = ", ".join(p or "(model)" for p in list(sites)[:6]) + (", ..." if len(sites) > 6 else "")
            raise ConfigError(f"the patch spec does not fit this model: {where} is not a neuron site of it",
                              got=raw(f"{path!r} ({entry.get('adapter')} {entry.get('kind')})"),
                              allowed=f"the model's neuron sites: {near}",
                              fix="build the model with the same architecture as the one the spec was written from "
                              "(the spec's paths are module paths), or drop that site from the spec")
        adapter, kind = sites[path]
        if (entry.get("adapter"), entry.get("kind")) not in ((adapter, kind), (None, None)):
            raise ConfigError(f"the patch spec does not fit this model: {where} is another kind of neuron",
                              got=raw(f"{entry.get('adapter')} {entry.get('kind')} in the spec, {adapter} {kind} in "
                                      "the model"),
                              allowed="the same neuron class at the same path",
                              fix="build the model with the architecture the spec was written from")
        out[path] = surrogate_from_dict(entry.get("surrogate"), where, ties)
    builtin = spec.get("builtin", True)
    return out, builtin if isinstance(builtin, bool) else True


def _bad(where: str, what: str, got: Any) -> ConfigError:
    text = repr(got)
    return ConfigError(f"the patch spec's {where} cannot be read: {what}", got=raw(text[:200] + (
        "..." if len(text) > 200 else "")), allowed="the entries handle.to_dict() writes",
        fix="pass the dict that handle.to_dict() returned, unchanged (json.dump / json.load keep it)")
