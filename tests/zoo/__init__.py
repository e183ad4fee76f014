"""The model collections the suite and the benchmarks share.

Import them as ``from tests.zoo import shd_networks`` with the repository root on ``sys.path`` (pytest puts it
there; benchmarks run as ``python -m benchmarks.<name>`` from the root). Each module imports its framework
lazily, so importing the package needs none of them.

- ``shd_networks``: small recurrent SHD-style networks, one per framework.
- ``shipped_models``: the models the frameworks ship (and the snnTorch tutorial ones), small and full size.
- ``snntorch_models``, ``spikingjelly_models``, ``norse_models``: every neuron class of one framework.
- ``reference_shapes``: the surrogate shapes written out by hand, the independent reference for gradients.
- ``toy_adapter``: a framework-free neuron and its adapter, for the adapter contract.
- ``exact_lines``: random lines through small exact networks where a spike crosses, for continuity checks.
"""
