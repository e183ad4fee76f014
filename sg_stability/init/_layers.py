"""Each spiking layer as an initialiser sees it (weights, dynamics, measured input statistics), from one
recorded run (``sg_stability.analysis.traced``) that is re-run after each layer's weights change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._validate import flag
from ..analysis import Record, Run, Trace, traced
from ..stability import Dynamics
from ._report import InitReport, Writer, check_parametrized


@dataclass
class InitLayer:
    record: Record
    dynamics: Dynamics | None
    w_in: Tensor | None
    w_rec: Tensor | None
    bias: Tensor | None
    inputs: Tensor | None  # everything that entered the feed weight, flattened
    input_current_mean: float | None  # mean of the feed weight's output
    rate: float

    @property
    def name(self) -> str:
        return self.record.path


def layers_of(trace: Trace) -> list[InitLayer]:
    """The spiking layers of the last run of ``trace``, in execution order."""
    out = []
    for rec in trace.ordered():
        w_in, w_rec = rec.weights()
        own = rec.holds_input_weight()
        io = trace.weight_io.get(rec.feed, []) if rec.feed is not None and not own else []
        inputs: Tensor | None
        current: float | None
        if io:
            inputs = torch.cat([i.reshape(-1) for i, _ in io])
            current = float(torch.cat([o.reshape(-1) for _, o in io]).double().mean())
        elif own:
            ins = [i for i in rec.inputs if isinstance(i, Tensor)]
            inputs = torch.cat([i.detach().reshape(-1) for i in ins]) if ins else None
            current = None
        else:
            inputs, current = None, None
        out.append(InitLayer(rec, rec.site.driver.dynamics(), w_in, w_rec, rec.bias(), inputs, current,
                             rate_of(rec)))
    return out


def rate_of(rec: Record) -> float:
    """The fraction of recorded surrogate calls that spiked (every call the observed surrogate received)."""
    v = torch.cat([c.detach().reshape(-1) for c in rec.calls])
    return float(rec.fired(v).double().mean())


def run_per_layer(model: nn.Module, sample: Any, run: Run | None, method: str, backup: bool,
                  apply: Callable[[InitLayer, Writer, InitReport], None]) -> InitReport:
    """Apply ``apply`` to each spiking layer in execution order; the statistics of layer k are measured after the
    layers below it were initialised (one trace, run again after each change)."""
    check_parametrized(model)
    report = InitReport(method)
    with Writer(report, flag(backup, "backup", where="init")) as writer, \
            traced(model, sample, run=run, grad=False) as trace:
        layers = layers_of(trace)
        for k in range(len(layers)):
            if k:  # the statistics of layer k depend on the layers below, initialised by now
                trace.rerun()
                layers = layers_of(trace)
            layer = layers[k]
            if layer.dynamics is None:
                report.skipped.append(f"{layer.name}: its adapter does not describe the neuron's dynamics")
                continue
            if layer.w_in is None and layer.w_rec is None:
                report.skipped.append(f"{layer.name}: no weights feed it")
                continue
            apply(layer, writer, report)
    return report
