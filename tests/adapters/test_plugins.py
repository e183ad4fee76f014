"""The plugin system: entry points, autoload switch, blocking, broken plugins, and each hook."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability import hookspecs, plugins
from sg_stability.adapter_api import NativeReading, NeuronSite
from tests.zoo.toy_adapter import ToyAdapter, ToyDriver, ToyNet

ROOT = Path(__file__).resolve().parents[2]

GOOD = '''
import sg_stability as sg
from sg_stability.adapter_api import AdapterInfo

@sg.adapter_api.hookimpl
def sg_adapter_info():
    return AdapterInfo(name="goodplug", framework="goodplug_framework")
'''
BROKEN = "raise ImportError('goodbye: a dependency of this plugin is missing')\n"
MISSPELLED = '''
import sg_stability as sg

@sg.adapter_api.hookimpl
def sg_find_neuronz(module, path):
    return None
'''


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """A third-party distribution 'fakeplug' with three sg_stability entry points, on sys.path."""
    (tmp_path / "goodplug_mod.py").write_text(GOOD)
    (tmp_path / "brokenplug_mod.py").write_text(BROKEN)
    (tmp_path / "misspelled_mod.py").write_text(MISSPELLED)
    info = tmp_path / "fakeplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[sg_stability]\ngoodplug = goodplug_mod\nbrokenplug = brokenplug_mod\nmisspelled = misspelled_mod\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield
    monkeypatch.undo()
    importlib.invalidate_caches()
    for name in ("goodplug_mod", "brokenplug_mod", "misspelled_mod"):
        sys.modules.pop(name, None)
    plugins.reload()


def names() -> set[str]:
    return {p.name for p in plugins.loaded()}


def test_autoload_loads_third_party_plugins_and_reports_broken_ones(fake_distribution, monkeypatch):
    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV, raising=False)
    with pytest.warns(sg.PluginLoadWarning) as record:
        plugins.reload()
    messages = [str(w.message) for w in record]
    assert any("'brokenplug'" in m and "fakeplug 1.0" in m and "goodbye" in m for m in messages)
    assert any("'misspelled'" in m and "sg_find_neuronz" in m for m in messages)
    assert {"goodplug", "snntorch"} <= names() and not {"brokenplug", "misspelled"} & names()
    assert {f.name for f in plugins.failures()} == {"brokenplug", "misspelled"}
    # discovery still works: the built-in adapter finds neurons
    snn = pytest.importorskip("snntorch")
    assert len(sg.find_neurons(nn.Sequential(snn.Leaky(0.5, init_hidden=True)))) == 1


def test_autoload_off_loads_only_the_built_in_adapters(fake_distribution, monkeypatch):
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    plugins.reload()  # no warning: the broken plugin is never imported
    assert "snntorch" in names() and "goodplug" not in names()
    assert plugins.failures() == [] and "brokenplug_mod" not in sys.modules


def test_plugins_can_be_blocked_by_name(fake_distribution, monkeypatch):
    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.setenv(plugins.DISABLED_PLUGINS_ENV, "brokenplug, misspelled,snntorch")
    plugins.reload()
    assert names() == {"goodplug", "spikingjelly", "norse", "neurons"}


def test_built_in_adapters_are_entry_points_of_this_distribution():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.entry-points.sg_stability]")[1].split("\n[")[0]
    declared = dict(re.findall(r'^(\w+)\s*=\s*"([\w.]+)"', section, re.MULTILINE))
    assert declared == plugins._SOURCE_TREE_ADAPTERS
    assert {p.name: p.source for p in plugins.loaded()}["snntorch"].startswith("sg-stability ")


@pytest.mark.slow  # a fresh interpreter in a subprocess
def test_adapters_do_not_import_their_framework():
    code = textwrap.dedent("""
        import sys, sg_stability as sg
        sg.plugins.manager()
        import sg_stability.adapters.snntorch, sg_stability.adapters.spikingjelly, sg_stability.adapters.norse
        print(sorted(m for m in ("snntorch", "spikingjelly", "norse") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_register_rejects_an_invalid_plugin():
    class Bad:
        @sg.adapter_api.hookimpl
        def sg_find_neuron(self, module, path, extra_argument):
            return None

    with pytest.raises(sg.ConfigError) as e:
        plugins.register(Bad(), name="bad")
    assert "extra_argument" in str(e.value)
    assert "bad" not in names()


# -- one test per hook (test_every_hook_is_documented_and_tested checks this) ------------------------------

def test_hook_sg_adapter_info():
    infos = {i.name: i for i in plugins.adapter_infos()}
    assert {name: i.framework for name, i in infos.items()}.items() >= {
        "snntorch": "snntorch", "spikingjelly": "spikingjelly", "norse": "norse"}.items()
    assert infos["snntorch"].framework_available()


def test_hook_sg_find_neuron():
    """A third-party adapter overrides a built-in one for the same module (built-ins are trylast)."""
    snn = pytest.importorskip("snntorch")

    class Override:
        @sg.adapter_api.hookimpl
        def sg_find_neuron(self, module, path):
            if isinstance(module, snn.Leaky):
                return NeuronSite(path, module, "override", "override.Leaky", ToyDriver(module))
            return None

    plugins.register(Override(), name="override")
    try:
        site = sg.find_neurons(nn.Sequential(snn.Leaky(0.5)))[0]
        assert site.adapter == "override"
    finally:
        plugins.unregister("override")
    assert sg.find_neurons(nn.Sequential(snn.Leaky(0.5)))[0].adapter == "snntorch"


def test_hook_sg_read_native():
    def native(x):
        return x

    class Reader:
        @sg.adapter_api.hookimpl
        def sg_read_native(self, obj):
            if obj is native:
                return NativeReading(source="myframework.native", surrogate=sg.surrogates.Gaussian(0.4, 2.0))
            return None

    plugins.register(Reader(), name="reader")
    try:
        assert sg.from_native(native).params() == {"dampening": 0.4, "sharpness": 2.0}
    finally:
        plugins.unregister("reader")


class Bump(sg.surrogates.Surrogate):
    """A plugin family: f(u) = (1 - (c u)^2)^2 on |c u| <= 1, with c = 16/15 so that its area is 1."""

    family = "bump"
    C = 16.0 / 15.0

    @staticmethod
    def _unit(u, tail):
        s = (u * Bump.C).clamp(-1.0, 1.0)
        return (1.0 - s * s).square()

    @staticmethod
    def _cdf(u, tail):
        s = (u * Bump.C).clamp(-1.0, 1.0)
        return 0.5 + (s - 2 * s**3 / 3 + s**5 / 5) / Bump.C

    @staticmethod
    def _moment(u, m, tail):
        raise NotImplementedError("not needed by this test")

    @staticmethod
    def _hwhm_unit(tail):
        return (1 - 2**-0.5) ** 0.5 / Bump.C


def test_hook_sg_register_surrogates():
    class Families:
        @sg.adapter_api.hookimpl
        def sg_register_surrogates(self, register):
            register(Bump, aliases=["smooth_bump"])

    plugins.register(Families(), name="families")
    try:
        assert "bump" in sg.surrogates.families()
        s = sg.surrogates.get("smooth-bump", dampening=0.5)
        assert isinstance(s, Bump)
        x = torch.tensor([0.0, 0.5], requires_grad=True)
        s(x).sum().backward()
        assert torch.allclose(x.grad, torch.tensor([0.5, 0.5 * (1 - (0.5 * 16 / 15) ** 2) ** 2]))
        toy = ToyAdapter()
        plugins.register(toy, name="toy")
        h = sg.patch(ToyNet(), "bump")
        assert all(isinstance(v, Bump) for v in h.surrogates.values())
        plugins.unregister("toy")
    finally:
        plugins.unregister("families")
        plugins.reload()
    with pytest.raises(sg.UnknownSurrogateError):
        sg.surrogates.get("bump")


def test_every_hook_is_documented_and_tested():
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("sg_")]
    assert len(hooks) >= 4
    guide = (ROOT / "docs" / "adapters.md").read_text()
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    for name in hooks:
        assert f"{name}(" in guide, f"docs/adapters.md does not document hook {name}"
        assert f"def test_hook_{name}(" in tests, f"no test_hook_{name}"


def test_the_environment_switches_are_documented():
    readme = (ROOT / "docs" / "adapters.md").read_text()
    assert plugins.DISABLE_AUTOLOAD_ENV in readme and plugins.DISABLED_PLUGINS_ENV in readme
