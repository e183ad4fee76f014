"""The race's prior: what ``sg.stabilize`` installs without training data (``shortlist.prior``: the analysis'
preferred candidate, rescaled per layer or a fallback where that keeps the gradient's spread across layers).

A race over a shortlist keeps the prior to the last rung, and replaces it only when the best candidate beats it
by more than the validation set can tell apart: the paired difference of the two trained models on the same
validation samples (``score="accuracy"``: per sample; otherwise per batch) must exceed two standard errors
(MARGIN_SE). Paying for a race should never buy a worse choice than the free one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
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


def paired_values(model: nn.Module, batches: Sequence[Any], score: Any, loss_fn: LossFn) -> list[float]:
    """What the validation score is made of, higher better: per sample for accuracy, else per batch."""
    with torch.no_grad():
        if score == "loss":
            return [-v for v in validation_losses(model, loss_fn, batches)]
        if score == "accuracy":
            return [c for x, y in batches for c in (model(x).argmax(-1) == y).flatten().double().tolist()]
        return [float(score(model, [batch])) for batch in batches]


def decide(model: nn.Module, pool: list[Candidate], states: dict[int, Any], best: int, prior: int | None,
           values: Callable[[nn.Module], list[float]]) -> tuple[int, str]:
    """The winner between the race's best and its prior, and why."""
    if prior is None or best == prior or prior not in states or pool[prior].diverged:
        return best, ""
    measured = {}
    for i in (best, prior):
        model.load_state_dict(states[i][0])
        model.eval()
        with patch(model, **pool[i].patch_kwargs(), builtin=False):
            measured[i] = values(model)
    diffs = [b - p for b, p in zip(measured[best], measured[prior], strict=True)]
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else 0.0
    se = statistics.stdev(diffs) / math.sqrt(n) if n > 1 else 0.0
    p_label, b_label = pool[prior].label, pool[best].label
    if n > 1 and mean > MARGIN_SE * se and mean > 0:
        return best, (f"{b_label} beat the analysis' choice {p_label} by {mean:.4g} ± {se:.2g} over {n} paired "
                      f"validation values (more than {MARGIN_SE:g} standard errors)")
    if n <= 1 and mean > 0:
        return best, (f"{b_label} scored above the analysis' choice {p_label} on the one validation batch (no "
                      "noise estimate: pass several validation batches to let the race weigh it)")
    return prior, (f"kept the analysis' choice {p_label}: the best, {b_label}, was within the validation noise "
                   f"({mean:+.4g} ± {se:.2g} over {n} paired values)")

