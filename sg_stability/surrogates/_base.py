"""The canonical surrogate gradient: sigma'(v) = dampening * f(sharpness * v).

Every family's unit shape f has f(0) = 1 and integral 1, so every surrogate has peak ``dampening``
(gamma) and area ``dampening / sharpness`` (gamma / beta) -- the parametrisation of Herranz-Celotti &
Rouat, "Stabilizing Spiking Neuron Training" (arXiv 2202.00282), which makes shapes comparable.

A :class:`Surrogate` is an ``nn.Module`` (SpikingJelly requires one; snnTorch accepts any callable).
Its forward is the Heaviside step in the convention of the framework it is installed in, and its
backward is the canonical derivative. With ``spiking=False`` the forward is the smooth primitive
sigma(v) = (gamma / beta) * Phi(beta * v), Phi being the CDF of f, and the backward is the same.

Gradients with respect to learnable ``dampening``/``sharpness`` are those of the primitive, i.e. the
surrogate treats the spike as sigma(v) for every gradient it defines (the convention of learnable
surrogate methods); ``gradcheck`` on the smooth mode verifies all three gradients.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from .._errors import ConfigError, raw
from .._validate import flag
from ._cuda import CudaCodegen
from ._params import (
    RANGES,
    STRICT,
    Heaviside,
    Param,
    SurrogateDescription,
    check_broadcast,
    check_learnable,
    format_param,
    reject_unknown,
    validated,
)

HALF_TYPES = (torch.float16, torch.bfloat16)  # computed in float32 wherever rounding or overflow would bite


def _make_function(family: type[Surrogate]) -> type[torch.autograd.Function]:
    """One autograd Function per family: forward is the Heaviside step (or the primitive), backward
    the canonical derivative. Only x is saved (plus tensor parameters, which already exist)."""

    class _SurrogateFunction(torch.autograd.Function):
        @staticmethod
        def forward(
            ctx: Any,
            x: Tensor,
            gamma: Param,
            beta: Param,
            tail: float,
            inclusive: bool,
            float32: bool,
            spiking: bool,
        ) -> Tensor:
            lean = spiking and family._lean_save is not None and not isinstance(gamma, Tensor) \
                and not isinstance(beta, Tensor)
            if lean:
                ctx.save_for_backward(family._lean_save(x, beta), None, None)
            else:
                ctx.save_for_backward(
                    x, gamma if isinstance(gamma, Tensor) else None, beta if isinstance(beta, Tensor) else None
                )
            ctx.lean = lean
            ctx.scalars = (gamma if not isinstance(gamma, Tensor) else None,
                           beta if not isinstance(beta, Tensor) else None, tail)
            if spiking:
                return Heaviside(inclusive, float32)(x)
            with torch.no_grad():
                return family._primitive(x, gamma, beta, tail)

        @staticmethod
        def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
            saved, gamma_t, beta_t = ctx.saved_tensors
            gamma_s, beta_s, tail = ctx.scalars
            gamma = gamma_t if gamma_t is not None else gamma_s
            beta = beta_t if beta_t is not None else beta_s
            if ctx.lean:
                return family._lean_backward(grad, saved, gamma), None, None, None, None, None, None
            x = saved
            in_dtype = x.dtype
            if in_dtype in HALF_TYPES:  # compute half types in float32: no overflow in x**2 etc.
                x, grad = x.float(), grad.float()
            elif grad.dtype != x.dtype:
                grad = grad.to(x.dtype)
            grad_x = grad_gamma = grad_beta = None
            if ctx.needs_input_grad[0]:
                grad_x = family._backward(grad, x, gamma, beta, tail).to(in_dtype)
            if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
                cdf = family._cdf(beta * x, tail)
                if ctx.needs_input_grad[1]:
                    assert isinstance(gamma, Tensor)
                    grad_gamma = (grad * cdf / beta).sum_to_size(gamma.shape).to(gamma.dtype)
                if ctx.needs_input_grad[2]:
                    assert isinstance(beta, Tensor)
                    slope = x * family._derivative(x, 1.0, beta, tail)
                    slope = torch.where(slope.isnan(), torch.zeros_like(slope), slope)  # inf * 0 far out
                    d_beta = gamma * (slope / beta - cdf / (beta * beta))
                    grad_beta = (grad * d_beta).sum_to_size(beta.shape).to(beta.dtype)
            return grad_x, grad_gamma, grad_beta, None, None, None, None

    _SurrogateFunction.__name__ = _SurrogateFunction.__qualname__ = f"{family.__name__}Function"
    return _SurrogateFunction


class Surrogate(nn.Module):
    """Base class of the canonical surrogate families.

    Subclasses set ``family`` and implement the unit shape as static methods of
    ``(u, tail)``: ``_unit`` (f), ``_lower_tail`` (Phi(-|u|) = 1/2 - G_1(|u|)), ``_moment`` (G_m) and
    ``_hwhm_unit``. ``_derivative``/``_backward`` may be overridden with fused forms.
    """

    family: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ("dampening", "sharpness")
    _function: ClassVar[type[torch.autograd.Function]]
    # Families whose backward needs only a boolean mask of x may save that instead of x.
    _lean_save: ClassVar[Any] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family:
            cls._function = _make_function(cls)

    def __init__(
        self,
        dampening: Param = 1.0,
        sharpness: Param = 1.0,
        *,
        heaviside: Heaviside = STRICT,
        spiking: bool = True,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            reject_unknown(type(self).__name__, type(self).param_names, unknown)
        if not self.family:
            raise ConfigError(
                "Surrogate is an abstract base class",
                got=raw(type(self).__name__),
                allowed="one of the families in sg_stability.surrogates.families()",
                fix='use e.g. sg.surrogates.get("fast_sigmoid") or subclass Surrogate with a family name',
            )
        if not (isinstance(heaviside, tuple) and len(heaviside) == 2 and all(isinstance(b, bool) for b in heaviside)):
            raise ConfigError(f"{self.family}: heaviside must be a Heaviside convention", got=heaviside,
                              allowed="sg_stability.surrogates.Heaviside(inclusive: bool, float32: bool)",
                              fix="leave it out (v > 0) or pass Heaviside(inclusive=True) for v >= 0")
        flag(spiking, "spiking", where=self.family)
        self.heaviside = Heaviside(*heaviside)
        #: the neuron site it is installed at (set by the adapter that installs it; named in errors)
        self.site_path: str | None = None
        self.spiking = bool(spiking)
        self.dampening = dampening
        self.sharpness = sharpness

    # -- parameters -------------------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self).param_names:
            self._store_param(name, value)
        else:
            super().__setattr__(name, value)

    def _store_param(self, name: str, value: Any) -> None:
        value = validated(type(self).family or type(self).__name__, name, value)
        for registry in (self._parameters, self._buffers, self.__dict__):
            registry.pop(name, None)
        self._non_persistent_buffers_set.discard(name)
        if isinstance(value, nn.Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Tensor):
            # Not persistent: a patched model's state_dict keeps the keys of the unpatched one.
            self.register_buffer(name, value, persistent=False)
        else:
            object.__setattr__(self, name, value)

    def params(self) -> dict[str, Param]:
        """The canonical parameters by name (floats or the stored tensors themselves)."""
        return {name: getattr(self, name) for name in type(self).param_names}

    def replace(self, **changes: Any) -> Surrogate:
        """A new surrogate of the same family with some parameters or options changed.

        Tensor parameters that are not changed are shared by reference (a learnable ``nn.Parameter``
        stays the same object, so an optimizer that holds it keeps training it).
        """
        kwargs: dict[str, Any] = {**self.params(), "heaviside": self.heaviside, "spiking": self.spiking}
        kwargs.update(changes)
        return type(self)(**kwargs)

    @property
    def tail_value(self) -> float:
        return 0.0

    def clamp_(self) -> Surrogate:
        """Clamp learnable (tensor) parameters into their valid range in place (:data:`RANGES`); call it after
        an optimizer step that may push them out (a dampening below 0 has no meaning)."""
        with torch.no_grad():
            for name in ("dampening", "sharpness"):
                p = getattr(self, name)
                if isinstance(p, Tensor):
                    p.nan_to_num_(nan=RANGES[name][0]).clamp_(*RANGES[name])
        return self

    # -- the module -------------------------------------------------------------------------------------
    def __call__(self, x: Tensor) -> Tensor:
        # not inherited: exporters that replace nn.Module.__call__ to trace (nirtorch's GraphTracer, behind snnTorch's
        # and Norse's NIR export) would record the surrogate as a node of its own. Hooks still run.
        return cast(Tensor, self._wrapped_call_impl(x))

    def forward(self, x: Tensor) -> Tensor:
        gamma, beta = self.dampening, self.sharpness
        for name, p in (("dampening", gamma), ("sharpness", beta)):
            if isinstance(p, Tensor) and p.dim() > 0 and p.device != x.device:
                raise ConfigError(
                    f"{self.family}: per-neuron {name} is on {p.device} but the membrane is on {x.device}"
                    + (f" at neuron site {self.site_path!r}" if self.site_path else ""),
                    got=raw(f"{name} on {p.device}, input on {x.device}"), allowed="the same device",
                    fix="patch before model.to(device) (installed surrogates move with the model), or move "
                    f"the tensor: {name}=t.to(device)")
            if isinstance(p, Tensor) and p.dim() > 0 and p.numel() > 1:
                check_broadcast(self.family, self.site_path, name, p, x)
            # the range check reads from the device: in a compiled graph it is left to clamp_learnable_ (no breaks)
            if isinstance(p, nn.Parameter) and p.requires_grad and not torch.compiler.is_compiling():
                check_learnable(self.family, self.site_path, name, p)
        return self._function.apply(
            x, gamma, beta, self.tail_value, self.heaviside.inclusive, self.heaviside.float32, self.spiking
        )

    # -- CUDA source (SpikingJelly's CuPy backend) -----------------------------------------------------
    @property
    def cuda_codes(self) -> CudaCodegen:
        """``cuda_codes(y, x, dtype)`` for SpikingJelly's CuPy kernels, ``dtype`` in ``{'float', 'half2'}``."""
        return CudaCodegen(self, legacy=False)

    @property
    def cuda_code(self) -> CudaCodegen:
        """The older ``cuda_code(x, y, dtype)`` (``'fp32'``/``'fp16'``) of SpikingJelly's QIF/EIF/Izhikevich kernels."""
        return CudaCodegen(self, legacy=True)

    def set_spiking_mode(self, spiking: bool) -> None:
        """SpikingJelly's switch: ``False`` makes the forward the smooth primitive (ANN mode)."""
        self.spiking = bool(spiking)

    # -- pure functions of v (no autograd Function; for analysis and tests) ------------------------
    def derivative(self, v: Tensor) -> Tensor:
        """sigma'(v) = dampening * f(sharpness * v)."""
        return type(self)._derivative(v, self.dampening, self.sharpness, self.tail_value)

    def primitive(self, v: Tensor) -> Tensor:
        """sigma(v) = (dampening / sharpness) * Phi(sharpness * v), the smooth step whose slope is sigma'."""
        return type(self)._primitive(v, self.dampening, self.sharpness, self.tail_value)

    def unit_shape(self, u: Tensor) -> Tensor:
        """f(u), with f(0) = 1 and integral 1."""
        return type(self)._unit(u, self.tail_value)

    def moment(self, u: Tensor | float, m: int = 2) -> Tensor:
        """G_m(u) = integral from 0 to u of f(t)**m dt (odd in u), closed form (paper.md section 3.4)."""
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ConfigError(
                "moment order m must be a positive integer",
                got=m,
                allowed="m = 1, 2, 3, ...",
                fix="pass m=1 for the mean, m=2 for the mean square",
            )
        u_t = torch.as_tensor(u, dtype=torch.float64 if not isinstance(u, Tensor) else None)
        return type(self)._moment(u_t, m, self.tail_value)

    def squared_integral(self) -> float:
        """c_f = integral of f(u)**2 du (= 2 G_2(inf))."""
        return float(2.0 * self.moment(math.inf, 2))

    def describe(self) -> SurrogateDescription:
        hwhm_unit = type(self)._hwhm_unit(self.tail_value)
        return SurrogateDescription(
            family=self.family,
            peak=self.dampening,
            hwhm=hwhm_unit / self.sharpness,
            area=self.dampening / self.sharpness,
            tail=self.tail_value if "tail" in type(self).param_names else None,
        )

    def extra_repr(self) -> str:
        parts = [f"{name}={format_param(value)}" for name, value in self.params().items()]
        if self.heaviside != STRICT:
            parts.append(f"heaviside={'v>=0' if self.heaviside.inclusive else 'v>0'}"
                         f"{',float32' if self.heaviside.float32 else ''}")
        if not self.spiking:
            parts.append("spiking=False")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # -- family math (static; gamma/beta are floats or broadcastable tensors) ----------------------------
    @staticmethod
    def _unit(u: Tensor, tail: float) -> Tensor:
        raise NotImplementedError  # pragma: no cover - every registered family overrides it

    @staticmethod
    def _lower_tail(a: Tensor, tail: float) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    @classmethod
    def _cdf(cls, u: Tensor, tail: float) -> Tensor:
        """Phi(u) from the lower tail Phi(-|u|), so that Phi is accurate where it is small."""
        low = cls._lower_tail(u.abs(), tail)
        return torch.where(u < 0, low, 1.0 - low)

    @staticmethod
    def _moment(u: Tensor, m: int, tail: float) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    @staticmethod
    def _hwhm_unit(tail: float) -> float:
        raise NotImplementedError  # pragma: no cover

    @classmethod
    def _derivative(cls, x: Tensor, gamma: Param, beta: Param, tail: float) -> Tensor:
        return cls._unit(x * beta, tail) * gamma

    @classmethod
    def _backward(cls, grad: Tensor, x: Tensor, gamma: Param, beta: Param, tail: float) -> Tensor:
        return cls._derivative(x, gamma, beta, tail).mul_(grad)

    @classmethod
    def _primitive(cls, x: Tensor, gamma: Param, beta: Param, tail: float) -> Tensor:
        return cls._cdf(x * beta, tail) * (gamma / beta)

    @staticmethod
    def _lean_backward(grad: Tensor, saved: Tensor, gamma: Param) -> Tensor:
        raise NotImplementedError  # pragma: no cover - only families with _lean_save define it

    @staticmethod
    def cuda_float(x: str, p: str, gamma: float, beta: float, tail: float) -> tuple[str, str]:
        """C statements (temporaries prefixed ``p``) and an expression for gamma * f(beta * x), in float."""
        raise NotImplementedError  # pragma: no cover


def clamp_learnable_(model: nn.Module) -> int:
    """Clamp the learnable parameters of every sg_stability surrogate in ``model`` into their valid range, in
    place (call after ``optimizer.step()``). Returns how many surrogates were visited."""
    surrogates = [m for m in model.modules() if isinstance(m, Surrogate)]
    for s in surrogates:
        s.clamp_()
    return len(surrogates)
