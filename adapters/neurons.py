"""Adapter for sg_stability's own neurons (:mod:`sg_stability.neurons`): registered through the ``sg_stability``
entry-point group like every framework's adapter, so ``sg.patch``, ``analyze`` and ``stabilize`` treat a
:class:`~sg_stability.neurons.QIF` in any model as they treat a framework neuron.

The surrogate is the child module ``surrogate``, applied to ``h - v_peak`` with the forward ``(x > 0)``; the
membrane-dependent gain ``1 + 2 v dt / tau`` of the quadratic membrane is handed to the analysis, which averages
it over the recorded run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from sg_stability.adapter_api import (
    STRICT,
    AdapterInfo,
    CallPattern,
    Dynamics,
    NeuronDriver,
    NeuronSite,
    Transaction,
    hookimpl,
)
from sg_stability.neurons import QIF

NAME = "neurons"


class QIFDriver(NeuronDriver):
    adapter = NAME
    heaviside = STRICT
    slots = ("surrogate",)

    @property
    def qif(self) -> QIF:
        assert isinstance(self.module, QIF)
        return self.module

    def call_pattern(self) -> CallPattern:
        return CallPattern(time_first=self.qif.step_mode == "multi")

    def reset_state(self) -> None:
        self.qif.reset()

    def threshold(self) -> float | Tensor | None:
        return self.qif.v_peak

    def set_threshold(self, value: float | Tensor, tx: Transaction) -> None:
        tx.set(self.module, "v_peak", float(value))

    def dynamics(self) -> Dynamics | None:
        m = self.qif

        def transition(centred: Tensor, fired: Tensor) -> tuple[Tensor, Tensor]:
            h = centred + m.v_peak  # the membrane before the reset, then after it
            after = torch.where(fired, torch.full_like(h, m.v_reset), h)
            own = m.gain(after)
            return own, own * (h - m.v_reset)

        at_peak = float(m.gain(torch.tensor(float(m.v_reset))))
        return Dynamics(leak=1.0, threshold=m.v_peak, reset="multiplicative", reset_grad=not m.detach_reset,
                        reset_jump=at_peak * (m.v_peak - m.v_reset), input_gain=m.input_scale * m.dt / m.tau,
                        transition=transition)


@hookimpl
def sg_adapter_info() -> AdapterInfo:
    return AdapterInfo(name=NAME, framework="sg_stability",
                       description="sg_stability's own neurons (sg_stability.neurons.QIF)",
                       tested_versions="this release")


@hookimpl
def sg_find_neuron(module: nn.Module, path: str) -> NeuronSite | None:
    return QIFDriver(module).site(path) if isinstance(module, QIF) else None


@hookimpl
def sg_save_state(module: nn.Module) -> Callable[[], None] | None:
    if not isinstance(module, QIF):
        return None
    saved = module.v

    def restore() -> None:
        module.v = saved

    return restore
