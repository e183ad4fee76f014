"""torch.compile check shared by the adapter suites."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn


def assert_compiled_gradients_equal(model: nn.Module, loss: Callable[[nn.Module], torch.Tensor]) -> None:
    """``loss(module)`` runs ``module`` and returns a scalar. The parameter gradients through
    ``torch.compile(model, backend="aot_eager")`` must equal the eager ones."""
    loss(model).backward()
    eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss(torch.compile(model, backend="aot_eager")).backward()
    for g, p in zip(eager, model.parameters(), strict=True):
        assert torch.allclose(g, p.grad, rtol=1e-6, atol=1e-7)
