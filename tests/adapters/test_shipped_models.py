"""The models the frameworks ship (tests/zoo/shipped_models.py, small widths): find -> patch (8 families) -> verify
-> analyze -> stabilize -> each initialiser -> remove, with assertions on correctness. Full sizes and timings:
benchmarks/shipped_models.py (BENCHMARKS.md)."""

from __future__ import annotations

import copy

import pytest
import torch

import sg_stability as sg
from sg_stability.choosing import SPREAD_SLACK
from sg_stability.testing import measure, verify_patch
from tests.zoo.shipped_models import MODELS, Shipped

# whole models, subprocesses or training runs: not in ./dev test --fast
pytestmark = pytest.mark.slow

FAMILIES = ["rectangular", "triangular", "exponential", "gaussian", "sigmoid", "fast_sigmoid", "q_pseudospike", "atan"]


def build(name: str) -> Shipped:
    needs = {"sj": ["spikingjelly"], "norse": ["norse"], "snntorch": ["snntorch"],
             "mixed": ["snntorch", "spikingjelly", "norse"]}[name.split("/")[0]]
    for module in needs:  # all three are installed where this file runs (./dev test's main environment)
        pytest.importorskip(module)
    return MODELS[name]("small")


def output(m: Shipped) -> torch.Tensor:
    out = (m.run or (lambda model, x: model(x)))(m.model, m.sample)
    return (out[0] if isinstance(out, tuple) else out).detach().clone()


@pytest.mark.parametrize("name", list(MODELS))
def test_every_family_patches_bit_identically_and_remove_is_exact(name):
    m = build(name)
    m.model.eval()  # BatchNorm statistics stay fixed, so the state_dict compares the patch alone
    state = copy.deepcopy(m.model.state_dict())
    with torch.no_grad():
        torch.manual_seed(0)
        before = output(m)
    sites = sg.find_neurons(m.model)
    assert sites
    for family in FAMILIES:
        with sg.patch(m.model, surrogate=family):
            torch.manual_seed(0)
            with torch.no_grad():
                assert torch.equal(output(m), before), family
    torch.manual_seed(0)
    with torch.no_grad():
        assert torch.equal(output(m), before)
    after = m.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())


@pytest.mark.parametrize("name", list(MODELS))
def test_verify_patch_passes_and_names_surrogates_whose_spikes_the_output_does_not_use(name):
    m = build(name)
    run = m.run or (lambda model, x: model(x))

    def fixed(model):
        torch.manual_seed(0)
        out = run(model, m.sample)
        return out[0] if isinstance(out, tuple) else out

    report = verify_patch(m.model, fixed, "fast_sigmoid")
    assert report.ok, str(report)
    assert set(report.unused) <= set(report.sites)
    if m.loss_on_membrane:  # the output layer's spikes are not used by a membrane output
        assert report.unused, str(report)


@pytest.mark.parametrize("name", list(MODELS))
def test_analyze_describes_every_layer_or_says_why(name):
    m = build(name)
    report = sg.analyze(m.model, m.sample, run=m.run)
    assert len(report) >= 1
    for layer in report.layers:
        if layer.dynamics is None:
            assert any("no dynamics for the analyzer (" in n for n in layer.notes), layer.notes
    table = str(report)
    rows = table.splitlines()[1:2 * len(report) + 4]  # the two tables (full layer names, aligned columns)
    assert all(len(line) < 120 for line in rows), table
    assert len({line.split()[0] for line in rows[1:len(report) + 1]}) == len(report)  # every row its own name


@pytest.mark.parametrize("name", list(MODELS))
def test_stabilize_never_widens_the_gradient_spread_across_layers_and_says_what_it_installed(name):
    m = build(name)
    before = measure(m.model, m.sample, None, run=m.run)
    with sg.stabilize(m.model, m.sample, run=m.run, progress=False) as handle:
        after = measure(m.model, m.sample, None, run=m.run)  # re-measured on the model as patched
        if before.spread is not None and after.spread is not None:
            assert after.spread <= SPREAD_SLACK * before.spread * 1.05, (before.spread, after.spread, handle.notes)
        assert handle.notes[-1].startswith(("installed", "kept each layer's own surrogate"))
    assert not sg.is_patched(m.model)


@pytest.mark.parametrize("name", list(MODELS))
def test_calibrate_rate_reaches_the_target_or_names_the_layer_with_a_reason(name):
    m = build(name)
    report = sg.init.calibrate_rate(m.model, m.sample, run=m.run, target_rate=0.5, tolerance=0.02, progress=False)
    rates = {layer.name: layer.firing_rate for layer in sg.analysis.analyze_layers(m.model, m.sample, run=m.run).layers}
    named = " ".join(report.skipped + report.notes)
    changed = {c.layer for c in report.changes}
    for layer, rate in rates.items():
        if abs(rate - 0.5) > 0.02 + 1e-9:
            assert layer in named, (layer, rate, str(report))
    for entry in report.skipped:  # a skipped layer's weights were not written
        assert entry.split(":")[0] not in changed, str(report)


@pytest.mark.parametrize("method", ["at_threshold", "fluctuation", "variance_flow"])
@pytest.mark.parametrize("name", list(MODELS))
def test_each_initialiser_runs_and_reports_every_layer(name, method):
    m = build(name)
    report = sg.init.initialize(m.model, m.sample, method, run=m.run)
    layers = {layer.name for layer in sg.analysis.analyze_layers(m.model, m.sample, run=m.run).layers}
    touched = {c.layer for c in report.changes} | {s.split(":")[0] for s in report.skipped}
    assert layers <= touched, str(report)
    assert all(torch.isfinite(p).all() for p in m.model.parameters())


# one model per branch of the decision: first choice, rescaled per layer, fallback to a later candidate
@pytest.mark.parametrize("name", ["sj/spiking_resnet18", "sj/MNISTNet(PLIF)", "sj/ms_resnet18"])
def test_analyze_recommends_exactly_what_stabilize_installs(name):
    m = build(name)
    report = sg.analyze(m.model, m.sample, run=m.run)
    with sg.stabilize(m.model, m.sample, run=m.run, progress=False) as handle:
        decided = handle.report.recommendation
        installed = {layer.name: layer.surrogate for layer in handle.report.layers}
    said = report.recommendation
    assert said.how == decided.how and said.describe() == decided.describe()
    assert report.recommended is said.candidate and handle.report.recommended is decided.candidate
    for path, s in installed.items():  # what analyze said, layer by layer
        want = said.per_layer[path] if said.per_layer is not None else said.candidate.surrogate
        assert s.family == want.family
        assert (float(s.dampening), float(s.sharpness)) == pytest.approx((float(want.dampening), float(want.sharpness)))
    lines = str(report).splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("recommended: "))
    block = lines[start:lines.index("", start)]
    assert " ".join(" ".join(block).split()).startswith(f"recommended: {said.describe()}")  # wrapped lines joined
    assert any(line.startswith("    why: ") for line in block)
    assert all(len(line) < 120 for line in block), block


def test_stabilize_rescales_the_dampening_per_layer_and_an_interrupt_there_leaves_the_model_unpatched(monkeypatch):
    m = build("sj/MNISTNet(PLIF)")  # its preferred candidate widens the spread: the per-layer path runs
    with sg.stabilize(m.model, m.sample, run=m.run, progress=False) as handle:
        assert "dampening rescaled per layer" in handle.notes[-1]
        installed = {layer.name: float(layer.surrogate.dampening) for layer in handle.report.layers}
        assert len(set(installed.values())) > 1, installed  # one dampening per layer, not one for all

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("sg_stability.choosing.choice.recorded_spread", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sg.stabilize(m.model, m.sample, run=m.run, progress=False)
    assert not sg.is_patched(m.model)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_spec_reproduces_the_stabilized_surrogates_bit_for_bit_on_a_fresh_build(name):
    """handle.to_dict() through JSON, then sg.patch(fresh_model, spec): the same spec back and the same parameter
    gradients, bit for bit (SpikingJelly built-ins, per-layer dampenings, Norse cells, mixed models)."""
    import json

    def gradients(m: Shipped) -> list[torch.Tensor]:
        m.model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        out = (m.run or (lambda model, x: model(x)))(m.model, m.sample)
        (out[0] if isinstance(out, tuple) else out).float().square().sum().backward()
        return [p.grad.clone() for p in m.model.parameters() if p.grad is not None]

    a, b = build(name), build(name)
    b.model.load_state_dict(a.model.state_dict())
    spec = json.loads(json.dumps(sg.stabilize(a.model, a.sample, run=a.run, progress=False).to_dict()))
    assert sg.patch(b.model, spec).to_dict() == spec
    ga, gb = gradients(a), gradients(b)
    assert len(ga) == len(gb) and all(torch.equal(x, y) for x, y in zip(ga, gb, strict=True))
