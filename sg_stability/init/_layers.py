"""Each spiking layer as an initialiser sees it (weights, dynamics, measured input statistics), from one
recorded run (``sg_stability.analysis.traced``) that is re-run after each layer's weights change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._validate import flag
from ..recording import Record, Run, Trace, traced
from ..recording.records import value
from ..recording.wiring import affine_parameters
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
    norm: nn.Module | None = None  # the normalisation layer right before the neuron (its output is the input)
    norm_name: str = ""

    @property
    def name(self) -> str:
        return self.record.path

    def unaffine(self) -> str:
        """Why nothing before the normalisation layer can move this neuron's input."""
        return (f"its input comes from {self.norm_name} ({type(self.norm).__name__}) without affine parameters, "
                "which cancels any change of the weights before it")

    def write_norm(self, writer: Writer, report: InitReport, mean: float, std: float | None, rule: str) -> None:
        """After a normalisation layer the neuron's input has, per feature and in training mode, the
        normalisation's bias as its mean and its weight as its standard deviation: set them so that the input
        current has ``mean`` (and ``std``)."""
        params = affine_parameters(self.norm)
        if params is None:
            report.skipped.append(f"{self.name}: {self.unaffine()}")
            return
        bias, weight = params
        writer.write(self.name, f"bias of {self.norm_name}", bias, torch.full_like(bias, mean, dtype=torch.float64),
                     f"{rule}: mean input current {mean:.4g} (set after the normalisation)")
        if std is not None:
            writer.write(self.name, f"weight of {self.norm_name}", weight,
                         torch.full_like(weight, std, dtype=torch.float64),
                         f"{rule}: input current std {std:.4g} (set after the normalisation)")


def layers_of(trace: Trace) -> list[InitLayer]:
    """The spiking layers of the last run of ``trace``, in execution order."""
    names = {m: n for n, m in trace.model.named_modules()}
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
        norm = rec.norm
        # the dynamics at rest: the initialisers' model is a stationary membrane, whatever the run's own gain
        out.append(InitLayer(rec, rec.site.driver.dynamics(), w_in, w_rec, rec.bias(), inputs, current,
                             rate_of(rec), norm, names.get(norm, "") if norm is not None else ""))
    return out


def rate_of(rec: Record) -> float:
    """The layer's firing rate: the fraction of neurons and steps that spiked, counted as ``analyze`` counts
    them (the spike call of each step; snnTorch's second, detached call for the reset is not a step)."""
    steps = rec.spike_steps()
    if not steps:
        return 0.0
    v = torch.cat([value(x).detach().reshape(-1) for x in steps])
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
                report.skipped.append(f"{layer.name}: {layer.record.site.driver.undescribed()}")
                continue
            if layer.w_in is None and layer.w_rec is None:
                report.skipped.append(f"{layer.name}: no weights feed it")
                continue
            apply(layer, writer, report)
    return report
