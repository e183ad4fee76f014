"""The race's prior: what ``sg.stabilize`` installs without training data (``shortlist.prior``: the analysis'
preferred candidate, rescaled per layer or a fallback where that keeps the gradient's spread across layers).

A race over a shortlist keeps the prior to the last rung, and replaces it only when the best candidate beats it
by more than the validation set can tell apart: the paired difference of the two trained models on the same
validation samples (``score="accuracy"``: per sample; otherwise per batch) must exceed two standard errors
(MARGIN_SE). With ``score="accuracy"`` it may instead win by each sample's log-likelihood of its label, beyond two
standard errors, when its accuracy leans the same way beyond one (LEAN_SE). Paying for a race should never buy a
worse choice than the free one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._patching import patch
from .options import LossFn
from .race_checks import validation_losses
from .shortlist import Candidate, Shortlist

#: how many standard errors of the paired difference the best must beat the prior by. Measured at 1 and 2 on the
#: evidence harness with the decision at the full budget (docs/evidence.md): the same median, and 2 never fell
#: below 0.996x the prior's accuracy where 1 fell to 0.948x on a held-out task. A wrong switch costs more than a
#: missed one: a lucky validation gain of one standard error happens one time in six.
MARGIN_SE = 2.0
#: with ``score="accuracy"`` the best may also win by its per-sample log-likelihood of the labels (a finer measure of
#: the same samples) beating the prior's by MARGIN_SE standard errors, provided its accuracy leans the same way by
#: more than this many standard errors of its own: a likelihood gain alone, with an accuracy within its noise,
#: is not a gain in what the user scores
LEAN_SE = 1.0


def prior_of(shortlist: Any) -> int | None:
    """The index of a shortlist's prior: the data-free choice (``shortlist.prior``), else its preferred candidate
    (None for a plain list of surrogates)."""
    if not isinstance(shortlist, Shortlist) or not shortlist:
        return None
    preferred = shortlist.prior if shortlist.prior is not None else shortlist.preferred()[0]
    return next((i for i, c in enumerate(shortlist) if c is preferred), None)


def keeping(alive: list[int], keep: int, prior: int | None) -> list[int]:
    """The ``keep`` first of ``alive``, with the prior among them while it is still in the race."""
    kept = alive[:keep]
    if prior is not None and prior in alive and prior not in kept:
        kept[-1] = prior
    return kept


def paired_values(model: nn.Module, batches: Sequence[Any], score: Any, loss_fn: LossFn) -> dict[str, list[float]]:
    """What the validation score is made of, higher better: per sample for accuracy (with each sample's
    log-likelihood of its label beside it), else per batch."""
    with torch.no_grad():
        if score == "loss":
            return {"-loss": [-v for v in validation_losses(model, loss_fn, batches)]}
        if score == "accuracy":
            right: list[float] = []
            likelihood: list[float] = []
            for x, y in batches:
                out = model(x)
                right += (out.argmax(-1) == y).flatten().double().tolist()
                likelihood += (-F.cross_entropy(out.double().reshape(-1, out.shape[-1]), y.reshape(-1),
                                                reduction="none")).tolist()
            return {"accuracy": right, "log-likelihood": likelihood}
        return {"score": [float(score(model, [batch])) for batch in batches]}


def _paired(best: list[float], prior: list[float]) -> tuple[float, float, int]:
    """Mean and standard error of the paired differences ``best - prior``, and their number."""
    diffs = [b - p for b, p in zip(best, prior, strict=True)]
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else 0.0
    return mean, statistics.stdev(diffs) / math.sqrt(n) if n > 1 else 0.0, n


def decide(model: nn.Module, pool: list[Candidate], states: dict[int, Any], best: int, prior: int | None,
           values: Callable[[nn.Module], dict[str, list[float]]]) -> tuple[int, str]:
    """The winner between the race's best and its prior, and why."""
    if prior is None or best == prior or prior not in states or pool[prior].diverged:
        return best, ""
    measured = {}
    for i in (best, prior):
        model.load_state_dict(states[i][0])
        model.eval()
        with patch(model, **pool[i].patch_kwargs(), builtin=False):
            measured[i] = values(model)
    (metric, *support) = measured[best]
    mean, se, n = _paired(measured[best][metric], measured[prior][metric])
    p_label, b_label = pool[prior].label, pool[best].label
    if n > 1:  # se >= 0, so every "more than k standard errors" below is also a positive difference
        if mean > MARGIN_SE * se:
            return best, (f"{b_label} beat the analysis' choice {p_label} by {mean:.4g} ± {se:.2g} over {n} paired "
                          f"validation values (more than {MARGIN_SE:g} standard errors)")
        for name in support:  # a finer measure of the same samples, when the score itself is coarse (0 or 1)
            s_mean, s_se, _ = _paired(measured[best][name], measured[prior][name])
            if mean > LEAN_SE * se and s_mean > MARGIN_SE * s_se:
                return best, (f"{b_label} beat the analysis' choice {p_label}: {metric} {mean:+.4g} ± {se:.2g} and "
                              f"{name} {s_mean:+.4g} ± {s_se:.2g} per sample over {n} paired validation values "
                              f"(more than {MARGIN_SE:g} standard errors)")
    elif mean > 0:
        return best, (f"{b_label} scored above the analysis' choice {p_label} on the one validation batch (no "
                      "noise estimate: pass several validation batches to let the race weigh it)")
    return prior, (f"kept the analysis' choice {p_label}: the best, {b_label}, was within the validation noise "
                   f"({mean:+.4g} ± {se:.2g} over {n} paired values)")
