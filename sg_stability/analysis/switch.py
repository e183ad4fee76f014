"""One recorded graph, many surrogates: the forward pass (the spikes) does not depend on the surrogate, only the
backward does, so a recorded run's backward can be computed with any surrogate chosen after the forward pass
(:meth:`~.tracing.Trace.switched`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..surrogates import Surrogate

if TYPE_CHECKING:
    from .tracing import Record


class _Switched(torch.autograd.Function):
    """The recording surrogate's output unchanged; its backward is ``grad * sigma'(x)`` of the surrogate the
    switch picks when the backward runs (not when the forward ran)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, out: Tensor, pick: Callable[[], Surrogate]) -> Tensor:
        ctx.save_for_backward(x)
        ctx.pick = pick
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        (x,) = ctx.saved_tensors
        wide = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        return (grad * ctx.pick().derivative(wide)).to(x.dtype), None, None


class SurrogateSwitch:
    """Which surrogate the recorded graph is differentiated with: ``choice`` None (each layer's recorded
    surrogate, :attr:`Record.surrogate`), one surrogate for every layer, or one per layer path (layers not named
    keep their own)."""

    def __init__(self) -> None:
        self.choice: Surrogate | Mapping[str, Surrogate] | None = None

    def pick(self, rec: Record) -> Surrogate:
        c = self.choice
        if c is None:
            return rec.surrogate
        return c if isinstance(c, Surrogate) else c.get(rec.path, rec.surrogate)

    def hook(self, rec: Record) -> Callable[..., Any]:
        """A forward hook for a surrogate module of ``rec``'s site that routes its backward through the switch."""
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            x = args[0] if args else None
            if not (torch.is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad and isinstance(out, Tensor)
                    and x.shape == out.shape):
                return None
            return _Switched.apply(x, out.detach(), lambda: self.pick(rec))

        return hook
