"""NIR: ``sg.to_nir`` writes each neuron's surrogate into its node's metadata, ``nir.write`` / ``nir.read`` keep
it, and ``sg.from_nir`` re-patches the imported model with it, in all three frameworks. The frameworks' own
exporters called on a patched model see no node of ours."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

import sg_stability as sg

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")

FRAMEWORKS = ["snntorch", "spikingjelly", "norse"]


def build(framework: str) -> tuple[nn.Module, torch.Tensor]:
    """Linear 12 -> 8 neurons -> Linear 8 -> 3 neurons, as each framework's NIR exchange expects it."""
    pytest.importorskip(framework)
    torch.manual_seed(0)
    x = (torch.rand(4, 12) < 0.3).float()
    if framework == "snntorch":
        import snntorch as snn

        def leaky(n: int, **kw: object) -> nn.Module:  # its exporter needs per-neuron parameters
            return snn.Leaky(beta=torch.full((n,), 0.9), threshold=torch.ones(n), init_hidden=True, **kw)

        return nn.Sequential(nn.Linear(12, 8), leaky(8), nn.Linear(8, 3), leaky(3, output=True)), x[0]
    if framework == "spikingjelly":
        from spikingjelly.activation_based import layer, neuron

        return nn.Sequential(layer.Linear(12, 8), neuron.LIFNode(), layer.Linear(8, 3), neuron.LIFNode()), x
    import norse.torch as nt

    return nt.SequentialState(nn.Linear(12, 8), nt.LIFBoxCell(), nn.Linear(8, 3), nt.LIFBoxCell()), x


def canonical(handle_or_model: object) -> list[tuple[str, list]]:
    objs = (handle_or_model.surrogates.values() if isinstance(handle_or_model, sg.PatchHandle)
            else [o for s in sg.find_neurons(handle_or_model) for o in s.driver.current().values()])
    out = []
    for obj in objs:
        s = obj if isinstance(obj, sg.surrogates.Surrogate) else sg.from_native(obj)
        out.append((s.family, [torch.as_tensor(v).detach().tolist() for v in s.params().values()]))
    return out


def round_trip(graph: object, tmp_path, framework: str) -> tuple[nn.Module, sg.PatchHandle | None]:
    path = tmp_path / "model.nir"
    nir.write(path, graph)
    return sg.from_nir(nir.read(path), framework=framework)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_neurons_surrogate_survives_a_written_and_read_graph(framework, tmp_path):
    model, x = build(framework)
    per_neuron = sg.surrogates.get("gaussian", dampening=0.4, sharpness=torch.linspace(0.5, 2.0, 8))
    handle = sg.patch(model, targets={"1": per_neuron, "3": sg.surrogates.get("atan", dampening=0.3)})
    graph = sg.to_nir(model, x)
    assert {json.loads(n.metadata["sg_stability"])["surrogate"]["family"] for n in graph.nodes.values()
            if "sg_stability" in n.metadata} == {"gaussian", "atan"}
    imported, again = round_trip(graph, tmp_path, framework)
    assert again is not None and canonical(again) == canonical(handle)
    assert sg.is_patched(imported) and sg.is_patched(model)  # the original stays patched
    handle.remove()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_unpatched_model_carries_its_frameworks_own_surrogate(framework, tmp_path):
    model, x = build(framework)
    graph = sg.to_nir(model, x)
    _, again = round_trip(graph, tmp_path, framework)
    assert again is not None and canonical(again) == canonical(model)


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated:DeprecationWarning")
@pytest.mark.parametrize("framework", ["snntorch", "norse"])  # both export through nirtorch's module tracer
def test_the_frameworks_own_exporter_sees_no_node_of_ours(framework):
    model, x = build(framework)
    sg.patch(model, surrogate="fast_sigmoid")
    if framework == "snntorch":
        from snntorch.export_nir import export_to_nir

        graph = export_to_nir(model, x)
    else:
        import norse.torch as nt

        graph = nt.to_nir(model, x)
    assert sorted(graph.nodes) == ["0", "1", "2", "3", "input", "output"]
    assert all(node is not None for node in graph.nodes.values())


def test_the_norse_export_of_a_patched_model_writes_to_a_file(tmp_path):
    model, x = build("norse")
    sg.patch(model, surrogate="fast_sigmoid", dampening=0.5)
    nir.write(tmp_path / "norse.nir", sg.to_nir(model, x))
    assert (tmp_path / "norse.nir").stat().st_size > 0


def test_a_graph_without_surrogates_imports_with_a_warning():
    model, x = build("spikingjelly")
    graph = sg.to_nir(model, x)
    for node in graph.nodes.values():
        node.metadata.pop("sg_stability", None)
    with pytest.warns(sg.SGStabilityWarning, match="no node of the graph carries a surrogate"):
        imported, handle = sg.from_nir(graph, framework="spikingjelly")
    assert handle is None and isinstance(imported, nn.Module)


def test_a_node_whose_entry_does_not_read_is_named_and_the_others_are_restored():
    model, x = build("snntorch")
    sg.patch(model, surrogate="triangular", dampening=0.5)
    graph = sg.to_nir(model, x)
    graph.nodes["1"].metadata["sg_stability"] = json.dumps({"surrogate": {"family": "nope", "params": {}}})
    with pytest.warns(sg.SGStabilityWarning, match="not restored: 1:"):
        _, handle = sg.from_nir(graph, framework="snntorch")
    assert handle is not None and [p for p in handle.surrogates] == ["3"]
    assert any("not restored from NIR: 1:" in n for n in handle.notes)


def test_an_unknown_framework_is_a_four_part_error():
    model, x = build("snntorch")
    graph = sg.to_nir(model, x)
    with warnings.catch_warnings(), pytest.raises(sg.ConfigError) as info:
        sg.from_nir(graph, framework="brian2")
    text = str(info.value)
    assert "no NIR exchange for 'brian2'" in text and "snntorch" in text and "fix:" in text


def test_hook_sg_nir_exchange():
    """Each built-in adapter answers for its own name only; a third-party adapter's exchange is what to_nir and
    from_nir call for its neurons, with the surrogate written to and read from the node's metadata."""
    from types import SimpleNamespace

    from sg_stability.adapter_api import NIRExchange, hookimpl
    from tests.zoo.toy_adapter import ToyAdapter, ToyNet

    for name in FRAMEWORKS:
        pytest.importorskip(name)
        assert isinstance(sg.plugins.nir_exchange(name), NIRExchange)
    assert sg.plugins.nir_exchange("toy") is None

    class ToyWithNIR(ToyAdapter):
        @hookimpl
        def sg_nir_exchange(self, adapter):
            if adapter != "toy":
                return None

            def export(model, sample):
                return SimpleNamespace(nodes={path: SimpleNamespace(metadata={}) for path, _ in
                                              model.named_modules() if path}, edges=[])

            return NIRExchange(export=export, load=lambda graph: ToyNet())

    sg.plugins.register(ToyWithNIR(), name="toy")
    try:
        model = ToyNet()
        sg.patch(model, surrogate="exponential", dampening=0.25)
        graph = sg.to_nir(model, torch.zeros(3, 2, 4))
        entries = {k: json.loads(n.metadata["sg_stability"]) for k, n in graph.nodes.items() if n.metadata}
        assert entries and all(e["surrogate"]["family"] == "exponential" for e in entries.values())
        _, handle = sg.from_nir(graph, framework="toy")
        assert handle is not None and canonical(handle) == canonical(model)
    finally:
        sg.plugins.unregister("toy")


def test_snntorchs_exporter_failing_on_scalar_parameters_says_what_it_needs():
    snn = pytest.importorskip("snntorch")
    model = nn.Sequential(nn.Linear(12, 8), snn.Leaky(beta=0.9, init_hidden=True))  # scalar beta and threshold
    with pytest.raises((ValueError, AssertionError)) as info:
        sg.to_nir(model, torch.rand(12))
    assert any("per-neuron parameters" in note for note in getattr(info.value, "__notes__", []))
