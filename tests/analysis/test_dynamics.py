"""Every neuron class an adapter describes: its ``dynamics()`` predicts the framework's own membrane.

Each neuron is driven by one input impulse at step 0 with a threshold far above the membrane (no spikes), and the
membrane the framework computes (recorded by the analyzer as the surrogate's input plus the threshold) is compared
with the model ``v_(t+1) = leak * v_t + input_gain * I_(t+1)``: the late ratio ``v_(t+1) / v_t`` is the leak (for
neurons with a synaptic current, the slower of the two decays dominates late), and the first step is the input
gain times the impulse where the input reaches the membrane in the same step. Then the online-training neurons:
their membrane passes no gradient back in time, and the analysis says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability import stability as st

THRESHOLD = 10.0  # above every membrane below; small enough that mem - threshold keeps float32 digits
STEPS = 40


def _impulse(features: int = 1) -> torch.Tensor:
    x = torch.zeros(STEPS, 1, features)
    x[0] = 1.0
    return x


def _per_step(model: nn.Module, x: torch.Tensor) -> Any:
    return torch.stack([model(x[t]) for t in range(x.shape[0])])


class _Stepped(nn.Module):
    """An snnTorch neuron stepped with its own hidden state, as the tutorials do (init_hidden=True)."""

    def __init__(self, neuron: nn.Module) -> None:
        super().__init__()
        self.neuron = neuron

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.neuron.reset_hidden()
        return torch.stack([self.neuron(x[t]) for t in range(x.shape[0])])


def _snntorch(name: str) -> tuple[nn.Module, Callable[..., Any] | None, dict[str, float]]:
    snn = pytest.importorskip("snntorch")
    if name == "Lapicque":  # leak 1 - T / (R C) = 1 - 0.1 / 0.25, gain T / C = 2
        return _Stepped(snn.Lapicque(R=5.0, C=0.05, time_step=0.1, threshold=THRESHOLD, init_hidden=True)), None, \
            {"leak": 0.6, "gain": 2.0}
    if name == "Alpha":  # mem ~ alpha^t - beta^t: the slower decay, alpha, late
        return _Stepped(snn.Alpha(alpha=0.9, beta=0.8, threshold=THRESHOLD, init_hidden=True)), None, {"leak": 0.9}
    if name == "StateLeaky":  # the kernel exp(-t / tau), tau = 1 / (1 - beta) = 5
        return snn.StateLeaky(beta=0.8, channels=1, threshold=THRESHOLD), None, \
            {"leak": math.exp(-0.2), "gain": 1.0}
    if name == "LeakyParallel":  # relu(W_ih x + 0.8 h): a leak of 0.8 while the membrane is positive
        torch.manual_seed(0)
        m = snn.LeakyParallel(input_size=1, hidden_size=4, beta=0.8, bias=False, threshold=THRESHOLD)
        with torch.no_grad():
            m.rnn.weight_ih_l0.fill_(1.0)
        return m, None, {"leak": 0.8, "gain": 1.0}
    raise AssertionError(name)


class _NorseStepped(nn.Module):
    """A Norse cell stepped with its state passed explicitly."""

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state, out = None, []
        for t in range(x.shape[0]):
            z, state = self.cell(x[t], state)
            out.append(z)
        return torch.stack(out)


def _norse(name: str) -> tuple[nn.Module, Callable[..., Any] | None, dict[str, float]]:
    nt = pytest.importorskip("norse.torch")
    if name == "LSNN":  # dt * tau_mem_inv = 0.1: leak 0.9; the synaptic current decays by 1 - 0.2
        from norse.torch.functional.lsnn import LSNNParameters

        p = LSNNParameters(v_th=torch.tensor(THRESHOLD))
        return nt.LSNN(p=p), lambda m, x: m(x)[0], {"leak": 0.9}
    if name == "LIFRefracCell":  # a LIF with a refractory period: leak 1 - 0.1
        from norse.torch.functional.lif import LIFParameters
        from norse.torch.functional.lif_refrac import LIFRefracParameters

        p = LIFRefracParameters(lif=LIFParameters(v_th=torch.tensor(THRESHOLD)))
        return _NorseStepped(nt.LIFRefracCell(p=p)), None, {"leak": 0.9}
    raise AssertionError(name)


class _SpikesOnly(nn.Module):
    """An online-training neuron returns [spikes, trace] in training mode; the next layer takes the spikes."""

    def __init__(self, neuron: nn.Module) -> None:
        super().__init__()
        self.neuron = neuron

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.neuron(x)
        return out[0] if isinstance(out, (list, tuple)) else out


def _spikingjelly(name: str) -> tuple[nn.Module, Callable[..., Any] | None, dict[str, float]]:
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, neuron

    def run(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(m)
        return _per_step(m, x)

    if name == "CUBALIFNode":  # c' = 0.5 c + x, v' = 0.75 v + c': the slower decay, 0.75, late
        return neuron.CUBALIFNode(c_decay=0.5, v_decay=0.75, v_threshold=THRESHOLD), run, {"leak": 0.75}
    if name == "OTTTLIFNode":  # decay_input=False: v' = (1 - 1/tau) v + x
        return _SpikesOnly(neuron.OTTTLIFNode(tau=2.0, v_threshold=THRESHOLD)), run, {"leak": 0.5, "gain": 1.0}
    raise AssertionError(name)


CASES = [("snntorch", n) for n in ("Lapicque", "Alpha", "StateLeaky", "LeakyParallel")] + \
    [("norse", n) for n in ("LSNN", "LIFRefracCell")] + \
    [("spikingjelly", n) for n in ("CUBALIFNode", "OTTTLIFNode")]
BUILDERS = {"snntorch": _snntorch, "norse": _norse, "spikingjelly": _spikingjelly}


def _membrane(neuron: nn.Module, run: Callable[..., Any] | None) -> tuple[torch.Tensor, Any]:
    """The framework's membrane at every step for one impulse, read from the analyzer's recording."""
    model = nn.Sequential(nn.Linear(1, 1, bias=False), neuron)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    with sg.recording.traced(model, _impulse(), run=run) as trace:
        (rec,) = trace.ordered()
        v = torch.stack([sg.recording.records.value(s).detach().double() for s in rec.spike_steps()])
        return v.flatten(1)[:, 0] + THRESHOLD, rec.site.driver.dynamics()


@pytest.mark.parametrize(("framework", "name"), CASES, ids=[f"{f}-{n}" for f, n in CASES])
def test_the_described_leak_and_input_gain_are_the_frameworks_own(framework, name):
    neuron, run, want = BUILDERS[framework](name)
    mem, dyn = _membrane(neuron, run)
    assert dyn is not None, f"{framework}.{name} is not described"
    assert dyn.leak == pytest.approx(want["leak"], rel=1e-5)
    # the framework's own decay: from the start for a plain membrane, late where a synaptic current rises first
    t = STEPS // 2 if dyn.synapse else 1
    assert float(mem[t + 1] / mem[t]) == pytest.approx(want["leak"], rel=0.02 if dyn.synapse else 1e-4)
    if "gain" in want:
        assert dyn.input_gain == pytest.approx(want["gain"], rel=1e-5)
        assert float(mem[0]) == pytest.approx(want["gain"], rel=1e-4)  # the impulse reaches the membrane at once
    assert dyn.threshold == pytest.approx(THRESHOLD)
    assert all(len(n) < 200 for n in dyn.note.split("; "))


def test_an_online_training_neuron_passes_no_gradient_back_in_time_and_the_analysis_says_so():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, neuron

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), _SpikesOnly(neuron.OTTTLIFNode(tau=2.0)), nn.Linear(16, 8),
                          _SpikesOnly(neuron.OTTTLIFNode(tau=2.0)))
    with torch.no_grad():  # both layers fire
        model[0].weight.abs_()
        model[2].weight.uniform_(0.0, 0.3)
    model.train()

    def run(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(m)
        return _per_step(m, x)

    x = torch.rand(12, 4, 3) * 2
    dyn = sg.find_neurons(model)[0].driver.dynamics()
    assert dyn is not None and dyn.detached and dyn.leak == pytest.approx(0.5)
    # the model's temporal gain: no leak path, no reset path, no recurrent weights -> 0
    assert float(st.mean_square_gain(None, dyn, sg1=torch.ones(16), sg2=torch.ones(16))) == 0.0
    report = sg.analysis.analyze_layers(model, x, run=run)
    last = report.layers[-1]
    assert last.gain_kind == "temporal" and last.data_gain == 0.0
    assert "by design" in last.diagnosis and "online training" in last.diagnosis
    assert any("online training detaches the membrane" in n for n in last.notes)
    model.eval()  # in eval mode SpikingJelly runs them as plain LIF neurons
    dyn_eval = sg.find_neurons(model)[0].driver.dynamics()
    assert dyn_eval is not None and not dyn_eval.detached


# -- SpikingJelly's LinearRecurrentContainer: the feedback through its own Linear is the recurrent weight ------------
def _container_net(inner: bool) -> tuple[nn.Module, Callable[..., Any]]:
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    if inner:  # the form of SpikingJelly's docs: rc, then a Linear and the neuron inside the container
        body = layer.LinearRecurrentContainer(nn.Sequential(nn.Linear(16, 12), neuron.LIFNode()), 16, 12)
    else:
        body = layer.LinearRecurrentContainer(neuron.LIFNode(), 16, 16)
    net = nn.Sequential(nn.Linear(8, 16), body, nn.Linear(12 if inner else 16, 4), neuron.LIFNode())

    def run(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(m)
        return _per_step(m, x)

    return net, run


@pytest.mark.parametrize("inner", [False, True], ids=["neuron-in-container", "linear-and-neuron-in-container"])
def test_a_linear_recurrent_container_feeds_back_through_the_recurrent_weight_the_analysis_uses(inner):
    net, run = _container_net(inner)
    body = net[1]
    x = torch.rand(12, 3, 8) * 4
    with sg.recording.traced(net, x, run=run, grad=False) as trace:
        rec = trace.ordered()[0]
        w_in, w_rec = rec.weights()
        n_in = body.rc.weight.shape[0]
        first = net[0](x)  # what the container receives at every step
        for t in range(1, x.shape[0]):
            y_prev, got = rec.outputs[t - 1].double(), rec.inputs[t].double()
            driven = body.rc.weight[:, :n_in].double() @ first[t].double().T + body.rc.bias.double()[:, None]
            if inner:  # input = W_inner (rc(x, y)) + b_inner: what is left after the x part is R y_(t-1)
                lin = body.sub_module[0]
                driven = lin.weight.double() @ driven + lin.bias.double()[:, None]
            torch.testing.assert_close((got.T - driven), w_rec.double() @ y_prev.T, rtol=1e-5, atol=1e-5)
        if not inner:  # views of the container's own weight: an initialiser writes through them
            assert w_rec._base is body.rc.weight and w_in._base is body.rc.weight
    report = sg.analysis.analyze_layers(net, x, run=run)
    assert report.layers[0].gain_kind == "recurrent" and report.layers[0].theory_gain is not None


def test_an_initialiser_lists_a_recurrent_weight_computed_from_two_linears_as_not_written():
    net, run = _container_net(inner=True)
    rc_before = net[1].rc.weight.detach().clone()
    report = sg.init.at_threshold(net, torch.rand(12, 3, 8) * 4, run=run)
    assert any("computed from other weights" in s and "not written" in s for s in report.skipped), report.skipped
    assert torch.equal(net[1].rc.weight, rc_before)
