"""sg_stability.exact: closed-form spike times, exact gradients (against central finite differences, float64),
continuity through the trial's end for QIF and jumps for LIF in the same simulator, the pseudodynamics, and
clear errors."""

from __future__ import annotations

import math

import pytest
import torch

import sg_stability as sg
import sg_stability.exact as ex
from tests.zoo.exact_lines import crossing_lines


def one_input(time: float = 0.5) -> ex.SpikeTrains:
    return ex.SpikeTrains(torch.tensor([[time]], dtype=torch.float64), torch.tensor([[0]]))


def single(weight: float, **options) -> ex.Network:
    net = ex.Network([1, 1], **options)
    with torch.no_grad():
        net.weights[0].fill_(weight)
    return net


# -- closed forms, derived by hand ------------------------------------------------------------------------------
@pytest.mark.parametrize("weight", [2.5, 3.0, 6.0])
def test_a_kicked_qif_neuron_fires_when_the_riccati_solution_diverges(weight):
    # tau dV/dt = V^2 - 1 from V(0.5) = -1 + w > 1: (V - 1)/(V + 1) grows as e^(2t), V = inf after artanh(1 / V) / 1
    run = single(weight)(one_input(0.5))
    assert float(run.first[0, 0].detach()) == pytest.approx(0.5 + math.atanh(1.0 / (weight - 1.0)), rel=1e-12)
    assert int(run.trial_counts[0, 0]) == 1


def test_a_neuron_kicked_to_the_unstable_point_fires_only_in_the_pseudodynamics():
    # w = 2 puts V exactly on the unstable fixed point V = 1: it stays there until the trial's end (4), then with
    # the pseudo drive +1, tau dV/dt = V^2 + 1 from V = 1 diverges after atan(inf) - atan(1) = pi/4
    run = single(2.0, duration=4.0)(one_input(0.5))
    assert float(run.first[0, 0].detach()) == pytest.approx(4.0 + math.pi / 4, rel=1e-12)
    assert int(run.trial_counts[0, 0]) == 0 and bool(run.pseudo[0, 0, 0])


def test_a_tonic_qif_neuron_fires_with_the_period_of_the_theta_neuron():
    # I = +1: from V = -inf the phase turns by 2 pi in pi * tau, so spikes at pi, 2 pi, 3 pi
    net = ex.Network([1, 1], drive=1.0, tau=1.0, duration=10.0, spikes=3)
    run = net(ex.SpikeTrains(torch.full((1, 1), math.inf, dtype=torch.float64), torch.zeros((1, 1), dtype=torch.long)))
    torch.testing.assert_close(run.times[0, 0, :3].detach(), torch.tensor([1, 2, 3], dtype=torch.float64) * math.pi)


def test_lif_in_the_same_simulator_fires_at_the_kick_that_crosses_its_threshold():
    net = single(0.6, neuron="lif", duration=3.0)  # V: 0.6 at t = 0.5, + 0.6 e^(-0.5) at t = 1.0 = 0.964: silent
    two = ex.SpikeTrains(torch.tensor([[0.5, 1.0]], dtype=torch.float64), torch.tensor([[0, 0]]))
    assert int(net(two).trial_counts[0, 0]) == 0
    with torch.no_grad():
        net.weights[0].fill_(0.7)  # 0.7 + 0.7 e^(-0.5) = 1.125: fires at the second kick itself
    assert float(net(two).first[0, 0].detach()) == 1.0


# -- exact gradients -----------------------------------------------------------------------------------------------
def _random_network(seed: int, recurrent: bool) -> tuple[ex.Network, ex.SpikeTrains, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    net = ex.Network([5, 7, 3], recurrent=[recurrent, recurrent], duration=3.0, spikes=2, init_mean=6.0,
                     init_std=3.0, seed=seed)
    x = (torch.rand(10, 3, 5, generator=g) < 0.3).float()
    targets = torch.rand(3, 3, 2, generator=g, dtype=torch.float64) * 3.0
    return net, ex.SpikeTrains.from_steps(x, dt=0.3), targets


@pytest.mark.parametrize("recurrent", [False, True], ids=["feed-forward", "recurrent"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_equal_central_finite_differences(seed, recurrent):
    net, inputs, targets = _random_network(seed, recurrent)

    def loss() -> torch.Tensor:
        return ex.spike_time_loss(net(inputs), targets) + ex.first_spike_loss(net(inputs), torch.tensor([0, 1, 2]))

    loss().backward()
    assert int(net(inputs).trial_counts.sum()) > 0  # spikes inside the trial, and pseudospikes after it
    worst, g = 0.0, torch.Generator().manual_seed(seed)
    for p in net.parameters():
        for i in torch.randperm(p.numel(), generator=g)[:6].tolist():  # six entries of every weight matrix
            h = 1e-6
            with torch.no_grad():
                p.view(-1)[i] += h
                up = float(loss().detach())
                p.view(-1)[i] -= 2 * h
                down = float(loss().detach())
                p.view(-1)[i] += h
            fd = (up - down) / (2 * h)
            worst = max(worst, abs(float(p.grad.view(-1)[i]) - fd) / max(abs(fd), 1e-3))
    assert worst <= 1e-4


# -- continuity: QIF along lines through a spike crossing, jumps for LIF -----------------------------------------
@pytest.mark.slow
def test_the_qif_loss_is_continuous_along_random_lines_through_spike_crossings():
    lines = [ex.line_jumps(f, points=31) for f in crossing_lines("qif", 20)]
    assert all(not r.jumps for r in lines), [r.jumps for r in lines if r.jumps]


@pytest.mark.slow
def test_lif_in_the_same_simulator_has_jumps_along_such_lines():
    # LIF's loss is so fragmented that its median step is itself a jump: every step above the median is bisected
    lines = [ex.line_jumps(f, points=21, jump_factor=1.0, bisections=20) for f in crossing_lines("lif", 6)]
    assert sum(bool(r.jumps) for r in lines) >= 4


def test_line_jumps_tells_a_steep_continuous_loss_from_a_jump():
    steep = ex.line_jumps(lambda a: math.tanh(200 * a), points=21)  # one grid step holds almost all of the rise
    assert steep.jumps == []
    step = ex.line_jumps(lambda a: float(a > 0.123) + 0.01 * a, points=21)
    assert len(step.jumps) == 1 and step.jumps[0][0] == pytest.approx(0.123, abs=1e-9)
    assert step.jumps[0][1] == pytest.approx(1.0, abs=1e-6)


# -- pseudodynamics: gradient descent adds a spike -------------------------------------------------------------
def test_gradient_descent_pulls_a_pseudospike_into_the_trial_and_moves_it_to_its_target():
    net = single(1.0, duration=3.0)  # V = 0 after the kick: below the unstable point, silent in the trial
    inputs = one_input(0.5)
    target = torch.tensor([[[2.0]]], dtype=torch.float64)
    assert int(net(inputs).trial_counts.sum()) == 0
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        ex.spike_time_loss(net(inputs), target).backward()
        opt.step()
    run = net(inputs)
    assert int(run.trial_counts.sum()) == 1 and float(run.first[0, 0].detach()) == pytest.approx(2.0, abs=1e-3)


def test_gradient_descent_removes_a_surplus_spike_through_the_trial_end():
    net = ex.Network([1, 1], duration=3.0, spikes=1)
    two = ex.SpikeTrains(torch.tensor([[0.2, 1.5]], dtype=torch.float64), torch.tensor([[0, 0]]))
    with torch.no_grad():
        net.weights[0].fill_(4.0)  # two kicks, two spikes
    assert int(net(two).trial_counts.sum()) == 2
    target = torch.tensor([[[0.8]]], dtype=torch.float64)  # one spike wanted
    opt = torch.optim.SGD(net.parameters(), lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        ex.spike_time_loss(net(two), target).backward()
        opt.step()
    assert int(net(two).trial_counts.sum()) == 1


# -- the landscape of an exact network -------------------------------------------------------------------------
def test_sg_landscape_runs_on_an_exact_network_and_leaves_it_as_it_was():
    net, inputs, targets = _random_network(0, recurrent=True)
    before = [p.detach().clone() for p in net.parameters()]
    report = sg.landscape(net, lambda m, b: ex.spike_time_loss(m(b), targets), inputs, points=9, progress=False)
    assert len(report.loss) == 9 and all(math.isfinite(v) for v in report.loss)
    assert 0.0 <= report.fragmentation <= 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


# -- inputs and bad input -----------------------------------------------------------------------------------------
def test_spike_trains_from_binned_steps_keep_every_spike_in_time_order():
    x = torch.zeros(4, 2, 3)
    x[2, 0, 1] = x[0, 0, 2] = x[3, 1, 0] = 1
    trains = ex.SpikeTrains.from_steps(x, dt=0.5)
    assert trains.times.tolist() == [[0.0, 1.0], [1.5, math.inf]]
    assert trains.channels[0].tolist() == [2, 1] and trains.channels[1, 0] == 0


@pytest.mark.parametrize(("build", "match"), [
    (lambda: ex.Network([3]), "sizes must list"),
    (lambda: ex.Network([3, 0]), "sizes\\[1\\]"),
    (lambda: ex.Network([3, 2], neuron="izhikevich"), "unknown neuron"),
    (lambda: ex.Network([3, 2], tau=0.0), "tau"),
    (lambda: ex.Network([3, 2], pseudo_drive=-1.0), "pseudo_drive"),
    (lambda: ex.Network([3, 2], neuron="lif", pseudo_drive=0.5), "pseudo_drive"),
    (lambda: ex.Network([3, 2, 2], recurrent=[True]), "one bool per layer"),
    (lambda: ex.Network([3, 2])(torch.zeros(4, 1, 3)), "SpikeTrains"),
    (lambda: ex.Network([3, 2])(ex.SpikeTrains(torch.zeros(1, 2), torch.tensor([[0, 5]]))), "outside"),
    (lambda: ex.SpikeTrains.from_steps(torch.zeros(4, 3)), "steps, batch, channels"),
])
def test_bad_arguments_get_a_four_part_error(build, match):
    with pytest.raises(sg.ConfigError, match=match) as info:
        build()
    assert "got:" in str(info.value) and "fix:" in str(info.value)


def test_a_run_out_of_events_warns_and_reads_missing_output_spikes_as_the_last_event():
    net, inputs, _ = _random_network(0, recurrent=True)
    net.max_events = 5
    with pytest.warns(sg.SGStabilityWarning, match="event budget \\(5 events\\)"):
        run = net(inputs)
    assert run.truncated and bool(torch.isfinite(run.output.times[..., : net.spikes]).all())
