"""Canonical surrogate gradients: sigma'(v) = dampening * f(sharpness * v), f(0) = 1, integral f = 1.

Families: ``rectangular``, ``triangular``, ``exponential``, ``gaussian``, ``sigmoid``,
``fast_sigmoid``, ``q_pseudospike``, ``atan`` (see :func:`families`; plugins may add more).
"""

from ._base import Surrogate, clamp_learnable_
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
from ._params import RANGES, STRICT, Heaviside, SurrogateDescription
from ._registry import families, family_class, from_native, get, register_family

__all__ = [
    "RANGES",
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
    "clamp_learnable_",
    "families",
    "family_class",
    "from_native",
    "get",
    "register_family",
]

