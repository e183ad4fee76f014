"""Schedules, rate collection, sparsity losses, annealing, noise and diagnostics (issue 5)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.schedules import Constant, ExponentialApproach, HardSwitch, LinearRamp, get_schedule
from sg_stability.sparsity import FiringRateControl, RateMonitor, SparsityLoss


# -- schedules -----------------------------------------------------------------------------------------------
def test_linear_ramp_hand_values():
    s = LinearRamp(10)  # 0 until epoch 2 (E/5), linear to 1 at epoch 6 (3E/5)
    assert [s.value_at(e) for e in range(11)] == [0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1, 1, 1]
    assert s.value == 0 and s.step() == 0 and s.step() == 0 and s.step() == 0.25


def test_exponential_approach_hand_values():
    s = ExponentialApproach(20)  # from epoch ceil(4): 1 - 0.6^k; 1 from epoch 15 (3E/4)
    assert s.value_at(3) == 0 and s.value_at(4) == pytest.approx(0.4) and s.value_at(5) == pytest.approx(0.64)
    assert s.value_at(14) == pytest.approx(1 - 0.6**11) and s.value_at(15) == 1.0


def test_hard_switch_and_constant():
    s = HardSwitch(3, before=2.0, after=0.5)
    assert [s.value_at(e) for e in range(5)] == [2, 2, 2, 0.5, 0.5]
    assert Constant(0.3).value_at(100) == 0.3
    assert isinstance(get_schedule("linear", total_epochs=5), LinearRamp)


def test_checkpoint_and_resume_through_state_dict():
    a = LinearRamp(20, start=0.1, end=0.5)
    for _ in range(7):
        a.step()
    b = LinearRamp(20, start=0.1, end=0.5)
    b.load_state_dict(a.state_dict())
    assert b.value == a.value == pytest.approx((7 - 2) / (10 - 2))
    assert [b.step() for _ in range(5)] == [a.step() for _ in range(5)]
    loss = SparsityLoss(schedule=LinearRamp(10))
    for _ in range(4):
        loss.step()
    other = SparsityLoss(schedule=LinearRamp(10))
    other.load_state_dict(loss.state_dict())
    assert other.value == loss.value == 0.5


def test_stepping_past_the_end_is_a_four_part_error():
    s = LinearRamp(2)
    s.step()
    s.step()
    with pytest.raises(sg.ConfigError) as info:
        s.step()
    assert "past its last epoch" in str(info.value) and "got: 'step 3 of 2'" in str(info.value)
    assert "fix:" in str(info.value)


# -- a model whose spikes are known exactly --------------------------------------------------------------------
class Known(nn.Module):
    """Two snnTorch Leaky layers with beta = 0 and no reset: spikes = (input > 1) step by step."""

    def __init__(self) -> None:
        import snntorch as snn

        super().__init__()
        self.a = snn.Leaky(beta=0.0, threshold=1.0, reset_mechanism="none")
        self.b = snn.Leaky(beta=0.0, threshold=1.0, reset_mechanism="none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ma, mb = self.a.init_leaky(), self.b.init_leaky()
        out = []
        for t in range(x.shape[0]):
            sa, ma = self.a(x[t], ma)
            sb, mb = self.b(x[t] * 0 + 2.0 * sa - 0.5, mb)  # spikes iff a spiked (2 - 0.5 = 1.5 > 1)
            out.append(sb)
        return torch.stack(out)


def known_input() -> torch.Tensor:
    # T = 4, B = 2, n = 3; 1.2 spikes (v = 0.2), 0.9 does not (v = -0.1): both inside rect(1, 1)'s |v| < 1/2
    pattern = torch.tensor([[[1, 0, 0], [1, 1, 0]], [[0, 0, 0], [1, 0, 0]], [[1, 0, 1], [0, 0, 0]],
                            [[0, 0, 0], [1, 1, 1]]], dtype=torch.float32)
    return 0.9 + 0.3 * pattern, pattern


def test_rates_equal_the_known_spikes_and_losses_match_hand_values():
    pytest.importorskip("snntorch")
    net = Known()
    x, pattern = known_input()
    r = float(pattern.mean())  # 9 / 24
    per_neuron = pattern.mean((0, 1))  # [5/8, 2/8, 2/8]
    with RateMonitor(net) as monitor:
        net(x)
        rates = monitor.rates()
        assert float(rates["a"]) == pytest.approx(r) and float(rates["b"]) == pytest.approx(r)
        torch.testing.assert_close(monitor.rates(per_neuron=True)["a"], per_neuron)
        f = 0.1
        assert float(SparsityLoss("squared", f)(monitor)) == pytest.approx(2 * (r - f) ** 2)
        assert float(SparsityLoss("l1", 0.0)(monitor)) == pytest.approx(2 * r)
        assert float(SparsityLoss("upper", 0.5)(monitor)) == 0.0
        assert float(SparsityLoss("lower", 0.5)(monitor)) == pytest.approx(2 * (0.5 - r) ** 2)
        assert float(SparsityLoss("band", 0.3, lower=0.1)(monitor)) == pytest.approx(2 * (r - 0.3) ** 2)
        per = SparsityLoss("squared", 0.25, per_neuron=True)(monitor)
        assert float(per) == pytest.approx(2 * float(((per_neuron - 0.25) ** 2).mean()))
        targets = SparsityLoss("squared", {"a": 0.5, "*": 0.0}, weight=3.0)(monitor)
        assert float(targets) == pytest.approx(3.0 * ((r - 0.5) ** 2 + r**2))


def test_sparsity_gradient_matches_hand_derivation():
    # L = (r - f)^2 on layer a only, r = sum(s) / (T B n): dL/dx = 2 (r - f) / 24 * sigma'(x - 1), with rect(1, 1)
    # sigma' = 1 at v = 0.2 and v = -0.1. (Layer b's input does not depend on x through a differentiable path
    # that the loss on a sees.)
    pytest.importorskip("snntorch")
    net = Known()
    x, pattern = known_input()
    x.requires_grad_(True)
    with sg.patch(net, "rectangular"), RateMonitor(net, layers="a") as monitor:
        net(x)
        SparsityLoss("squared", 0.1)(monitor).backward()
    r = float(pattern.mean())
    torch.testing.assert_close(x.grad, torch.full_like(x, 2 * (r - 0.1) / 24))


def test_schedule_scales_the_loss():
    pytest.importorskip("snntorch")
    net = Known()
    x, _ = known_input()
    loss = SparsityLoss("squared", 0.1, schedule=LinearRamp(10))
    with RateMonitor(net) as monitor:
        net(x)
        assert float(loss(monitor)) == 0.0
        for _ in range(4):
            loss.step()
        assert float(loss(monitor)) == pytest.approx(0.5 * float(loss.penalty(monitor)))


def test_firing_rate_control_decolle():
    pytest.importorskip("snntorch")
    net = Known()
    x, pattern = known_input()
    r = float(pattern.mean())
    control = FiringRateControl(0.5, strength=100.0, switch_epoch=1)
    with RateMonitor(net) as monitor:
        net(x)
        assert float(control(monitor)) == pytest.approx(100 * 2 * abs(r - 0.5))
        control.step()
        assert float(control(monitor)) == 0.0
        to = FiringRateControl(0.5, strength=10.0, switch_epoch=0, rate_to=0.2)
        assert float(to(monitor)) == pytest.approx(10 * 2 * abs(r - 0.2))


# -- collection on each framework ------------------------------------------------------------------------------
def frameworks_models():
    torch.manual_seed(0)  # the weights are built at collection time: fix them
    models = []
    try:
        import snntorch as snn

        models.append(("snntorch", nn.Sequential(nn.Linear(10, 6), snn.Leaky(0.9, init_hidden=True)), "step"))
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from spikingjelly.activation_based import functional, layer, neuron

        m = nn.Sequential(layer.Linear(10, 6), neuron.LIFNode(step_mode="m"))
        functional.set_step_mode(m, "m")
        models.append(("spikingjelly-multistep", m, "sequence"))
        models.append(("spikingjelly-singlestep", nn.Sequential(nn.Linear(10, 6), neuron.LIFNode()), "step"))
    except ImportError:
        pass
    try:
        import norse.torch as norse

        class NorseLayer(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc, self.lif = nn.Linear(10, 6), norse.LIF(p=norse.LIFParameters(v_th=torch.tensor(0.1)))

            def forward(self, x):
                return self.lif(self.fc(x))[0]

        models.append(("norse-layer", NorseLayer(), "sequence"))
    except ImportError:
        pass
    return models


@pytest.mark.parametrize(("name", "model", "mode"), frameworks_models(), ids=lambda v: v if isinstance(v, str) else "")
def test_collection_on_each_framework(name, model, mode):
    torch.manual_seed(0)
    x = torch.rand(12, 3, 10) * 12  # strong enough that every framework's layer fires at a fraction of steps
    with RateMonitor(model) as monitor:
        if mode == "sequence":
            spikes = model(x)
        else:
            if hasattr(model[1], "reset"):
                model[1].reset()
            spikes = torch.stack([model(x[t]) for t in range(x.shape[0])])
        (path,) = monitor.rates()
        assert float(monitor.rates()[path].detach()) == pytest.approx(float(spikes.detach().double().mean()), abs=1e-6)
        assert 0 < float(spikes.detach().mean()) < 1


def test_memory_does_not_grow_with_the_sequence():
    """The monitor saves no tensor for backward: the bytes autograd keeps are the model's own, at any T."""
    snn = pytest.importorskip("snntorch")
    import snntorch.utils  # noqa: F401

    def saved_bytes(steps: int, monitored: bool) -> int:
        net = nn.Sequential(nn.Linear(10, 32), snn.Leaky(0.9, init_hidden=True))
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        x = torch.rand(steps, 4, 10) * 3
        monitor = RateMonitor(net) if monitored else None
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            snn.utils.reset(net)
            out = torch.stack([net(x[t]) for t in range(steps)])
            if monitor is not None:
                SparsityLoss()(monitor)
        if monitor is not None:
            monitor.remove()
        return total + 0 * int(out.numel())

    extra = [saved_bytes(steps, True) - saved_bytes(steps, False) for steps in (10, 40)]
    # the loss itself saves a few scalars (r - f for the square); the collection saves nothing per step
    assert extra[0] == extra[1] and extra[0] <= 64


def test_remove_restores_the_model_and_attaching_twice_is_an_error():
    snn = pytest.importorskip("snntorch")
    net = nn.Sequential(nn.Linear(10, 6), snn.Leaky(0.9, init_hidden=True))
    hooks = {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in net.named_modules()}
    monitor = RateMonitor(net)
    with pytest.raises(sg.ConfigError) as info:
        RateMonitor(net)
    assert "already attached" in str(info.value) and "fix:" in str(info.value)
    monitor.remove()
    assert {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in net.named_modules()} == hooks
    RateMonitor(net).remove()  # attachable again


@pytest.mark.parametrize(("call", "words"), [
    (lambda: SparsityLoss("squared", -0.1), "target must be a firing rate in [0, 1]"),
    (lambda: SparsityLoss("squared", 1.5), "target must be a firing rate in [0, 1]"),
    (lambda: SparsityLoss("squared", {"a": 2.0}), "target['a']"),
    (lambda: SparsityLoss("entropy"), "unknown sparsity loss kind"),
    (lambda: SparsityLoss("band", 0.1, lower=0.3), "lower <= target"),
    (lambda: get_schedule("cosine"), "unknown schedule"),
    (lambda: LinearRamp(0), "positive integer number of epochs"),
    (lambda: LinearRamp(10, start=0.6, end=0.2), "end after it starts"),
    (lambda: FiringRateControl(0.5, rate_to=-1.0), "rate_to"),
])
def test_bad_input(call, words):
    with pytest.raises(sg.ConfigError) as info:
        call()
    text = str(info.value)
    assert words in text and "got:" in text and "allowed:" in text and "fix:" in text


# -- annealing and noise ------------------------------------------------------------------------------------------
def test_sharpness_annealing_is_geometric_and_undone():
    snn = pytest.importorskip("snntorch")
    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(0.9, init_hidden=True), nn.Linear(3, 2),
                        snn.Leaky(0.9, init_hidden=True))
    with sg.patch(net, "fast_sigmoid", sharpness=0.7) as handle:
        ann = sg.anneal.SharpnessAnnealing(net, 0.5, 8.0, LinearRamp(4, start=0.0, end=1.0))
        values = [ann.value] + [ann.step() for _ in range(4)]
        assert values == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0])
        assert all(s.sharpness == pytest.approx(8.0) for s in handle.surrogates.values())
        ann.remove()
        assert all(s.sharpness == 0.7 for s in handle.surrogates.values())


def test_sharpness_annealing_needs_our_surrogates():
    snn = pytest.importorskip("snntorch")
    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(0.9, init_hidden=True))
    with pytest.raises(sg.ConfigError, match="sharpness annealing needs"):
        sg.anneal.SharpnessAnnealing(net, 0.5, 8.0, LinearRamp(4))


@pytest.mark.parametrize(("name", "model", "mode"), frameworks_models(), ids=lambda v: v if isinstance(v, str) else "")
def test_threshold_annealing_through_the_adapters(name, model, mode):
    (site,) = sg.find_neurons(model)
    original = site.driver.threshold()
    holder = site.module.p if name.startswith("norse") else None
    ann = sg.anneal.ThresholdAnnealing(model, 0.5, LinearRamp(2, start=0.0, end=1.0))
    assert float(torch.as_tensor(site.driver.threshold())) == pytest.approx(0.5 * float(torch.as_tensor(original)))
    ann.step()
    assert float(torch.as_tensor(site.driver.threshold())) == pytest.approx(0.75 * float(torch.as_tensor(original)))
    ann.remove()
    assert site.driver.threshold() is original or site.driver.threshold() == original
    if holder is not None:
        assert site.module.p is holder


def test_noise_injection_only_in_training_and_undone():
    snn = pytest.importorskip("snntorch")
    import snntorch.utils  # noqa: F401
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 6), snn.Leaky(0.9, init_hidden=True))
    x = torch.rand(5, 10)

    def run():
        snn.utils.reset(net)
        return net(x).clone()

    clean = run()
    noise = sg.anneal.NoiseInjection(net, 5.0, Constant(1.0))
    noisy = run()
    net.eval()
    assert torch.equal(run(), clean)
    net.train()
    noise.remove()
    assert not torch.equal(noisy, clean)
    assert torch.equal(run(), clean)


# -- diagnostics ------------------------------------------------------------------------------------------------
def test_diagnostics_statistics_and_gradient_per_step(tmp_path):
    pytest.importorskip("snntorch")
    net = Known()
    x, pattern = known_input()
    x.requires_grad_(True)
    # triangular(1, 1): sigma'(0.5) = 0.5 at layer b when a spiked (v_b = 1.5 - 1), 0 otherwise (v_b = -1.5), so
    # dL/ds_a = 2 * 0.5 = 1 where a spiked: ||dL/ds_a,t|| = sqrt(number of spikes of a at step t)
    with sg.patch(net, "triangular"), sg.diagnostics.Diagnostics(net, active_every=1) as diag:
        out = net(x)
        out.sum().backward()
        records = diag.end_epoch()
        a = records["a"]
        assert a.rate == pytest.approx(float(pattern.mean()))
        per_neuron = pattern.mean((0, 1))
        assert a.dead == pytest.approx(float((per_neuron == 0).double().mean()))
        assert a.active == 1.0  # every spike-call v is 0.2 or -0.1, inside the half-maximum region |v| <= 1/2
        counts = pattern.sum((1, 2))
        assert a.gradient_norms == pytest.approx(counts.sqrt().tolist())
        text = diag.summary()
        assert "a" in text and "rate" in text
        assert diag.plot(tmp_path / "dash.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diagnostics_hint_on_dead_layers():
    snn = pytest.importorskip("snntorch")
    import snntorch.utils  # noqa: F401
    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(0.9, init_hidden=True))
    with torch.no_grad():
        net[0].weight.fill_(-1.0)
        net[0].bias.fill_(-1.0)
    with sg.diagnostics.Diagnostics(net) as diag:
        snn.utils.reset(net)
        for _ in range(5):
            net(torch.rand(2, 4))
        diag.end_epoch()
        assert "never spiked" in diag.summary()


def test_snntorch_bptt_helper_accepts_the_scheduled_loss():
    snn = pytest.importorskip("snntorch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # snnTorch announces the helper's deprecation on import
        from snntorch import backprop
        from snntorch import functional as sf

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 8), snn.Leaky(0.9, init_hidden=True), nn.Linear(8, 3),
                        snn.Leaky(0.9, init_hidden=True, output=True))
    data = [(torch.rand(6, 4, 10) * 3, torch.randint(0, 3, (4,))) for _ in range(2)]
    calls = []
    loss = SparsityLoss("squared", 0.05, weight=1000.0)
    with RateMonitor(net) as monitor:
        reg = loss.for_snntorch_bptt(monitor)

        def counted(spk):
            calls.append(1)
            return reg(spk)

        counted.__name__ = "l1_rate_sparsity"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            avg = backprop.BPTT(net, data, torch.optim.SGD(net.parameters(), lr=0.0), sf.ce_rate_loss(),
                                time_var=True, time_first=True, regularization=counted)
    assert len(calls) == 2 and math.isfinite(float(avg.detach()))
