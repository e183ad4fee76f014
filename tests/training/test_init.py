"""Initialisers (sg.init): hand-derived targets checked on real framework models, identity kept, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import sg_stability as sg
from tests.zoo import shd_networks

SMALL = {"n_in": 200, "n_rec": 64, "n_out": 8}


def small_net(framework: str, seed: int = 0):
    torch.manual_seed(seed)
    return shd_networks.build(framework, SMALL, steps=60, batch=16, rate=0.1, seed=seed)


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly"])
@pytest.mark.slow
def test_stability_init_gives_the_condition_i_firing_rate(framework):
    # Condition I puts the mean membrane at threshold: a firing rate near 1/2 in the mean-field picture. The
    # mean field ignores the correlation between a neuron's spike and its membrane, so allow +-0.15.
    net, x = small_net(framework)
    report = sg.init.at_threshold(net, x)
    assert [c.role for c in report.changes] == ["recurrent", "input"] and not report.skipped
    rate = sg.analyze(net, x)["lif_rec"].firing_rate
    assert 0.35 <= rate <= 0.65


def test_stability_init_recurrent_mean_is_condition_i():
    net, x = small_net("snntorch")
    with torch.no_grad():
        current_mean = float(net.fc_in(x).double().mean())
    sg.init.at_threshold(net, x)
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
    sg.init.at_threshold(net, x)
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
@pytest.mark.slow
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
    report = sg.init.at_threshold(net, x, backup=True)
    assert any(not torch.equal(before[n], p) for n, p in net.named_parameters())
    report.restore()
    assert all(torch.equal(before[n], p) for n, p in net.named_parameters())
    with pytest.raises(sg.ConfigError, match="no backup"):
        sg.init.variance_flow(net, x).restore()


def test_stabilize_with_init():
    net, x = small_net("snntorch")
    with sg.stabilize(net, x, init="at_threshold") as handle:
        assert handle.init_report is not None and handle.init_report.changes
        assert 0.35 <= handle.report["lif_rec"].firing_rate <= 0.65


@pytest.mark.parametrize(("call", "words"), [
    (lambda n, x: sg.init.calibrate_rate(n, x, target_rate=1.5), "target_rate"),
    (lambda n, x: sg.init.initialize(n, x, "glorot"), "unknown initialisation method"),
    (lambda n, x: sg.init.fluctuation(n, x, mu_u="mean"), "mu_u"),
    (lambda n, x: sg.stabilize(n, x, init="he"), "unknown init"),
])
def test_bad_input(call, words):
    net, x = small_net("snntorch")
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    with pytest.raises(sg.ConfigError) as info:
        call(net, x)
    assert words in str(info.value) and "fix:" in str(info.value)
    assert all(torch.equal(before[n], p) for n, p in net.named_parameters())


# -- init= on the layer kinds the evidence harness uses --------------------------------------------------------
class _OneChannel(torch.nn.Module):
    """A recurrent snnTorch layer fed by a single input channel (a 1-D signal), then a readout layer."""

    def __init__(self) -> None:
        import snntorch as snn

        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(1, 32)
        self.lif = snn.RLeaky(beta=0.9, linear_features=32, reset_mechanism="subtract")
        self.fc_out = torch.nn.Linear(32, 4)
        self.lif_out = snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spk, mem = self.lif.init_rleaky()
        mem_out = self.lif_out.init_leaky()
        out = []
        for t in range(x.shape[0]):
            spk, mem = self.lif(self.fc(x[t]), spk, mem)
            s, mem_out = self.lif_out(self.fc_out(spk), mem_out)
            out.append(s)
        return torch.stack(out)


@pytest.mark.parametrize("method", ["at_threshold", "fluctuation", "variance_flow", "rate"])
@pytest.mark.slow
def test_every_initialiser_takes_a_layer_fed_by_one_input_channel(method):
    pytest.importorskip("snntorch")
    net = _OneChannel()
    x = (torch.rand(40, 16, 1, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    before = sg.analyze(net, x)["lif"].firing_rate
    report = sg.init.initialize(net, x, method)
    assert report.changes, report.skipped
    assert all(torch.isfinite(p).all() for p in net.parameters())
    after = sg.analyze(net, x)["lif"].firing_rate
    if method in ("at_threshold", "rate"):  # both aim at a high firing rate; the layer starts nearly silent
        assert after > before + 0.1, (before, after)


def test_stabilize_init_on_a_one_channel_input():
    pytest.importorskip("snntorch")
    net = _OneChannel()
    x = (torch.rand(40, 16, 1, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with sg.stabilize(net, x, init="at_threshold") as handle:
        assert handle.init_report.changes
        assert handle.report["lif"].firing_rate > 0.2


def test_stability_init_on_a_conv_layer():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = torch.nn.Sequential(layer.Conv2d(2, 8, 3, padding=1), neuron.LIFNode(step_mode="m"), layer.Flatten(),
                              layer.Linear(8 * 6 * 6, 5), neuron.LIFNode(step_mode="m"))
    functional.set_step_mode(net, "m")
    x = (torch.rand(12, 4, 2, 6, 6, generator=torch.Generator().manual_seed(2)) < 0.2).float()
    before = sg.analyze(net, x)["1"].firing_rate
    report = sg.init.at_threshold(net, x)
    assert any(c.layer == "1" for c in report.changes), report.skipped
    after = sg.analyze(net, x)["1"].firing_rate
    assert abs(after - 0.5) < abs(before - 0.5)
