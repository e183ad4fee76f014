"""A minimal recurrent LIF layer that follows the analyzer's model equations exactly.

It is the ground truth the gain estimates are validated against (``benchmarks/validate_stability.py``,
``tests/test_stability.py``): its one-step transition can be differentiated with autograd directly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..stability._checks import check_reset
from ..surrogates import Surrogate, get


class RecurrentLIF(nn.Module):
    """``y_{t+1} = alpha y_t + W_in z_{t+1} + W_rec s_t - reset``, ``s_t = H(y_t - theta)`` (see ``_conditions``).

    ``recurrent=False`` drops ``W_rec`` (a feed-forward LIF layer). Weights are Glorot-uniform times
    ``weight_scale`` (recurrent diagonal zeroed). ``reset_grad`` differentiates the reset term.
    """

    def __init__(self, n_in: int, n_rec: int, *, leak: float = 0.9, threshold: float = 1.0,
                 reset: str = "subtract", reset_grad: bool = False, recurrent: bool = True,
                 surrogate: str | Surrogate = "fast_sigmoid", weight_scale: float = 1.0,
                 input_scale: float = 1.0) -> None:
        super().__init__()
        self.leak, self.threshold = float(leak), float(threshold)
        self.reset, self.reset_grad = check_reset(reset), bool(reset_grad)
        self.w_in = nn.Linear(n_in, n_rec, bias=False)
        self.w_rec = nn.Linear(n_rec, n_rec, bias=False) if recurrent else None
        with torch.no_grad():
            bound = input_scale * math.sqrt(6.0 / (n_in + n_rec))
            self.w_in.weight.uniform_(-bound, bound)
            if self.w_rec is not None:
                bound = weight_scale * math.sqrt(6.0 / (2 * n_rec))
                self.w_rec.weight.uniform_(-bound, bound).fill_diagonal_(0.0)
        self.surrogate = get(surrogate)

    def step(self, y: Tensor, current: Tensor) -> Tensor:
        """One transition ``y_t -> y_{t+1}`` given the feed-forward current ``W_in z_{t+1}``."""
        s = self.surrogate(y - self.threshold)
        r = s if self.reset_grad else s.detach()
        recurrent = self.w_rec(s) if self.w_rec is not None else 0.0
        if self.reset == "subtract":
            return self.leak * y + current + recurrent - self.threshold * r
        if self.reset == "multiplicative":
            return self.leak * y * (1.0 - r) + current + recurrent
        if self.reset == "zero":
            return (self.leak * y + current + recurrent) * (1.0 - r)
        return self.leak * y + current + recurrent

    def forward(self, z: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``z``: ``[T, batch, n_in]``. Returns spikes ``[T, batch, n]`` and the membranes ``y_t`` (graph kept)."""
        currents = self.w_in(z)
        y = torch.zeros_like(currents[0])
        membranes, spikes = [], []
        for t in range(z.shape[0]):
            y = self.step(y, currents[t]) if t else currents[0]
            membranes.append(y)
            spikes.append((y - self.threshold > 0).to(z.dtype))
        return torch.stack(spikes), membranes
