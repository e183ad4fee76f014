"""The spread guard's per-layer dampening (``Shortlist.depth_compensated``) stays within a unit area, and what
``sg.stabilize`` installs where that bound stops it: checked against hand-computed dampenings and, on a deep Norse
stack (whose SuperSpike ignores its ``alpha`` and has area 2), against the spread of one unit-area dampening."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.choosing.shortlist import Candidate, Shortlist
from sg_stability.testing import measure

SIXTH = 1 / 6


def chain(candidate: list[float], own: list[float], sharpness: float = 0.5, peak: float = float("inf"),
          reset_grad: bool = True) -> tuple[Shortlist, Candidate]:
    """A shortlist over a chain of layers a, b, c (execution order) with these RMS input-current gradients, whose
    resets are differentiated (``reset_grad``) or not."""
    names = ["a", "b", "c"][:len(candidate)]
    c = Candidate(sg.surrogates.get("fast_sigmoid", dampening=SIXTH, sharpness=sharpness), "test",
                  layer_gradients=dict(zip(names, candidate, strict=True)))
    pool = Shortlist([c])
    pool.gradients_now, pool.layers, pool.peak_per_threshold = dict(zip(names, own, strict=True)), names, peak
    pool.reset_grad = set(names) if reset_grad else set()
    return pool, c


def dampenings(pool: Shortlist, c: Candidate) -> tuple[list[float], list[str]]:
    got = pool.depth_compensated(c)
    assert got is not None
    per_layer, capped = got
    return [float(s.dampening) for s in per_layer.values()], capped


def test_below_the_bound_each_layer_takes_the_ratio_of_the_layer_above_to_its_own():
    # ratios to the model's own: a 0.5, b 0.25, c 1 -> factors r_b / r_a = 0.5, r_c / r_b = 4, 1 at the top
    got, capped = dampenings(*chain([0.5, 0.25, 1.0], [1.0, 1.0, 1.0], sharpness=1.0))
    assert got == pytest.approx([SIXTH * 0.5, SIXTH * 4, SIXTH]) and capped == []


def test_a_layer_stops_at_area_one_and_the_layer_below_makes_up_what_it_could_not():
    # b wants x4 (2/3 > its cap 0.5 at sharpness 0.5) and gets x3; a needs x6 in all, so it takes x2, not x1.5
    got, capped = dampenings(*chain([1 / 6, 0.25, 1.0], [1.0, 1.0, 1.0]))
    assert got == pytest.approx([SIXTH * 2, 0.5, SIXTH]) and capped == ["b"]
    # the same chain without the bound would have given a 1.5 and b 4 (both times 1/6): the old factors
    got, capped = dampenings(*chain([1 / 6, 0.25, 1.0], [1.0, 1.0, 1.0], sharpness=2.0))
    assert got == pytest.approx([SIXTH * 1.5, SIXTH * 4, SIXTH]) and capped == []


def test_where_the_reset_is_not_differentiated_the_dampening_rises_freely():
    # one factor on every gradient through the layer, which Adam normalises away and plain SGD needs
    got, capped = dampenings(*chain([1 / 6, 0.25, 1.0], [1.0, 1.0, 1.0], reset_grad=False))
    assert got == pytest.approx([SIXTH * 1.5, SIXTH * 4, SIXTH]) and capped == []


def test_where_no_layer_can_make_it_up_every_one_below_stops_at_the_bound():
    got, capped = dampenings(*chain([0.01, 0.1, 1.0], [1.0, 1.0, 1.0]))
    assert got == pytest.approx([0.5, 0.5, SIXTH]) and capped == ["a", "b"]


def test_the_familys_peak_bounds_a_narrow_candidate_before_its_area_does():
    # sharpness 4: area 1 would allow a dampening of 4, the family's peak over the threshold (here 1) allows 1
    got, capped = dampenings(*chain([0.01, 1.0], [1.0, 1.0], sharpness=4.0, peak=1.0))
    assert got == pytest.approx([1.0, SIXTH]) and capped == ["a"]


class NorseStack(nn.Module):
    """Five Norse LIF layers, feed-forward, with Norse's default surrogate (SuperSpike: 1 / (|v - 1| + 1)^2)."""

    def __init__(self, gain: float) -> None:
        norse = pytest.importorskip("norse.torch")  # an optional framework; the tests above need none
        super().__init__()
        sizes = [40, 64, 64, 64, 64, 10]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.lifs = nn.ModuleList(norse.LIF() for _ in sizes[1:])
        with torch.no_grad():
            for fc in self.fcs:
                fc.weight.mul_(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for fc, lif in zip(self.fcs, self.lifs, strict=True):
            x, _ = lif(fc(x))
        return x


def stabilized(gain: float) -> tuple[list[sg.Surrogate], str, dict[str, float]]:
    """What ``sg.stabilize`` installs on a Norse stack, its note, and the spreads: the model's own, after, one
    dampening of 1/6 everywhere and one of area 1 everywhere (all measured on the same sample)."""
    torch.manual_seed(0)
    net, x = NorseStack(gain), (torch.rand(40, 8, 40) < 0.3).float()
    own = sg.analyze(net, x).layers[0].surrogate
    # Norse's SuperSpike ignores alpha: peak 1, half the fast sigmoid's sharpness, area 2
    assert (float(own.dampening), float(own.sharpness)) == pytest.approx((1.0, 0.5))
    fast = sg.surrogates.get("fast_sigmoid", sharpness=0.5)
    spreads = {"own": measure(net, x, None).spread, "one": measure(net, x, fast.replace(dampening=SIXTH)).spread,
               "unit": measure(net, x, fast.replace(dampening=0.5)).spread}
    with sg.stabilize(net, x, progress=False) as handle:
        installed = [layer.surrogate for layer in handle.report.layers]
        spreads["after"] = measure(net, x, None).spread
        note = handle.notes[-1]
    assert not sg.is_patched(net)
    assert all(v is not None for v in spreads.values()), spreads
    assert "dampening rescaled per layer" in note
    assert float(installed[-1].dampening) == pytest.approx(SIXTH)  # the top layer keeps the preferred dampening
    assert spreads["after"] <= sg.choosing.SPREAD_SLACK * spreads["own"] < spreads["one"] / 10
    return installed, note, spreads


def test_on_a_deep_norse_stack_the_dampening_stays_within_a_unit_area_where_that_keeps_the_spread():
    installed, note, _ = stabilized(gain=20.0)
    assert all(float(s.dampening) / float(s.sharpness) <= 1 + 1e-9 for s in installed)
    assert [float(s.dampening) for s in installed[:-1]] == pytest.approx([0.5] * 4)  # the bound, in every layer
    assert "kept within area 1 or the family's peak" in note


def test_where_the_unit_area_would_widen_the_spread_it_rises_above_and_says_so():
    installed, note, spreads = stabilized(gain=10.0)
    assert spreads["unit"] > sg.choosing.SPREAD_SLACK * spreads["own"]  # within a unit area nothing keeps it
    assert all(float(s.dampening) / float(s.sharpness) > 1 for s in installed[:-1])
    assert "above area 1 or the family's peak: within it the spread would be" in note
