"""sg.analyze and sg.stabilize on real framework models (snnTorch, SpikingJelly, Norse)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import sg_stability as sg
from tests.zoo import shd_networks

SMALL = {"n_in": 120, "n_rec": 48, "n_out": 6}


def structure(net: nn.Module) -> dict:
    """What analyze/stabilize must leave unchanged: the surrogate objects, the parameters (identity and values)
    and the hooks. (Running a model legitimately changes the state snnTorch keeps on its neurons.)"""
    return {
        "surrogates": {s.path: {k: id(v) for k, v in s.driver.current().items()} for s in sg.find_neurons(net)},
        "params": {n: (id(p), p.detach().clone()) for n, p in net.named_parameters()},
        "hooks": {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in net.named_modules()},
    }


def same(a: dict, b: dict) -> bool:
    return (a["surrogates"] == b["surrogates"] and a["hooks"] == b["hooks"] and a["params"].keys() == b["params"].keys()
            and all(a["params"][k][0] == b["params"][k][0] and torch.equal(a["params"][k][1], b["params"][k][1])
                    for k in a["params"]))


def small_net(framework: str, seed: int = 0, **scales: float) -> tuple[nn.Module, torch.Tensor]:
    return shd_networks.build(framework, SMALL, steps=50, batch=8, rate=0.1, seed=seed, **scales)


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse"])
@pytest.mark.slow
def test_analyze_finds_the_recurrent_layer_and_its_weights(framework):
    net, x = small_net(framework)
    report = sg.analyze(net, x)
    assert [layer.name for layer in report.layers] == ["lif_rec", "lif_out"]
    rec = report["lif_rec"]
    assert rec.gain_kind == "recurrent" and rec.neurons == SMALL["n_rec"]
    assert report.steps == 50
    assert rec.data_gain is not None and rec.theory_gain is not None and rec.measured_gain is not None
    assert rec.dynamics is not None and rec.dynamics.leak == pytest.approx(0.9, abs=1e-6)


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly"])
def test_data_driven_gain_matches_the_autograd_measurement(framework):
    # the membrane reaches the surrogate in the same step, so the one-step Jacobian is measured directly;
    # 4 probes x 4 steps x 8 x 48 rows: a Hutchinson estimate within a few per cent
    net, x = small_net(framework)
    rec = sg.analyze(net, x, probes=8)["lif_rec"]
    assert rec.measured_gain == pytest.approx(rec.data_gain, rel=0.05)


def test_firing_rate_matches_the_models_own_spikes():
    net, x = small_net("snntorch")
    report = sg.analyze(net, x)
    with torch.no_grad():
        spikes = net(x)
    assert report["lif_out"].firing_rate == pytest.approx(float(spikes.double().mean()), abs=1e-6)
    per_neuron = spikes.mean((0, 1))
    assert report["lif_out"].dead == pytest.approx(float((per_neuron == 0).double().mean()))


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse"])
@pytest.mark.slow
def test_analyze_leaves_the_model_exactly_as_it_was(framework):
    net, x = small_net(framework)
    before = structure(net)
    sg.analyze(net, x)
    assert same(structure(net), before)
    assert not sg.is_patched(net)


def feed_forward_stack(seed: int) -> tuple[nn.Module, torch.Tensor]:
    """SpikingJelly multi-step Sequential 60 -> 40 -> 30 -> 5 LIF, weights x6 so that every layer fires."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(seed)
    net = nn.Sequential(layer.Linear(60, 40), neuron.LIFNode(step_mode="m"), layer.Linear(40, 30),
                        neuron.LIFNode(step_mode="m"), layer.Linear(30, 5), neuron.LIFNode(step_mode="m"))
    functional.set_step_mode(net, "m")
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(6.0)
    return net, (torch.rand(30, 8, 60) < 0.2).float()


def test_layer_to_layer_gain_on_a_spikingjelly_multistep_sequential():
    net, x = feed_forward_stack(seed=0)
    report = sg.analyze(net, x, probes=8)
    kinds = [layer.gain_kind for layer in report.layers]
    assert kinds == ["layer-to-layer", "layer-to-layer", "temporal"]
    for layer_report in report.layers[:2]:
        assert layer_report.measured_gain == pytest.approx(layer_report.data_gain, rel=0.05)
    assert report.layers[0].dampening is not None  # the depth rule over the three weights
    # spectral norms of the weights as they act on the membrane: LIFNode(tau=2) takes input / tau
    expected = math.prod(float(torch.linalg.matrix_norm(m.weight.detach() / 2.0, ord=2)) for m in net
                         if isinstance(m, nn.Linear)) ** (-1 / 3)
    first = report.layers[0]
    if first.dampening.feasible:
        assert first.dampening.value == pytest.approx(expected, rel=1e-6)
    else:  # the worst-case rule leaves the mean-square gain below 1: reported, and the own peak is used
        assert f"depth rule's dampening {expected:.3g}" in " ".join(first.notes)
        assert first.sharpness.feasible


def test_analyze_a_model_patched_with_spikingjelly_builtins():
    # sg.patch installed SpikingJelly's own Sigmoid (fused path); analyze records through a private swap and puts
    # the framework's objects back, leaving the live handle intact
    net, x = small_net("spikingjelly")
    with sg.patch(net, "sigmoid") as handle:
        installed = {k: id(v) for k, v in handle.surrogates.items()}
        report = sg.analyze(net, x)
        assert report["lif_rec"].surrogate.family == "sigmoid"
        assert {k: id(v) for k, v in handle.surrogates.items()} == installed
        assert id(net.lif_rec.surrogate_function) == installed["lif_rec"]


def test_report_prints_a_table_and_writes_a_png(tmp_path):
    net, x = small_net("snntorch")
    report = sg.analyze(net, x)
    text = str(report)
    assert "lif_rec" in text and "recurrent" in text and "gradients" in text
    png = report.plot(tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse"])
@pytest.mark.slow
def test_stabilize_keeps_the_bptt_growth_calm(framework):
    """Without training data stabilize installs the analysis' first choice: a surrogate of at most unit area
    whose measured BPTT growth stays between the leak's and 1 (sg.candidates)."""
    net, x = small_net(framework, recurrent_scale=6.0)
    default = sg.analyze(net, x)["lif_rec"]
    before = structure(net)
    handle = sg.stabilize(net, x)
    rec = handle.report["lif_rec"]
    first = handle.candidates[0]
    assert rec.surrogate.family == "fast_sigmoid"
    assert float(rec.surrogate.dampening) <= float(rec.surrogate.sharpness) + 1e-12  # area <= 1
    assert first.growth is not None and first.growth <= 1.0
    assert rec.bptt_growth is not None and rec.bptt_growth <= 1.01
    assert rec.gradient_spread is not None and default.gradient_spread is not None
    assert rec.gradient_spread < default.gradient_spread  # the default surrogate's gradient explodes here
    handle.remove()
    assert same(structure(net), before)


def test_stabilize_with_a_requested_family():
    net, x = small_net("snntorch", recurrent_scale=6.0)
    with sg.stabilize(net, x, family="gaussian") as handle:
        assert handle.report["lif_rec"].surrogate.family == "gaussian"
        assert "gaussian" in handle.summary()


# -- bad input ---------------------------------------------------------------------------------------------
def test_wrong_sample_shape_is_a_four_part_error():
    net, x = small_net("snntorch")
    before = structure(net)
    with pytest.raises(sg.ConfigError) as info:
        sg.analyze(net, x[..., :10])
    text = str(info.value)
    assert "running the model on the sample failed" in text and "got: sample of shape (50, 8, 10)" in text
    assert "allowed:" in text and "fix:" in text
    assert same(structure(net), before)


def test_a_model_without_neurons_is_reported():
    with pytest.raises(sg.NoNeuronsFoundError):
        sg.analyze(nn.Sequential(nn.Linear(3, 3)), torch.zeros(2, 3))


def test_neurons_without_weights_are_a_four_part_error():
    snn = pytest.importorskip("snntorch")
    net = nn.Sequential(snn.Leaky(beta=0.9, init_hidden=True))

    def run(model, x):
        return torch.stack([model(x[t]) for t in range(x.shape[0])])

    with pytest.raises(sg.ConfigError) as info:
        sg.analyze(net, torch.rand(10, 2, 4) * 3, run=run)
    assert "no weights feed any spiking layer" in str(info.value) and "fix:" in str(info.value)


@pytest.mark.parametrize(("kwargs", "words"), [({"target": 0.0}, "target is out of range"),
                                               ({"target": float("nan")}, "target is NaN"),
                                               ({"loss_fn": lambda m, b: 0}, "loss_fn was given without batches"),
                                               ({"family": "triangel"}, "triangular")])
def test_stabilize_bad_arguments(kwargs, words):
    net, x = small_net("snntorch")
    with pytest.raises(sg.ConfigError) as info:
        sg.stabilize(net, x, **kwargs)
    assert words in str(info.value)
    assert not sg.is_patched(net)


def test_stabilize_feed_forward_stack_installs_one_stable_choice_everywhere():
    net, x = feed_forward_stack(seed=1)
    with sg.stabilize(net, x, probes=8) as handle:
        first, passed = handle.candidates.first_choice()
        assert first is not None and first.growth is not None and first.growth <= 1.01
        # the candidates preferred to it were passed over because they widen the spread or leave a layer almost
        # without surrogate gradient; it does neither
        assert len(passed) == handle.candidates.index(first)
        assert all("widens the gradient's spread" in p or "almost without surrogate gradient" in p for p in passed)
        assert first.reach >= sg.choosing.MIN_REACH
        assert first.spread <= sg.choosing.SPREAD_SLACK * handle.candidates.spread_now
        for name in ("1", "3", "5"):
            installed = handle.report[name].surrogate
            assert (float(installed.dampening), float(installed.sharpness)) == (
                float(first.surrogate.dampening), float(first.surrogate.sharpness))


@pytest.mark.slow
def test_stabilize_q_pseudospike_keeps_its_tail():
    net, x = small_net("snntorch", recurrent_scale=6.0)
    with sg.stabilize(net, x, family="q_pseudospike", tail=3.0) as handle:
        rec = handle.report["lif_rec"]
        assert rec.surrogate.family == "q_pseudospike"
        assert float(rec.surrogate.tail) == 3.0


def test_analyze_a_model_that_mixes_three_frameworks():
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("spikingjelly")
    norse = pytest.importorskip("norse.torch")
    from spikingjelly.activation_based import neuron

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.snn = nn.Linear(20, 16), snn.Leaky(beta=0.9)
            self.fc2, self.sj = nn.Linear(16, 12), neuron.LIFNode(tau=2.0)
            self.fc3, self.norse = nn.Linear(12, 4), norse.LIFBoxCell()

        def forward(self, x):
            mem, state = self.snn.init_leaky(), None
            self.sj.reset()
            out = []
            for t in range(x.shape[0]):
                s1, mem = self.snn(self.fc1(x[t]) * 3, mem)
                s2 = self.sj(self.fc2(s1) * 3)
                s3, state = self.norse(self.fc3(s2) * 30, state)
                out.append(s3)
            return torch.stack(out)

    torch.manual_seed(0)
    net = Mixed()
    report = sg.analyze(net, torch.rand(20, 4, 20))
    assert [(r.name, r.framework) for r in report.layers] == [("snn", "snntorch"), ("sj", "spikingjelly"),
                                                             ("norse", "norse")]
    assert [r.gain_kind for r in report.layers] == ["layer-to-layer", "layer-to-layer", "temporal"]
    assert all(r.measured_gain is not None for r in report.layers)


# -- long layer names ----------------------------------------------------------------------------------------------
def test_short_names_keep_names_that_fit_and_shorten_the_rest_uniquely():
    from sg_stability._names import short_names

    names = ["lif", "encoder.blocks.0.attention.q_lif", "encoder.blocks.1.attention.q_lif",
             "model.backbone.stage4.block2.shortcut_lif.neuron", "x" * 60, "x" * 59 + "y"]
    shown = short_names(names, 27)
    assert shown["lif"] == "lif"
    assert all(len(v) <= 27 for v in shown.values())
    assert len(set(shown.values())) == len(names)  # no two rows look the same
    assert shown["model.backbone.stage4.block2.shortcut_lif.neuron"] == "…block2.shortcut_lif.neuron"  # whole parts
    assert shown["encoder.blocks.0.attention.q_lif"].endswith("0.attention.q_lif")
    # names alike at both ends: the part around where they differ is shown
    alike = ["hierarchical_encoder_first_stage.leaky_population", "hierarchical_encoder_second_stage.leaky_population"]
    shown = short_names(alike, 27)
    assert len(set(shown.values())) == 2 and all(len(v) <= 27 for v in shown.values())
    assert "first" in shown[alike[0]] and "second" in shown[alike[1]]


def test_a_report_with_long_layer_names_stays_under_120_characters_and_names_every_layer_in_full():
    snn = pytest.importorskip("snntorch")

    class Stage(nn.Module):
        def __init__(self, n_in: int, n_out: int) -> None:
            super().__init__()
            self.projection_to_the_membrane = nn.Linear(n_in, n_out)
            self.leaky_integrate_and_fire_population = snn.Leaky(beta=0.9)

        def forward(self, x, mem):
            return self.leaky_integrate_and_fire_population(self.projection_to_the_membrane(x), mem)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hierarchical_encoder_first_stage = Stage(20, 16)
            self.hierarchical_encoder_second_stage = Stage(16, 8)

        def forward(self, x):
            m1 = self.hierarchical_encoder_first_stage.leaky_integrate_and_fire_population.init_leaky()
            m2 = self.hierarchical_encoder_second_stage.leaky_integrate_and_fire_population.init_leaky()
            out = []
            for t in range(x.shape[0]):
                s1, m1 = self.hierarchical_encoder_first_stage(x[t], m1)
                s2, m2 = self.hierarchical_encoder_second_stage(s1, m2)
                out.append(s2)
            return torch.stack(out)

    torch.manual_seed(0)
    net = Net()
    text = str(sg.analyze(net, torch.rand(10, 4, 20) * 2))
    lines = text.splitlines()
    assert all(len(line) < 120 for line in lines[:11]), text  # the tables and the lines around them
    assert "…" in lines[2] and "shortened to fit" in text
    for path in (s.path for s in sg.find_neurons(net)):
        assert f"{path}: " in text  # each diagnosis line names the layer in full


def test_a_feed_forward_layer_after_a_neuron_in_a_time_loop_is_not_taken_for_its_recurrence():
    """Linear(8 -> 3) consumes the neuron's spikes and runs before the neuron's next step, as a recurrent weight
    would; it cannot map 8 neurons back onto 8, so the layer is analysed as feed-forward (it used to crash)."""
    snn = pytest.importorskip("snntorch")

    class Stepped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.fc1, self.lif, self.fc2 = nn.Linear(12, 8), snn.Leaky(beta=0.9), nn.Linear(8, 3)
            with torch.no_grad():
                self.fc1.weight.mul_(4.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem, outs = self.lif.init_leaky(), []
            for x_t in x:
                spk, mem = self.lif(self.fc1(x_t), mem)
                outs.append(self.fc2(spk))
            return torch.stack(outs)

    model = Stepped()
    report = sg.analyze(model, (torch.rand(10, 4, 12) < 0.5).float())
    (layer,) = report.layers
    assert layer.gain_kind != "recurrent" and "recurrent" not in layer.gain_kind
