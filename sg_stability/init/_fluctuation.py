"""Initialisers from the membrane statistics wanted: fluctuation-driven (Rossbroich, Gygax & Zenke 2022) and
variance flow (Micheli et al. 2024)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import nn

from .._errors import ConfigError
from .._validate import real
from ..recording import Run
from ._layers import InitLayer, run_per_layer
from ._report import InitReport, Writer


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
    theta, and no ``- mu_w^2`` correction. Weights are normal. Needs ``leak < 1``. A feed-forward layer right
    after a normalisation layer gets the normalisation's bias ``mu_U / eps_bar`` and weight
    ``sigma_U / sqrt(eps_hat)`` instead (the input current's mean and standard deviation, white in time).
    """
    if mu_u != "threshold":
        if isinstance(mu_u, str | bool) or not isinstance(mu_u, numbers.Real):
            raise ConfigError("fluctuation: mu_u must be a number or 'threshold'", got=mu_u,
                              allowed="a finite float, or 'threshold'",
                              fix="pass mu_u=0.0 (Rossbroich's default) or mu_u='threshold' (the paper's variant)")
        mu_u = real(mu_u, "mu_u", example="mu_u=0.0 (Rossbroich's default)", where="fluctuation")
    if sigma_u is not None:
        sigma_u = real(sigma_u, "sigma_u", above=0.0, example="sigma_u=1.0, or leave it out for (theta - mu_u)/xi",
                       where="fluctuation")
    xi = real(xi, "xi", above=0.0, example="xi=1.0 (sigma_U one threshold distance)", where="fluctuation")
    feedforward_share = real(feedforward_share, "feedforward_share", above=0.0, maximum=1.0,
                             example="feedforward_share=0.9 (stork's default)", where="fluctuation")

    def apply(layer: InitLayer, writer: Writer, report: InitReport) -> None:
        dyn = layer.dynamics
        assert dyn is not None
        if dyn.leak >= 1.0:
            report.skipped.append(f"{layer.name}: integrate-and-fire (leak 1) has no finite PSP kernel")
            return
        c, a, th = dyn.input_gain, dyn.leak, dyn.threshold
        eps_bar, eps_hat = c / (1 - a), c * c / (1 - a * a)
        centred = mu_u == "threshold"
        mean_u = th if centred else float(mu_u)
        sd_u = sigma_u if sigma_u is not None else (th if centred else (th - mean_u) / xi)
        if layer.norm is not None and layer.w_rec is None:  # a current of mean m, std s: U has mean m eps_bar
            layer.write_norm(writer, report, mean_u / eps_bar, sd_u / math.sqrt(eps_hat),  # and std s sqrt(eps_hat)
                             f"mu_U {mean_u:.3g}, sigma_U {sd_u:.3g}")
            return
        if layer.inputs is None or layer.w_in is None:
            report.skipped.append(f"{layer.name}: input statistics unavailable")
            return
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
            var = s * sd_u * sd_u / (n * nu * eps_hat) - (0.0 if centred else mu_w * mu_w)  # inf, not OverflowError
            if var < 0:
                report.skipped.append(f"{layer.name}: {role} variance {var:.3g} < 0, set to 0 (mu_u too large)")
                var = 0.0
            writer.write(layer.name, role, w, mu_w + math.sqrt(var) * torch.randn(w.shape, dtype=torch.float64),
                         f"mu_U {mean_u:.3g}, sigma_U {sd_u:.3g}, nu {nu:.3g}/step")

    variant = "mean membrane at threshold" if mu_u == "threshold" else f"mu_U = {mu_u}"
    return run_per_layer(model, sample, run, f"fluctuation-driven ({variant})", backup, apply)


def variance_flow(model: nn.Module, sample: Any, *, run: Run | None = None, backup: bool = False) -> InitReport:
    """Micheli et al. (2024; paper.md 7b): zero-mean normal input weights with ``Var[w] = theta^2 / (c^2 n E[z^2])``
    (``E[z^2]`` measured: the firing probability for spike inputs), so the input current has the threshold as its
    standard deviation in every layer. Recurrent weights are left as they are. After a normalisation layer its
    weight is set to ``theta / c`` and its bias to 0 instead."""

    def apply(layer: InitLayer, writer: Writer, report: InitReport) -> None:
        dyn = layer.dynamics
        assert dyn is not None
        if layer.norm is not None:  # after a normalisation its scale is the input current's std
            layer.write_norm(writer, report, 0.0, dyn.threshold / dyn.input_gain, "input current std theta / c")
            return
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

    return run_per_layer(model, sample, run, "variance flow", backup, apply)
