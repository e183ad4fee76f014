"""The mean-square gain of the transition derivative, and the moments of sigma' it needs: under the paper's
uniform-voltage assumption (theory) or measured (``_gains``). Model and reset kinds: ``_conditions``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import ConfigError
from .._validate import checked
from ..surrogates import Surrogate
from ._checks import Dynamics, Number, as64, check_matrix, check_reset, dynamics_leak, per_weight, raw64


# -- voltage range under the uniform assumption ------------------------------------------------------------
def signed_row_sums(w: Tensor, block: int = 1 << 20) -> tuple[Tensor, Tensor]:
    """Per row, the sums of the positive and of the negative entries, in float64, from blocks of about ``block``
    entries: no copy of the whole matrix (a VGG classifier's is 400 MB in float32, 800 MB in float64)."""
    rows = max(1, block // max(w.shape[1], 1))
    plus, total = [], []
    for chunk in w.split(rows):
        c = chunk.double()
        plus.append(c.clamp(min=0).sum(1))
        total.append(c.sum(1))
    p, t = torch.cat(plus), torch.cat(total)
    return p, t - p


@checked
def voltage_range(w_rec: Tensor | None, w_in: Tensor | None, dynamics: Dynamics, input_max: Number = 1.0
                  ) -> tuple[Tensor, Tensor]:
    """Per-neuron bounds ``(v_min, v_max)`` of the centred membrane ``v = y - theta`` (paper.md 3.0).

    ``y_max = (S+_rec + S+_in)/(1 - alpha)``, ``y_min = (S-_rec + S-_in - theta [subtract])/(1 - alpha)``, where
    S+ (S-) is the sum of a neuron's positive (negative) incoming weights: the stationary extremes when every
    excitatory (inhibitory) presynaptic neuron fires at every step. Inputs are taken to lie in
    ``[0, input_max]`` (spikes: 1). For ``leak = 1`` (integrate-and-fire) the range is unbounded: +-inf.
    """
    a, th = dynamics_leak(dynamics), as64(dynamics.threshold, "threshold")
    device = next((w.device for w in (w_rec, w_in) if isinstance(w, Tensor)), None)  # the weights' device
    s_plus = torch.zeros((), dtype=torch.float64, device=device)
    s_minus = torch.zeros((), dtype=torch.float64, device=device)
    for given, name, scale in ((w_rec, "w_rec", 1.0), (w_in, "w_in", as64(input_max, "input_max"))):
        w = check_matrix(given, name, double=False)
        if given is not None and w is not None:
            plus, minus = per_weight("signed row sums", given, lambda w=w: signed_row_sums(w))  # type: ignore[misc]
            s_plus, s_minus = s_plus + scale * plus, s_minus + scale * minus
    s_plus, s_minus = s_plus.double(), s_minus.double()
    low = s_minus - (th if check_reset(dynamics.reset) == "subtract" else 0.0)
    free = 1.0 - a
    with torch.no_grad():
        y_max = torch.where(free > 0, s_plus / free.clamp(min=1e-300), torch.full_like(s_plus, math.inf))
        y_min = torch.where(free > 0, low / free.clamp(min=1e-300), torch.full_like(low, -math.inf))
    return y_min - th, y_max - th


# -- moments of sigma' under a uniform membrane -------------------------------------------------------------
@checked
def uniform_moment(surrogate: Surrogate, m: int, v_min: Number, v_max: Number) -> Tensor:
    """``E[sigma'(v)^m]`` for v uniform on ``[v_min, v_max]``, in closed form:
    ``gamma^m / (beta (v_max - v_min)) * (G_m(beta v_max) - G_m(beta v_min))`` with ``G_m(u) = int_0^u f^m``.
    An unbounded range gives 0; an empty one gives ``sigma'(v_min)^m``."""
    lo, hi = raw64(v_min), raw64(v_max)
    if torch.isnan(lo).any() or torch.isnan(hi).any() or (hi < lo).any():
        raise ConfigError("the membrane range must satisfy v_min <= v_max", got=(v_min, v_max),
                          allowed="v_min <= v_max (infinite bounds allowed)", fix="swap the bounds")
    gamma = as64(surrogate.dampening, "dampening")
    beta = as64(surrogate.sharpness, "sharpness")
    width = hi - lo
    g_hi, g_lo = surrogate.moment(beta * hi, m).double(), surrogate.moment(beta * lo, m).double()
    spread = gamma**m * (g_hi - g_lo) / (beta * width.clamp(min=1e-300))
    point = gamma**m * surrogate.unit_shape(beta * lo).double() ** m
    out = torch.where(width > 1e-12 * (1.0 + lo.abs()), spread, point)
    return torch.where(torch.isinf(width), torch.zeros_like(out), out)


# -- the mean-square gain of the transition derivative --------------------------------------------------
class PreparedWeights:
    """A recurrent weight matrix reduced to what the gain needs: the column means of ``W_ij^2`` (the mean over
    rows commutes with the sum over j), the diagonal, and the matrix itself for the per-row zero reset.
    Solvers build it once, so each evaluation costs O(n) instead of O(n^2)."""

    def __init__(self, w_rec: Tensor) -> None:
        w = check_matrix(w_rec, "w_rec")
        assert w is not None
        self.matrix = w
        self.col_sq_mean = (w * w).mean(0)
        self.diag = torch.diagonal(w).clone() if w.shape[0] == w.shape[1] else torch.zeros(w.shape[0],
                                                                                          dtype=w.dtype,
                                                                                          device=w.device)


@checked
def mean_square_gain(w_rec: Tensor | PreparedWeights | None, dynamics: Dynamics, *, sg1: Tensor, sg2: Tensor,
                     quiet: Number = 0.5, own: Tensor | None = None) -> Tensor:
    """``g^2 = mean_i sum_j E[J_ij^2]``: the mean-square row norm of the transition derivative.

    ``sg1``, ``sg2``: per-neuron ``E[sigma'(v)]`` and ``E[sigma'(v)^2]`` (from the uniform assumption or from
    measured membranes); ``quiet``: per-neuron probability of not spiking. Spikes and sigma' of different
    neurons are taken as independent. Per row i (``d = W_ii - c [reset_grad]``, ``a = alpha``):

    - ``sum_{j != i} W_ij^2 sg2_j + E[(a_i + d sigma'_i)^2]``, with ``E[(a + d s')^2] = a^2 + 2 a d sg1 + d^2 sg2``;
    - multiplicative reset: the ``a^2`` and ``2 a d`` terms carry the factor ``quiet``;
    - zero reset: the whole row carries ``quiet``;
    - a detached membrane (``dynamics.detached``): no leak and no reset term, the recurrent weights alone;
    - ``own``: per-neuron ``E[J_ii^2]`` averaged entry by entry over recorded membranes (a membrane-dependent
      gain, :func:`~sg_stability.stability.recorded_diagonal`) replaces the diagonal term, quiet factors included.
    """
    r = check_reset(dynamics.reset)
    a = dynamics_leak(dynamics)
    if dynamics.detached:  # the membrane is cut between steps: only the recurrent weights carry a gradient back
        a, r = torch.zeros_like(a), "none"
    s1, s2 = as64(sg1, "sg1"), as64(sg2, "sg2")
    q = as64(quiet, "quiet")
    prep = w_rec if isinstance(w_rec, PreparedWeights) or w_rec is None else PreparedWeights(w_rec)
    c: Number = 0.0
    if dynamics.reset_grad and r != "none":
        if dynamics.reset_jump is not None:
            c = as64(dynamics.reset_jump, "reset_jump")
        else:  # the reset term's derivative at v = theta: theta (subtract, zero), alpha theta (multiplicative)
            c = as64(dynamics.threshold, "threshold") * (a if r == "multiplicative" else 1.0)
    diag = prep.diag if prep is not None else torch.zeros((), dtype=torch.float64)
    d = diag - c
    leak_weight = q if r == "multiplicative" else 1.0
    recorded = own is not None and not dynamics.detached
    if not recorded:
        own = leak_weight * (a * a + 2 * a * d * s1) + d * d * s2  # the diagonal entry, per row
    assert own is not None
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
        row = q * (off_rows if off_rows is not None else off_mean) + (own if recorded else q * own)
        return row.mean() if row.dim() else row
    return off_mean + (own.mean() if own.dim() else own)


@checked
def theory_moments(surrogate: Surrogate, w_rec: Tensor | None, w_in: Tensor | None, dynamics: Dynamics,
                   input_max: Number = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """``(E[sigma'], E[sigma'^2], P(no spike))`` per neuron under the uniform-voltage assumption."""
    lo, hi = voltage_range(w_rec, w_in, dynamics, input_max)
    sg1 = uniform_moment(surrogate, 1, lo, hi)
    sg2 = uniform_moment(surrogate, 2, lo, hi)
    width = hi - lo
    quiet = torch.where(torch.isinf(width), torch.full_like(width, 0.5),
                        ((0.0 - lo) / width.clamp(min=1e-300)).clamp(0.0, 1.0))
    return sg1, sg2, quiet


@checked
def theory_gain(surrogate: Surrogate, w_rec: Tensor | None, w_in: Tensor | None, dynamics: Dynamics, *,
                input_max: Number = 1.0) -> float:
    """The paper's prediction of the per-step gradient gain g from the weights alone (uniform voltage)."""
    lo, hi = voltage_range(w_rec, w_in, dynamics, input_max)
    return uniform_gain(surrogate, PreparedWeights(w_rec) if w_rec is not None else None, lo, hi, dynamics)


@checked
def uniform_gain(surrogate: Surrogate, prep: PreparedWeights | None, lo: Tensor, hi: Tensor, dynamics: Dynamics
                 ) -> float:
    """The gain for membranes uniform on ``[lo, hi]`` (per neuron)."""
    sg1, sg2 = uniform_moment(surrogate, 1, lo, hi), uniform_moment(surrogate, 2, lo, hi)
    width = hi - lo
    quiet = torch.where(torch.isinf(width), torch.full_like(width, 0.5),
                        ((0.0 - lo) / width.clamp(min=1e-300)).clamp(0.0, 1.0))
    g2 = mean_square_gain(prep, dynamics, sg1=sg1, sg2=sg2, quiet=quiet)
    return math.sqrt(max(float(g2), 0.0))


