"""Small real Norse models: every cell (stepped by hand), every layer (on [T, B, F]), the LIF encoders."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

T, B, F_IN, H = 12, 3, 4, 5


def nt():
    import norse.torch

    return norse.torch


def _spec():
    from norse.torch.functional import izhikevich

    return izhikevich.tonic_spiking


def cells() -> dict[str, Callable[[], nn.Module]]:
    n = nt()
    return {
        "LIFCell": lambda: n.LIFCell(),
        "LIFBoxCell": lambda: n.LIFBoxCell(),
        "LIFRefracCell": lambda: n.LIFRefracCell(),
        "LSNNCell": lambda: n.LSNNCell(),
        "LIFAdExCell": lambda: n.LIFAdExCell(),
        "LIFAdExRefracCell": lambda: n.LIFAdExRefracCell(),
        "LIFExCell": lambda: n.LIFExCell(),
        "IAFCell": lambda: n.IAFCell(),
        "IzhikevichCell": lambda: n.IzhikevichCell(_spec()),
        "LIFRecurrentCell": lambda: n.LIFRecurrentCell(H, H),
        "LIFRefracRecurrentCell": lambda: n.LIFRefracRecurrentCell(H, H),
        "LSNNRecurrentCell": lambda: n.LSNNRecurrentCell(H, H),
        "LIFAdExRecurrentCell": lambda: n.LIFAdExRecurrentCell(H, H),
        "LIFAdExRefracRecurrentCell": lambda: n.LIFAdExRefracRecurrentCell(H, H),
        "LIFExRecurrentCell": lambda: n.LIFExRecurrentCell(H, H),
        "LIFMCRecurrentCell": lambda: n.LIFMCRecurrentCell(H, H),
        "LIFMCRefracRecurrentCell": lambda: n.LIFMCRefracRecurrentCell(H, H),
        "IzhikevichRecurrentCell": lambda: n.IzhikevichRecurrentCell(H, H, _spec()),
        "CobaLIFCell": lambda: n.CobaLIFCell(H, H),
    }


def layers() -> dict[str, Callable[[], nn.Module]]:
    n = nt()
    return {
        "LIF": lambda: n.LIF(),
        "LIFRecurrent": lambda: n.LIFRecurrent(H, H),
        "LSNN": lambda: n.LSNN(),
        "LSNNRecurrent": lambda: n.LSNNRecurrent(H, H),
        "LIFAdEx": lambda: n.LIFAdEx(),
        "LIFAdExRecurrent": lambda: n.LIFAdExRecurrent(H, H),
        "LIFEx": lambda: n.LIFEx(),
        "LIFExRecurrent": lambda: n.LIFExRecurrent(H, H),
        "IAF": lambda: n.IAF(),
        "Izhikevich": lambda: n.Izhikevich(_spec()),
        "IzhikevichRecurrent": lambda: n.IzhikevichRecurrent(H, H, _spec()),
        "LIFRefracRecurrent": lambda: n.LIFRefracRecurrent(H, H),
        "LIFAdExRefracRecurrent": lambda: n.LIFAdExRefracRecurrent(H, H),
    }


class CellNet(nn.Module):
    """Linear -> cell [-> Linear -> cell], state threaded through a time loop."""

    def __init__(self, make: Callable[[], nn.Module], depth: int = 2) -> None:
        super().__init__()
        self.fcs = nn.ModuleList([nn.Linear(F_IN if i == 0 else H, H) for i in range(depth)])
        self.cells = nn.ModuleList([make() for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states: list = [None] * len(self.cells)
        outs = []
        for x_t in x:
            h = x_t
            for i, (fc, cell) in enumerate(zip(self.fcs, self.cells, strict=True)):
                h, states[i] = cell(fc(h), states[i])
            outs.append(h)
        return torch.stack(outs)


class LayerNet(nn.Module):
    """Linear -> layer -> Linear -> layer on a whole [T, B, F] sequence."""

    def __init__(self, make: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.fc1, self.layer1 = nn.Linear(F_IN, H), make()
        self.fc2, self.layer2 = nn.Linear(H, H), make()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, _ = self.layer1(self.fc1(x))
        z, _ = self.layer2(self.fc2(z))
        return z


def sample_input(steps: int = T, seed: int = 0, scale: float = 40.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(steps, B, F_IN, generator=g) * scale
