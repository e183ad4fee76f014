"""Canonical surrogate gradients: sigma'(v) = dampening * f(sharpness * v), f(0) = 1, integral f = 1.

Families: ``rectangular``, ``triangular``, ``exponential``, ``gaussian``, ``sigmoid``,
``fast_sigmoid``, ``q_pseudospike``, ``atan`` (see :func:`families`; plugins may add more).
"""

from ._base import STRICT, Heaviside, Surrogate, SurrogateDescription
from ._families import (
    ATan,
    Exponential,
    FastSigmoid,
    Gaussian,
    QPseudoSpike,
    Rectangular,
    Sigmoid,
    Triangular,
)
from ._native import from_native, read_native
from ._registry import families, family_class, get, register_family

__all__ = [
    "STRICT",
    "ATan",
    "Exponential",
    "FastSigmoid",
    "Gaussian",
    "Heaviside",
    "QPseudoSpike",
    "Rectangular",
    "Sigmoid",
    "Surrogate",
    "SurrogateDescription",
    "Triangular",
    "families",
    "family_class",
    "from_native",
    "get",
    "read_native",
    "register_family",
]
