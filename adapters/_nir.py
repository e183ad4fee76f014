"""The three frameworks' own NIR exporters and importers (the ``sg_nir_exchange`` hook), one hook
implementation per adapter: each adapter module imports its own, so pluggy registers it with that adapter.

Norse 1.1.0's exporter leaves 0-d tensors and numpy scalars in its neuron nodes, which ``nir.write`` cannot
write ("Scalar datasets don't support chunk/filter options") and ``nir.read`` would refuse ("All parameters must
have the same shape"), and gives the graph's input and output the sample's batch dimension, which ``nir.read``'s
type check refuses. Its export is followed by :func:`_per_neuron`: every neuron parameter becomes an array over
the neurons (their number read from the weights that feed the node), and the input and output take the shapes
of the nodes they connect to.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sg_stability.adapter_api import NIRExchange, hookimpl


@hookimpl(specname="sg_nir_exchange")
def snntorch_exchange(adapter: str) -> NIRExchange | None:
    if adapter != "snntorch":
        return None
    from snntorch.export_nir import export_to_nir
    from snntorch.import_nir import import_from_nir

    def export(model: nn.Module, sample: Any, **options: Any) -> Any:
        try:
            return _quiet(export_to_nir)(model, sample, **options)
        except (ValueError, AssertionError) as error:  # nirtorch's type check, NIR's shape assertion
            error.add_note("sg_stability: snnTorch's NIR exporter needs per-neuron parameters (beta and threshold as "
                           "tensors of the layer's size, e.g. snn.Leaky(beta=torch.full((n,), 0.9), "
                           "threshold=torch.ones(n))) and a sample of one step without time ([batch, features] or "
                           "[features])")
            raise

    return NIRExchange(export=export, load=import_from_nir)


@hookimpl(specname="sg_nir_exchange")
def spikingjelly_exchange(adapter: str) -> NIRExchange | None:
    if adapter != "spikingjelly":
        return None
    from spikingjelly.activation_based import nir_exchange

    return NIRExchange(export=nir_exchange.export_to_nir, load=nir_exchange.import_from_nir)


@hookimpl(specname="sg_nir_exchange")
def norse_exchange(adapter: str) -> NIRExchange | None:
    if adapter != "norse":
        return None
    import norse.torch as norse

    def export(model: nn.Module, sample: Any, **options: Any) -> Any:
        return _per_neuron(_quiet(norse.to_nir)(model, sample, **options))

    return NIRExchange(export=export, load=_quiet(norse.from_nir))


def _quiet(export: Callable[..., Any]) -> Callable[..., Any]:
    """``export`` (or an importer) without nirtorch's warning that the framework uses a deprecated nirtorch
    function: the framework's business, not the user's."""

    def run(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"nirtorch\.(extract_nir_graph|load) is being deprecated",
                                    DeprecationWarning)
            return export(*args, **kwargs)

    return run


#: node fields that are not the neuron's parameters
_NOT_PARAMETERS = {"metadata", "input_type", "output_type"}


def _per_neuron(graph: Any) -> Any:
    """Every neuron node's parameters as float32 arrays of one value per neuron (in place; returns ``graph``)."""
    import numpy as np

    feeding = {dst: src for src, dst in graph.edges}
    for name, node in graph.nodes.items():
        params = {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in vars(node).items()
                  if k not in _NOT_PARAMETERS and isinstance(v, torch.Tensor | np.ndarray)}
        if not params or not any(v.ndim == 0 for v in params.values()):
            continue
        size = max(v.size for v in params.values())
        weight = getattr(graph.nodes.get(feeding.get(name)), "weight", None)
        if size == 1 and weight is not None:
            size = int(np.shape(weight)[0])
        for k, v in params.items():
            setattr(node, k, np.broadcast_to(v.astype(np.float32), (size,)).copy())
        node.input_type = {"input": np.array([size])}
        node.output_type = {"output": np.array([size])}
    following = {src: dst for src, dst in graph.edges}
    for name, node in graph.nodes.items():  # the graph's input and output carry the sample's batch dimension
        if type(node).__name__ == "Input" and name in following:
            shape = next(iter(graph.nodes[following[name]].input_type.values()))
            node.input_type, node.output_type = {"input": np.array(shape)}, {"output": np.array(shape)}
        elif type(node).__name__ == "Output" and name in feeding:
            shape = next(iter(graph.nodes[feeding[name]].output_type.values()))
            node.input_type, node.output_type = {"input": np.array(shape)}, {"output": np.array(shape)}
    return graph
