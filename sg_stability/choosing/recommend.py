"""``sg.analyze(model, sample)``: the stability report of every spiking layer (:mod:`sg_stability.analysis`), and
what ``sg.stabilize`` would install without training data, decided by the same code on the same recorded run."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..analysis import StabilityReport
from ..analysis.analyzer import analyze_trace, check_options
from ..recording import Run, traced
from ..recording.sample_checks import with_time_dim
from ..surrogates import Surrogate, get
from .choice import shortlist_and_choice


def analyze(model: nn.Module, sample: Any, *, run: Run | None = None, surrogate: str | Surrogate | None = None,
            probes: int = 4, seed: int = 0, target: float | dict[str, float] = 1.0,
            time_dim: int | None = None) -> StabilityReport:
    """Analyze every spiking layer of ``model`` on ``sample`` before training, and recommend a surrogate.

    ``run(model, sample)`` runs the model on the whole sequence (default ``model(sample)``, after resetting
    neuron states). ``surrogate`` analyzes all layers with that surrogate instead of the ones they hold (and the
    recommendation keeps its family). ``target`` is the gain the paper's Conditions III and IV aim at (1: neither
    growth nor decay), per layer name when a mapping. ``report.recommendation`` is the decision
    :func:`sg_stability.stabilize` makes without training data (with its defaults; the same code on the same
    measurements): the shortlist's candidate (``report.recommended``; None where each layer keeps its own), a
    per-layer dampening where one dampening would widen the gradient's spread across layers, and why.
    ``time_dim`` names the sample's time dimension when it is not 0 (e.g. 1 for ``[batch, time, ...]``): the
    sample is moved time-first before ``run`` (or the model) sees it, and the steps the model took are checked
    against that dimension.
    The model is left exactly as it was. See :class:`StabilityReport` and :class:`LayerReport`.
    """
    check_options(probes, seed, target)
    family = get(surrogate) if surrogate is not None else get("fast_sigmoid")
    with traced(model, sample, run=with_time_dim(run, time_dim), surrogate=surrogate) as trace:  # one forward pass
        report = analyze_trace(trace, probes=probes, seed=seed, target=target)
        pool, report.recommendation = shortlist_and_choice(trace, family, seed)
        report.passed_over = pool.preferred()[1]
        report.recommended = report.recommendation.candidate
    return report
