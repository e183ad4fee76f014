"""The paper's stability conditions I-IV and the feed-forward depth rule, as pure functions.

Model (one spiking layer, discrete time, per neuron i; Herranz-Celotti & Rouat, paper.md sections 1 and 3)::

    v_{t+1} = alpha * v_t + I_{t+1} + sum_j W_ij s_t,j - reset          s_t = H(v_t - theta)

``W`` is stored like ``nn.Linear.weight``: row i holds the weights *into* neuron i (the paper's column).
Reset kinds (``reset=``), written for the membrane the surrogate sees (the pre-reset value):

=================  ==========================================================  ======================================
``"subtract"``     ``v_{t+1} = alpha v_t + I + W s_t - theta s_t``               snnTorch/SpikingJelly soft reset
``"multiplicative"`` ``v_{t+1} = alpha v_t (1 - s_t) + I + W s_t``               hard reset to 0: SpikingJelly, Norse,
                                                                                snnTorch ``reset_mechanism="zero"``
``"zero"``         ``v_{t+1} = (alpha v_t + I + W s_t)(1 - s_t)``                the reference code's ``multreset1``
``"none"``         ``v_{t+1} = alpha v_t + I + W s_t``
=================  ==========================================================  ======================================

The transition derivative (Jacobian) ``J = dv_{t+1}/dv_t`` has entries ``J_ij = a_i delta_ij + W_ij sigma'(v_j)``
times ``(1 - s_i)`` for the zero reset, with ``a_i = alpha`` (``alpha (1 - s_i)`` for the multiplicative reset)
and, when the reset is differentiated (``reset_grad=True``), the extra diagonal ``-c sigma'(v_i)``: exactly
``c = theta`` for ``"subtract"``; for the hard resets the derivative of the reset term is value-dependent and is
taken at v = theta, where sigma' is concentrated (``c = alpha theta`` multiplicative, ``theta`` zero).
Gradients through time grow per step by the root of the
mean-square row norm of J, the gain ``g`` (Condition IV asks g = 1).

All functions take floats or tensors (per-neuron values broadcast) and compute in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from .._errors import ConfigError
from ..surrogates import Surrogate, family_class

Reset = Literal["subtract", "multiplicative", "zero", "none"]
RESETS: tuple[str, ...] = ("subtract", "multiplicative", "zero", "none")
Number = float | Tensor


@dataclass(frozen=True)
class Verdict:
    """The outcome of solving one condition.

    ``value`` is the root when ``feasible``; otherwise the best achievable value inside ``bounds`` (the one
    whose ``achieved`` is closest to ``target``), and ``reason`` says why no root exists and which knob to turn.
    """

    quantity: str
    value: float
    feasible: bool
    target: float
    achieved: float
    reason: str = ""
    bounds: tuple[float, float] = (math.nan, math.nan)
    per_neuron: Tensor | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        head = f"{self.quantity} = {self.value:.4g}"
        if self.feasible:
            return f"{head} (gives {self.achieved:.4g}, target {self.target:g})"
        return f"{head} INFEASIBLE (best achievable {self.achieved:.4g}, target {self.target:g}): {self.reason}"


# -- validation --------------------------------------------------------------------------------------------
def _reset(reset: str) -> str:
    if reset not in RESETS:
        raise ConfigError("unknown reset kind", got=reset, allowed=f"one of {list(RESETS)}",
                          fix='use "subtract" for a soft reset, "multiplicative" for a hard reset to 0 '
                              '(SpikingJelly, Norse, snnTorch\'s reset_mechanism="zero")')
    return reset


def _t(x: Number, name: str) -> Tensor:
    t = torch.as_tensor(x, dtype=torch.float64) if not isinstance(x, Tensor) else x.detach().double()
    if not torch.isfinite(t).all():
        raise ConfigError(f"{name} must be finite", got=x, allowed="finite floats or tensors",
                          fix=f"check how {name} was computed")
    return t


def _leak(alpha: Number) -> Tensor:
    a = _t(alpha, "leak")
    if ((a < 0) | (a > 1)).any():
        raise ConfigError("leak (membrane decay per step) must lie in [0, 1]", got=alpha,
                          allowed="0 <= leak <= 1 (1 is integrate-and-fire)",
                          fix="pass the decay factor, e.g. snnTorch's beta or SpikingJelly's 1 - 1/tau")
    return a


def _matrix(w: Tensor | None, name: str) -> Tensor | None:
    if w is None:
        return None
    if not isinstance(w, Tensor) or w.dim() != 2:
        raise ConfigError(f"{name} must be a 2-D weight matrix (rows = receiving neurons, like nn.Linear.weight)",
                          got=getattr(w, "shape", type(w).__name__), allowed="a tensor of shape (n_out, n_in)",
                          fix="pass layer.weight; for a convolution pass weight.flatten(1)")
    return w.detach().double()


def _fan(n: int, name: str, minimum: int = 2) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}", got=n, allowed=f"{minimum}, {minimum + 1}, ...",
                          fix=f"pass the number of neurons in the layer as {name}")
    return n


# -- Condition I: mean recurrent weight for a firing rate of 1/2 ------------------------------------------
def condition_i(n_rec: int, leak: Number, threshold: Number, reset: str = "subtract",
                input_current: Number = 0.0) -> Tensor:
    """Mean recurrent weight mu that puts the stationary mean membrane at threshold (firing rate 1/2).

    Mean field: spikes are Bernoulli(1/2) and independent of the membrane, ``E[v] = theta`` is stationary, and
    the mean feed-forward current is ``input_current`` (0 for zero-mean input weights). With
    ``R = (n_rec - 1) mu / 2`` the mean recurrent drive:

    - subtract:        ``theta = alpha theta + m + R - theta/2``    ->  ``mu = 2 ((3/2 - alpha) theta - m)/(n-1)``
    - multiplicative:  ``theta = alpha theta / 2 + m + R``          ->  ``mu = 2 ((1 - alpha/2) theta - m)/(n-1)``
    - zero:            ``theta = (alpha theta + m + R) / 2``        ->  ``mu = 2 ((2 - alpha) theta - m)/(n-1)``
    - none:            ``theta = alpha theta + m + R``              ->  ``mu = 2 ((1 - alpha) theta - m)/(n-1)``

    With m = 0 the first is the reference code's ``(3 - 2 alpha) theta / (n - 1)``; the zero-reset case fixes
    that code, which used the no-reset value for it (paper.md 3.1).
    """
    n = _fan(n_rec, "n_rec")
    m = _t(input_current, "input_current")
    return 2.0 * (threshold_drive(leak, threshold, reset) - m) / (n - 1)


def threshold_drive(leak: Number, threshold: Number, reset: str = "subtract") -> Tensor:
    """The mean input current per step (all inputs, recurrent ones included) that holds the stationary mean
    membrane at threshold with Bernoulli(1/2) spikes -- the left-hand sides of :func:`condition_i` solved for
    the drive: ``(3/2 - alpha) theta`` (subtract), ``(1 - alpha/2) theta`` (multiplicative), ``(2 - alpha)
    theta`` (zero), ``(1 - alpha) theta`` (none)."""
    a, th = _leak(leak), _t(threshold, "threshold")
    return {"subtract": (1.5 - a) * th, "multiplicative": (1.0 - a / 2) * th,
            "zero": (2.0 - a) * th, "none": (1.0 - a) * th}[_reset(reset)]


# -- Condition II: recurrent weight variance balancing input and recurrent currents ------------------------
def condition_ii(n_rec: int, n_in: int, input_weight_var: Number, recurrent_mean: Number = 0.0,
                 input_mean: Number = 0.5, input_var: Number = 0.25) -> Verdict:
    """Variance of the recurrent weights that makes ``Var[W_rec s] = Var[W_in z]``.

    For zero-mean input weights and i.i.d. inputs z with mean ``input_mean`` and variance ``input_var``:
    ``Var[W_in z] = n_in Var(w_in) (input_var + input_mean^2)``. For recurrent weights with mean mu and variance
    s^2 and Bernoulli(1/2) spikes, each term has ``Var(w s) = s^2/2 + mu^2/4``, so
    ``Var[W_rec s] = (n_rec - 1)(s^2/2 + mu^2/4)`` and

        ``s^2 = 2 n_in Var(w_in)(input_var + input_mean^2)/(n_rec - 1) - mu^2/2``

    (the reference code lacks the factor 2, paper.md 3.2). The defaults (1/2, 1/4) are the statistics of
    Bernoulli(1/2) spikes from a layer below. If the mean alone already gives more recurrent variance than the
    input current, no variance works: the verdict is infeasible with value 0.
    """
    n, k = _fan(n_rec, "n_rec"), _fan(n_in, "n_in", minimum=1)  # one input channel is a valid layer
    v_in = _t(input_weight_var, "input_weight_var")
    mu, m, s2 = _t(recurrent_mean, "recurrent_mean"), _t(input_mean, "input_mean"), _t(input_var, "input_var")
    target = float(k * v_in * (s2 + m * m))
    var = float(2.0 * target / (n - 1) - mu * mu / 2)
    if var >= 0:
        return Verdict("recurrent weight variance", var, True, target, target)
    achieved = float((n - 1) * (mu * mu / 4))
    return Verdict("recurrent weight variance", 0.0, False, target, achieved,
                   reason=f"the recurrent mean {float(mu):.3g} alone gives recurrent-current variance "
                          f"{achieved:.3g} > input-current variance {target:.3g}; lower the recurrent mean "
                          "(Condition I with a lower threshold) or raise the input weight variance")


# -- voltage range under the uniform assumption ------------------------------------------------------------
def voltage_range(w_rec: Tensor | None, w_in: Tensor | None, leak: Number, threshold: Number,
                  reset: str = "subtract", input_max: Number = 1.0) -> tuple[Tensor, Tensor]:
    """Per-neuron bounds ``(v_min, v_max)`` of the centred membrane ``v = y - theta`` (paper.md 3.0).

    ``y_max = (S+_rec + S+_in)/(1 - alpha)``, ``y_min = (S-_rec + S-_in - theta [subtract])/(1 - alpha)``, where
    S+ (S-) is the sum of a neuron's positive (negative) incoming weights: the stationary extremes when every
    excitatory (inhibitory) presynaptic neuron fires at every step. Inputs are taken to lie in
    ``[0, input_max]`` (spikes: 1). For ``leak = 1`` (integrate-and-fire) the range is unbounded: +-inf.
    """
    a, th = _leak(leak), _t(threshold, "threshold")
    s_plus = torch.zeros(())
    s_minus = torch.zeros(())
    for w, scale in ((_matrix(w_rec, "w_rec"), 1.0), (_matrix(w_in, "w_in"), _t(input_max, "input_max"))):
        if w is not None:
            s_plus = s_plus + scale * w.clamp(min=0).sum(1)
            s_minus = s_minus + scale * w.clamp(max=0).sum(1)
    s_plus, s_minus = s_plus.double(), s_minus.double()
    low = s_minus - (th if _reset(reset) == "subtract" else 0.0)
    free = 1.0 - a
    with torch.no_grad():
        y_max = torch.where(free > 0, s_plus / free.clamp(min=1e-300), torch.full_like(s_plus, math.inf))
        y_min = torch.where(free > 0, low / free.clamp(min=1e-300), torch.full_like(low, -math.inf))
    return y_min - th, y_max - th


# -- moments of sigma' under a uniform membrane -------------------------------------------------------------
def uniform_moment(surrogate: Surrogate, m: int, v_min: Number, v_max: Number) -> Tensor:
    """``E[sigma'(v)^m]`` for v uniform on ``[v_min, v_max]``, in closed form:
    ``gamma^m / (beta (v_max - v_min)) * (G_m(beta v_max) - G_m(beta v_min))`` with ``G_m(u) = int_0^u f^m``.
    An unbounded range gives 0; an empty one gives ``sigma'(v_min)^m``."""
    lo, hi = _raw64(v_min), _raw64(v_max)
    if torch.isnan(lo).any() or torch.isnan(hi).any() or (hi < lo).any():
        raise ConfigError("the membrane range must satisfy v_min <= v_max", got=(v_min, v_max),
                          allowed="v_min <= v_max (infinite bounds allowed)", fix="swap the bounds")
    gamma = _t(surrogate.dampening, "dampening")
    beta = _t(surrogate.sharpness, "sharpness")
    width = hi - lo
    g_hi, g_lo = surrogate.moment(beta * hi, m).double(), surrogate.moment(beta * lo, m).double()
    spread = gamma**m * (g_hi - g_lo) / (beta * width.clamp(min=1e-300))
    point = gamma**m * surrogate.unit_shape(beta * lo).double() ** m
    out = torch.where(width > 1e-12 * (1.0 + lo.abs()), spread, point)
    return torch.where(torch.isinf(width), torch.zeros_like(out), out)


def _raw64(x: Number) -> Tensor:
    return torch.as_tensor(x).detach().double() if isinstance(x, Tensor) else torch.tensor(float(x),
                                                                                           dtype=torch.float64)


# -- the mean-square gain of the transition derivative --------------------------------------------------
class PreparedWeights:
    """A recurrent weight matrix reduced to what the gain needs: the column means of ``W_ij^2`` (the mean over
    rows commutes with the sum over j), the diagonal, and the matrix itself for the per-row zero reset.
    Solvers build it once, so each evaluation costs O(n) instead of O(n^2)."""

    def __init__(self, w_rec: Tensor) -> None:
        w = _matrix(w_rec, "w_rec")
        assert w is not None
        self.matrix = w
        self.col_sq_mean = (w * w).mean(0)
        self.diag = torch.diagonal(w).clone() if w.shape[0] == w.shape[1] else torch.zeros(w.shape[0],
                                                                                          dtype=w.dtype)


def mean_square_gain(w_rec: Tensor | PreparedWeights | None, leak: Number, *, sg1: Tensor, sg2: Tensor,
                     quiet: Number = 0.5, reset: str = "subtract", reset_grad: bool = False,
                     reset_jump: Number | None = None, threshold: Number = 1.0) -> Tensor:
    """``g^2 = mean_i sum_j E[J_ij^2]``: the mean-square row norm of the transition derivative.

    ``sg1``, ``sg2``: per-neuron ``E[sigma'(v)]`` and ``E[sigma'(v)^2]`` (from the uniform assumption or from
    measured membranes); ``quiet``: per-neuron probability of not spiking. Spikes and sigma' of different
    neurons are taken as independent. Per row i (``d = W_ii - c [reset_grad]``, ``a = alpha``):

    - ``sum_{j != i} W_ij^2 sg2_j + E[(a_i + d sigma'_i)^2]``, with ``E[(a + d s')^2] = a^2 + 2 a d sg1 + d^2 sg2``;
    - multiplicative reset: the ``a^2`` and ``2 a d`` terms carry the factor ``quiet``;
    - zero reset: the whole row carries ``quiet``.
    """
    r = _reset(reset)
    a = _leak(leak)
    s1, s2 = _t(sg1, "sg1"), _t(sg2, "sg2")
    q = _t(quiet, "quiet")
    prep = w_rec if isinstance(w_rec, PreparedWeights) or w_rec is None else PreparedWeights(w_rec)
    c: Number = 0.0
    if reset_grad and r != "none":
        if reset_jump is not None:
            c = _t(reset_jump, "reset_jump")
        else:  # the reset term's derivative at v = theta: theta (subtract, zero), alpha theta (multiplicative)
            c = _t(threshold, "threshold") * (a if r == "multiplicative" else 1.0)
    diag = prep.diag if prep is not None else torch.zeros((), dtype=torch.float64)
    d = diag - c
    leak_weight = q if r == "multiplicative" else 1.0
    own = leak_weight * (a * a + 2 * a * d * s1) + d * d * s2  # the diagonal entry, per row
    if prep is None:
        off_rows: Tensor | None = None
        off_mean = torch.zeros((), dtype=torch.float64)
    elif r == "zero" and q.dim() > 0:
        w = prep.matrix
        off_rows = (w * w) @ s2.expand(w.shape[1]) - diag * diag * s2.expand(diag.shape)
        off_mean = off_rows.mean()
    else:
        off_rows = None
        off_mean = prep.col_sq_mean @ s2.expand(prep.col_sq_mean.shape) - (diag * diag * s2).mean()
    if r == "zero":
        row = q * (off_rows if off_rows is not None else off_mean) + q * own
        return row.mean() if row.dim() else row
    return off_mean + (own.mean() if own.dim() else own)


def theory_moments(surrogate: Surrogate, w_rec: Tensor | None, w_in: Tensor | None, leak: Number,
                   threshold: Number, reset: str = "subtract", input_max: Number = 1.0
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """``(E[sigma'], E[sigma'^2], P(no spike))`` per neuron under the uniform-voltage assumption."""
    lo, hi = voltage_range(w_rec, w_in, leak, threshold, reset, input_max)
    sg1 = uniform_moment(surrogate, 1, lo, hi)
    sg2 = uniform_moment(surrogate, 2, lo, hi)
    width = hi - lo
    quiet = torch.where(torch.isinf(width), torch.full_like(width, 0.5),
                        ((0.0 - lo) / width.clamp(min=1e-300)).clamp(0.0, 1.0))
    return sg1, sg2, quiet


def theory_gain(surrogate: Surrogate, w_rec: Tensor | None, w_in: Tensor | None, leak: Number, threshold: Number,
                reset: str = "subtract", *, reset_grad: bool = False, reset_jump: Number | None = None,
                input_max: Number = 1.0) -> float:
    """The paper's prediction of the per-step gradient gain g from the weights alone (uniform voltage)."""
    sg1, sg2, quiet = theory_moments(surrogate, w_rec, w_in, leak, threshold, reset, input_max)
    g2 = mean_square_gain(w_rec, leak, sg1=sg1, sg2=sg2, quiet=quiet, reset=reset, reset_grad=reset_grad,
                          reset_jump=reset_jump, threshold=threshold)
    return math.sqrt(max(float(g2), 0.0))


def _uniform_gain(surrogate: Surrogate, prep: PreparedWeights | None, lo: Tensor, hi: Tensor, leak: Number,
                  threshold: Number, reset: str, reset_grad: bool, reset_jump: Number | None) -> float:
    sg1, sg2 = uniform_moment(surrogate, 1, lo, hi), uniform_moment(surrogate, 2, lo, hi)
    width = hi - lo
    quiet = torch.where(torch.isinf(width), torch.full_like(width, 0.5),
                        ((0.0 - lo) / width.clamp(min=1e-300)).clamp(0.0, 1.0))
    g2 = mean_square_gain(prep, leak, sg1=sg1, sg2=sg2, quiet=quiet, reset=reset, reset_grad=reset_grad,
                          reset_jump=reset_jump, threshold=threshold)
    return math.sqrt(max(float(g2), 0.0))


# -- Condition III: dampening from the largest transition derivative ----------------------------------------
def condition_iii(w_rec: Tensor, leak: Number, threshold: Number, reset: str = "subtract", *,
                  w_in: Tensor | None = None, input_dampening: Number = 0.0, input_max: Number = 1.0) -> Verdict:
    """Per-neuron dampening gamma_i that makes the worst-case transition derivative equal 1 (paper.md 3.3 (c)).

        ``alpha_i + gamma_i S+_i (1 + c theta_i / |S-_i|) + gamma_in S+_in,i = 1``      (c = 1 for subtract, else 0)

    S+/S- are the sums of positive/negative recurrent weights into neuron i; the last term (only when the
    layer below has surrogate peak ``input_dampening``) uses the input weights ``w_in`` -- the reference code
    took S+_in from the recurrent weights. The verdict's ``value`` is the layer value (mean over neurons,
    the code's variant (d)); ``per_neuron`` holds gamma_i. Neurons with no excitatory recurrent weight are
    unconstrained (inf); a neuron whose leak and input term already reach 1 has no positive solution.
    """
    w = _matrix(w_rec, "w_rec")
    assert w is not None
    a, th = _leak(leak), _t(threshold, "threshold")
    s_plus, s_minus = w.clamp(min=0).sum(1), w.clamp(max=0).sum(1).abs()
    reset_factor = 1.0 + (th / s_minus.clamp(min=1e-300) if _reset(reset) == "subtract" else 0.0)
    if reset == "subtract":
        reset_factor = torch.where(s_minus > 0, reset_factor, torch.full_like(s_minus, math.inf))
    extra = torch.zeros(())
    if w_in is not None and float(_t(input_dampening, "input_dampening")) != 0.0:
        win = _matrix(w_in, "w_in")
        assert win is not None
        extra = _t(input_dampening, "input_dampening") * _t(input_max, "input_max") * win.clamp(min=0).sum(1)
    room = 1.0 - a - extra
    denom = s_plus * reset_factor
    gamma = torch.where(denom > 0, room / denom.clamp(min=1e-300), torch.full_like(s_plus, math.inf))
    bad = room <= 0
    finite = gamma[torch.isfinite(gamma) & ~bad]
    layer = float(finite.mean()) if finite.numel() else math.inf
    if bad.any():
        frac = float(bad.double().mean())
        return Verdict("dampening", max(layer, 0.0) if math.isfinite(layer) else 0.0, False, 1.0,
                       float((a + extra).max()), reason=f"{frac:.0%} of the neurons reach a transition derivative "
                       ">= 1 from the leak and the layer below alone; lower the leak (shorter time constant) or "
                       "the input dampening", per_neuron=gamma)
    if math.isinf(layer):
        return Verdict("dampening", math.inf, False, 1.0, float(a.max()),
                       reason="no neuron has both excitatory and inhibitory recurrent weights: the worst case "
                              "does not constrain the dampening; use the depth rule or Condition IV",
                       per_neuron=gamma)
    return Verdict("dampening", layer, True, 1.0, 1.0, per_neuron=gamma)


# -- Condition IV: sharpness (or tail) from the mean-square gain = 1 ------------------------------------------
def condition_iv(surrogate: Surrogate | str, w_rec: Tensor | None, leak: Number, threshold: Number,
                 reset: str = "subtract", *, w_in: Tensor | None = None, knob: str = "sharpness",
                 target: float = 1.0, reset_grad: bool = False, reset_jump: Number | None = None,
                 input_max: Number = 1.0, bounds: tuple[float, float] | None = None) -> Verdict:
    """Solve ``theory gain(knob) = target`` for the sharpness beta (or the tail q of q_pseudospike).

    The gain is :func:`theory_gain`: the paper's Condition IV with the cross term ``-2 alpha c E[sigma']`` kept
    (the reference code dropped it) and the correct mean-square input term. The root is bracketed on a
    logarithmic grid inside ``bounds`` (default ``[1e-3, 1e3]`` for beta, ``q - 1 in [1e-3, 1e3]`` for q) and
    refined by bisection. Without a root the verdict is infeasible: ``value`` is the grid point whose gain is
    closest to the target and ``reason`` names the knob to turn (the dampening bound
    ``gamma >= sqrt((1 - leak term)/(weight term))`` when even the widest surrogate cannot reach the target).
    """
    sg = surrogate if isinstance(surrogate, Surrogate) else family_class(surrogate)()
    if knob not in ("sharpness", "tail") or (knob == "tail" and "tail" not in type(sg).param_names):
        raise ConfigError("Condition IV can solve for the sharpness, or for the tail of q_pseudospike",
                          got=(sg.family, knob), allowed='knob="sharpness" (every family) or knob="tail" '
                          "(q_pseudospike)", fix='use knob="sharpness", or surrogate="q_pseudospike"')
    if not (isinstance(target, (int, float)) and target > 0):
        raise ConfigError("target gain must be a positive number", got=target, allowed="> 0, usually 1",
                          fix="pass target=1.0 (gradients neither grow nor shrink per step)")
    lo, hi = bounds or (1e-3, 1e3)
    offset = 1.0 if knob == "tail" else 0.0

    prep = PreparedWeights(w_rec) if w_rec is not None else None
    lo_v, hi_v = voltage_range(w_rec, w_in, leak, threshold, reset, input_max)

    def gain(x: float) -> float:
        return _uniform_gain(sg.replace(**{knob: x}), prep, lo_v, hi_v, leak, threshold, reset, reset_grad,
                             reset_jump)

    return solve_gain(gain, knob, target, lo + offset, hi + offset, offset)


def solve_gain(gain: Callable[[float], float], knob: str, target: float, lo: float, hi: float, offset: float = 0.0,
               points: int = 61, bisections: int = 50) -> Verdict:
    """Find ``x`` in ``[lo, hi]`` with ``gain(x) = target`` (log grid on ``x - offset``, then bisection)."""
    grid = [offset + math.exp(u) for u in torch.linspace(math.log(lo - offset), math.log(hi - offset), points,
                                                          dtype=torch.float64).tolist()]
    values = [gain(x) for x in grid]
    for k in range(points - 1):
        (x0, g0), (x1, g1) = (grid[k], values[k]), (grid[k + 1], values[k + 1])
        if (g0 - target) * (g1 - target) <= 0:
            for _ in range(bisections):
                mid = offset + math.sqrt((x0 - offset) * (x1 - offset))
                gm = gain(mid)
                if (g0 - target) * (gm - target) <= 0:
                    x1, g1 = mid, gm
                else:
                    x0, g0 = mid, gm
            best = x0 if abs(g0 - target) <= abs(g1 - target) else x1
            return Verdict(knob, best, True, target, gain(best), bounds=(lo, hi))
    i = min(range(points), key=lambda k: abs(values[k] - target))
    direction = "vanish" if max(values) < target else "explode"
    if knob == "sharpness":
        turn = ("raise the dampening (peak) or the weights: even the widest surrogate is too weak"
                if direction == "vanish" else
                "lower the dampening (peak), the recurrent weights or the leak: even the sharpest surrogate "
                "is too strong")
    else:
        turn = ("raise the dampening or widen the surrogate (lower sharpness)" if direction == "vanish"
                else "lower the dampening or narrow the surrogate (raise sharpness)")
    return Verdict(knob, grid[i], False, target, values[i], bounds=(lo, hi),
                   reason=f"gradients {direction} for every {knob} in [{lo:g}, {hi:g}] "
                          f"(gain {min(values):.3g} to {max(values):.3g}); {turn}")


# -- feed-forward depth rule ------------------------------------------------------------------------------
def depth_dampening(weights: list[Tensor]) -> float:
    """``gamma* = (prod_l ||W_l||_2)^(-1/L)``: the surrogate peak that makes the product of the worst-case
    layer gains ``max sigma' * ||W_l||`` equal 1 over L feed-forward layers (paper.md 7c). Spectral norms;
    convolution kernels are flattened to ``(out, in * k...)``, whose norm bounds the conv operator's up to
    the kernel overlap."""
    if not weights:
        raise ConfigError("depth_dampening needs at least one weight", got=[], allowed="a list of weight tensors",
                          fix="pass [layer.weight for each layer feeding a spiking neuron]")
    logs = []
    for w in weights:
        m = w.detach().double().flatten(1) if w.dim() > 2 else _matrix(w, "weight")
        assert m is not None
        norm = float(torch.linalg.matrix_norm(m, ord=2))
        if norm <= 0:
            raise ConfigError("a weight matrix is all zeros", got=tuple(w.shape), allowed="nonzero weights",
                              fix="initialise the layer before analysing it")
        logs.append(math.log(norm))
    return math.exp(-sum(logs) / len(logs))
