"""What the analysis checks about its sample: the time layout (``time_dim``, a warning when a sample looks
batch-major), and a neuron module used at two places of one model."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import sg_stability as sg
from tests.zoo import shd_networks

DIMS = shd_networks.TINY


def make(framework: str) -> nn.Module:
    return shd_networks.tiny(framework)[0]


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse"])
def test_time_dim_runs_a_batch_major_sample_time_first(framework):
    model = make(framework)
    x = shd_networks.sample(steps=9, batch=4, n_in=DIMS["n_in"], rate=0.3)  # [T, B, F]
    time_major = sg.analysis.analyze_layers(model, x)
    batch_major = sg.analysis.analyze_layers(model, x.transpose(0, 1).contiguous(), time_dim=1)
    assert time_major.steps == batch_major.steps == 9
    for a, b in zip(time_major.layers, batch_major.layers, strict=True):
        assert a.firing_rate == b.firing_rate and a.measured_gain == pytest.approx(b.measured_gain)


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly"])
def test_a_sample_that_looks_batch_major_gets_a_warning(framework):
    model = make(framework)
    # each sample is a slowly varying signal over 20 steps; 4 samples differ from each other a lot
    t = torch.linspace(0, 1, 20)
    x = torch.stack([torch.sin(2 * torch.pi * t + phase)[:, None].expand(20, DIMS["n_in"]) + 1 for phase in
                     (0.0, 2.0, 4.0, 1.0)])  # [B=4, T=20, F], given as if it were time-major
    with pytest.warns(sg.LayoutWarning, match="time_dim=1"):
        sg.analysis.analyze_layers(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sg.analysis.analyze_layers(model, x, time_dim=1)  # the layout given: no warning
        sg.analysis.analyze_layers(model, x.transpose(0, 1).contiguous())  # time-major: no warning


def test_a_neuron_used_at_two_places_is_an_error_not_a_recurrent_layer():
    snn = pytest.importorskip("snntorch")
    lif = snn.Leaky(beta=0.9, init_hidden=True)
    model = nn.Sequential(nn.Linear(6, 6), lif, nn.Linear(6, 6), lif)
    x = torch.rand(5, 2, 6)

    def run(m: nn.Module, xx: torch.Tensor) -> torch.Tensor:
        lif.reset_mem()
        return torch.stack([m(xx[t]) for t in range(xx.shape[0])])

    with pytest.raises(sg.ConfigError) as info:
        sg.analyze(model, x, run=run)
    msg = str(info.value)
    assert "used at 2 places (1, 3)" in msg and "copy.deepcopy" in msg
    fixed = nn.Sequential(nn.Linear(6, 6), lif, nn.Linear(6, 6), snn.Leaky(beta=0.9, init_hidden=True))

    def run_fixed(m: nn.Module, xx: torch.Tensor) -> torch.Tensor:
        for mod in m.modules():
            if hasattr(mod, "reset_mem"):
                mod.reset_mem()
        return torch.stack([m(xx[t]) for t in range(xx.shape[0])])

    report = sg.analyze(fixed, x, run=run_fixed)
    assert [layer.name for layer in report.layers] == ["1", "3"] and report.steps == 5


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse"])
def test_an_unbatched_sample_is_analysed_as_a_batch_of_one(framework):
    """A model that takes [steps, features] (one vector per step) gets the analysis of the same sample with a batch
    dimension of one, not an internal IndexError."""
    model, x = shd_networks.tiny(framework)
    unbatched, batched = sg.analyze(model, x[:, 0]), sg.analyze(model, x[:, :1])
    assert [layer.firing_rate for layer in unbatched.layers] == [layer.firing_rate for layer in batched.layers]
    assert [c.label for c in sg.candidates(model, x[:, 0])] == [c.label for c in sg.candidates(model, x[:, :1])]
    sg.stabilize(model, x[:, 0]).remove()
