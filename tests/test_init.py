"""Initialisers (sg.init): hand-derived targets checked on real framework models, identity kept, bad input."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import pytest
import torch

import sg_stability as sg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import shd_networks

SMALL = {"n_in": 200, "n_rec": 64, "n_out": 8}


def small_net(framework: str, seed: int = 0):
    pytest.importorskip(framework)
    torch.manual_seed(seed)
    w = shd_networks.weights(seed=seed, **SMALL)
    x = shd_networks.sample(steps=60, batch=16, n_in=SMALL["n_in"], rate=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return shd_networks.BUILDERS[framework](w), x


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly"])
def test_stability_init_gives_the_condition_i_firing_rate(framework):
    # Condition I puts the mean membrane at threshold: a firing rate near 1/2 in the mean-field picture. The
    # mean field ignores the correlation between a neuron's spike and its membrane, so allow +-0.15.
    net, x = small_net(framework)
    report = sg.init.stability(net, x)
    assert [c.role for c in report.changes] == ["recurrent", "input"] and not report.skipped
    rate = sg.analyze(net, x)["lif_rec"].firing_rate
    assert 0.35 <= rate <= 0.65


def test_stability_init_recurrent_mean_is_condition_i():
    net, x = small_net("snntorch")
    with torch.no_grad():
        current_mean = float(net.fc_in(x).double().mean())
    sg.init.stability(net, x)
    w = net.lif_rec.recurrent.weight.detach().double()
    n = SMALL["n_rec"]
    expected = 2 * ((1.5 - 0.9) * 1.0 - current_mean) / (n - 1)  # subtractive reset, leak 0.9, theta 1
    off_diag = w[~torch.eye(n, dtype=torch.bool)]
    # uniform weights: the sample mean of n(n-1) draws is within 5 standard errors of mu*
    standard_error = float(off_diag.std()) / math.sqrt(off_diag.numel())
    assert float(off_diag.mean()) == pytest.approx(expected, abs=5 * standard_error)


def test_init_keeps_parameter_identity_and_the_zero_diagonal():
    net, x = small_net("spikingjelly")
    params = {name: id(p) for name, p in net.named_parameters()}
    sg.init.stability(net, x)
    assert {name: id(p) for name, p in net.named_parameters()} == params
    assert torch.equal(torch.diagonal(net.fc_rec.weight.detach()), torch.zeros(SMALL["n_rec"]))


def test_fluctuation_init_matches_campbell_theorem():
    net, x = small_net("snntorch")
    sg.init.fluctuation(net, x, mu_u=0.0, sigma_u=1.0)
    w = net.fc_in.weight.detach().double()
    nu = float(x.double().mean())  # the input rate per step, measured independently
    n_in, a, c = SMALL["n_in"], 0.9, 1.0
    eps_hat = c * c / (1 - a * a)
    expected_var = 0.9 * 1.0 / (n_in * nu * eps_hat)  # feed-forward share 0.9, mu_U = 0 so mu_w = 0
    assert float(w.mean()) == pytest.approx(0.0, abs=5 * math.sqrt(expected_var / w.numel()))
    assert float(w.var()) == pytest.approx(expected_var, rel=0.05)


def test_variance_flow_init_matches_micheli():
    net, x = small_net("snntorch")
    sg.init.variance_flow(net, x)
    w = net.fc_in.weight.detach().double()
    expected = 1.0 / (SMALL["n_in"] * float(x.double().square().mean()))  # theta 1, gain 1
    assert float(w.var()) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse"])
def test_calibrate_rate_reaches_the_target(framework):
    net, x = small_net(framework)
    report = sg.init.calibrate_rate(net, x, target_rate=0.3, progress=False)
    assert not report.skipped
    with torch.no_grad():
        out = net(x)
    assert float(out.double().mean()) == pytest.approx(0.3, abs=0.015)  # the model's own output spikes
    assert sg.analyze(net, x)["lif_rec"].firing_rate == pytest.approx(0.3, abs=0.015)


def test_backup_restores_exactly_and_no_backup_says_so():
    net, x = small_net("snntorch")
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    report = sg.init.stability(net, x, backup=True)
    assert any(not torch.equal(before[n], p) for n, p in net.named_parameters())
    report.restore()
    assert all(torch.equal(before[n], p) for n, p in net.named_parameters())
    with pytest.raises(sg.ConfigError, match="no backup"):
        sg.init.variance_flow(net, x).restore()


def test_stabilize_with_init():
    net, x = small_net("snntorch")
    with sg.stabilize(net, x, init="stability") as handle:
        assert handle.init_report is not None and handle.init_report.changes
        assert 0.35 <= handle.report["lif_rec"].firing_rate <= 0.65


@pytest.mark.parametrize(("call", "words"), [
    (lambda n, x: sg.init.calibrate_rate(n, x, target_rate=1.5), "target_rate"),
    (lambda n, x: sg.init.initialize(n, x, "glorot"), "unknown initialisation method"),
    (lambda n, x: sg.init.fluctuation(n, x, mu_u="mean"), "mu_u"),
    (lambda n, x: sg.stabilize(n, x, init="he"), "unknown initialisation method"),
])
def test_bad_input(call, words):
    net, x = small_net("snntorch")
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    with pytest.raises(sg.ConfigError) as info:
        call(net, x)
    assert words in str(info.value) and "fix:" in str(info.value)
    assert all(torch.equal(before[n], p) for n, p in net.named_parameters())
