"""Device discipline that can be checked without a GPU: every tensor the measuring code creates with a shape names
its device (or is on a short list of deliberate CPU tensors); a spec patched onto a model puts per-neuron and
learnable tensors on the neuron's device. The CUDA runs themselves are in test_gpu.py (skipped without CUDA)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import sg_stability as sg
from tests.zoo import shd_networks

ROOT = Path(__file__).resolve().parents[2]
#: the packages whose code runs on the user's data (a tensor they create must sit beside it); "" is the
#: top-level modules (patching, diagnostics, sparsity, annealing, ...)
MEASURING = ("", "stability", "analysis", "recording", "choosing", "init", "testing", "lightning")
CONSTRUCTORS = {"zeros", "ones", "full", "empty", "arange", "linspace", "rand", "randn", "eye", "tensor"}
#: files that build CPU tensors by design -> why
CPU_FILES = {
    "datasets.py": "the offline datasets are built on the CPU, as a DataLoader's would be; the user moves batches",
    "_spec.py": "a spec's tensors are built on the CPU, and sg.patch moves them to each neuron's device",
}
#: deliberate CPU tensors: (file, line text that creates it) -> why
ALLOWED = {
    ("init/_at_threshold.py", "torch.rand(layer.w_rec.shape, dtype=torch.float64)"):
        "random weights drawn on the CPU in float64, then copied into the parameter on its device (the same draw "
        "on every device)",
    ("init/_fluctuation.py", "torch.randn(w.shape, dtype=torch.float64)"): "as above",
    ("init/_fluctuation.py", "torch.randn(layer.w_in.shape,"): "as above",
    ("stability/_conditions.py", "torch.linspace(math.log(lo - offset)"): "a grid of Python floats",
    ("stability/_conditions.py", "torch.tensor(alphas, dtype=torch.float64)"): "a small eigenproblem in floats",
    ("stability/_conditions.py", "torch.tensor(betas, dtype=torch.float64)"): "the same eigenproblem",
    ("stability/_gains.py", "torch.tensor(list(norms[start:end + 1])"): "Python floats: gradient norms",
    ("choosing/shortlist.py", "torch.tensor([m.threshold for m in layers])"): "Python floats: thresholds",
    ("choosing/race_checks.py", "torch.tensor(True)"): "a 0-d flag, never mixed with the data",
    ("stability/_checks.py", "torch.tensor(float(x),"): "a 0-d scalar from a Python number",
    ("stability/_conditions.py", "q = torch.randn(n, generator=torch.Generator().manual_seed(0)).to(a.device)"):
        "a seeded CPU draw (the same start vector on every device), then moved to the matrix's device",
    ("_landscape.py", "d = torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.device, p.dtype)"):
        "a seeded CPU draw (the same direction on every device), then moved to the parameter's device",
    ("_landscape.py", "coords = torch.linspace(-radius, radius, points, dtype=torch.float64).tolist()"):
        "a grid of Python floats",
    ("_landscape.py", "loss = torch.full(shape, math.nan, dtype=torch.float64)"):
        "the report's table of Python floats (filled with float(loss)), never mixed with the data",
    ("_landscape.py", "grad_norm = torch.full(shape, math.nan, dtype=torch.float64)"): "as above",
}


def _offenders() -> list[tuple[str, int, str]]:
    found = []
    for package in MEASURING:
        for path in sorted((ROOT / "sg_stability" / package).glob("*.py")):
            source = path.read_text()
            lines = source.splitlines()
            for node in ast.walk(ast.parse(source)):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                        and node.func.attr in CONSTRUCTORS):
                    continue
                if any(k.arg == "device" for k in node.keywords):
                    continue
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Tuple) and not first.elts:  # torch.zeros(()): a 0-d scalar mixes anywhere
                    continue
                rel = f"{package}/{path.name}" if package else path.name
                if rel in CPU_FILES:
                    continue
                text = lines[node.lineno - 1]
                if not any(f == rel and snippet in text for f, snippet in ALLOWED):
                    found.append((rel, node.lineno, text.strip()))
    return found


def test_every_tensor_the_measuring_code_creates_names_its_device():
    assert _offenders() == []


def test_the_allow_list_has_no_stale_entries():
    for (rel, snippet), why in ALLOWED.items():
        assert snippet in (ROOT / "sg_stability" / rel).read_text(), f"{rel}: {snippet!r} is gone ({why})"


def test_a_spec_puts_per_neuron_and_learnable_tensors_on_the_neurons_device(monkeypatch):
    """The spec's tensors are built on the CPU. Patched onto a model on another device (here ``meta``: no GPU is
    needed) they are moved to the neuron's device, where a meta tensor is then refused for holding no values;
    left on the CPU they would be a device mismatch, which is what happens when the move is switched off."""
    pytest.importorskip("snntorch")
    from sg_stability import _patching

    model, _ = shd_networks.tiny("snntorch")
    spec = sg.patch(model, surrogate="gaussian", dampening=torch.nn.Parameter(torch.tensor(0.5)),
                    sharpness=torch.full((8,), 1.5), targets="lif_rec").to_dict()
    with pytest.raises(sg.AdapterError, match="dampening \\(gamma\\) is a tensor on the meta device"):
        sg.patch(shd_networks.tiny("snntorch")[0].to("meta"), spec)
    monkeypatch.setattr(_patching, "_device_of", lambda module: None)  # no move: the tensors stay on the CPU
    with pytest.raises(sg.PreflightError, match="per-neuron sharpness"):  # the preflight's device check
        sg.patch(shd_networks.tiny("snntorch")[0].to("meta"), spec)


@pytest.mark.parametrize("framework", [
    pytest.param("snntorch", marks=pytest.mark.xfail(strict=True, raises=sg.ConfigError, reason=(
        "snnTorch 1.0.0 limitation: RLeaky.init_rleaky() makes its first spikes in the default dtype, so the "
        "unpatched model itself fails after model.double() (float != double in the recurrent Linear)"))),
    "spikingjelly", "norse"])
def test_a_model_moved_after_an_analysis_is_analysed_where_it_now_is(framework):
    """The CPU analogue of ``model.cuda()`` between two analyses: ``model.double()`` keeps every Parameter object
    and its version but swaps its data. Remembered per-weight values and saved framework state must follow, so
    the second analysis equals that of a model built in float64 from the start."""
    model, x = shd_networks.tiny(framework)
    sg.analyze(model, x)  # remembers norms and sums of these weights, and saves and restores the state
    model.double()
    moved = sg.analyze(model, x.double())
    fresh, _ = shd_networks.tiny(framework)
    fresh.double()
    built = sg.analyze(fresh, x.double())
    assert [layer.theory_gain for layer in moved.layers] == [layer.theory_gain for layer in built.layers]
    assert [layer.firing_rate for layer in moved.layers] == [layer.firing_rate for layer in built.layers]
    handle = sg.stabilize(model, x.double(), progress=False)
    assert handle.choice.describe() == sg.stabilize(fresh, x.double(), progress=False).choice.describe()
