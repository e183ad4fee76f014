"""Per-layer estimates of the gradient gain and the surrogate parameters that reach a target gain, by the kind
of gain that governs the layer: recurrent (Conditions III and IV, data-driven calibration), layer to layer (the
depth rule, the next layer's weights) or temporal (leak and reset alone)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import stability as cond
from ..stability import Dynamics, Verdict
from ..stability._checks import per_weight
from ..surrogates import Surrogate


@dataclass
class Estimates:
    """What one layer's estimators found (None: not available for this kind of layer)."""

    theory: float | None = None
    data: float | None = None
    measured: float | None = None
    dampening: Verdict | None = None
    sharpness: Verdict | None = None
    sharpness_theory: Verdict | None = None
    tail: Verdict | None = None


@dataclass
class LayerData:
    """One recorded layer as the estimators see it."""

    surrogate: Surrogate
    v: Tensor  # centred membranes [T, B, *neuron]
    w_ff: Tensor | None  # input weight
    dyn: Dynamics | None
    goal: float  # the gain the sharpness aims at
    notes: list[str]

    @property
    def peak(self) -> float:
        return float(torch.as_tensor(self.surrogate.dampening).double().max())

    @property
    def flat_v(self) -> Tensor:
        return thinned(self.v.flatten(2).flatten(0, 1))


#: moments of a layer's membranes are estimated from at most this many recorded rows (steps x batch, or
#: positions per channel): enough for 1 % accuracy, and a large conv layer costs milliseconds, not seconds
MAX_ROWS = 4096


def thinned(rows: Tensor) -> Tensor:
    """Every k-th row of ``[rows, features]`` so that at most :data:`MAX_ROWS` remain (deterministic)."""
    step = -(-rows.shape[0] // MAX_ROWS)
    return rows[::step] if step > 1 else rows


def recurrent(est: Estimates, layer: LayerData, w_rec: Tensor) -> None:
    """Recurrent layer: the gain of dv_{t+1}/dv_t; dampening from Condition III, sharpness (and tail) from the
    recorded membranes."""
    s, dyn, w_ff, goal, flat_v = layer.surrogate, layer.dyn, layer.w_ff, layer.goal, layer.flat_v
    if dyn is None:
        return
    wr = w_rec.detach() * dyn.input_gain
    wi, input_max = input_weight(w_ff, dyn)
    est.theory = cond.theory_gain(s, wr, wi if wi is not None and wi.shape[0] == wr.shape[0] else None, dyn,
                                  input_max=input_max)
    est.data = cond.data_gain(s, flat_v, wr, dyn)

    def calibrate(surrogate: Surrogate, knob: str = "sharpness") -> Verdict:
        return cond.calibrate(surrogate, flat_v, wr, dyn, knob=knob, target=goal)

    damp = cond.condition_iii(wr, dyn)
    usable = damp.feasible and math.isfinite(damp.value) and damp.value > 0  # 0: the recurrent weights are all 0
    base = s.replace(dampening=damp.value) if usable else s
    sharp = calibrate(base)
    if not sharp.feasible and base is not s and usable:
        damp, sharp = _closer_dampening("Condition III", damp.value, sharp, calibrate(s), layer)
        base = s.replace(dampening=damp.value)
    est.dampening, est.sharpness = damp, sharp
    est.sharpness_theory = cond.condition_iv(base, wr, dyn)
    if "tail" in type(s).param_names:
        est.tail = calibrate(base, "tail")


def layer_to_layer(est: Estimates, layer: LayerData, w_next: Tensor, gain_next: float, depth_gamma: float | None
                   ) -> None:
    """Feed-forward layer with a spiking layer above: the gain of dI_next/dv (``w_next`` times the next layer's
    input gain ``gain_next``); dampening from the depth rule, sharpness from the recorded membranes."""
    s, v, dyn, w_ff, goal = layer.surrogate, layer.v, layer.dyn, layer.w_ff, layer.goal
    neuron_shape = tuple(v.shape[2:])
    layout = next_layout(w_next, neuron_shape)
    if layout is None:
        layer.notes.append(f"the next layer's weight {tuple(w_next.shape)} does not match this layer's neurons "
                     f"{neuron_shape}: estimates skipped")
        return
    rows = feature_rows(v, layout)  # once: the solver below evaluates the moments many times
    # stability.layer_gain(W, sg2) = sqrt(mean_k sum_j W_kj^2 sg2_j) = sqrt(sum_j c_j sg2_j), c_j = mean_k W_kj^2:
    # the column means once per weight, instead of W^2 (4096 x 25088 for a VGG classifier) at every solver step
    column_ms = per_weight(f"column mean squares, {layout}", w_next, lambda: column_mean_squares(w_next, layout))
    scale = float(gain_next) ** 2

    def gain(sg2: Tensor) -> float:
        return math.sqrt(max(scale * float(column_ms @ sg2.double()), 0.0))

    est.data = gain(cond.data_moments(s, rows)[1])
    if dyn is not None and w_ff is not None and layout == "flat" and w_ff.dim() == 2:
        w_in, input_max = input_weight(w_ff, dyn)
        _, sg2, _ = cond.theory_moments(s, None, w_in, dyn, input_max)
        est.theory = gain(sg2)

    grid = cond.log_grid(1e-3, 1e3)  # the points solve_gain tries first
    # per sharpness, the gain at dampening 1 (a scalar dampening multiplies it): shared by both solves below,
    # whose surrogates differ in their dampening only
    unit: dict[float, float] = {}

    def at(base: Surrogate) -> Callable[[float], float]:
        if isinstance(base.dampening, Tensor) and base.dampening.numel() > 1:  # per neuron: no common factor
            return lambda b: gain(cond.data_moments(base.replace(sharpness=b), rows)[1])
        gamma = float(base.dampening)
        if not unit:  # the solver's grid in a few vectorised sweeps instead of one call per point
            unit.update(zip(grid, unit_gains(base, rows, grid, column_ms, scale), strict=True))

        def scaled(b: float) -> float:
            if b not in unit:
                unit[b] = gain(cond.data_moments(base.replace(sharpness=b, dampening=1.0), rows)[1])
            return gamma * unit[b]

        return scaled

    def solve(base: Surrogate) -> Verdict:
        return cond.solve_gain(at(base), "sharpness", goal, 1e-3, 1e3)

    if depth_gamma is None:
        est.sharpness = solve(s)
        return
    est.dampening = Verdict("dampening", depth_gamma, True, 1.0, 1.0, reason="feed-forward depth rule")
    est.sharpness = solve(s.replace(dampening=depth_gamma))
    if not est.sharpness.feasible:
        # the depth rule bounds the worst case (spectral norms), so the mean-square gain it allows can stay
        # below 1 for every sharpness: then try the surrogate's own peak, and keep the closer one
        est.dampening, est.sharpness = _closer_dampening("the depth rule", depth_gamma, est.sharpness, solve(s),
                                                         layer)


def unit_gains(base: Surrogate, rows: Tensor, sharpness: list[float], column_ms: Tensor, scale: float,
               budget: int = 1 << 18) -> list[float]:
    """The layer-to-layer gain ``sqrt(scale * sum_j c_j E[f(b v_j)^2])`` at dampening 1 for every sharpness ``b``,
    several at once (at most ``budget`` elements per sweep): what ``data_moments`` gives one point at a time."""
    out: list[float] = []
    per = max(1, budget // max(rows.numel(), 1))
    for start in range(0, len(sharpness), per):
        b = torch.tensor(sharpness[start:start + per], dtype=torch.float64, device=rows.device)
        b = b.view(-1, *([1] * rows.dim()))
        f = base.unit_shape(rows.unsqueeze(0) * b).double()
        sg2 = (f * f).flatten(1, -2).mean(1)  # [points, features]
        out += [math.sqrt(max(scale * float(g), 0.0)) for g in sg2 @ column_ms]
    return out


def temporal(est: Estimates, layer: LayerData) -> None:
    """Last feed-forward layer: the gain through leak and reset alone."""
    s, dyn, w_ff, goal, flat_v = layer.surrogate, layer.dyn, layer.w_ff, layer.goal, layer.flat_v
    if dyn is None:
        return
    est.data = cond.data_gain(s, flat_v, None, dyn)
    w, input_max = input_weight(w_ff, dyn)
    est.theory = cond.theory_gain(s, None, w, dyn, input_max=input_max)
    if dyn.reset_grad:  # only a differentiated reset lets the surrogate change the temporal gain
        est.sharpness = cond.calibrate(s, flat_v, None, dyn, target=goal)


def _closer_dampening(rule: str, ruled: float, at_rule: Verdict, at_peak: Verdict, layer: LayerData
                      ) -> tuple[Verdict, Verdict]:
    """``rule``'s dampening left the sharpness infeasible: keep whichever of it and the surrogate's own peak
    gets the gain closer to the goal, and say so. Returns the dampening and sharpness verdicts."""
    peak, goal, notes = layer.peak, layer.goal, layer.notes

    def miss(v: Verdict) -> float:
        return 0.0 if v.feasible else (abs(math.log(v.achieved / goal)) if v.achieved > 0 else math.inf)

    if miss(at_peak) <= miss(at_rule):
        notes.append(f"{rule}'s dampening {ruled:.3g} cannot reach g = {goal:g} with any sharpness (best g = "
                     f"{at_rule.achieved:.3g}); the sharpness is chosen at the surrogate's own peak {peak:.3g}")
        return Verdict("dampening", peak, False, goal, at_peak.achieved,
                            reason=f"{rule}'s value {ruled:.3g} leaves the sharpness infeasible"), at_peak
    notes.append(f"neither {rule}'s dampening {ruled:.3g} (best g = {at_rule.achieved:.3g}) nor the surrogate's own "
                 f"peak {peak:.3g} (best g = {at_peak.achieved:.3g}) reaches g = {goal:g}; {rule}'s is closer")
    return Verdict("dampening", ruled, False, goal, at_rule.achieved,
                        reason=f"no sharpness reaches g = {goal:g}; {rule}'s value comes closest"), at_rule


def feature_rows(v: Tensor, layout: str) -> Tensor:
    """The membranes as ``[rows, features]`` (features: the neuron shape flattened for "flat", the channel for
    "channel"), thinned to at most :data:`MAX_ROWS` rows, in float64."""
    if layout == "channel" and v.dim() > 3:
        v = v.movedim(2, -1)
    flat = v.reshape(-1, v.shape[-1]) if layout == "channel" else v.reshape(v.shape[0] * v.shape[1], -1)
    return thinned(flat).double()


def next_layout(w_next: Tensor, neuron_shape: tuple[int, ...]) -> str | None:
    """How the next layer's weight ``[n_next, ...]`` meets this layer's neurons: "flat" (a column per neuron),
    "channel" (a convolution: a kernel per channel), or None when they do not match."""
    if w_next.dim() == 2 and w_next.shape[1] == math.prod(neuron_shape):
        return "flat"
    if w_next.dim() >= 3 and len(neuron_shape) >= 2 and w_next.shape[1] == neuron_shape[0]:
        return "channel"
    return None


def column_mean_squares(w_next: Tensor, layout: str, block: int = 1 << 20) -> Tensor:
    """Per feature j, ``mean_k sum_kernel W_kj^2`` in float64 (the kernel summed for "channel"), from blocks of
    about ``block`` entries: no float64 copy of the whole matrix."""
    w = w_next.detach()
    w = w.flatten(2) if layout == "channel" else w
    total = torch.zeros(w.shape[1:], dtype=torch.float64, device=w.device)
    for chunk in w.split(max(1, block // max(w[0].numel(), 1))):
        total += chunk.double().square().sum(0)
    return (total.sum(-1) if layout == "channel" else total) / w.shape[0]


def input_weight(w: Tensor | None, dyn: Dynamics) -> tuple[Tensor | None, float]:
    """``w`` (convolution kernels flattened to ``(out, in * k...)``; None unless a matrix) times the neuron's input
    gain as the voltage range reads it: the weight itself with inputs up to the gain instead of 1 (the same sums;
    the weight's own are remembered, and a VGG classifier is not copied)."""
    if w is None or w.dim() < 2:
        return None, 1.0
    w = w if w.dim() == 2 else w.detach().flatten(1)
    if dyn.input_gain >= 0:
        return w, dyn.input_gain
    return w.detach() * dyn.input_gain, 1.0
