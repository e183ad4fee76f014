"""Gradients of a recorded run with respect to its recorded tensors: one backward pass per request, or a stack of
random probes in batched backward passes."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .records import StepRef


def grads(loss: Tensor, refs: list[StepRef]) -> list[Tensor | None]:
    """``d loss / d value(ref)`` for each ref (None where the loss does not depend on it)."""
    return _per_ref(refs, lambda ts: torch.autograd.grad(loss, ts, retain_graph=True, allow_unused=True), False)


#: probes differentiated together hold this many bytes of gradients of the requested tensors at most (the
#: backward's intermediate gradients scale alike): more probes at once would trade memory for speed on a big model
PROBE_BYTES = 1 << 30


def probe_grads(outputs: list[Tensor], draws: list[Tensor], refs: list[StepRef]) -> list[Tensor | None]:
    """``d <outputs, u_p> / d value(ref)`` for a stack of probes at once: ``draws[i]`` is ``[P, *outputs[i].shape]``
    and each result ``[P, *value(ref).shape]`` (None where the outputs do not depend on it). Batched backward
    passes (``is_grads_batched``: vmap over the backward graph, several times faster than P passes on a conv net),
    as many probes per pass as :data:`PROBE_BYTES` allows; where an operation in the graph cannot be batched, or
    the probes do not fit in memory together, one pass per probe gives the same result."""
    def one_pass(tensors: list[Tensor], chunk: list[Tensor]) -> Sequence[Tensor | None]:
        try:
            with warnings.catch_warnings():  # an operation without a batching rule runs as a loop: still correct
                warnings.filterwarnings("ignore", message=".*batching rule.*")
                return torch.autograd.grad(outputs, tensors, chunk, retain_graph=True, allow_unused=True,
                                           is_grads_batched=True)
        except (RuntimeError, NotImplementedError):  # torch.OutOfMemoryError is a RuntimeError too
            per_probe = [torch.autograd.grad(outputs, tensors, [d[p] for d in chunk], retain_graph=True,
                                             allow_unused=True) for p in range(chunk[0].shape[0])]
            return [None if gs[0] is None else torch.stack(gs) for gs in zip(*per_probe, strict=True)]

    def differentiate(tensors: list[Tensor]) -> Sequence[Tensor | None]:
        size = sum(t.numel() * t.element_size() for t in tensors)
        per = max(1, PROBE_BYTES // max(size, 1))
        parts = [one_pass(tensors, [d[k:k + per] for d in draws]) for k in range(0, draws[0].shape[0], per)]
        return [None if gs[0] is None else torch.cat(gs) if len(gs) > 1 else gs[0] for gs in zip(*parts, strict=True)]

    return _per_ref(refs, differentiate, True)


def _per_ref(refs: list[StepRef], differentiate: Callable[[list[Tensor]], Sequence[Tensor | None]],
             batched: bool) -> list[Tensor | None]:
    tensors = list({id(r[0]): r[0] for r in refs}.values())
    usable = [t for t in tensors if t.requires_grad]
    got = dict(zip((id(t) for t in usable), differentiate(usable) if usable else [], strict=True))
    out: list[Tensor | None] = []
    for tensor, index in refs:
        g = got.get(id(tensor))
        out.append(g if g is None or index is None else g[:, index] if batched else g[index])
    return out
