"""The adapter contract as a third party meets it: the README's adapter runs as written and gets every feature;
what a driver declares (call pattern, state reset, what it installed) is what the core uses; deprecated names
still work for one release and say so."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability.adapter_api import CallPattern, Installed
from sg_stability.testing import verify_patch
from tests.zoo.toy_adapter import ToyAdapter, ToyDriver, ToyNet

ROOT = Path(__file__).resolve().parents[2]
T, BATCH, N_IN, N = 30, 8, 6, 12


def _readme_adapter() -> dict[str, object]:
    """Run the adapter code block of the adapter guide (docs/adapters.md), exactly as written."""
    section = (ROOT / "docs" / "adapters.md").read_text()
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "the adapter guide has no python block"
    namespace: dict[str, object] = {"__name__": "readme_adapter"}
    exec(compile(code.group(1), "docs/adapters.md", "exec"), namespace)  # noqa: S102 -- our README
    return namespace


@pytest.fixture
def readme_adapter():
    namespace = _readme_adapter()
    yield namespace
    sg.plugins.unregister(next(p for p in sg.plugins.manager().get_plugins()
                               if type(p).__name__ == "TinyAdapter"))


def _tiny_net(ns: dict[str, object]) -> nn.Module:
    tiny_lif = ns["TinyLIF"]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(N_IN, N)
            self.lif = tiny_lif(leak=0.8)  # type: ignore[operator]
            self.out = nn.Linear(N, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            v = torch.zeros(x.shape[1], N)
            spikes = []
            for t in range(x.shape[0]):
                s, v = self.lif(self.fc(x[t]), v)
                spikes.append(s)
            return self.out(torch.stack(spikes)).mean(0)

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.fc.weight.mul_(3.0)
    return net


def test_the_readme_adapter_works_as_written(readme_adapter):
    net = _tiny_net(readme_adapter)
    x = (torch.rand(T, BATCH, N_IN) < 0.4).float()
    sites = sg.find_neurons(net)
    assert [(s.path, s.adapter, s.kind) for s in sites] == [("lif", "tiny", "tiny.TinyLIF")]
    report = verify_patch(net, lambda m: m(x), "fast_sigmoid", dampening=0.5, sharpness=2.0)
    assert report.ok, str(report)
    with pytest.raises(sg.NotConvertibleError, match="straight-through"):
        sg.from_native(readme_adapter["tiny_step"])
    analysis = sg.analyze(net, x)  # the driver's dynamics make every estimate available
    layer = analysis["lif"]
    assert layer.gain_kind == "temporal" and layer.data_gain is not None and layer.theory_gain is not None
    assert layer.dynamics is not None and layer.dynamics.leak == pytest.approx(0.8)
    assert 0.0 < layer.firing_rate < 1.0
    with sg.stabilize(net, x, progress=False) as handle:
        assert isinstance(net.lif.spike_fn, sg.surrogates.FastSigmoid)
        assert handle.report.recommended is not None
    assert net.lif.spike_fn is readme_adapter["tiny_step"]


@contextlib.contextmanager
def toy_adapter(driver: type[ToyDriver] = ToyDriver) -> Iterator[None]:
    """The toy adapter registered for the duration, claiming ToyNeurons with ``driver``."""

    class Adapter(ToyAdapter):
        @sg.adapter_api.hookimpl(tryfirst=True)
        def sg_find_neuron(self, module, path):
            site = super().sg_find_neuron(module, path)
            return driver(module).site(path) if site is not None else None

    name = sg.plugins.register(Adapter())
    try:
        yield
    finally:
        sg.plugins.unregister(name)


def test_a_driver_that_does_not_return_installed_is_an_adapter_error():
    class OldDriver(ToyDriver):
        def install(self, surrogate, tx, path, options):
            return super().install(surrogate, tx, path, options).objects  # a plain dict: the old contract

    with toy_adapter(OldDriver):
        net = ToyNet()
        before = {k: m.act for k, m in net.named_modules() if hasattr(m, "act")}
        with pytest.raises(sg.AdapterError, match="returned dict, not sg_stability.adapter_api.Installed"):
            sg.patch(net, "atan")
        assert all(net.get_submodule(k).act is v for k, v in before.items())  # rolled back


def test_sites_from_find_neurons_select_what_to_patch():
    with toy_adapter():
        net = ToyNet()
        sites = sg.find_neurons(net)
        chosen = [s for s in sites if s.path.startswith("encoder")]
        with sg.patch(net, "atan", targets=chosen) as handle:
            assert sorted(s.path for s in handle.sites) == ["encoder.a", "encoder.b"]
            assert not isinstance(net.readout.act, sg.surrogates.Surrogate)
        with pytest.raises(sg.NoNeuronsFoundError, match="not in this model"):
            sg.patch(ToyNet(), "atan", targets=chosen)  # sites of another model


def test_the_call_pattern_decides_what_counts_as_time_first():
    spikes = torch.zeros(5, 3, 4)
    assert CallPattern().leading_dims(spikes) == 1
    assert CallPattern(time_first=True).leading_dims(spikes) == 2
    assert CallPattern(whole_sequence=True).leading_dims(spikes) == 2
    assert CallPattern(time_first=True).leading_dims(torch.zeros(4)) == 1


def test_the_analyzer_resets_state_through_the_driver():
    calls = []

    class StatefulDriver(ToyDriver):
        def reset_state(self) -> None:
            calls.append(self.module)

    with toy_adapter(StatefulDriver), sg.recording.traced(ToyNet(), torch.randn(4, 3)) as trace:
        assert len(calls) == 3  # once per neuron, before the run
        trace.rerun()
        assert len(calls) == 6


def test_installed_is_what_the_handle_records():
    with toy_adapter():
        net = ToyNet()
        with sg.patch(net, "gaussian") as handle:
            assert set(handle.surrogates) == {"encoder.a", "encoder.b", "readout"}
            assert handle.surrogates["readout"] is net.readout.act
    assert Installed({"act": 1}).note == ""


def test_names_that_left_the_top_level_still_work_and_warn():
    from tests.zoo.toy_adapter import toy_step

    with toy_adapter():
        with pytest.warns(DeprecationWarning, match="moved to sg_stability.plugins.read_native"):
            reading = sg.read_native(toy_step)
        assert reading == sg.plugins.read_native(toy_step)
    for name, home in [("hookimpl", sg.adapter_api), ("NeuronSite", sg.adapter_api), ("Transaction", sg.adapter_api)]:
        with pytest.warns(DeprecationWarning, match=f"moved to sg_stability.adapter_api.{name}"):
            assert getattr(sg, name) is getattr(home, name)
        assert name not in sg.__all__
    assert not hasattr(sg.surrogates, "read_native")  # the announced alias of the previous release is gone
    with pytest.raises(AttributeError, match="no_such_name"):
        sg.no_such_name  # noqa: B018
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), snn.Leaky(beta=0.9, init_hidden=True))
    x = torch.rand(10, 4, 5)

    def run(m, x):
        m[1].reset_mem()
        return torch.stack([m(x[t]) for t in range(x.shape[0])])

    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.warns(DeprecationWarning, match="renamed sg.init.at_threshold"):
        old = sg.init.stability(net, x, run=run)
    old_weights = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = sg.init.at_threshold(net, x, run=run)
    assert str(old) == str(new) and all(torch.equal(old_weights[k], v) for k, v in net.state_dict().items())
    with pytest.warns(DeprecationWarning, match="init='at_threshold'"):
        sg.init.initialize(net, x, "stability", run=run)
