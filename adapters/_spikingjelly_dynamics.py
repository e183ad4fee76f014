"""SpikingJelly neurons in the analyzer's model (``Dynamics``): the leak and input gain of each membrane equation,
the reset, and for the non-linear QIF and EIF membranes the membrane-dependent gain the analysis averages over a
recorded run. Equations as SpikingJelly computes them (both API generations):

- LIF: ``h = v + (x - (v - v_rest)) / tau`` (``decay_input``), ParametricLIF with ``1/tau = sigmoid(w)``;
- QIF: ``h = v + (x + a0 (v - v_rest)(v - v_c)) / tau``, so ``dh/dv = 1 + a0 (2 v - v_rest - v_c) / tau``;
- EIF: ``h = v + (x + v_rest - v + delta_T exp((v - theta_rh) / delta_T)) / tau``, so
  ``dh/dv = 1 + (exp((v - theta_rh) / delta_T) - 1) / tau``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sg_stability.adapter_api import Dynamics

#: neurons trained online: in training mode the membrane is detached between steps
ONLINE = {name: f"{name}: online training detaches the membrane between steps, so no gradient flows back in time "
                "through it (by design; the leak acts on the forward pass only)"
          for name in ("OTTTLIFNode", "SLTTLIFNode")}


def _nonlinear(m: Any, name: str) -> Callable[[Tensor], Tensor] | None:
    """``dh/dv`` as a function of the membrane ``v`` for QIF and EIF, else None."""
    tau = float(m.tau)
    if name == "QIFNode":
        a0, rest, critical = float(m.a0), float(m.v_rest), float(m.v_c)
        return lambda v: 1.0 + a0 * (2.0 * v - rest - critical) / tau
    if name == "EIFNode":
        delta, rheobase = float(m.delta_T), float(m.theta_rh)
        return lambda v: 1.0 + (torch.exp((v - rheobase) / delta) - 1.0) / tau
    return None


def spikingjelly_dynamics(m: Any, name: str) -> Dynamics | None:
    """The dynamics of SpikingJelly neuron ``m`` (class ``name``), or None where the model cannot describe it."""
    notes = []
    synapse = False
    transition = None
    if name == "IFNode":
        leak, gain = 1.0, 1.0
    elif name in ("LIFNode", "ParametricLIFNode") or name in ONLINE:
        inv_tau = float(torch.sigmoid(m.w.detach())) if name == "ParametricLIFNode" else 1.0 / float(m.tau)
        leak = 1.0 - inv_tau
        gain = inv_tau if getattr(m, "decay_input", True) else 1.0
    elif name == "CUBALIFNode":  # c' = c_decay c + x; v' = v_decay v + c'
        leak, gain, synapse = float(m.v_decay), 1.0, True
        notes.append(f"the synaptic current (c_decay = {float(m.c_decay):g}) is not modelled")
    elif name in ("QIFNode", "EIFNode"):
        slope = _nonlinear(m, name)
        assert slope is not None
        # at rest (what the initialisers use; the analysis averages over the run): within [0, 1] for a stable rest
        leak = min(abs(float(slope(torch.tensor(float(m.v_rest), dtype=torch.float64)))), 1.0)
        gain = 1.0 / float(m.tau)
        transition = _transition(slope, float(m.v_threshold), getattr(m, "v_reset", None))
    else:
        return None
    detached = name in ONLINE and m.training  # in eval mode these neurons run as plain LIF neurons
    if detached:
        notes.append(ONLINE[name])
    threshold = float(m.v_threshold)
    v_reset = getattr(m, "v_reset", None)
    reset_grad = not getattr(m, "detach_reset", False)
    jump = leak * (threshold if v_reset is None else threshold - float(v_reset))  # d(reset)/dh at threshold
    if v_reset is not None and float(v_reset) and transition is None:
        notes.append(f"reset to v_reset = {float(v_reset):g} modelled as a reset to 0")
    # SpikingJelly subtracts the threshold before the leak (soft reset), or resets to v_reset (hard)
    return Dynamics(leak=leak, threshold=threshold, reset="subtract" if v_reset is None else "multiplicative",
                    reset_grad=reset_grad, reset_jump=jump, input_gain=gain, synapse=synapse, detached=detached,
                    note="; ".join(notes), transition=transition)


def _transition(slope: Callable[[Tensor], Tensor], threshold: float, v_reset: float | None
                ) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``(a, c)`` per entry (``Dynamics.transition``): the slope after the reset, and the reset's derivative with
    respect to the spike through it -- ``h - v_reset`` for a hard reset, ``theta`` for a soft one."""

    def transition(centred: Tensor, fired: Tensor) -> tuple[Tensor, Tensor]:
        h = centred + threshold
        if v_reset is None:  # v = h - theta s
            own = slope(torch.where(fired, h - threshold, h))
            return own, own * threshold
        own = slope(torch.where(fired, torch.full_like(h, float(v_reset)), h))
        return own, own * (h - float(v_reset))

    return transition


__all__ = ["ONLINE", "spikingjelly_dynamics"]
