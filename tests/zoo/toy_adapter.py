"""A third-party-style adapter used by the tests: it drives ``ToyNeuron`` modules of this file."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

import sg_stability as sg
from sg_stability.adapter_api import AdapterInfo, NativeReading, NeuronDriver


def toy_step(x: torch.Tensor) -> torch.Tensor:
    """The toy framework's own surrogate: a straight-through step."""
    return (x > 0).to(x.dtype) + (x - x.detach())


class ToyNeuron(nn.Module):
    """A stateless neuron whose surrogate lives in ``self.act`` (a plain function, like snnTorch)."""

    def __init__(self, threshold: float = 1.0) -> None:
        super().__init__()
        self.threshold = threshold
        self.act = toy_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x - self.threshold)


class ToyDriver(NeuronDriver):
    adapter = "toy"
    slots = ("act",)
    fail_on: ClassVar[set[str]] = set()  # paths whose install raises (to test rollback)
    refuse: ClassVar[set[str]] = set()  # paths that report a preflight problem

    def problems(self, surrogate, path, options):
        if path in self.refuse:
            return [self.problem(path, "this toy site refuses", "leave it out")]
        return []

    def install(self, surrogate, tx, path, options):
        if path in self.fail_on:
            raise RuntimeError(f"toy install failure at {path}")
        return super().install(surrogate, tx, path, options)


class ToyAdapter:
    """Plugin object: ``sg.plugins.register(ToyAdapter())``."""

    @sg.adapter_api.hookimpl
    def sg_adapter_info(self):
        return AdapterInfo(name="toy", framework="toy_adapter", description="test adapter")

    @sg.adapter_api.hookimpl
    def sg_find_neuron(self, module, path):
        if isinstance(module, ToyNeuron):
            return ToyDriver(module).site(path)
        return None

    @sg.adapter_api.hookimpl
    def sg_read_native(self, obj):
        if obj is toy_step:
            return NativeReading(source="toy_adapter.toy_step", reason="straight-through: gradient 1 everywhere")
        return None


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.encoder = nn.ModuleDict({"a": ToyNeuron(), "b": ToyNeuron(0.5)})
        self.readout = ToyNeuron(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return self.readout(self.encoder["a"](h) + self.encoder["b"](h))
