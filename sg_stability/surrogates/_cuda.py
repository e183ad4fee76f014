"""CUDA C source for the canonical surrogates (SpikingJelly's CuPy kernels paste it into their loops).

Each family provides ``cuda_float(x, prefix, gamma, beta, tail) -> (statements, expression)`` for one
``float`` value. ``half2`` code widens both lanes to float, evaluates the same expression and packs the
result back, the same float32 computation the torch backward does for half types.

:class:`CudaCodegen` is what ``surrogate.cuda_codes`` / ``surrogate.cuda_code`` return: a callable with
SpikingJelly's calling conventions that compares equal exactly when it would emit the same code. SpikingJelly
0.0.0.0.14 decides whether to rebuild a cached kernel by comparing these callables, so changing a
surrogate's parameters in place makes it rebuild instead of keeping stale constants.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from .._errors import ConfigError, raw


class CodeSource(Protocol):
    """What the code generator reads of a surrogate (:class:`~._base.Surrogate` provides it)."""

    family: ClassVar[str]

    def params(self) -> Mapping[str, Any]: ...

    @property
    def tail_value(self) -> float: ...

    @staticmethod
    def cuda_float(x: str, prefix: str, gamma: float, beta: float, tail: float) -> tuple[str, str]: ...


def literal(value: float) -> str:
    """A C float literal that round-trips ``value`` (``1.0`` -> ``1.000000000e+00f``)."""
    return f"{float(value):.9e}f"


def _scalar_params(surrogate: CodeSource) -> tuple[float, ...] | str:
    values = []
    for name, value in surrogate.params().items():
        if not isinstance(value, float):
            return f"{name} is a tensor"
        values.append(value)
    return tuple(values)


class CudaCodegen:
    """Emits CUDA for one surrogate. ``legacy=False``: ``(y, x, dtype in {'float', 'half2'})`` with ``y``
    the declared target (``'const float grad_s_to_h'``); ``legacy=True``: ``(x, y, dtype in {'fp32',
    'fp16'})`` where the snippet declares ``y`` itself (SpikingJelly's older QIF/EIF/Izhikevich kernels)."""

    def __init__(self, surrogate: CodeSource, legacy: bool) -> None:
        self._family = type(surrogate)
        self._params = _scalar_params(surrogate)
        self._tail = surrogate.tail_value
        self._site = getattr(surrogate, "site_path", None)
        self._legacy = legacy

    def _key(self) -> tuple[object, ...]:
        return (self._family, self._params, self._tail, self._legacy)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CudaCodegen) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"CudaCodegen({self._family.family}, {self._params})"

    def __call__(self, *args: str, **kwargs: str) -> str:
        names = ("x", "y", "dtype") if self._legacy else ("y", "x", "dtype")
        bound = dict(zip(names, args, strict=False)) | kwargs
        x, y, dtype = bound["x"], bound["y"], bound.get("dtype", "fp32" if self._legacy else "float")
        if self._legacy:
            dtype = {"fp32": "float", "fp16": "half2"}.get(dtype, dtype)
            y = f"const {dtype} {y}"
        return self.emit(y, x, dtype)

    def emit(self, y: str, x: str, dtype: str) -> str:
        if isinstance(self._params, str):
            at = f" at {self._site!r}" if self._site else ""
            raise ConfigError(
                f"{self._family.family}{at}: per-neuron or learnable parameters cannot be baked into CuPy code "
                f"({self._params})",
                got=raw(self._params),
                allowed="Python float dampening and sharpness when the neuron uses backend='cupy'",
                fix="pass scalar parameters, or run this neuron with backend='torch'",
            )
        gamma, beta = self._params[0], self._params[1]
        if dtype == "float":
            pre, expr = self._family.cuda_float(x, "sgstab_", gamma, beta, self._tail)
            return f"{pre}{y} = {expr};"
        if dtype == "half2":
            lo_pre, lo = self._family.cuda_float("sgstab_x2.x", "sgstab_lo_", gamma, beta, self._tail)
            hi_pre, hi = self._family.cuda_float("sgstab_x2.y", "sgstab_hi_", gamma, beta, self._tail)
            return (f"const float2 sgstab_x2 = __half22float2({x});{lo_pre}{hi_pre}"
                    f"{y} = __floats2half2_rn({lo}, {hi});")
        raise ConfigError(
            f"{self._family.family}: no CUDA code for dtype {dtype!r}",
            got=dtype,
            allowed="'float' or 'half2' (legacy: 'fp32' or 'fp16')",
            fix="this is a SpikingJelly kernel configuration sg_stability does not support; use backend='torch'",
        )
