"""The race's prior (the stability analysis' preferred candidate): kept to the last rung, and replaced only when
the best beats it by more than two standard errors of their paired validation difference."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sg_stability as sg
from sg_stability.choosing.race_prior import keeping, prior_of
from sg_stability.choosing.shortlist import Shortlist
from tests.zoo import shd_networks

pytest.importorskip("snntorch")


def test_keeping_puts_the_prior_back_in_the_last_place():
    assert keeping([4, 2, 0, 1, 3], 3, prior=3) == [4, 2, 3]
    assert keeping([4, 2, 0, 1, 3], 3, prior=2) == [4, 2, 0]
    assert keeping([4, 2, 0], 3, prior=None) == [4, 2, 0]
    assert keeping([4, 2], 3, prior=1) == [4, 2]  # a diverged prior has left the race: nothing to put back


def test_a_plain_list_has_no_prior_and_a_shortlist_its_preferred_candidate():
    s = [sg.surrogates.get("fast_sigmoid", sharpness=b) for b in (1.0, 4.0)]
    assert prior_of(s) is None
    short = Shortlist([sg.Candidate(s[0], "analysis", reach=0.0), sg.Candidate(s[1], "analysis", reach=0.9)])
    assert prior_of(short) == 1  # the first one reaches nothing: the analysis prefers the second


def data(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [((torch.rand(6, 4, 12, generator=g) < 0.3).float(), torch.randint(0, 3, (4,), generator=g))
            for _ in range(n)]


def ce(model: nn.Module, batch: Any) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]).mean(0), batch[1])


def sharpness_of(model: nn.Module) -> float:
    return float(next(iter(sg.find_neurons(model)[0].driver.current().values())).sharpness)


def race(score: Any) -> sg.ChosenPatch:
    """Two candidates on a shortlist whose preferred one (the prior) is the first, fast_sigmoid(β=1)."""
    model, x = shd_networks.tiny("snntorch", steps=6, batch=4)
    short = Shortlist([sg.Candidate(sg.surrogates.get("fast_sigmoid", sharpness=b), "analysis", reach=0.9)
                       for b in (1.0, 4.0)])
    train = data(4)
    return sg.tune(model, x, train, loss_fn=ce, candidates=short, val_batches=train[:2] + data(6)[2:], score=score,
                   epochs=8, lr=0.05, progress=False)  # validated partly on its training batches: both learn


def test_a_challenger_within_the_noise_does_not_replace_the_prior():
    def score(model: nn.Module, batches: list) -> float:
        challenger = sharpness_of(model) == 4.0
        if len(batches) != 1:  # the race's own ranking: the challenger looks a little better
            return 0.51 if challenger else 0.5
        odd = int(batches[0][1].sum()) % 2 == 1  # per validation batch, the two disagree by far more than 0.01
        return 0.5 + (0.01 if challenger else 0.0) + (0.3 if odd != challenger else -0.3)

    handle = race(score)
    report = handle.race
    assert report.best.label.endswith("β=1)") and "kept the analysis' choice" in report.decision
    assert "kept the analysis' choice" in str(report)
    assert all(float(s.sharpness) == 1.0 for s in handle.surrogates.values())
    handle.remove()


def test_a_challenger_clearly_better_on_every_batch_replaces_the_prior():
    def score(model: nn.Module, batches: list) -> float:
        return 0.9 if sharpness_of(model) == 4.0 else 0.5

    handle = race(score)
    assert handle.race.best.label.endswith("β=4)") and "beat the analysis' choice" in handle.race.decision
    handle.remove()
