"""The state a run leaves in a model, put back afterwards: what a recorded run or a training race steps."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .plugins import save_state


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Run something that steps the model (a recorded run) and put its state back afterwards, also on failure:
    buffers (values, e.g. BatchNorm running statistics, and objects), tensors kept as plain attributes (snnTorch's
    hidden ``mem``), state a framework keeps elsewhere (its adapter's ``sg_save_state``: SpikingJelly's memories)
    and every module's train/eval flag. Parameters are not touched (initialisers write them on purpose)."""
    saved = []
    for module in model.modules():
        buffers = {k: (v, v.detach().clone() if isinstance(v, torch.Tensor) else None)
                   for k, v in module._buffers.items()}
        plain = {k: v for k, v in module.__dict__.items()
                 if not k.startswith("_") and (v is None or isinstance(v, torch.Tensor))}
        saved.append((module, buffers, plain, save_state(module), module.training))
    try:
        yield
    finally:
        with torch.no_grad():
            for module, buffers, plain, restore, training in saved:
                module.training = training
                for k, (obj, value) in buffers.items():
                    module._buffers[k] = obj
                    if isinstance(obj, torch.Tensor) and value is not None and not obj.is_meta:
                        obj.copy_(value)
                for k in [k for k, v in module.__dict__.items() if not k.startswith("_") and k not in plain
                          and isinstance(v, torch.Tensor) and k not in module._parameters]:
                    del module.__dict__[k]  # a state tensor the run added
                for k, v in plain.items():
                    module.__dict__[k] = v
                if restore is not None:
                    restore()
