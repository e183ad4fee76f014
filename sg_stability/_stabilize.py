"""``sg.stabilize(model, sample)``: analyze, choose the surrogate per layer, patch, and check the result."""

from __future__ import annotations

import math
import re
from typing import Any

from torch import nn

from ._analyze import LayerReport, Run, StabilityReport, analyze
from ._api import patch
from ._errors import ConfigError
from ._handle import PatchHandle
from .surrogates import Surrogate, get


def _glob_escape(path: str) -> str:
    """A module path as a glob that matches only itself (``patch`` takes globs)."""
    return re.sub(r"([\[\]*?])", r"[\1]", path)


def _choice(layer: LayerReport, base: Surrogate) -> Surrogate:
    chosen = base
    if layer.dampening is not None and layer.dampening.feasible and math.isfinite(layer.dampening.value):
        chosen = chosen.replace(dampening=layer.dampening.value)
    if layer.sharpness is not None and layer.sharpness.feasible:
        chosen = chosen.replace(sharpness=layer.sharpness.value)
    if layer.tail is not None and layer.tail.feasible:
        chosen = chosen.replace(tail=layer.tail.value)
    return chosen


def stabilize(model: nn.Module, sample: Any, *, family: str = "fast_sigmoid", init: str | None = None,
              init_options: dict[str, Any] | None = None, run: Run | None = None, target: float = 1.0,
              rounds: int = 4, tolerance: float = 0.005, probes: int = 4, seed: int = 0,
              **params: Any) -> PatchHandle:
    """Choose every spiking layer's surrogate from the stability analysis and patch the model, in one call.

    0. optionally initialise the weights first: ``init`` is one of ``sg.init.METHODS`` ("stability" is the
       paper's high initial firing rate), with ``init_options``; ``handle.init_report`` says what changed. The
       weights are not restored by ``handle.remove()`` unless ``init_options={"backup": True}`` was given and
       ``handle.init_report.restore()`` is called (decisions D5);
    1. :func:`analyze` the model with ``family`` (default: the derivative of the fast sigmoid, the paper's
       finding) and its ``params``;
    2. per layer: dampening from Condition III (recurrent) or the depth rule (feed-forward), when that keeps
       Condition IV feasible; sharpness (and q_pseudospike's tail) from the data-driven gain on the recorded
       membranes, aiming at ``target``;
    3. closed loop: the gradient BPTT really carries grows faster per step than the mean-square gain predicts
       (paper.md section 9; with a wide surrogate the Jacobians barely change between steps and their product
       grows like their spectral radius, about ``leak + gain`` instead of ``sqrt(leak^2 + gain^2)``), so the
       sharpness of each recurrent layer is then refined by bisection on the measured growth per step
       (``LayerReport.bptt_growth``) until it is within ``tolerance`` (relative, in log) of ``target``;
    4. patch (framework built-ins where exact, as :func:`patch` does) and return the handle; ``handle.report``
       is the analysis of the model as patched. ``handle.remove()`` restores the original surrogates.
    """
    if not (isinstance(target, (int, float)) and target > 0):
        raise ConfigError("target gain must be a positive number", got=target, allowed="> 0, usually 1",
                          fix="pass target=1.0 (gradients neither grow nor shrink per step)")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError("rounds must be a positive integer", got=rounds, allowed="1, 2, ...",
                          fix="pass rounds=4 (the default)")
    base = get(family, **params)
    init_report = None
    if init is not None:
        from .init import initialize

        init_report = initialize(model, sample, init, run=run, **(init_options or {}))
    report = analyze(model, sample, run=run, surrogate=base, probes=probes, seed=seed, target=target)
    chosen = {layer.name: _choice(layer, base) for layer in report.layers}

    def check() -> StabilityReport:
        with patch(model, targets={_glob_escape(n): s for n, s in chosen.items()}, builtin=False):
            return analyze(model, sample, run=run, probes=probes, seed=seed, target=target)

    checked = check()
    for layer in report.layers:
        if layer.gain_kind == "layer-to-layer" or layer.sharpness is None or not layer.sharpness.feasible:
            continue
        checked = _close_loop(layer.name, chosen, check, checked, target, tolerance, rounds)
    handle = patch(model, targets={_glob_escape(n): s for n, s in chosen.items()})
    handle.report = checked
    handle.init_report = init_report
    return handle


def _close_loop(name: str, chosen: dict[str, Surrogate], check: Any, checked: StabilityReport, target: float,
                tolerance: float, rounds: int) -> StabilityReport:
    """Bisection on log(sharpness) until the measured BPTT growth of layer ``name`` is within ``tolerance`` of
    ``target`` (a wider surrogate grows gradients faster); ``rounds`` bounds the doublings and the halvings."""

    def growth(report: StabilityReport) -> float | None:
        layer = report[name]
        return layer.bptt_growth if layer.bptt_growth is not None else layer.measured_gain

    g = growth(checked)
    if g is None or abs(math.log(g / target)) <= tolerance:
        return checked
    beta = float(chosen[name].sharpness)
    best = (abs(math.log(g / target)), beta, checked)
    step = 2.0 if g > target else 0.5  # too much growth: sharpen
    lo_hi: list[tuple[float, float]] = [(beta, g)]
    for _ in range(4 * rounds):
        if len(lo_hi) >= 2 and (lo_hi[-2][1] - target) * (lo_hi[-1][1] - target) < 0:
            break
        beta *= step
        chosen[name] = chosen[name].replace(sharpness=beta)
        checked = check()
        g = growth(checked)
        if g is None:
            break
        lo_hi.append((beta, g))
        best = min(best, (abs(math.log(g / target)), beta, checked), key=lambda b: b[0])
    if len(lo_hi) >= 2 and (lo_hi[-2][1] - target) * (lo_hi[-1][1] - target) < 0:
        (b0, g0), (b1, _) = lo_hi[-2], lo_hi[-1]
        for _ in range(4 * rounds):
            mid = math.sqrt(b0 * b1)
            chosen[name] = chosen[name].replace(sharpness=mid)
            checked = check()
            gm = growth(checked)
            if gm is None:
                break
            best = min(best, (abs(math.log(gm / target)), mid, checked), key=lambda b: b[0])
            if abs(math.log(gm / target)) <= tolerance:
                break
            if (g0 - target) * (gm - target) < 0:
                b1 = mid
            else:
                b0, g0 = mid, gm
    chosen[name] = chosen[name].replace(sharpness=best[1])
    return best[2]
