"""Small real SpikingJelly models for every neuron class that takes a surrogate_function.

Works with both API generations: classes missing from the installed SpikingJelly are left out, and the
generation is detected from capabilities (``backend`` attribute), never from version strings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

T, B, F_IN, H = 5, 3, 6, 8


def sj():
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    return neuron, layer, functional, surrogate


def legacy_api() -> bool:
    """True for the 0.0.0.0.14 generation (neurons take backend=)."""
    neuron, *_ = sj()
    return "backend" in inspect.signature(neuron.LIFNode.__init__).parameters


# class name -> (extra constructor arguments, supported step modes)
NEURONS: dict[str, tuple[dict, tuple[str, ...]]] = {
    "IFNode": ({}, ("s", "m")),
    "LIFNode": ({"tau": 2.0}, ("s", "m")),
    "ParametricLIFNode": ({}, ("s", "m")),
    "QIFNode": ({}, ("s", "m")),
    "EIFNode": ({}, ("s", "m")),
    "IzhikevichNode": ({}, ("s", "m")),
    "KLIFNode": ({}, ("s", "m")),
    "CUBALIFNode": ({}, ("s", "m")),
    "SimpleIFNode": ({}, ("s", "m")),
    "SimpleLIFNode": ({"tau": 2.0, "decay_input": True}, ("s", "m")),
    "HalfThresholdIFNode": ({}, ("s", "m")),
    "ActivationAwareIFNode": ({}, ("s", "m")),
    "ComplementaryLIFNode": ({}, ("s", "m")),
    "TernaryIFNode": ({}, ("s", "m")),
    "TernaryLIFNode": ({}, ("s", "m")),
    "SlidingPSN": ({"k": 2}, ("s", "m")),
    "PSN": ({"T": T}, ("m",)),
    "MaskedPSN": ({"k": 2, "T": T}, ("m",)),
    "GatedLIFNode": ({"T": T}, ("m",)),
    "RAFNode": ({}, ("m",)),
    "SLTTLIFNode": ({}, ("s",)),
    "LIAFNode": ({"act": torch.relu, "threshold_related": True}, ("s", "m")),
}


def available() -> list[tuple[str, str]]:
    """(class, step mode) pairs that the installed SpikingJelly supports."""
    neuron, *_ = sj()
    pairs = []
    for name, (kwargs, modes) in NEURONS.items():
        cls = getattr(neuron, name, None)
        if cls is None or "surrogate_function" not in inspect.signature(cls.__init__).parameters:
            continue
        accepted = inspect.signature(cls.__init__).parameters
        if any(k not in accepted for k in kwargs):
            continue
        pairs += [(name, mode) for mode in modes]
    return pairs


def make_neuron(name: str, step_mode: str, **extra) -> nn.Module:
    neuron, *_ = sj()
    kwargs, _ = NEURONS.get(name, ({}, ()))
    cls = getattr(neuron, name)
    if "step_mode" in inspect.signature(cls.__init__).parameters:
        kwargs = {**kwargs, "step_mode": step_mode}  # others get it from functional.set_step_mode
    return cls(**kwargs, **extra)


class SJNet(nn.Module):
    """Linear -> neuron -> Linear -> neuron, in single-step ('s') or multi-step ('m') mode."""

    def __init__(self, name: str, step_mode: str, **extra) -> None:
        super().__init__()
        _, layer, functional, _ = sj()
        self.step_mode = step_mode
        self.net = nn.Sequential(layer.Linear(F_IN, H), make_neuron(name, step_mode, **extra),
                                 layer.Linear(H, H), make_neuron(name, step_mode, **extra))
        functional.set_step_mode(self.net, step_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == "m":
            return self.net(x)
        return torch.stack([self.net(x_t) for x_t in x])


def runner(x: torch.Tensor) -> Callable[[nn.Module], torch.Tensor]:
    def run(model: nn.Module) -> torch.Tensor:
        _, _, functional, _ = sj()
        functional.reset_net(model)
        out = model(x)
        functional.reset_net(model)  # leave no graph in the neurons' memories
        return out

    return run


def sample_input(steps: int = T, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(steps, B, F_IN, generator=g) * scale
