"""Data-driven and measured estimates of the per-step gradient gain g.

- data-driven: :func:`~._conditions.mean_square_gain` with ``E[sigma'(v)]``, ``E[sigma'(v)^2]`` and the
  probability of not spiking taken from membranes recorded on a sample batch;
- measured: the mean-square row norm of the autograd Jacobian ``dy_{t+1}/dy_t`` (Hutchinson: ``||J||_F^2 =
  E_u ||J^T u||^2`` for Rademacher u), and the per-step growth of ``||dL/dy_t||`` over a whole sequence (BPTT).

Because the forward pass does not depend on the surrogate's parameters, recorded membranes can be reused to
choose them: :func:`calibrate` solves ``data gain = target`` without running the model again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .._errors import ConfigError
from .._validate import checked
from ..surrogates import Surrogate
from ._checks import Dynamics, Verdict
from ._conditions import solve_gain
from ._moments import PreparedWeights, mean_square_gain


@checked
def data_moments(surrogate: Surrogate, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-neuron ``(E[sigma'(v)], E[sigma'(v)^2], P(v <= 0))`` over all leading dimensions of ``v``
    (``v``: centred membranes ``[..., n]`` as the surrogate receives them)."""
    if not isinstance(v, Tensor) or v.dim() < 1 or v.numel() == 0:
        raise ConfigError("membranes must be a non-empty tensor [..., neurons]", got=getattr(v, "shape", v),
                          allowed="the surrogate's inputs, e.g. shape [T, batch, n]",
                          fix="record v - threshold on a sample batch")
    flat = v.detach().double().reshape(-1, v.shape[-1])
    d = surrogate.derivative(flat).double()
    return d.mean(0), (d * d).mean(0), (flat <= 0).double().mean(0)


@checked
def recorded_diagonal(surrogate: Surrogate, v: Tensor, w_rec: Tensor | PreparedWeights | None,
                      dynamics: Dynamics) -> Tensor | None:
    """Per neuron, ``E[J_ii^2]`` of the transition's diagonal ``a (1 - s) + (W_ii - c) sigma'(v)`` averaged entry by
    entry over recorded membranes ``v`` (centred, ``[..., n]``; spikes where ``v > 0``), for dynamics with a
    membrane-dependent ``transition`` (None otherwise)."""
    if dynamics.transition is None or dynamics.detached:
        return None
    flat = v.detach().double().reshape(-1, v.shape[-1])
    fired = flat > 0
    a, c = dynamics.transition(flat, fired)
    if not dynamics.reset_grad:
        c = torch.zeros_like(c)
    prep = w_rec if isinstance(w_rec, PreparedWeights) or w_rec is None else PreparedWeights(w_rec)
    diag = prep.diag.double().to(flat.device) if prep is not None else 0.0
    j = a * (~fired).double() + (diag - c) * surrogate.derivative(flat).double()
    return (j * j).mean(0)


@checked
def data_gain(surrogate: Surrogate, v: Tensor, w_rec: Tensor | None, dynamics: Dynamics) -> float:
    """The per-step gain predicted from recorded membranes ``v`` (centred, ``[..., n]``)."""
    sg1, sg2, quiet = data_moments(surrogate, v)
    own = recorded_diagonal(surrogate, v, w_rec, dynamics)
    g2 = mean_square_gain(w_rec, dynamics, sg1=sg1, sg2=sg2, quiet=quiet, own=own)
    return math.sqrt(max(float(g2), 0.0))


@checked
def calibrate(surrogate: Surrogate, v: Tensor, w_rec: Tensor | None, dynamics: Dynamics, *, knob: str = "sharpness",
              target: float = 1.0, bounds: tuple[float, float] | None = None) -> Verdict:
    """Choose the sharpness (or q_pseudospike's tail) so that the data-driven gain equals ``target``."""
    if knob == "tail" and "tail" not in type(surrogate).param_names:
        raise ConfigError("only q_pseudospike has a tail to calibrate", got=surrogate.family,
                          allowed='knob="sharpness" for every family', fix='use knob="sharpness"')
    offset = 1.0 if knob == "tail" else 0.0
    lo, hi = bounds or (1e-3, 1e3)

    prep = PreparedWeights(w_rec) if w_rec is not None else None
    flat = v.detach().double().reshape(-1, v.shape[-1]) if isinstance(v, Tensor) and v.dim() >= 1 else v

    def gain(x: float) -> float:
        chosen = surrogate.replace(**{knob: x})
        sg1, sg2, quiet = data_moments(chosen, flat)
        own = recorded_diagonal(chosen, flat, prep, dynamics)
        g2 = mean_square_gain(prep, dynamics, sg1=sg1, sg2=sg2, quiet=quiet, own=own)
        return math.sqrt(max(float(g2), 0.0))

    return solve_gain(gain, knob, target, lo + offset, hi + offset, offset)


@checked
def probe_steps(count: int) -> list[int]:
    """Up to four distinct steps in the second half of ``range(count)``, where a measurement samples the
    stationary regime rather than the start-up transient."""
    if count < 2:
        return []
    return sorted({min(count - 1, count // 2 + k * max(count // 8, 1)) for k in range(4)})


@checked
def rademacher(like: Tensor, gen: torch.Generator) -> Tensor:
    """Random signs shaped like ``like``: E[u u^T] = I, so E||J^T u||^2 = ||J||_F^2."""
    return torch.randint(0, 2, like.shape, generator=gen).to(device=like.device, dtype=like.dtype) * 2 - 1


@checked
def hutchinson_rms(outputs: Sequence[Tensor], vjp: Callable[[int, Tensor], Tensor | None], probes: int,
                   gen: torch.Generator, *, batched: bool = False) -> float | None:
    """The Hutchinson estimator: root mean-square row norm of the Jacobians of ``outputs[k]`` (rows = its
    entries), from ``probes`` vector-Jacobian products ``vjp(k, u)`` with Rademacher ``u`` each
    (``||J||_F^2 = E_u ||J^T u||^2``). None when a product is None (the output does not depend on the input).
    ``batched=True``: ``vjp(k, U)`` receives every draw for ``outputs[k]`` stacked (``[probes, *shape]``) and
    returns the products stacked the same way -- one batched backward pass instead of ``probes``."""
    total, rows = 0.0, 0
    for k, out in enumerate(outputs):
        draws = [rademacher(out, gen) for _ in range(probes)]
        got = [vjp(k, torch.stack(draws))] if batched else [vjp(k, u) for u in draws]
        if any(g is None for g in got):
            return None
        total += sum(float(g.double().square().sum()) for g in got if g is not None)
        rows += out.numel() * probes
    return math.sqrt(total / rows) if rows else None


@checked
def layer_gain(w: Tensor, sg2: Tensor) -> float:
    """Feed-forward gain from one spiking layer to the next at the same step: the root mean-square row norm of
    ``dI_next/dv = W diag(sigma'(v))``, i.e. ``sqrt(mean_k sum_j W_kj^2 E[sigma'(v_j)^2])`` (``W``: next layer's
    weight, ``[n_next, n]``; ``sg2``: per-neuron ``E[sigma'^2]`` of this layer, from theory or data)."""
    w64 = w.detach().double()
    return math.sqrt(float(((w64 * w64) @ sg2.double()).mean()))


@checked
def late_growth(norms: Sequence[float] | None) -> float | None:
    """The growth per step going back in time that a user is shown (analyzer, candidates, diagnostics): the
    geometric mean over the second half of the steps where the gradient-norm curve is non-zero (the stationary
    regime, after the start-up transient); None with fewer than 4 such steps."""
    if not norms:
        return None
    nonzero = [k for k, n in enumerate(norms) if n > 0]
    if len(nonzero) < 4:
        return None
    start, end = nonzero[len(nonzero) // 2], nonzero[-1]
    return growth_per_step(torch.tensor(list(norms[start:end + 1]), dtype=torch.float64))


@checked
def growth_per_step(norms: Tensor, skip: int = 0) -> float:
    """Geometric-mean growth per step of a gradient-norm curve (earliest over latest, ``skip`` early steps
    ignored): > 1 means gradients grow going back in time."""
    first, last = norms[skip], norms[-1]
    steps = len(norms) - 1 - skip
    if steps <= 0 or last <= 0:
        return math.nan
    if first <= 0:
        return 0.0
    return float((first / last) ** (1.0 / steps))
