"""Test configuration: stray third-party plugins cannot change results; versions in the header."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

os.environ.setdefault("SG_STABILITY_DISABLE_PLUGIN_AUTOLOAD", "1")
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # Each pytest-xdist worker gets its share of the cores. Without this every worker's torch starts one thread
    # per core, the threads of the workers fight over the same cores, and the small tensors of these tests run
    # about 10x slower (measured: the shipped-models file, 9 s alone, took 2 min on 2 workers). Set before torch
    # is imported, so subprocesses (the examples) inherit it too.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
    os.environ.setdefault("MKL_NUM_THREADS", str(_share))

from pathlib import Path

import pytest
import torch

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # in case a plugin imported torch before this file


def pytest_report_header(config: pytest.Config) -> list[str]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    names = ["torch", "snntorch", "spikingjelly", "norse", "pluggy", "hypothesis"]
    return [
        "sg-stability versions: " + ", ".join(f"{n} {version(n)}" for n in names),
        f"CUDA available: {torch.cuda.is_available()}",
    ]


# The default replays the same examples every run (derandomize): CI, which runs on a clean clone, cannot fail on
# an example no earlier run tried. ``HYPOTHESIS_PROFILE=wide`` searches fresh random examples, many more per test.
# The SpikingJelly 0.0.0.0.14 environment runs no property tests and has no hypothesis.
if importlib.util.find_spec("hypothesis") is not None:
    from hypothesis import HealthCheck, settings

    settings.register_profile("default", max_examples=120, deadline=None, derandomize=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("wide", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

#: the areas the suite is split into: each folder's tests carry its name as a marker (``./dev test -m analysis``)
AREAS = ("core", "adapters", "analysis", "choosing", "training", "interop", "docs", "exact")
HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        area = item.path.resolve().relative_to(HERE).parts[0]
        if area in AREAS:
            item.add_marker(getattr(pytest.mark, area))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu); none is available here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _snntorch_instances_per_test():
    """snnTorch keeps every neuron ever built in one class-level list that ``snntorch.utils.reset`` walks; a
    neuron another test built and left in its original state (a fresh ``DeltaLeaky`` holds ``mem = None``) then
    breaks an unrelated test's reset. Each test sees the list as it was before it ran."""
    import sys

    snn = sys.modules.get("snntorch")
    saved = list(snn.SpikingNeuron.instances) if snn is not None else None
    yield
    snn = sys.modules.get("snntorch")
    if snn is not None:
        snn.SpikingNeuron.instances[:] = saved if saved is not None else []
