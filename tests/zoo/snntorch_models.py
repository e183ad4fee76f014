"""Small real snnTorch models for every neuron class that carries spike_grad, in both usage styles.

``explicit``: the user passes state between steps (the tutorial style, ``init_hidden=False``).
``hidden``: ``init_hidden=True`` neurons inside ``nn.Sequential``, state kept by the modules.
``multi``: classes that take a whole ``[T, B, ...]`` sequence at once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

T, B, F_IN, H = 6, 4, 5, 7


def _snn():
    import snntorch

    return snntorch


def single_step_factories() -> dict[str, Callable[..., nn.Module]]:
    snn = _snn()
    return {
        "Leaky": lambda **kw: snn.Leaky(beta=0.8, **kw),
        "Synaptic": lambda **kw: snn.Synaptic(alpha=0.7, beta=0.8, **kw),
        "Alpha": lambda **kw: snn.Alpha(alpha=0.9, beta=0.8, **kw),
        "Lapicque": lambda **kw: snn.Lapicque(beta=0.8, **kw),
        "RLeaky": lambda **kw: snn.RLeaky(beta=0.8, linear_features=H, **kw),
        "RSynaptic": lambda **kw: snn.RSynaptic(alpha=0.7, beta=0.8, linear_features=H, **kw),
        "SLSTM": lambda **kw: snn.SLSTM(input_size=H, hidden_size=H, **kw),
        "DeltaLeaky": lambda **kw: snn.DeltaLeaky(delta_threshold=0.2, beta=0.8, **kw),
    }


RECURRENT_STATE = {"RLeaky", "RSynaptic"}  # their forward takes the previous spikes as state too


class ExplicitNet(nn.Module):
    """Linear -> neuron -> Linear -> neuron, state threaded by hand through every step."""

    def __init__(self, name: str, make: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.name = name
        self.fc1 = nn.Linear(F_IN, H)
        self.lif1 = make()
        self.fc2 = nn.Linear(H, H)
        self.lif2 = make()

    def _step(self, neuron: nn.Module, x: torch.Tensor, state: tuple) -> tuple:
        out = neuron(x, *state)
        return out[0], (out if self.name in RECURRENT_STATE else out[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = ((None, None),) if self.name == "DeltaLeaky" else ()
        s1 = s2 = first
        outs = []
        for t in range(x.shape[0]):
            spk1, s1 = self._step(self.lif1, self.fc1(x[t]), s1)
            spk2, s2 = self._step(self.lif2, self.fc2(spk1), s2)
            outs.append(spk2)
        return torch.stack(outs)


class HiddenNet(nn.Module):
    """The ``init_hidden=True`` style: an ``nn.Sequential`` whose neurons keep their own state."""

    def __init__(self, make: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(F_IN, H), make(init_hidden=True), nn.Linear(H, H), make(init_hidden=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for t in range(x.shape[0]):
            h = x[t]
            for layer in self.net:  # DeltaLeaky returns (spk, state) even with init_hidden=True
                out = layer(h)
                h = out[0] if isinstance(out, tuple) else out
            outs.append(h)
        return torch.stack(outs)


class ConvLSTMNet(nn.Module):
    def __init__(self, hidden: bool) -> None:
        super().__init__()
        snn = _snn()
        self.hidden = hidden
        self.lstm = snn.SConv2dLSTM(in_channels=1, out_channels=2, kernel_size=3, init_hidden=hidden)
        self.fc = nn.Linear(2 * 4 * 4, 3)
        self.out = snn.Leaky(beta=0.8, init_hidden=hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs, syn, mem, mem2 = [], None, None, None
        for t in range(x.shape[0]):
            frame = x[t].reshape(B, 1, 4, 4)
            if self.hidden:
                spk = self.lstm(frame)
                outs.append(self.out(self.fc(spk.flatten(1))))
            else:
                spk, syn, mem = self.lstm(frame, syn, mem) if syn is not None else self.lstm(frame)
                spk2, mem2 = self.out(self.fc(spk.flatten(1)), mem2) if mem2 is not None else \
                    self.out(self.fc(spk.flatten(1)))
                outs.append(spk2)
        return torch.stack(outs)


class MultiStepNet(nn.Module):
    """Classes that consume [T, B, F]: LeakyParallel, StateLeaky, LinearLeaky, AssociativeLeaky."""

    def __init__(self, name: str) -> None:
        super().__init__()
        snn = _snn()
        self.name = name
        self.fc = nn.Linear(F_IN, H)
        if name == "LeakyParallel":
            self.neuron = snn.LeakyParallel(input_size=H, hidden_size=H, beta=0.8)
        elif name == "StateLeaky":
            self.neuron = snn.StateLeaky(beta=0.8, channels=H)
        elif name == "LinearLeaky":
            self.neuron = snn.LinearLeaky(beta=0.8, in_features=H, out_features=H)
        elif name == "AssociativeLeaky":
            self.neuron = snn.AssociativeLeaky(in_dim=H, d_value=2, d_key=3, num_spiking_neurons=6)
        else:
            raise ValueError(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.neuron(self.fc(x))
        return out[0] if isinstance(out, tuple) else out


MULTI_STEP = ["LeakyParallel", "StateLeaky", "LinearLeaky", "AssociativeLeaky"]


class TutorialNet(nn.Module):
    """snnTorch tutorial 5: fc1 -> Leaky -> fc2 -> Leaky, explicit membranes, T = 25."""

    def __init__(self, num_inputs: int = 784, num_hidden: int = 100, num_outputs: int = 10, beta: float = 0.95):
        super().__init__()
        snn = _snn()
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem1 = self.lif1.reset_mem()
        mem2 = self.lif2.reset_mem()
        spk2_rec, mem2_rec = [], []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec), torch.stack(mem2_rec)


def reset_state(model: nn.Module) -> None:
    """Zero every snnTorch neuron's hidden state (works for the modules inside any container)."""
    for m in model.modules():
        if hasattr(m, "reset_mem") and hasattr(m, "spike_grad"):
            try:
                m.reset_mem()
            except NotImplementedError:
                pass


def sample_input(steps: int = T, features: int = F_IN, seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(steps, B, features, generator=g) * scale


def runner(x: torch.Tensor) -> Callable[[nn.Module], torch.Tensor]:
    def run(model: nn.Module) -> torch.Tensor:
        reset_state(model)
        out = model(x)
        return out[0] if isinstance(out, tuple) else out

    return run
