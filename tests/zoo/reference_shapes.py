"""Surrogate derivatives written from their definitions, independently of the package's code: the reference that
framework kernels, generated CUDA and installed surrogates are checked against.

Every family is ``sigma'(v) = gamma * f(beta * v)`` with ``f(0) = 1`` and unit area (decisions D2); ``f`` below is
each family's textbook form, evaluated element by element with Python's ``math`` in double precision.
"""

from __future__ import annotations

import math

import torch

UNIT_SHAPES = {
    "rectangular": lambda u, q: 1.0 if abs(u) < 0.5 else 0.0,
    "triangular": lambda u, q: max(0.0, 1.0 - abs(u)),
    "exponential": lambda u, q: math.exp(-2.0 * abs(u)),
    "gaussian": lambda u, q: math.exp(-math.pi * u * u),
    "sigmoid": lambda u, q: 1.0 / math.cosh(2.0 * u) ** 2 if abs(u) < 300 else 0.0,  # 4 s(4u)(1 - s(4u))
    "fast_sigmoid": lambda u, q: 1.0 / (1.0 + 2.0 * abs(u)) ** 2,
    "q_pseudospike": lambda u, q: (1.0 + 2.0 * abs(u) / (q - 1.0)) ** -q,
    "atan": lambda u, q: 1.0 / (1.0 + (math.pi * u) ** 2),
}


def derivative(family: str, v: torch.Tensor, dampening: float = 1.0, sharpness: float = 1.0,
               tail: float = 2.0) -> torch.Tensor:
    """``dampening * f(sharpness * v)`` for every element of ``v``, in float64."""
    f = UNIT_SHAPES[family]
    values = [dampening * f(sharpness * float(x), tail) for x in v.double().flatten().tolist()]
    return torch.tensor(values, dtype=torch.float64).reshape(v.shape)
