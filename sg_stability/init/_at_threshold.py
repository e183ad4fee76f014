"""Conditions I and II of the paper as an initialiser: the mean membrane at threshold (a high initial firing
rate) and recurrent weights whose variance balances the input and recurrent currents."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from .. import stability as cond
from ..recording import Run
from ._layers import InitLayer, run_per_layer
from ._report import InitReport, Writer


def at_threshold(model: nn.Module, sample: Any, *, run: Run | None = None, backup: bool = False) -> InitReport:
    """Conditions I and II (paper.md 3.1-3.2), re-derived in :mod:`sg_stability.stability`.

    - Recurrent layers: recurrent weights uniform with mean ``mu*`` (Condition I: stationary mean membrane at
      threshold with Bernoulli(1/2) spikes, given the measured mean input current) and variance ``s2*``
      (Condition II, with the factor 2 the reference code lacks; measured input statistics).
    - Feed-forward layers: the input weights' mean is shifted so that the mean input current puts the mean
      membrane at threshold (Condition I without recurrence): a high initial firing rate, as the paper recommends.
      After a normalisation layer (conv -> BatchNorm -> neuron) its bias is set to that mean instead: the
      normalisation would cancel a shift of the weights before it.
    """

    def apply(layer: InitLayer, writer: Writer, report: InitReport) -> None:
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
        elif layer.norm is not None and layer.w_rec is None:
            layer.write_norm(writer, report, float(cond.threshold_drive(dyn.leak, dyn.threshold, reset)) / c, None,
                             "Condition I (membrane at threshold)")
        elif layer.w_in is not None and layer.inputs is not None and layer.input_current_mean is not None:
            target = float(cond.threshold_drive(dyn.leak, dyn.threshold, reset)) / c
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

    return run_per_layer(model, sample, run, "stability (Conditions I and II)", backup, apply)


def stability(model: nn.Module, sample: Any, *, run: Run | None = None, backup: bool = False) -> InitReport:
    """Deprecated name of :func:`at_threshold` (too close to ``sg.stability`` and ``sg.stabilize``); it will be
    removed in the next release."""
    warnings.warn("sg.init.stability was renamed sg.init.at_threshold (and init='stability' to "
                  "init='at_threshold'); the old name will be removed in the next release", DeprecationWarning,
                  stacklevel=2)
    return at_threshold(model, sample, run=run, backup=backup)
