"""The paper's data-driven "adjfi": shift each layer's bias (or weight mean) until it fires at a target rate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .._validate import flag, integer, real
from ..recording import Run, traced
from ..recording.wiring import affine_parameters
from ._layers import InitLayer, layers_of, rate_of
from ._report import InitReport, Writer, check_parametrized


def calibrate_rate(model: nn.Module, sample: Any, *, target_rate: float = 0.5, run: Run | None = None,
                   tolerance: float = 0.01, max_steps: int = 40, backup: bool = False,
                   progress: bool = True) -> InitReport:
    """The paper's "adjfi" as a calibration: per layer, in execution order, shift what sets its input's mean by
    bisection until the layer's firing rate on ``sample`` (spikes per neuron and step, as ``analyze`` counts
    them) is within ``tolerance`` of ``target_rate``: the bias of a normalisation layer right before the neuron
    (BatchNorm, LayerNorm, GroupNorm: a shift before one is cancelled by it), else the bias of the weight that
    feeds it, else that weight's mean. A layer whose rate the shift cannot move is left unchanged and listed in
    ``report.skipped`` with the reason; one that gets closer without reaching the target is written and named in
    ``report.notes``."""
    target_rate = real(target_rate, "target_rate", above=0.0, below=1.0, where="calibrate_rate",
                       example="target_rate=0.5 (Condition I) or 0.158 (a firing probability per step)")
    tolerance = real(tolerance, "tolerance", above=0.0, below=1.0, example="tolerance=0.01", where="calibrate_rate")
    max_steps = integer(max_steps, "max_steps", minimum=1, example="max_steps=40", where="calibrate_rate")
    backup = flag(backup, "backup", where="calibrate_rate")
    progress = flag(progress, "progress", where="calibrate_rate")
    from tqdm.auto import tqdm

    check_parametrized(model)
    report = InitReport(f"firing-rate calibration to {target_rate:g}")
    with Writer(report, backup) as writer, traced(model, sample, run=run, grad=False) as trace:
        layers = layers_of(trace)
        with tqdm(total=len(layers) * max_steps, desc="calibrating firing rates", disable=not progress,
                  leave=False) as bar:
            for k, first in enumerate(layers):
                knob = _knob(first)
                if isinstance(knob, str):
                    report.skipped.append(f"{first.name}: {knob}")
                    continue
                role, param = knob
                base = param.detach().double().clone()
                writer.touch(param)  # trials write in place: the writer puts it back if anything fails

                def rate_at(shift: float, param: Tensor = param, base: Tensor = base, k: int = k) -> float:
                    with torch.no_grad():
                        param.copy_((base + shift).to(param.dtype))
                    bar.update(1)
                    trace.rerun()
                    return rate_of(trace.ordered()[k])  # only this layer's rate: no other statistics

                start = abs(rate_at(0.0) - target_rate)
                miss, shift = _bisect(rate_at, float(base.abs().mean()) or 1.0, target_rate, tolerance, max_steps)
                with torch.no_grad():
                    param.copy_(base.to(param.dtype))
                if start <= tolerance:
                    report.notes.append(f"{first.name}: already at rate {target_rate:g} +- {start:.3g}, unchanged")
                    continue
                if miss >= start:  # the shift does not move the rate: writing it would change weights for nothing
                    report.skipped.append(f"{first.name}: shifting the {role} does not move its rate towards "
                                          f"{target_rate:g} (it stays {start:.3g} away); left unchanged")
                    continue
                writer.write(first.name, role, param, base + shift,
                             f"shifted by {shift:.4g}: rate {target_rate:g} +- {miss:.3g}")
                if miss > tolerance:
                    report.notes.append(f"{first.name}: shifting the {role} brings its rate within {miss:.3g} of "
                                        f"{target_rate:g} only (from {start:.3g}); the closest shift is written")
    return report


def _knob(layer: InitLayer) -> tuple[str, Tensor] | str:
    """What shifts this layer's input: the bias of the normalisation right before it (a shift before a
    normalisation is cancelled by it), else the bias of the weight that feeds it, else that weight's mean;
    or why there is none."""
    if layer.norm is not None:
        params = affine_parameters(layer.norm)
        return (f"bias of {layer.norm_name}", params[0]) if params is not None else layer.unaffine()
    if layer.bias is not None:
        return "bias", layer.bias
    if layer.w_in is not None:
        return "input", layer.w_in
    return "no bias, weight or normalisation feeds it (e.g. a product of spikes, as in attention)"


def _bisect(rate_at: Callable[[float], float], scale: float, target: float, tolerance: float, max_steps: int
            ) -> tuple[float, float]:
    """The shift whose rate is closest to ``target``: widen ``[-scale, scale]`` until it brackets the target
    (rates rise with the shift), then bisect. Returns ``(|rate - target|, shift)``."""
    lo, hi = -scale, scale
    r_lo, r_hi = rate_at(lo), rate_at(hi)
    for _ in range(max_steps // 4):
        if r_lo <= target <= r_hi:
            break
        if r_lo > target:
            lo *= 2
            r_lo = rate_at(lo)
        if r_hi < target:
            hi *= 2
            r_hi = rate_at(hi)
    best = min(((abs(r_lo - target), lo), (abs(r_hi - target), hi)))
    if r_lo <= target <= r_hi:
        for _ in range(max_steps):
            mid = 0.5 * (lo + hi)
            r = rate_at(mid)
            best = min(best, (abs(r - target), mid))
            if abs(r - target) <= tolerance:
                break
            lo, hi = (mid, hi) if r < target else (lo, mid)
    return best
