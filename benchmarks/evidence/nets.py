"""The harness's networks, built from each framework's own neuron modules with shared weights and matched
dynamics: leak 0.9 per step, threshold 1, subtractive reset detached from the graph as snnTorch does it (Norse:
its hard reset, differentiated, and a synaptic current that
decays within one step, which delays the input by one step), each framework's default surrogate.

Two architectures: ``ff`` (Linear -> LIF, repeated) and ``rec`` (Linear -> recurrent LIF). Both end in a
non-spiking linear readout of the last spiking layer, averaged over the task's readout window.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

LEAK = 0.9
FRAMEWORKS = ("snntorch", "spikingjelly", "norse")


@dataclass(frozen=True)
class Arch:
    kind: str  # "ff" or "rec"
    inputs: int
    hidden: tuple[int, ...]
    classes: int
    input_gain: float = 1.0  # scale of the spiking layers' input weights over PyTorch's default init


def weights(arch: Arch, seed: int) -> dict[str, torch.Tensor]:
    """PyTorch's default Linear initialisation (uniform in +-1/sqrt(fan_in)), seeded, shared by all frameworks;
    spiking layers' weights scaled by ``arch.input_gain``."""
    g = torch.Generator().manual_seed(seed)

    def uniform(rows: int, cols: int, gain: float) -> torch.Tensor:
        return (torch.rand(rows, cols, generator=g) * 2 - 1) * gain / cols ** 0.5

    w: dict[str, torch.Tensor] = {}
    sizes = (arch.inputs, *arch.hidden)
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        w[f"fc{i}"] = uniform(b, a, arch.input_gain)
    if arch.kind == "rec":
        w["rec"] = uniform(arch.hidden[-1], arch.hidden[-1], 1.0)
        w["rec"].fill_diagonal_(0.0)
    w["out"] = uniform(arch.classes, arch.hidden[-1], 1.0)
    return w


def _linear(w: torch.Tensor, scale: float = 1.0) -> nn.Linear:
    layer = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(w * scale)
    return layer


class _Net(nn.Module):
    """Common readout: logits = mean over ``window`` of out(spikes of the last spiking layer).

    ``weight_scale`` is the factor a framework stores its weights at; the optimizer's learning rate for those
    weights is scaled by it too, so that Adam (invariant to the gradient's scale) takes the same relative steps in
    every framework."""

    weight_scale = 1.0

    def __init__(self, arch: Arch, w: dict[str, torch.Tensor], window: int) -> None:
        super().__init__()
        self.arch, self.window = arch, window
        self.out = _linear(w["out"])

    def param_groups(self, lr: float) -> list[dict[str, object]]:
        readout = list(self.out.parameters())
        ids = {id(p) for p in readout}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": readout, "lr": lr}, {"params": rest, "lr": lr * self.weight_scale}]

    def readout(self, spikes: torch.Tensor) -> torch.Tensor:
        return self.out(spikes[-self.window:]).mean(0)


class SnnTorchNet(_Net):
    def __init__(self, arch: Arch, w: dict[str, torch.Tensor], window: int) -> None:
        import snntorch as snn

        super().__init__(arch, w, window)
        n = len(arch.hidden)
        self.fcs = nn.ModuleList(_linear(w[f"fc{i}"]) for i in range(n))
        lifs: list[nn.Module] = [snn.Leaky(beta=LEAK, reset_mechanism="subtract") for _ in range(n)]
        if arch.kind == "rec":
            h = arch.hidden[-1]
            lifs[-1] = snn.RLeaky(beta=LEAK, linear_features=h, reset_mechanism="subtract")
            with torch.no_grad():
                lifs[-1].recurrent.weight.copy_(w["rec"])
                lifs[-1].recurrent.bias.zero_()
        self.lifs = nn.ModuleList(lifs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mems = [lif.init_rleaky() if self.arch.kind == "rec" and i == len(self.lifs) - 1 else lif.init_leaky()
                for i, lif in enumerate(self.lifs)]
        out = []
        for t in range(x.shape[0]):
            h = x[t]
            for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs, strict=True)):
                if isinstance(mems[i], tuple):
                    spk, mem = lif(fc(h), *mems[i])
                    mems[i] = (spk, mem)
                else:
                    spk, mems[i] = lif(fc(h), mems[i])
                h = spk
            out.append(h)
        return self.readout(torch.stack(out))


class SpikingJellyNet(_Net):
    def __init__(self, arch: Arch, w: dict[str, torch.Tensor], window: int) -> None:
        from spikingjelly.activation_based import neuron

        super().__init__(arch, w, window)
        n = len(arch.hidden)
        self.fcs = nn.ModuleList(_linear(w[f"fc{i}"]) for i in range(n))
        mode = ["m"] * n
        if arch.kind == "rec":
            mode[-1] = "s"
            self.fc_rec = _linear(w["rec"])
        self.lifs = nn.ModuleList(neuron.LIFNode(tau=1 / (1 - LEAK), decay_input=False, v_reset=None, detach_reset=True,
                                                  step_mode=m)
                                  for m in mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        functional.reset_net(self)
        h = x
        last = len(self.lifs) - 1
        for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs, strict=True)):
            if self.arch.kind == "rec" and i == last:
                current = fc(h)
                spk = torch.zeros(h.shape[1], self.fc_rec.in_features)
                seq = []
                for t in range(h.shape[0]):
                    spk = lif(current[t] + self.fc_rec(spk))
                    seq.append(spk)
                h = torch.stack(seq)
            else:
                h = lif(fc(h))
        return self.readout(h)


class NorseNet(_Net):
    """Norse scales its input current by dt * tau_mem_inv = 0.1 per step: weights are stored 10x larger."""

    weight_scale = 1.0 / (1.0 - LEAK)

    def __init__(self, arch: Arch, w: dict[str, torch.Tensor], window: int) -> None:
        import norse.torch as norse

        super().__init__(arch, w, window)
        p = norse.LIFParameters(tau_syn_inv=torch.tensor(1000.0), tau_mem_inv=torch.tensor(100.0),
                                v_th=torch.tensor(1.0))
        n = len(arch.hidden)
        scale = self.weight_scale
        n_ff = n - 1 if arch.kind == "rec" else n
        self.fcs = nn.ModuleList(_linear(w[f"fc{i}"], scale) for i in range(n_ff))
        self.lifs = nn.ModuleList(norse.LIF(p=p) for _ in range(n_ff))
        if arch.kind == "rec":
            h_in = (arch.inputs, *arch.hidden)[n - 1]
            self.lif_rec = norse.LIFRecurrent(h_in, arch.hidden[-1], p=p)
            with torch.no_grad():
                self.lif_rec.input_weights.copy_(w[f"fc{n - 1}"] * scale)
                self.lif_rec.recurrent_weights.copy_(w["rec"] * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for fc, lif in zip(self.fcs, self.lifs, strict=True):
            h, _ = lif(fc(h))
        if self.arch.kind == "rec":
            h, _ = self.lif_rec(h)
        return self.readout(h)


BUILDERS = {"snntorch": SnnTorchNet, "spikingjelly": SpikingJellyNet, "norse": NorseNet}


def build(framework: str, arch: Arch, seed: int, window: int) -> nn.Module:
    return BUILDERS[framework](arch, weights(arch, seed), window)
