"""sg_stability.neurons.QIF: its equations against hand-derived values, its three framework styles (snnTorch's
explicit state, SpikingJelly's reset_net, Norse's returned state) inside real framework models, sg.patch /
analyze / stabilize on them, and the analysis of membrane-dependent gains (ours, SpikingJelly's QIFNode and
EIFNode) against the autograd measurement."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.neurons import QIF


# -- the equations ----------------------------------------------------------------------------------------------
def test_one_step_follows_the_euler_equation_and_the_hard_reset():
    qif = QIF(tau=5.0, v_peak=1.0, v_reset=-0.5, input_scale=2.0, rheobase=0.25)
    v = torch.tensor([0.5, 0.9, 0.0])
    x = torch.tensor([0.25, 1.0, -20.0])
    s, after = qif(x, v)
    h = v + 0.2 * (v * v + 2.0 * x - 0.25)  # 0.5 + 0.2 (0.25 + 0.5 - 0.25) = 0.6; 0.9 + 0.2 (0.81 + 2 - .25) > 1
    h[2] = -2.5  # 0.2 (-40.25) is below v_min = -tau / (2 dt) = -2.5, where the Euler map stops increasing
    assert s.tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(after, torch.where(s > 0, torch.tensor(-0.5), h))


def test_the_input_gradient_is_the_surrogate_times_the_input_scale():
    qif = QIF(tau=4.0, input_scale=3.0, surrogate="fast_sigmoid", dampening=0.5, sharpness=2.0)
    v = torch.tensor([0.2])
    x = torch.tensor([0.5], requires_grad=True)
    s, _ = qif(x, v)
    s.backward()
    h = 0.2 + 0.25 * (0.04 + 1.5)  # 0.585: below the peak 1
    by_hand = 0.5 / (1 + 2 * 2.0 * abs(h - 1.0)) ** 2 * 3.0 * 0.25  # fast sigmoid' times d h / d x
    assert float(x.grad) == pytest.approx(by_hand, rel=1e-6)


def test_the_step_to_step_gain_is_one_plus_two_v_dt_over_tau():
    qif = QIF(tau=5.0, dt=0.5, v_peak=10.0, detach_reset=True)  # the membrane path alone, no reset path
    v = torch.tensor([-1.0, 0.0, 0.7, 2.0], requires_grad=True)
    _, after = qif(torch.zeros(4), v)
    after.sum().backward()
    torch.testing.assert_close(v.grad, 1.0 + 2.0 * v.detach() * 0.5 / 5.0)
    torch.testing.assert_close(qif.gain(v.detach()), v.grad)


def test_multi_step_equals_the_single_steps_and_hidden_state_resets():
    torch.manual_seed(0)
    x = torch.rand(12, 3, 5) * 0.8
    single, multi = QIF(rheobase=0.1), QIF(rheobase=0.1, step_mode="multi", hidden=True)
    v, spikes = None, []
    for t in range(12):
        s, v = single(x[t], v)
        spikes.append(s)
    assert torch.equal(multi(x), torch.stack(spikes)) and torch.equal(multi.v, v)
    multi.reset()
    assert multi.v is None


@pytest.mark.parametrize(("options", "match"), [
    ({"tau": 0.0}, "tau"),
    ({"v_reset": 1.0}, "v_reset"),
    ({"v_reset": -9.0}, "v_reset"),
    ({"rheobase": -1.0}, "rheobase"),
    ({"step_mode": "m"}, "step_mode"),
    ({"hidden": "yes"}, "hidden"),
    ({"surrogate": sg.surrogates.ATan(), "dampening": 0.3}, "dampening/sharpness"),
    ({"surrogate": "fast_sigmiod"}, "fast_sigmoid"),
])
def test_bad_arguments_get_a_four_part_error(options, match):
    with pytest.raises(sg.ConfigError, match=match) as info:
        QIF(**options)
    assert "fix:" in str(info.value)


# -- in three framework styles -----------------------------------------------------------------------------------
class SnnTorchStyle(nn.Module):
    """snnTorch's tutorial pattern: states initialised at the start of every forward, passed explicitly."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.fc1, self.lif = nn.Linear(6, 16), snn.Leaky(beta=0.9)
        self.fc2, self.qif = nn.Linear(16, 8), QIF(rheobase=0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem, v = self.lif.init_leaky(), self.qif.init_state()
        out = []
        for t in range(x.shape[0]):
            spk, mem = self.lif(self.fc1(x[t]), mem)
            s, v = self.qif(self.fc2(spk), v)
            out.append(s)
        return torch.stack(out)


def spikingjelly_style() -> nn.Module:
    from spikingjelly.activation_based import layer, neuron

    return nn.Sequential(layer.Linear(6, 16, step_mode="m"), neuron.LIFNode(step_mode="m"),
                         layer.Linear(16, 8, step_mode="m"), QIF(rheobase=0.05, step_mode="multi", hidden=True))


class NorseStyle(nn.Module):
    """Norse's pattern: every cell returns its state; None at the first step."""

    def __init__(self) -> None:
        super().__init__()
        from norse.torch import LIFCell

        self.fc1, self.lif = nn.Linear(6, 16), LIFCell()
        self.fc2, self.qif = nn.Linear(16, 8), QIF(rheobase=0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = s2 = None
        out = []
        for t in range(x.shape[0]):
            z, s1 = self.lif(self.fc1(x[t]), s1)
            s, s2 = self.qif(self.fc2(z), s2)
            out.append(s)
        return torch.stack(out)


def build(style: str) -> tuple[nn.Module, torch.Tensor, object]:
    pytest.importorskip({"snntorch": "snntorch", "spikingjelly": "spikingjelly", "norse": "norse"}[style])
    torch.manual_seed(0)
    model = {"snntorch": SnnTorchStyle, "spikingjelly": spikingjelly_style, "norse": NorseStyle}[style]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(4.0)
    run = None
    if style == "spikingjelly":
        from spikingjelly.activation_based import functional

        def run(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
            functional.reset_net(m)  # SpikingJelly's own reset reaches the QIF too
            return m(x)
    return model, (torch.rand(30, 4, 6) < 0.4).float() * 2, run


STYLES = ["snntorch", "spikingjelly", "norse"]


@pytest.mark.parametrize("style", STYLES)
def test_the_qif_is_a_site_beside_the_framework_neuron_and_patches_exactly(style):
    model, x, run = build(style)
    sites = sg.find_neurons(model)
    assert [s.adapter for s in sites] == [style, "neurons"] and sites[1].kind == "neurons.QIF"
    qif = sites[1].module
    before = qif.surrogate
    expected = run(model, x) if run else model(x)
    with sg.patch(model, surrogate="atan", dampening=0.4, sharpness=3.0):
        assert qif.surrogate is not before and qif.surrogate.family == "atan"
        assert torch.equal(run(model, x) if run else model(x), expected)  # the forward is the same Heaviside
    assert qif.surrogate is before


@pytest.mark.parametrize("style", STYLES)
def test_analyze_and_stabilize_describe_the_qif_with_its_recorded_gain(style):
    model, x, run = build(style)
    report = sg.analyze(model, x, run=run, probes=8)
    layer = report.layers[-1]
    assert layer.kind == "neurons.QIF" and layer.dynamics is not None
    assert any("membrane-dependent gain" in n for n in layer.notes)
    assert layer.measured_gain is not None and layer.data_gain is not None
    assert layer.data_gain == pytest.approx(layer.measured_gain, rel=0.15)
    site = sg.find_neurons(model)[1]
    before = site.module.surrogate
    handle = sg.stabilize(model, x, run=run)
    assert handle.report.layers[-1].kind == "neurons.QIF"
    assert site.module.surrogate is not before and site.module.surrogate.site_path == site.path  # installed here
    handle.remove()
    assert site.module.surrogate is before


def test_analyze_leaves_a_hidden_membrane_as_it_was():
    model, x, run = build("spikingjelly")
    run(model, x)
    kept = model[3].v.clone()
    sg.analyze(model, x[:10], run=run)
    assert torch.equal(model[3].v, kept)


# -- membrane-dependent gains: ours and SpikingJelly's QIF and EIF, against the autograd measurement ----------------
def _one_layer(kind: str, scale: float, seed: int) -> tuple[nn.Module, torch.Tensor, object]:
    from spikingjelly.activation_based import functional, neuron

    torch.manual_seed(seed)
    cell = {"ours": lambda: QIF(tau=5.0, rheobase=0.25, step_mode="multi", hidden=True),
            "QIFNode": lambda: neuron.QIFNode(step_mode="m"), "EIFNode": lambda: neuron.EIFNode(step_mode="m")}[kind]()
    net = nn.Sequential(nn.Linear(10, 32), cell)
    with torch.no_grad():
        net[0].weight.mul_(scale)

    def run(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(m)
        return m(x)

    return net, (torch.rand(40, 8, 10) < 0.3).float(), run


@pytest.mark.parametrize("kind", ["ours", "QIFNode", "EIFNode"])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_the_data_driven_gain_of_a_nonlinear_membrane_is_within_15_percent_of_the_measured(kind, scale):
    pytest.importorskip("spikingjelly")
    for seed in range(3):
        net, x, run = _one_layer(kind, scale, seed)
        layer = sg.analysis.analyze_layers(net, x, run=run, probes=8).layers[0]
        assert layer.firing_rate > 0 or kind == "ours"
        assert layer.data_gain == pytest.approx(layer.measured_gain, rel=0.15), (seed, layer.data_gain,
                                                                                 layer.measured_gain)


def test_spikingjelly_qif_is_described_with_its_own_equation():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron

    node = neuron.QIFNode(tau=2.0, v_c=0.8, a0=1.0, v_rest=0.0, v_reset=-0.1)
    dyn = sg.find_neurons(nn.Sequential(nn.Linear(2, 2), node))[0].driver.dynamics()
    assert dyn is not None and dyn.leak == pytest.approx(1 + (0.0 - 0.8) / 2.0)  # dh/dv at rest
    assert dyn.input_gain == pytest.approx(0.5)
    centred = torch.tensor([-1.0, -0.2], dtype=torch.float64)  # v = 0 and 0.8 (threshold 1)
    own, reset = dyn.transition(centred, torch.tensor([False, False]))
    torch.testing.assert_close(own, 1 + (2 * (centred + 1.0) - 0.8) / 2.0)
    torch.testing.assert_close(reset, own * (centred + 1.0 + 0.1))


@pytest.mark.parametrize("method", ["at_threshold", "fluctuation", "calibrate_rate"])
def test_the_initialisers_take_a_self_amplifying_qif_at_rest(method):
    torch.manual_seed(0)  # membranes mostly above 0: the run's root-mean-square gain is above 1
    model = nn.Sequential(nn.Linear(8, 16), QIF(v_peak=3.0, step_mode="multi", hidden=True))
    with torch.no_grad():
        model[0].weight.abs_().mul_(0.3)
        model[0].bias.fill_(0.05)

    def run(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        m[1].reset()
        return m(x)

    x = torch.rand(30, 4, 8)
    assert sg.analyze(model, x, run=run).layers[0].dynamics.leak > 1.0
    report = getattr(sg.init, method)(model, x, run=run, **({"progress": False} if method == "calibrate_rate" else {}))
    assert report is not None
