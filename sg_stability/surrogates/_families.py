"""The eight canonical families of decisions D2 (formulas: paper.md section 2 and 3.4).

Each unit shape f has f(0) = 1 and integral 1. ``_lower_tail`` is Phi(-|u|) = 1/2 - G_1(|u|), written
without the cancellation of that difference (accurate primitives and learnable-parameter gradients); ``_moment`` is
G_m(u) = integral_0^u f(t)^m dt in closed form. Every formula is written to stay finite for
|u| up to inf: no inf - inf, no inf / inf, no 0 * inf.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from ._base import HALF_TYPES, Surrogate
from ._cuda import literal
from ._params import STRICT, Heaviside, Param

_PI = math.pi


def _signed(u: Tensor, magnitude: Tensor) -> Tensor:
    return torch.sign(u) * magnitude


class Rectangular(Surrogate):
    """f(u) = 1 if |u| < 1/2 else 0 (a boxcar of width 1/beta)."""

    family = "rectangular"

    @staticmethod
    def _unit(u: Tensor, tail: float) -> Tensor:
        return (u.abs() < 0.5).to(u.dtype)

    @staticmethod
    def _lower_tail(a: Tensor, tail: float) -> Tensor:
        return (0.5 - a).clamp_min(0.0)

    @staticmethod
    def _moment(u: Tensor, m: int, tail: float) -> Tensor:
        return u.clamp(-0.5, 0.5)

    @staticmethod
    def _hwhm_unit(tail: float) -> float:
        return 0.5

    @staticmethod
    def _lean_save(x: Tensor, beta: float) -> Tensor:
        # one byte per element instead of x; |x| beta < 1/2 rather than |x| < 1/(2 beta), which rounds to 0 in
        # float16 for large beta. A half product is rounded to half (0.5 * 0.99994 -> 0.5, outside the box), so
        # half inputs are compared in float32, as the general backward computes them
        a = x.abs()
        return (a.float() if a.dtype in HALF_TYPES else a) * beta < 0.5

    @staticmethod
    def _lean_backward(grad: Tensor, saved: Tensor, gamma: Param) -> Tensor:
        return torch.where(saved, grad * gamma, torch.zeros((), dtype=grad.dtype, device=grad.device))


    @staticmethod
    def cuda_float(x: str, p: str, gamma: float, beta: float, tail: float) -> tuple[str, str]:
        return "", f"(fabsf({x}) < {literal(0.5 / beta)} ? {literal(gamma)} : 0.0f)"


class Triangular(Surrogate):
    """f(u) = max(1 - |u|, 0) (Bellec et al. 2018 style)."""

    family = "triangular"

    @staticmethod
    def _unit(u: Tensor, tail: float) -> Tensor:
        return (1.0 - u.abs()).clamp_min(0.0)

    @staticmethod
    def _lower_tail(a: Tensor, tail: float) -> Tensor:
        return (1.0 - a.clamp_max(1.0)).square() * 0.5

    @staticmethod
    def _moment(u: Tensor, m: int, tail: float) -> Tensor:
        inside = 1.0 - u.abs().clamp_max(1.0)
        return _signed(u, (1.0 - inside ** (m + 1)) / (m + 1))

    @staticmethod
    def _hwhm_unit(tail: float) -> float:
        return 0.5


    @staticmethod
    def cuda_float(x: str, p: str, gamma: float, beta: float, tail: float) -> tuple[str, str]:
        return "", f"{literal(gamma)} * fmaxf(1.0f - {literal(beta)} * fabsf({x}), 0.0f)"


class Exponential(Surrogate):
    """f(u) = exp(-2|u|) (the q -> inf limit of the q-PseudoSpike)."""

    family = "exponential"

    @staticmethod
    def _unit(u: Tensor, tail: float) -> Tensor:
        return torch.exp(u.abs() * -2.0)

    @staticmethod
    def _lower_tail(a: Tensor, tail: float) -> Tensor:
        return torch.exp(a * -2.0) * 0.5

    @staticmethod
    def _moment(u: Tensor, m: int, tail: float) -> Tensor:
        return _signed(u, -torch.expm1(u.abs() * (-2.0 * m)) / (2.0 * m))

    @staticmethod
    def _hwhm_unit(tail: float) -> float:
        return math.log(2.0) / 2.0


    @staticmethod
    def cuda_float(x: str, p: str, gamma: float, beta: float, tail: float) -> tuple[str, str]:
        return "", f"{literal(gamma)} * expf({literal(-2.0 * beta)} * fabsf({x}))"


class Gaussian(Surrogate):
    """f(u) = exp(-pi u^2)."""

    family = "gaussian"

    @staticmethod
    def _unit(u: Tensor, tail: float) -> Tensor:
        return torch.exp(u.square() * -_PI)

    @staticmethod
    def _lower_tail(a: Tensor, tail: float) -> Tensor:
        return torch.erfc(a * math.sqrt(_PI)) * 0.5

    @staticmethod
    def _moment(u: Tensor, m: int, tail: float) -> Tensor:
        return torch.erf(u * math.sqrt(m * _PI)) / (2.0 * math.sqrt(m))

    @staticmethod
    def _hwhm_unit(tail: float) -> float:
        return math.sqrt(math.log(2.0) / _PI)


    @staticmethod
    def cuda_float(x: str, p: str, gamma: float, beta: float, tail: float) -> tuple[str, str]:
        return (f"const float {p}u = {literal(beta)} * ({x});",
                f"{literal(gamma)} * expf({literal(-_PI)} * {p}u * {p}u)")


class Sigmoid(Surrogate):
    """f(u) = sech^2(2u) = 4 s(4u) (1 - s(4u)), the derivative of the logistic sigmoid s."""

    family = "sigmoid"

    @staticmethod
    def _unit(u: Tensor, tail: float) -> Tensor:
        e = torch.exp(u.abs() * -4.0)  # in (0, 1]: no overflow for any u
        return 4.0 * e / (1.0 + e).square()

    @staticmethod
    def _lower_tail(a: Tensor, tail: float) -> Tensor:
        return torch.sigmoid(a * -4.0)

    @staticmethod
    def _moment(u: Tensor, m: int, tail: float) -> Tensor:
        # integral of sech^{2m}(2t) dt = 1/2 integral_0^{tanh 2u} (1 - w^2)^{m-1} dw
        w = torch.tanh(2.0 * u)
        total = torch.zeros_like(w)
        for k in range(m):
            total = total + math.comb(m - 1, k) * (-1) ** k * w ** (2 * k + 1) / (2 * k + 1)
        return 0.5 * total

    @staticmethod
    def _hwhm_unit(tail: float) -> float:
        return math.asinh(1.0) / 2.0


    @staticmethod
    def cuda_float(x: str, p: str, gamma: float, beta: float, tail: float) -> tuple[str, str]:
        return (f"const float {p}e = expf({literal(-4.0 * beta)} * fabsf({x}));",
                f"{literal(4.0 * gamma)} * {p}e / ((1.0f + {p}e) * (1.0f + {p}e))")


class QPseudoSpike(Surrogate):
    """f(u) = (1 + 2|u| / (q - 1))^(-q): the paper's q-PseudoSpike, tail fatness q > 1.

    q = 2 is ``fast_sigmoid``; q -> inf approaches ``exponential``; q -> 1+ is very peaked with a
    fat power-law tail. Computed in log space. Default q = 1.56 (the reference code's default).
    """

    family = "q_pseudospike"
    param_names: ClassVar[tuple[str, ...]] = ("dampening", "sharpness", "tail")

    def __init__(
        self,
        dampening: Param = 1.0,
        sharpness: Param = 1.0,
        tail: float = 1.56,
        *,
        heaviside: Heaviside = STRICT,
        spiking: bool = True,
        **unknown: Any,
    ) -> None:
        self.__dict__["tail"] = 1.56  # placeholder so tail_value works during base __init__
        super().__init__(dampening, sharpness, heaviside=heaviside, spiking=spiking, **unknown)
        self.tail = tail

    @property
    def tail_value(self) -> float:
        return self.__dict__["tail"]

    @staticmethod
    def _log_base(u: Tensor, q: float) -> Tensor:
        return torch.log1p(u.abs() * (2.0 / (q - 1.0)))

    @staticmethod
    def _unit(u: Tensor, tail: float) -> Tensor:
        return torch.exp(QPseudoSpike._log_base(u, tail) * -tail)

    @staticmethod
    def _lower_tail(a: Tensor, tail: float) -> Tensor:
        return torch.exp(QPseudoSpike._log_base(a, tail) * (1.0 - tail)) * 0.5

    @staticmethod
    def _moment(u: Tensor, m: int, tail: float) -> Tensor:
        q = tail
        rest = -torch.expm1(QPseudoSpike._log_base(u, q) * (1.0 - m * q))
        return _signed(u, rest * ((q - 1.0) / (2.0 * (m * q - 1.0))))

    @staticmethod
    def _hwhm_unit(tail: float) -> float:
        return (tail - 1.0) * (2.0 ** (1.0 / tail) - 1.0) / 2.0


    @staticmethod
    def cuda_float(x: str, p: str, gamma: float, beta: float, tail: float) -> tuple[str, str]:
        q = tail
        return "", f"{literal(gamma)} * expf({literal(-q)} * log1pf({literal(2.0 * beta / (q - 1.0))} * fabsf({x})))"


class FastSigmoid(QPseudoSpike):
    """f(u) = (1 + 2|u|)^(-2): the derivative of the fast sigmoid (SuperSpike shape), q-PseudoSpike at q = 2.

    The paper's recommended default family.
    """

    family = "fast_sigmoid"
    param_names = ("dampening", "sharpness")

    def __init__(
        self,
        dampening: Param = 1.0,
        sharpness: Param = 1.0,
        *,
        heaviside: Heaviside = STRICT,
        spiking: bool = True,
        **unknown: Any,
    ) -> None:
        Surrogate.__init__(self, dampening, sharpness, heaviside=heaviside, spiking=spiking, **unknown)

    @property
    def tail_value(self) -> float:
        return 2.0

    @staticmethod
    def _unit(u: Tensor, tail: float) -> Tensor:
        return torch.reciprocal(u.abs() * 2.0 + 1.0).square()

    @classmethod
    def _backward(cls, grad: Tensor, x: Tensor, gamma: Param, beta: Param, tail: float) -> Tensor:
        if isinstance(gamma, Tensor) or isinstance(beta, Tensor):
            return super()._backward(grad, x, gamma, beta, tail)
        # gamma / (1 + 2 beta |x|)^2 = grad / r^2 with r = (1 + 2 beta |x|) / sqrt(gamma): 4 passes
        r = x.abs().mul_(2.0 * beta / math.sqrt(gamma)).add_(1.0 / math.sqrt(gamma))
        return grad / r.square_()


    @staticmethod
    def cuda_float(x: str, p: str, gamma: float, beta: float, tail: float) -> tuple[str, str]:
        return (f"const float {p}r = 1.0f / (1.0f + {literal(2.0 * beta)} * fabsf({x}));",
                f"{literal(gamma)} * {p}r * {p}r")


class ATan(Surrogate):
    """f(u) = 1 / (1 + (pi u)^2): the derivative of the arctangent step (snnTorch's default shape)."""

    family = "atan"

    @staticmethod
    def _unit(u: Tensor, tail: float) -> Tensor:
        return torch.reciprocal((u * _PI).square() + 1.0)

    @staticmethod
    def _lower_tail(a: Tensor, tail: float) -> Tensor:
        return torch.atan(torch.reciprocal(a * _PI)) / _PI  # 1/2 - atan(pi a)/pi without the cancellation

    @staticmethod
    def _moment(u: Tensor, m: int, tail: float) -> Tensor:
        # substitute pi t = tan(theta): integral_0^u f^m = (1/pi) integral_0^theta cos^{2m-2}(phi) dphi,
        # J_n = cos^{2n-1} sin / (2n) + (2n-1)/(2n) J_{n-1}, J_0 = theta; theta is bounded, so finite.
        theta = torch.atan(u * _PI)
        cos, sin = torch.cos(theta), torch.sin(theta)
        j = theta
        for n in range(1, m):
            j = cos ** (2 * n - 1) * sin / (2 * n) + (2 * n - 1) / (2 * n) * j
        return j / _PI

    @staticmethod
    def _hwhm_unit(tail: float) -> float:
        return 1.0 / _PI

    @classmethod
    def _backward(cls, grad: Tensor, x: Tensor, gamma: Param, beta: Param, tail: float) -> Tensor:
        if isinstance(gamma, Tensor) or isinstance(beta, Tensor):
            return super()._backward(grad, x, gamma, beta, tail)
        # gamma / (1 + (pi beta x)^2) = grad / ((pi beta x / sqrt(gamma))^2 + 1 / gamma): 4 passes; scaling x before
        # squaring, the square overflows only where the exact result is below 1 / float max
        denom = x.mul(_PI * beta / math.sqrt(gamma)).square_().add_(1.0 / gamma)
        return grad / denom


    @staticmethod
    def cuda_float(x: str, p: str, gamma: float, beta: float, tail: float) -> tuple[str, str]:
        return (f"const float {p}u = {literal(_PI * beta)} * ({x});",
                f"{literal(gamma)} / (1.0f + {p}u * {p}u)")


BUILTIN_FAMILIES: tuple[type[Surrogate], ...] = (
    Rectangular, Triangular, Exponential, Gaussian, Sigmoid, FastSigmoid, QPseudoSpike, ATan,
)

ALIASES: dict[str, str] = {
    "rect": "rectangular",
    "boxcar": "rectangular",
    "triangle": "triangular",
    "exp": "exponential",
    "gauss": "gaussian",
    "dsigmoid": "sigmoid",
    "fastsigmoid": "fast_sigmoid",
    "superspike": "fast_sigmoid",
    "qpseudospike": "q_pseudospike",
    "q_ps": "q_pseudospike",
    "qps": "q_pseudospike",
    "arctan": "atan",
}

