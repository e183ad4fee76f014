"""One recorded graph, many surrogates: the forward pass (the spikes) does not depend on the surrogate, only the
backward does, so a recorded run's backward can be computed with any surrogate chosen after the forward pass
(:meth:`~.tracing.Trace.switched`)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..surrogates import Surrogate
from .records import Record


class _Switched(torch.autograd.Function):
    """The recording surrogate's output unchanged; its backward is ``grad * sigma'(x)`` of the surrogate the
    switch picks when the backward runs (not when the forward ran). The graph holds the switch only weakly, and
    no record: a reference from the graph back to the recorded tensors would be a cycle through autograd's
    C++ nodes that Python's garbage collector cannot see, and every recorded run would stay in memory."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, out: Tensor, switch: weakref.ref[SurrogateSwitch], path: str,
                own: Surrogate) -> Tensor:
        ctx.save_for_backward(x)
        ctx.switch, ctx.path, ctx.own = switch, path, own
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        (x,) = ctx.saved_tensors
        switch = ctx.switch()
        surrogate = switch.pick(ctx.path, ctx.own) if switch is not None else ctx.own
        wide = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        return (grad * surrogate.derivative(wide)).to(x.dtype), None, None, None, None


class SurrogateSwitch:
    """Which surrogate the recorded graph is differentiated with: ``choice`` None (each layer's recorded
    surrogate, :attr:`Record.surrogate`), one surrogate for every layer, or one per layer path (layers not named
    keep their own)."""

    def __init__(self) -> None:
        self.choice: Surrogate | Mapping[str, Surrogate] | None = None

    def pick(self, path: str, own: Surrogate) -> Surrogate:
        """The surrogate the layer at ``path``, recorded with ``own``, is differentiated with now."""
        c = self.choice
        if c is None:
            return own
        return c if isinstance(c, Surrogate) else c.get(path, own)

    def hook(self, rec: Record) -> Callable[..., Any]:
        """A forward hook for a surrogate module of ``rec``'s site that routes its backward through the switch."""
        me, path, own = weakref.ref(self), rec.path, rec.surrogate

        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            x = args[0] if args else None
            if not (torch.is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad and isinstance(out, Tensor)
                    and x.shape == out.shape):
                return None
            return _Switched.apply(x, out.detach(), me, path, own)

        return hook
