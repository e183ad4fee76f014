"""Initialisers that take spiking into account, applied to the weights that feed each spiking layer.

The analyzer's tracing finds the weights (the last weight module before each neuron, recurrent weights by their
loop, weights a neuron holds itself) and each neuron's dynamics through its adapter. Weights are changed in
place (``param.copy_``): Parameter identity, optimizer references, hooks and zero diagonals are kept. Layers are
initialised in execution order, each with the input statistics produced by the layers already initialised.

- :func:`stability` -- Conditions I and II (paper.md 3.1-3.2): mean membrane at threshold, i.e. a high initial
  firing rate; recurrent variance balancing the input and recurrent currents.
- :func:`fluctuation` -- Rossbroich, Gygax & Zenke (2022): weights from the membrane mean and fluctuations
  wanted (Campbell's theorem); ``mu_u="threshold"`` is the paper's variant with the mean membrane at threshold
  (paper.md 5.2).
- :func:`variance_flow` -- Micheli et al. (2024): ``Var[w] = 1 / (n * E[z^2])`` (paper.md 7b).
- :func:`calibrate_rate` -- the paper's data-driven "adjfi": per layer, shift the bias (or the weight mean)
  until the layer fires at ``target_rate`` on the sample (bisection, with a progress bar).

Weights are not restored by a patch handle (decisions D5); pass ``backup=True`` and call ``report.restore()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .._analyze import Run, _Record, _weight_of, traced
from .._errors import ConfigError
from ..adapter_api import Dynamics
from ..stability import _conditions as cond

__all__ = ["METHODS", "InitReport", "WeightChange", "calibrate_rate", "fluctuation", "initialize", "stability",
           "variance_flow"]


@dataclass(frozen=True)
class WeightChange:
    layer: str
    role: str  # "input", "recurrent" or "bias"
    before: tuple[float, float]  # mean, std
    after: tuple[float, float]
    rule: str


@dataclass
class InitReport:
    """What an initialiser changed, per layer. ``restore()`` puts the old values back (``backup=True`` only)."""

    method: str
    changes: list[WeightChange] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    _backup: list[tuple[Tensor, Tensor]] | None = field(default=None, repr=False)

    def restore(self) -> None:
        if self._backup is None:
            raise ConfigError("this initialisation kept no backup", got=self.method,
                              allowed="restore() after an initialiser called with backup=True",
                              fix="call the initialiser with backup=True to be able to restore the weights")
        with torch.no_grad():
            for param, old in self._backup:
                param.copy_(old)

    def __str__(self) -> str:
        head = (f"{'layer':<16}{'weights':<11}{'mean before':>13}{'std before':>12}{'mean after':>12}"
                f"{'std after':>11}  rule")
        lines = [f"initialisation: {self.method}", head]
        for c in self.changes:
            lines.append(f"{c.layer[:15]:<16}{c.role:<11}{c.before[0]:>13.4g}{c.before[1]:>12.4g}"
                         f"{c.after[0]:>12.4g}{c.after[1]:>11.4g}  {c.rule}")
        lines.extend(f"skipped: {s}" for s in self.skipped)
        return "\n".join(lines)


@dataclass
class _Layer:
    record: _Record
    dynamics: Dynamics | None
    w_in: Tensor | None
    w_rec: Tensor | None
    bias: Tensor | None
    inputs: Tensor | None  # everything that entered the feed weight, flattened
    input_current_mean: float | None  # mean of the feed weight's output
    rate: float

    @property
    def name(self) -> str:
        return self.record.site.path


def _layers(model: nn.Module, sample: Any, run: Run | None) -> list[_Layer]:
    with traced(model, sample, run=run, grad=False) as trace:
        out = []
        for rec in trace.ordered():
            internal = rec.site.driver.internal_weights()
            w_in = internal.get("input", _weight_of(rec.feed) if rec.feed is not None else None)
            w_rec = internal.get("recurrent", _weight_of(rec.recurrent) if rec.recurrent is not None else None)
            io = trace.weight_io.get(rec.feed, []) if rec.feed is not None and "input" not in internal else []
            inputs: Tensor | None
            current: float | None
            if io:
                inputs = torch.cat([i.reshape(-1) for i, _ in io])
                current = float(torch.cat([o.reshape(-1) for _, o in io]).double().mean())
            elif "input" in internal:
                ins = [i for i in rec.inputs if isinstance(i, Tensor)]
                inputs = torch.cat([i.detach().reshape(-1) for i in ins]) if ins else None
                current = None
            else:
                inputs, current = None, None
            bias = getattr(rec.feed, "bias", None) if "input" not in internal else None
            v = torch.cat([c.detach().reshape(-1) for c in rec.calls])
            inclusive = rec.site.driver.heaviside.inclusive
            rate = float(((v >= 0) if inclusive else (v > 0)).double().mean())
            out.append(_Layer(rec, rec.site.driver.dynamics(), w_in, w_rec,
                              bias if isinstance(bias, Tensor) else None, inputs, current, rate))
        return out


def _stats(t: Tensor) -> tuple[float, float]:
    t64 = t.detach().double()
    return float(t64.mean()), float(t64.std()) if t64.numel() > 1 else 0.0


class _Writer:
    def __init__(self, report: InitReport, backup: bool) -> None:
        self.report = report
        self.backup = backup
        if backup:
            report._backup = []

    def write(self, layer: str, role: str, param: Tensor, new: Tensor, rule: str) -> None:
        if not isinstance(param, nn.Parameter) and not param.requires_grad:
            raise ConfigError(f"{layer}: the {role} weights are not a Parameter that can be written in place",
                              got=type(param).__name__, allowed="nn.Parameter",
                              fix="initialise this layer by hand")
        before = _stats(param)
        zero_diag = param.dim() == 2 and param.shape[0] == param.shape[1] and bool(
            (torch.diagonal(param.detach()) == 0).all())
        with torch.no_grad():
            if self.backup and self.report._backup is not None and all(p is not param for p, _ in self.report._backup):
                self.report._backup.append((param, param.detach().clone()))
            new = new.to(param.dtype).reshape(param.shape)
            if zero_diag:
                new = new.clone()
                new.fill_diagonal_(0.0)
            param.copy_(new)
        self.report.changes.append(WeightChange(layer, role, before, _stats(param), rule))


def _check_parametrized(model: nn.Module) -> None:
    from torch.nn.utils import parametrize

    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            raise ConfigError("the model has parametrized weights (torch.nn.utils.parametrize), which cannot be "
                              "initialised in place", got=name or type(module).__name__,
                              allowed="plain nn.Parameter weights",
                              fix="initialise before registering the parametrization, or remove it first")


def _run_per_layer(model: nn.Module, sample: Any, run: Run | None, method: str, backup: bool,
                   apply: Callable[[_Layer, _Writer, InitReport], None]) -> InitReport:
    _check_parametrized(model)
    report = InitReport(method)
    writer = _Writer(report, backup)
    layers = _layers(model, sample, run)
    for k in range(len(layers)):
        if k:  # trace again: the statistics of layer k depend on the layers below, initialised by now
            layers = _layers(model, sample, run)
        layer = layers[k]
        if layer.dynamics is None:
            report.skipped.append(f"{layer.name}: its adapter does not describe the neuron's dynamics")
            continue
        if layer.w_in is None and layer.w_rec is None:
            report.skipped.append(f"{layer.name}: no weights feed it")
            continue
        apply(layer, writer, report)
    return report


_DRIVE = {"subtract": lambda a: 1.5 - a, "multiplicative": lambda a: 1.0 - a / 2, "zero": lambda a: 2.0 - a,
          "none": lambda a: 1.0 - a}


def stability(model: nn.Module, sample: Any, *, run: Run | None = None, backup: bool = False) -> InitReport:
    """Conditions I and II (paper.md 3.1-3.2), re-derived in :mod:`sg_stability.stability`.

    - Recurrent layers: recurrent weights uniform with mean ``mu*`` (Condition I: stationary mean membrane at
      threshold with Bernoulli(1/2) spikes, given the measured mean input current) and variance ``s2*``
      (Condition II, with the factor 2 the reference code lacks; measured input statistics).
    - Feed-forward layers: the input weights' mean is shifted so that the mean input current puts the mean
      membrane at threshold (Condition I without recurrence): a high initial firing rate, as the paper recommends.
    """

    def apply(layer: _Layer, writer: _Writer, report: InitReport) -> None:
        dyn = layer.dynamics
        assert dyn is not None
        c = dyn.input_gain
        reset = dyn.reset
        if layer.w_rec is not None and layer.w_in is not None and layer.inputs is not None:
            n_rec, n_in = layer.w_rec.shape[0], layer.w_in.flatten(1).shape[1]
            m_in = c * (layer.input_current_mean if layer.input_current_mean is not None
                        else float(layer.w_in.detach().double().mean() * n_in * layer.inputs.double().mean()))
            mu = float(cond.condition_i(n_rec, dyn.leak, dyn.threshold, reset, input_current=m_in)) / c
            z = layer.inputs.double()
            verdict = cond.condition_ii(n_rec, n_in, float(layer.w_in.detach().double().var()), recurrent_mean=mu,
                                        input_mean=float(z.mean()), input_var=float(z.var()))
            if not verdict.feasible:
                report.skipped.append(f"{layer.name}: Condition II infeasible ({verdict.reason}); variance set to 0")
            half = math.sqrt(3.0 * max(verdict.value, 0.0))
            new = mu + (torch.rand(layer.w_rec.shape, dtype=torch.float64) * 2 - 1) * half
            writer.write(layer.name, "recurrent", layer.w_rec, new,
                         f"Condition I mean {mu:.4g}, Condition II variance {verdict.value:.4g}")
        elif layer.w_in is not None and layer.inputs is not None and layer.input_current_mean is not None:
            target = _DRIVE[reset](dyn.leak) * dyn.threshold / c
            missing = target - layer.input_current_mean
            n_in = layer.w_in.flatten(1).shape[1]
            z_mean = float(layer.inputs.double().mean())
            if abs(z_mean) > 1e-12:
                delta = missing / (n_in * z_mean)
                writer.write(layer.name, "input", layer.w_in, layer.w_in.detach().double() + delta,
                             f"mean shifted by {delta:.4g}: mean input current {target:.4g} (membrane at threshold)")
            elif layer.bias is not None:
                writer.write(layer.name, "bias", layer.bias, layer.bias.detach().double() + missing,
                             f"bias shifted by {missing:.4g}: mean membrane at threshold (inputs have zero mean)")
            else:
                report.skipped.append(f"{layer.name}: its inputs have zero mean and its weight has no bias")
        else:
            report.skipped.append(f"{layer.name}: input statistics unavailable")

    return _run_per_layer(model, sample, run, "stability (Conditions I and II)", backup, apply)


def fluctuation(model: nn.Module, sample: Any, *, run: Run | None = None, mu_u: float | str = 0.0,
                sigma_u: float | None = None, xi: float = 1.0, feedforward_share: float = 0.9,
                backup: bool = False) -> InitReport:
    """Fluctuation-driven initialisation (Rossbroich et al. 2022; paper.md 5.2), for the discrete-time LIF.

    With presynaptic rate nu (measured, per step) and the PSP kernel of one unit weight ``eps_k = c alpha^k``
    (sum ``eps_bar = c/(1-alpha)``, sum of squares ``eps_hat = c^2/(1-alpha^2)``), Campbell's theorem gives
    ``mu_U = N nu eps_bar mu_w`` and ``sigma_U^2 = N nu eps_hat (sigma_w^2 + mu_w^2)``, so

        ``mu_w = mu_U / (N nu eps_bar)``, ``sigma_w^2 = share * sigma_U^2 / (N_c nu_c eps_hat) - mu_w^2``

    per afferent group c (feed-forward share ``feedforward_share``, recurrent the rest). ``sigma_u`` defaults to
    ``(theta - mu_u)/xi``. ``mu_u="threshold"`` is the paper's variant: mean membrane at threshold, sigma_U =
    theta, and no ``- mu_w^2`` correction. Weights are normal. Needs ``leak < 1``.
    """
    if not (mu_u == "threshold" or isinstance(mu_u, (int, float))):
        raise ConfigError("mu_u must be a number or 'threshold'", got=mu_u, allowed="a float, or 'threshold'",
                          fix="pass mu_u=0.0 (Rossbroich's default) or mu_u='threshold' (the paper's variant)")
    if not 0.0 < feedforward_share <= 1.0:
        raise ConfigError("feedforward_share must lie in (0, 1]", got=feedforward_share, allowed="0 < share <= 1",
                          fix="pass 0.9 (stork's default)")

    def apply(layer: _Layer, writer: _Writer, report: InitReport) -> None:
        dyn = layer.dynamics
        assert dyn is not None
        if dyn.leak >= 1.0:
            report.skipped.append(f"{layer.name}: integrate-and-fire (leak 1) has no finite PSP kernel")
            return
        if layer.inputs is None or layer.w_in is None:
            report.skipped.append(f"{layer.name}: input statistics unavailable")
            return
        c, a, th = dyn.input_gain, dyn.leak, dyn.threshold
        eps_bar, eps_hat = c / (1 - a), c * c / (1 - a * a)
        centred = mu_u == "threshold"
        mean_u = th if centred else float(mu_u)
        sd_u = sigma_u if sigma_u is not None else (th if centred else (th - mean_u) / xi)
        nu_in = max(float(layer.inputs.double().mean()), 1e-6)
        n_in = layer.w_in.flatten(1).shape[1]
        groups = [("input", layer.w_in, n_in, nu_in)]
        if layer.w_rec is not None:
            groups.append(("recurrent", layer.w_rec, layer.w_rec.shape[1], max(layer.rate, 1e-6)))
        share = feedforward_share if len(groups) > 1 else 1.0
        total = sum(n * nu for _, _, n, nu in groups)
        mu_w = mean_u / (total * eps_bar)
        for role, w, n, nu in groups:
            s = share if role == "input" else 1.0 - share
            var = s * sd_u**2 / (n * nu * eps_hat) - (0.0 if centred else mu_w**2)
            if var < 0:
                report.skipped.append(f"{layer.name}: {role} variance {var:.3g} < 0, set to 0 (mu_u too large)")
                var = 0.0
            writer.write(layer.name, role, w, mu_w + math.sqrt(var) * torch.randn(w.shape, dtype=torch.float64),
                         f"mu_U {mean_u:.3g}, sigma_U {sd_u:.3g}, nu {nu:.3g}/step")

    variant = "mean membrane at threshold" if mu_u == "threshold" else f"mu_U = {mu_u}"
    return _run_per_layer(model, sample, run, f"fluctuation-driven ({variant})", backup, apply)


def variance_flow(model: nn.Module, sample: Any, *, run: Run | None = None, backup: bool = False) -> InitReport:
    """Micheli et al. (2024; paper.md 7b): zero-mean normal input weights with ``Var[w] = theta^2 / (c^2 n E[z^2])``
    (``E[z^2]`` measured: the firing probability for spike inputs), so the input current has the threshold as its
    standard deviation in every layer. Recurrent weights are left as they are."""

    def apply(layer: _Layer, writer: _Writer, report: InitReport) -> None:
        dyn = layer.dynamics
        assert dyn is not None
        if layer.w_in is None or layer.inputs is None:
            report.skipped.append(f"{layer.name}: input statistics unavailable")
            return
        n = layer.w_in.flatten(1).shape[1]
        meansq = float(layer.inputs.double().square().mean())
        if meansq <= 0:
            report.skipped.append(f"{layer.name}: its inputs are all zero on the sample")
            return
        var = dyn.threshold**2 / (dyn.input_gain**2 * n * meansq)
        writer.write(layer.name, "input", layer.w_in, math.sqrt(var) * torch.randn(layer.w_in.shape,
                                                                                   dtype=torch.float64),
                     f"Var[w] = theta^2/(c^2 n E[z^2]), E[z^2] = {meansq:.3g}")

    return _run_per_layer(model, sample, run, "variance flow", backup, apply)


def calibrate_rate(model: nn.Module, sample: Any, *, target_rate: float = 0.5, run: Run | None = None,
                   tolerance: float = 0.01, max_steps: int = 40, backup: bool = False,
                   progress: bool = True) -> InitReport:
    """The paper's "adjfi" as a calibration: per layer, in execution order, shift the bias of the weight that
    feeds it (or, without a bias, the mean of that weight) by bisection until the layer's firing rate on
    ``sample`` is within ``tolerance`` of ``target_rate``."""
    if not (isinstance(target_rate, (int, float)) and 0.0 < target_rate < 1.0):
        raise ConfigError("target_rate must lie strictly between 0 and 1", got=target_rate,
                          allowed="0 < target_rate < 1 (a firing probability per step)",
                          fix="pass e.g. target_rate=0.5 (Condition I) or 0.158")
    from tqdm.auto import tqdm

    _check_parametrized(model)
    report = InitReport(f"firing-rate calibration to {target_rate:g}")
    writer = _Writer(report, backup)
    layers = _layers(model, sample, run)
    bar = tqdm(total=len(layers) * max_steps, desc="calibrating firing rates", disable=not progress, leave=False)
    try:
        for k, first in enumerate(layers):
            param = first.bias if first.bias is not None else first.w_in
            if param is None:
                report.skipped.append(f"{first.name}: no bias or weight feeds it")
                continue
            role = "bias" if first.bias is not None else "input"
            base = param.detach().double().clone()
            scale = float(base.abs().mean()) or 1.0

            def rate_at(shift: float, param: Tensor = param, base: Tensor = base, k: int = k) -> float:
                with torch.no_grad():
                    param.copy_((base + shift).to(param.dtype))
                bar.update(1)
                return _layers(model, sample, run)[k].rate

            lo, hi = -scale, scale
            r_lo, r_hi = rate_at(lo), rate_at(hi)
            for _ in range(max_steps // 4):
                if r_lo <= target_rate <= r_hi:
                    break
                if r_lo > target_rate:
                    lo *= 2
                    r_lo = rate_at(lo)
                if r_hi < target_rate:
                    hi *= 2
                    r_hi = rate_at(hi)
            best = min(((abs(r_lo - target_rate), lo), (abs(r_hi - target_rate), hi)))
            if r_lo <= target_rate <= r_hi:
                for _ in range(max_steps):
                    mid = 0.5 * (lo + hi)
                    r = rate_at(mid)
                    best = min(best, (abs(r - target_rate), mid))
                    if abs(r - target_rate) <= tolerance:
                        break
                    lo, hi = (mid, hi) if r < target_rate else (lo, mid)
            with torch.no_grad():
                param.copy_(base.to(param.dtype))
            writer.write(first.name, role, param, base + best[1],
                         f"shifted by {best[1]:.4g}: rate {target_rate:g} +- {best[0]:.3g}")
            if best[0] > tolerance:
                report.skipped.append(f"{first.name}: reached rate within {best[0]:.3g} of the target only")
    finally:
        bar.close()
    return report


METHODS: dict[str, Callable[..., InitReport]] = {"stability": stability, "fluctuation": fluctuation,
                                                  "variance_flow": variance_flow, "rate": calibrate_rate}


def initialize(model: nn.Module, sample: Any, method: str, **options: Any) -> InitReport:
    """Apply the initialiser ``method`` (one of :data:`METHODS`) with its ``options``."""
    if method not in METHODS:
        raise ConfigError("unknown initialisation method", got=method, allowed=f"one of {sorted(METHODS)}",
                          fix='e.g. init="stability" (the paper: high initial firing rate)')
    return METHODS[method](model, sample, **options)
