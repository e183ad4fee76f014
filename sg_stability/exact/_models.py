"""Closed-form neuron models for the event-driven simulator: between input events a neuron receives a constant
drive ``I``, and an input spike of weight ``w`` moves its voltage by ``w`` at once (a delta current).

QIF (the theta neuron): ``tau dV/dt = V^2 + I``, a spike when ``V`` reaches ``+inf`` and a reset to ``-inf``. The
state is kept in homogeneous coordinates ``(q, p)`` with ``V = p / q`` (``q >= 0``, unit norm; the phase of the
theta neuron is ``theta = 2 atan2(p, q)``), where everything is linear:

- the flow: ``d/dt (q, p) = (1/tau) (-p, I q)``, so ``(q, p)(t) = exp(t K) (q, p)(0)`` with
  ``exp(t K) = cosh(a t/tau) 1 + sinh(a t/tau)/a [[0, -1], [I, 0]]`` for ``I = -a^2`` (cos/sin for ``I > 0``);
- a kick: ``p -> p + w q``; a spike: ``q`` reaches 0 with ``p > 0``, and the reset state is ``(0, -1)``;
- the time to the next spike solves ``q(t) = 0``: ``tau/a artanh(a q / p)`` for ``I = -a^2 < 0`` (only when
  ``V > a``, above the unstable fixed point), ``tau/w atan2(w q, p)`` for ``I = w^2 > 0``, ``tau q / p`` for
  ``I = 0``.

A spike time is a smooth function of the state: as a kick shrinks towards the one that just reaches ``V = a``,
the spike moves to ``+inf`` -- it leaves through the trial's end instead of vanishing inside it.

LIF, for comparison in the same simulator: ``tau dV/dt = -V + I``, a spike when ``V >= threshold`` and a reset to
0 (with a short refractory period). A kick that crosses the threshold makes a spike at that very instant, so
spikes appear and vanish inside the trial.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

INF = math.inf


class EventModel(Protocol):
    """What the event loop needs of a neuron model; ``state`` is the model's own named tuple of ``[B, N]``
    tensors."""

    tau: float

    def initial(self, shape: tuple[int, ...], drive: float, dtype: torch.dtype, device: torch.device) -> Any: ...
    def normalised(self, s: Any) -> Any: ...
    def advance(self, s: Any, dt: Tensor, drive: float) -> Any: ...
    def time_to_spike(self, s: Any, drive: float) -> Tensor: ...
    def kick(self, s: Any, w: Tensor, now: Tensor) -> Any: ...
    def reset(self, s: Any, spiking: Tensor, now: Tensor) -> Any: ...
    def select(self, keep: Tensor, a: Any, b: Any) -> Any: ...


class QIFState(NamedTuple):
    q: Tensor
    p: Tensor


class QIF:
    """The theta neuron in closed form (module docstring). ``tau``: membrane time constant. ``advance``, ``kick``
    and ``reset`` may leave the state unnormalised; the loop calls ``normalised`` once per event."""

    def __init__(self, tau: float) -> None:
        self.tau = tau

    def initial(self, shape: tuple[int, ...], drive: float, dtype: torch.dtype, device: torch.device) -> QIFState:
        """At rest ``V = -sqrt(-I)`` for an excitable drive ``I < 0``; just after a reset (``V = -inf``) otherwise."""
        q = torch.full(shape, 1.0 if drive < 0 else 0.0, dtype=dtype, device=device)
        p = torch.full(shape, -math.sqrt(-drive) if drive < 0 else -1.0, dtype=dtype, device=device)
        return self.normalised(QIFState(q, p))

    def normalised(self, s: QIFState) -> QIFState:
        norm = torch.sqrt(s.q * s.q + s.p * s.p)
        # no neuron other than the one being reset crosses +inf between events; rounding may put one a hair past it
        return QIFState((s.q / norm).clamp(min=0.0), s.p / norm)

    def advance(self, s: QIFState, dt: Tensor, drive: float) -> QIFState:
        """The state ``dt`` later (``dt``: ``[B, 1]``, finite, >= 0)."""
        x = dt / self.tau
        if drive < 0:  # exp(tK) / cosh(a t/tau): bounded for any dt
            a = math.sqrt(-drive)
            th = torch.tanh(a * x)
            return QIFState(s.q - th / a * s.p, s.p - a * th * s.q)
        if drive > 0:
            w = math.sqrt(drive)
            c, sn = torch.cos(w * x), torch.sin(w * x)
            return QIFState(c * s.q - sn / w * s.p, w * sn * s.q + c * s.p)
        return QIFState(s.q - x * s.p, s.p)

    def time_to_spike(self, s: QIFState, drive: float) -> Tensor:
        """Time from now to the next spike without further input, ``inf`` where there is none."""
        q, p = s.q, s.p
        if drive < 0:
            a = math.sqrt(-drive)
            fires = p > a * q
            ratio = a * q / torch.where(fires, p, 2 * a * q + 1.0)  # < 1 everywhere: no NaN in either branch
            return torch.where(fires, self.tau / a * torch.atanh(ratio), INF)
        if drive > 0:
            w = math.sqrt(drive)
            return self.tau / w * torch.atan2(w * q + 0.0, p)  # + 0.0: q = -0.0 would give -pi
        fires = p > 0
        return torch.where(fires, self.tau * q / torch.where(fires, p, 1.0), INF)

    def kick(self, s: QIFState, w: Tensor, now: Tensor) -> QIFState:
        return QIFState(s.q, s.p + w * s.q)

    def reset(self, s: QIFState, spiking: Tensor, now: Tensor) -> QIFState:
        """``spiking`` neurons (a 0/1 float mask) to the reset state ``(0, -1)``: ``V = -inf``."""
        keep = 1.0 - spiking
        return QIFState(s.q * keep, s.p * keep - spiking)

    def select(self, keep: Tensor, a: QIFState, b: QIFState) -> QIFState:
        return QIFState(torch.where(keep, a.q, b.q), torch.where(keep, a.p, b.p))


class LIFState(NamedTuple):
    v: Tensor
    last: Tensor  # the time of each neuron's last spike (-inf before the first)


class LIF:
    """Leaky integrate-and-fire with delta-current kicks (module docstring): threshold 1, reset to 0, and an absolute
    refractory period in which kicks are ignored -- without it, two neurons that kick each other over the threshold
    would fire for ever at one instant."""

    def __init__(self, tau: float, threshold: float = 1.0, refractory: float = 0.01) -> None:
        self.tau, self.threshold, self.refractory = tau, threshold, refractory * tau

    def initial(self, shape: tuple[int, ...], drive: float, dtype: torch.dtype, device: torch.device) -> LIFState:
        return LIFState(torch.zeros(shape, dtype=dtype, device=device),
                        torch.full(shape, -INF, dtype=dtype, device=device))

    def normalised(self, s: LIFState) -> LIFState:
        return s

    def advance(self, s: LIFState, dt: Tensor, drive: float) -> LIFState:
        return LIFState(drive + (s.v - drive) * torch.exp(-dt / self.tau), s.last)

    def time_to_spike(self, s: LIFState, drive: float) -> Tensor:
        v, th = s.v, self.threshold
        at = v >= th
        if drive <= th:  # only a kick across the threshold makes a spike: now, or never
            return torch.where(at, 0.0, INF)
        below = torch.where(at, th - 1.0, v)
        return torch.where(at, 0.0, self.tau * torch.log((below - drive) / (th - drive)))

    def kick(self, s: LIFState, w: Tensor, now: Tensor) -> LIFState:
        ready = (now[:, None] - s.last) >= self.refractory
        return LIFState(s.v + torch.where(ready, w, 0.0), s.last)

    def reset(self, s: LIFState, spiking: Tensor, now: Tensor) -> LIFState:
        return LIFState(s.v * (1.0 - spiking), torch.where(spiking > 0, now[:, None], s.last))

    def select(self, keep: Tensor, a: LIFState, b: LIFState) -> LIFState:
        return LIFState(torch.where(keep, a.v, b.v), a.last)
