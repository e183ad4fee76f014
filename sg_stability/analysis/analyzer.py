"""The per-layer stability report: firing statistics, three estimates of the gradient gain (theory, data-driven,
measured) and recommended surrogate parameters, for models of any adapter's framework.

Data flow: :func:`sg_stability.recording.traced` records one run (membranes, inputs, wiring) -> per layer, the
estimators of :mod:`.estimates` for the kind of gain that governs it, and the autograd measurements of
:mod:`.gradients` -> a :class:`~.report.LayerReport` with a diagnosis -> the :class:`~.report.StabilityReport`.
``sg.analyze`` (:mod:`sg_stability.choosing.recommend`) adds what ``sg.stabilize`` would install.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import stability as cond
from .._errors import ConfigError, did_you_mean, raw
from .._validate import integer, real
from ..recording import Record, Run, StepRef, Trace, traced
from ..recording.records import stacked
from ..recording.sample_checks import with_time_dim
from ..surrogates import Surrogate
from . import estimates as est
from .gradients import gradient_norms, measured_layer, measured_temporal
from .report import LayerReport, StabilityReport


@dataclass
class _RunContext:
    """What every layer's report needs from the whole run."""

    steps_of: dict[str, list[StepRef]]  # per layer, the membrane of each step
    steps: int
    probes: int
    gen: torch.Generator
    depth_gamma: float | None  # the feed-forward depth rule's dampening, with two or more weighted layers


def check_options(probes: Any, seed: Any, target: Any) -> None:
    """Four-part errors for the analysis options, before anything runs (layer names in ``target`` are checked
    once the layers are known)."""
    integer(probes, "probes", minimum=1, example="probes=4 (random probe vectors per measured gain)")
    integer(seed, "seed", example="seed=0")
    if isinstance(target, Mapping):
        for name, goal in target.items():
            if not isinstance(name, str):
                raise ConfigError("target keys must be layer names", got=name,
                                  allowed="the layer names of sg.find_neurons(model) (module paths)",
                                  fix='e.g. target={"lif1": 1.0}')
            real(goal, f"target[{name!r}]", above=0.0, example=f"target={{{name!r}: 1.0}}")
    else:
        real(target, "target", above=0.0, example="target=1.0 (gradients neither grow nor shrink)")


def _check_target_names(target: Any, paths: list[str]) -> None:
    if isinstance(target, Mapping):
        unknown = [k for k in target if k not in paths]
        if unknown:
            raise ConfigError(f"target names layers the model does not run.{did_you_mean(unknown[0], paths)}",
                              got=unknown, allowed=f"layer names among {paths}",
                              fix="use the names sg.analyze(model, sample) reports (module paths)")


def analyze_layers(model: nn.Module, sample: Any, *, run: Run | None = None, surrogate: str | Surrogate | None = None,
                   probes: int = 4, seed: int = 0, target: float | dict[str, float] = 1.0,
                   time_dim: int | None = None) -> StabilityReport:
    """The per-layer analysis of :func:`analyze`, without the recommendation."""
    check_options(probes, seed, target)
    with traced(model, sample, run=with_time_dim(run, time_dim), surrogate=surrogate) as trace:
        return analyze_trace(trace, probes=probes, seed=seed, target=target)


def analyze_trace(trace: Trace, *, probes: int = 4, seed: int = 0, target: float | dict[str, float] = 1.0
                  ) -> StabilityReport:
    """:func:`analyze_layers` on a recorded run."""
    ordered = trace.ordered()
    _check_target_names(target, [r.path for r in ordered])
    if not ordered:
        raise ConfigError("no spiking layer called its surrogate while running the sample",
                          got=raw(f"{len(trace.records)} neuron sites, none fired a surrogate call"),
                          allowed="a run that steps the model's neurons",
                          fix="pass run=lambda model, x: ... that runs the model over time, as in training")
    if all(w is None for r in ordered for w in r.weights()):
        raise ConfigError("no weights feed any spiking layer of this model",
                          got=raw(", ".join(r.path for r in ordered)),
                          allowed="neurons fed by nn.Linear / nn.Conv* modules, or neurons that hold weights",
                          fix="analyze the model with its weight layers (the analyzer follows the execution "
                              "order)")
    steps_of = {r.path: r.spike_steps() for r in ordered}
    ff_weights, gains = [], []  # the gains: how each acts on the membrane (SpikingJelly's 1/tau, ...)
    for r in ordered:
        w = r.weights()[0]
        if w is not None:
            dyn = r.dynamics()
            ff_weights.append(w)
            gains.append(dyn.input_gain if dyn else 1.0)
    ctx = _RunContext(steps_of, max(len(v) for v in steps_of.values()), probes, torch.Generator().manual_seed(seed),
                      cond.depth_dampening(ff_weights, gains) if len(ff_weights) >= 2 else None)
    layers = []
    for k, rec in enumerate(ordered):
        nxt = ordered[k + 1] if k + 1 < len(ordered) else None
        goal = target.get(rec.path, 1.0) if isinstance(target, Mapping) else float(target)
        layers.append(_layer_report(rec, nxt, ctx, goal))
    return StabilityReport(layers, ctx.steps)



def _layer_report(rec: Record, nxt: Record | None, ctx: _RunContext, goal: float) -> LayerReport:
    site, s = rec.site, rec.surrogate
    xs = ctx.steps_of[rec.path]
    v = stacked(xs)  # [T, B, *neuron]
    neuron_shape = tuple(v.shape[2:])
    fired = rec.fired(v)
    per_neuron = fired.double().flatten(2).mean((0, 1))
    notes: list[str] = []
    if rec.source not in ("installed", "requested"):
        notes.append(f"surrogate {rec.source}")
    dyn = rec.dynamics()
    if dyn is None:
        notes.append(site.driver.undescribed())
    elif dyn.note:
        notes.append(dyn.note)
    w_ff, w_rec = rec.weights()
    if w_ff is None and w_rec is None:
        notes.append("no weights feed this layer: gains are measured only")
    layer = est.LayerData(s, v, w_ff, dyn, goal, notes)
    ins = rec.input_steps(len(xs))
    found = est.Estimates()
    w_next = nxt.weights()[0] if nxt is not None else None
    synapse = dyn is not None and dyn.synapse
    if w_rec is not None:
        gain_kind = "recurrent"
        est.recurrent(found, layer, w_rec)
        found.measured = measured_temporal(xs, ins, ctx.probes, ctx.gen) if ins is not None and not synapse else None
    elif nxt is not None and w_next is not None:
        gain_kind = "layer-to-layer"
        nxt_dyn = nxt.dynamics()
        gain_next = nxt_dyn.input_gain if nxt_dyn else 1.0
        est.layer_to_layer(found, layer, w_next, gain_next, ctx.depth_gamma)
        next_ins = nxt.input_steps(len(ctx.steps_of[nxt.path]))
        m = measured_layer(xs, next_ins, ctx.probes, ctx.gen) if next_ins is not None else None
        found.measured = m * gain_next if m is not None else None
    else:
        gain_kind = "temporal"
        est.temporal(found, layer)
        found.measured = measured_temporal(xs, ins, ctx.probes, ctx.gen) if ins is not None and not synapse else None
    if found.sharpness is not None and not found.sharpness.feasible:
        notes.append(f"no sharpness reaches g = {goal:g}: {found.sharpness.reason}")
    norms = gradient_norms(xs, ins, ctx.gen)
    if found.measured is None and gain_kind != "layer-to-layer":
        found.measured = cond.late_growth(norms)
        notes.append("measured gain: the per-step growth of the BPTT gradient over the second half of the sequence "
                     "(the input passes through a synaptic current, or does not reach the membrane in the same step)"
                     if found.measured is not None else "measured gain unavailable: the input current has no gradient")
    report = LayerReport(
        name=site.path, framework=site.adapter, kind=site.kind, neurons=math.prod(neuron_shape) if neuron_shape
        else 1, surrogate=s, surrogate_source=rec.source, firing_rate=float(fired.double().mean()),
        dead=float((per_neuron == 0).double().mean()), saturated=float((per_neuron == 1).double().mean()),
        active=float((s.derivative(v.double()) >= layer.peak / 2).double().mean()), gain_kind=gain_kind,
        theory_gain=found.theory, data_gain=found.data, measured_gain=found.measured, dampening=found.dampening,
        sharpness=found.sharpness, sharpness_theory=found.sharpness_theory, tail=found.tail, diagnosis="",
        notes=notes, dynamics=dyn, gradient_norms=norms)
    report.diagnosis = _diagnose(report, ctx.steps)
    return report


def _diagnose(r: LayerReport, steps: int) -> str:
    if r.dead >= 0.5:
        return (f"{r.dead:.0%} of the neurons never spike on this sample: raise the input weights or lower the "
                "threshold (Condition I targets a firing rate of 1/2)")
    if r.saturated >= 0.5:
        return f"{r.saturated:.0%} of the neurons spike at every step: lower the input weights or raise the threshold"
    if r.dynamics is not None and r.dynamics.detached and r.gain_kind == "temporal":
        return ("no gradient flows back in time through this layer, by design: its framework detaches the membrane "
                "between steps (online training)")
    g = r.gain
    source = "measured" if r.measured_gain is not None else ("data-driven" if r.data_gain is not None else "theory")
    if r.gain_kind != "layer-to-layer" and r.bptt_growth is not None:
        g, source = r.bptt_growth, "BPTT growth"
    if g is None:
        return "no gain estimate (see notes)"
    if r.gain_kind == "layer-to-layer":
        if g == 0:
            return f"no gradient passes from the layer above to this one ({source} g = 0)"
        if g < 0.5:
            return f"gradients shrink by {g:.3g} per layer going down ({source} g = {g:.3g})"
        if g > 2.0:
            return f"gradients grow by {g:.3g} per layer going down ({source} g = {g:.3g})"
        v = r.sharpness  # the data-driven solve: no sharpness lifts the gain to its target
        vanish = v is not None and not v.feasible and v.achieved < v.target
        return f"layer-to-layer gradient flow is balanced ({source} g = {g:.3g})" + (
            "; the data-driven estimate disagrees (see the notes)" if vanish and source != "data-driven" else "")
    total = g ** (steps - 1) if g > 0 else 0.0
    if total < 1e-2:
        return f"gradients will vanish over {steps} steps: {source} g = {g:.3g} (g^{steps - 1} = {total:.2g})"
    if total > 1e2:
        return f"gradients will explode over {steps} steps: {source} g = {g:.3g} (g^{steps - 1} = {total:.2g})"
    return f"gradients stay within 100x over {steps} steps: {source} g = {g:.3g}"
