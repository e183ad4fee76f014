"""A time-discretised quadratic integrate-and-fire neuron that fits into snnTorch-, SpikingJelly- and Norse-style
models, with one of sg_stability's surrogates."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError
from .._validate import flag, option, real
from ..surrogates import Surrogate, get

STEP_MODES = ("single", "multi")


class QIF(nn.Module):
    """Quadratic integrate-and-fire, Euler-discretised with step ``dt``::

        v <- v + dt / tau * (v^2 + input_scale * x - rheobase)        (clamped at v_min = -tau / (2 dt))
        s  = H(v - v_peak)                                             (the surrogate's input: v - v_peak)
        v <- v_reset where s, else v                                   (hard reset; differentiated unless detach_reset)

    ``v`` is measured from the neuron's bifurcation point: without input (and ``rheobase`` 0) ``v = 0`` is a
    half-stable rest; a positive ``rheobase`` makes it excitable, at rest at ``-sqrt(rheobase)`` with a threshold at
    ``+sqrt(rheobase)``. Its step-to-step gain ``dv'/dv = 1 + 2 v dt / tau`` depends on the membrane: above ``v = 0``
    the membrane amplifies itself, which is how a QIF spike starts. The lower clamp keeps the Euler map increasing
    (below it, a very negative membrane would overshoot into a spike).

    Three ways to run it, as each framework does:

    - snnTorch style: ``v = qif.init_state()`` before the time loop, then ``spk, v = qif(x[t], v)``;
    - Norse style: ``z, state = qif(x[t], state)`` with ``state=None`` at the first step;
    - SpikingJelly style: ``QIF(hidden=True)`` keeps its membrane between calls and returns spikes only;
      ``spikingjelly.activation_based.functional.reset_net(model)`` (or ``qif.reset()``) clears it.

    ``step_mode="multi"`` takes a whole sequence ``[T, B, ...]`` per call (spikes ``[T, B, ...]``; the returned state
    is the last membrane). ``surrogate``: a family name (with ``dampening``/``sharpness``) or an
    :class:`~sg_stability.surrogates.Surrogate`; ``sg.patch`` and ``sg.stabilize`` replace it like any framework's.
    """

    def __init__(self, tau: float = 5.0, *, v_peak: float = 1.0, v_reset: float = 0.0, input_scale: float = 1.0,
                 rheobase: float = 0.0, dt: float = 1.0, surrogate: str | Surrogate = "fast_sigmoid",
                 dampening: float | None = None, sharpness: float | None = None, step_mode: str = "single",
                 hidden: bool = False, detach_reset: bool = False) -> None:
        super().__init__()
        where = "QIF"
        self.tau = real(tau, "tau", above=0.0, example="tau=5.0", where=where)
        self.dt = real(dt, "dt", above=0.0, example="dt=1.0", where=where)
        self.v_peak = real(v_peak, "v_peak", example="v_peak=1.0", where=where)
        self.v_min = -self.tau / (2 * self.dt)
        self.v_reset = real(v_reset, "v_reset", minimum=self.v_min, below=self.v_peak, example="v_reset=0.0",
                            where=where)
        self.input_scale = real(input_scale, "input_scale", example="input_scale=1.0", where=where)
        self.rheobase = real(rheobase, "rheobase", minimum=0.0, example="rheobase=0.25", where=where)
        self.step_mode = option(step_mode, "step_mode", STEP_MODES, example='step_mode="multi"', where=where)
        self.hidden = flag(hidden, "hidden", where=where)
        self.detach_reset = flag(detach_reset, "detach_reset", where=where)
        params = {k: v for k, v in (("dampening", dampening), ("sharpness", sharpness)) if v is not None}
        if isinstance(surrogate, Surrogate) and params:
            raise ConfigError("QIF: pass dampening/sharpness with a family name, not with a surrogate object",
                              got=params, allowed='surrogate="fast_sigmoid", dampening=..., or a Surrogate alone',
                              fix="set them on the surrogate object, e.g. FastSigmoid(dampening=0.3)")
        self.surrogate = get(surrogate, **params)
        self.v: Tensor | None = None

    # -- state ---------------------------------------------------------------------------------------------------
    def init_state(self) -> Tensor:
        """The membrane before the first step (snnTorch's ``init_leaky()`` pattern): an empty tensor that the first
        step replaces by ``v_reset`` in the input's shape."""
        return torch.zeros(0)

    def reset(self) -> None:
        """Forget the membrane kept with ``hidden=True`` (SpikingJelly's ``reset_net`` calls this)."""
        self.v = None

    # -- dynamics ------------------------------------------------------------------------------------------------
    def step(self, x: Tensor, v: Tensor | None) -> tuple[Tensor, Tensor]:
        """One time step: ``(spikes, membrane after the reset)``."""
        if v is None or v.numel() == 0:
            v = torch.full_like(x, self.v_reset)
        h = v + self.dt / self.tau * (v * v + self.input_scale * x - self.rheobase)
        h = h.clamp(min=self.v_min)
        s = self.surrogate(h - self.v_peak)
        gate = s.detach() if self.detach_reset else s
        return s, h + gate * (self.v_reset - h)

    def forward(self, x: Tensor, state: Tensor | None = None) -> Any:
        if not isinstance(x, Tensor):
            raise ConfigError("QIF takes a tensor input", got=type(x).__name__,
                              allowed="a tensor [B, ...] (single step) or [T, B, ...] (step_mode='multi')",
                              fix="pass the input current as a tensor")
        v = self.v if self.hidden else state
        if self.step_mode == "multi":
            spikes = []
            for t in range(x.shape[0]):
                s, v = self.step(x[t], v)
                spikes.append(s)
            out = torch.stack(spikes)
        else:
            out, v = self.step(x, v)
        if self.hidden:
            self.v = v
            return out
        return out, v

    def gain(self, v: Tensor) -> Tensor:
        """The step-to-step derivative ``dv'/dv = 1 + 2 v dt / tau`` of a membrane ``v`` that does not spike (0 where
        the lower clamp holds it)."""
        return torch.where(v > self.v_min, 1.0 + 2.0 * v * self.dt / self.tau, 0.0)

    def extra_repr(self) -> str:
        return (f"tau={self.tau:g}, v_peak={self.v_peak:g}, v_reset={self.v_reset:g}, input_scale={self.input_scale:g}"
                f", rheobase={self.rheobase:g}, dt={self.dt:g}, step_mode={self.step_mode!r}, hidden={self.hidden}")
