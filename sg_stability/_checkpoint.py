"""``sg.load_state_dict``: load a checkpoint of a patched model, re-patching it from the saved spec first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ._errors import ConfigError, raw
from ._handle import PatchHandle
from ._patching import patch, require_module
from ._spec import is_spec
from ._validate import flag
from .surrogates import families, get

#: the names a surrogate's canonical parameters have in a state_dict key (``lif1.spike_grad.dampening``)
_PARAMS = frozenset(name for family in families() for name in type(get(family)).param_names)


def load_state_dict(model: nn.Module, state_dict: Mapping[str, Any], spec: Mapping[str, Any] | None = None, *,
                    strict: bool = True) -> PatchHandle | None:
    """Load ``state_dict`` into ``model``, patching it from ``spec`` (:meth:`PatchHandle.to_dict`) first.

    The checkpoint recipe: save ``{"model": model.state_dict(), "sg_spec": handle.to_dict()}``; to resume,
    build the model and call ``handle = sg.load_state_dict(model, ckpt["model"], ckpt["sg_spec"])``. A surrogate
    with learnable parameters adds them to the ``state_dict`` (``lif1.spike_grad.dampening``): the model must be
    patched before they can load, and without ``spec`` that is a four-part error saying so, instead of torch's
    bare "Unexpected key(s)" (``strict=False`` would drop them silently). The keys are compared before anything
    is written, so a checkpoint that does not fit leaves the model as it was (and unpatched). Returns the patch's
    handle, or None without ``spec``.
    """
    require_module(model, "load_state_dict")
    strict = flag(strict, "strict", where="load_state_dict")
    if not isinstance(state_dict, Mapping):
        raise ConfigError("load_state_dict: state_dict must be a mapping of names to tensors",
                          got=raw(type(state_dict).__name__), allowed="model.state_dict() as saved",
                          fix='pass the saved state dict, e.g. torch.load(path)["model"]')
    if spec is not None and not is_spec(spec):
        raise ConfigError("load_state_dict: spec is not a patch spec", got=raw(repr(spec)[:200]),
                          allowed="the dict handle.to_dict() returned (or None)",
                          fix='save handle.to_dict() next to the state_dict and pass it back: spec=ckpt["sg_spec"]')
    handle = patch(model, spec) if spec is not None else None
    try:
        current = model.state_dict()
        own = set(current)
        wrong = [f"{k}: {tuple(v.shape)} in the checkpoint, {tuple(current[k].shape)} in the model"
                 for k, v in state_dict.items() if k in own and hasattr(v, "shape") and v.shape != current[k].shape]
        if wrong:
            raise ConfigError("load_state_dict: tensors of the checkpoint have other shapes than the model's; "
                              "nothing was loaded", got=raw("; ".join(wrong[:3])),
                              allowed="a checkpoint saved from a model of the same architecture and sizes",
                              fix="build the model with the sizes the checkpoint was saved with")
        unexpected = [k for k in state_dict if k not in own]
        missing = [k for k in own if k not in state_dict]
        surrogate_keys = [k for k in unexpected if k.rsplit(".", 1)[-1] in _PARAMS]
        if surrogate_keys and handle is None:
            raise ConfigError("load_state_dict: the checkpoint holds learnable surrogate parameters, and the model "
                              "is not patched to receive them", got=raw(", ".join(surrogate_keys[:4])
                                                                        + (", ..." if len(surrogate_keys) > 4 else "")),
                              allowed="a model patched with the same surrogates first",
                              fix="pass the spec saved with the checkpoint: sg.load_state_dict(model, state_dict, "
                              "spec) (strict=False would silently drop the learned surrogate)")
        if strict and (unexpected or missing):
            raise ConfigError("load_state_dict: the checkpoint does not fit the model; nothing was loaded",
                              got=raw(f"unexpected keys {unexpected[:4]}, missing keys {missing[:4]}"),
                              allowed="the keys of model.state_dict()" + (" as patched from the spec"
                                                                           if handle is not None else ""),
                              fix="build the model with the architecture the checkpoint was saved from, or pass "
                              "strict=False to load the keys that fit")
        model.load_state_dict(state_dict, strict=strict)
    except BaseException:
        if handle is not None:
            handle.remove()
        raise
    return handle
