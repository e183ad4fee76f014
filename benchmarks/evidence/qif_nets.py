"""The networks of the LIF-against-QIF comparison (issue 24), each a classifier ``model(x) -> logits`` that the
harness's ``fit``/``evaluate`` and ``sg.landscape`` use unchanged:

- ``SGNet``: the task's architecture (Linear -> neuron, repeated; the last layer recurrent for ``rec`` tasks), a
  linear readout averaged over the task's window, trained with surrogate gradients. Its neurons are snnTorch's
  ``Leaky`` (LIF, subtractive reset) or :class:`sg_stability.neurons.QIF` (hard reset), in snnTorch's style (the
  states passed explicitly), with the same weights at the start;
- ``ExactNet``: an :mod:`sg_stability.exact` QIF network of the same sizes in continuous time; its logits are the
  negative first-spike (or pseudospike) times of the output neurons, so cross-entropy is the first-spike loss.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

import sg_stability.exact as ex
from benchmarks.evidence.nets import Arch, weights
from sg_stability.neurons import QIF
from sg_stability.surrogates import FastSigmoid

DURATION = 4.0  # the exact networks' trial, in units of their tau


class SGNet(nn.Module):
    """``neuron``: ``"lif"`` (``time`` = beta, the leak per step) or ``"qif"`` (``time`` = tau in steps)."""

    def __init__(self, arch: Arch, window: int, seed: int, *, neuron: str, time: float, sharpness: float,
                 lr: float) -> None:
        super().__init__()
        self.arch, self.window, self.lr = arch, window, lr
        w = weights(arch, seed)
        sizes = (arch.inputs, *arch.hidden)
        self.fcs = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(sizes))
        with torch.no_grad():
            for i, fc in enumerate(self.fcs):
                fc.weight.copy_(w[f"fc{i}"])
        self.rec = nn.Linear(arch.hidden[-1], arch.hidden[-1], bias=False) if arch.kind == "rec" else None
        if self.rec is not None:
            with torch.no_grad():
                self.rec.weight.copy_(w["rec"])
        self.out = nn.Linear(arch.hidden[-1], arch.classes, bias=False)
        with torch.no_grad():
            self.out.weight.copy_(w["out"])
        self.neuron = neuron

        def cell() -> nn.Module:
            surrogate = FastSigmoid(dampening=1.0, sharpness=sharpness)
            if neuron == "qif":
                return QIF(tau=time, surrogate=surrogate)
            import snntorch as snn

            return snn.Leaky(beta=time, reset_mechanism="subtract", spike_grad=surrogate)

        self.cells = nn.ModuleList(cell() for _ in arch.hidden)
        self.spikes_per_sample = 0.0

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": list(self.parameters()), "lr": self.lr}]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states: list[Any] = [None] * len(self.cells)
        if self.neuron == "lif":
            states = [cell.init_leaky() for cell in self.cells]
        last = torch.zeros(x.shape[1], self.arch.hidden[-1])
        out, count = [], 0.0
        for t in range(x.shape[0]):
            h = x[t]
            for i, (fc, cell) in enumerate(zip(self.fcs, self.cells, strict=True)):
                current = fc(h)
                if self.rec is not None and i == len(self.cells) - 1:
                    current = current + self.rec(last)
                h, states[i] = cell(current, states[i])
                count += float(h.detach().sum())
            last = h
            out.append(h)
        self.spikes_per_sample = count / x.shape[1]
        return self.out(torch.stack(out)[-self.window:]).mean(0)


class ExactNet(nn.Module):
    """The exact QIF network of the task's sizes; ``x`` (binned ``[T, B, C]``) becomes spike trains over
    :data:`DURATION`."""

    def __init__(self, arch: Arch, seed: int, *, init_mean: float, lr: float, neuron: str = "qif") -> None:
        super().__init__()
        self.lr = lr
        rec = [False] * len(arch.hidden) + [False]
        rec[len(arch.hidden) - 1] = arch.kind == "rec"
        self.net = ex.Network([arch.inputs, *arch.hidden, arch.classes], recurrent=rec, neuron=neuron,
                              duration=DURATION, init_mean=init_mean, init_std=3.0, dtype=torch.float32, seed=seed)
        self.hidden = len(arch.hidden)
        self.spikes_per_sample = 0.0

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": list(self.parameters()), "lr": self.lr}]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        run = self.net(ex.SpikeTrains.from_steps(x, dt=DURATION / x.shape[0]))
        hidden = run.trial_counts[:, : run.layers[self.hidden - 1].stop]
        self.spikes_per_sample = float(hidden.sum(1).double().mean())
        return -run.output.first


#: each model's small hyperparameter search: the same number of points (8) for the two surrogate-gradient models
SEARCH: dict[str, list[dict[str, float]]] = {
    "lif": [{"lr_scale": lr, "sharpness": s, "time": beta}
            for lr, s, beta in itertools.product((1.0, 4.0), (1.0, 4.0), (0.8, 0.9))],
    "qif": [{"lr_scale": lr, "sharpness": s, "time": tau}
            for lr, s, tau in itertools.product((1.0, 4.0), (1.0, 4.0), (5.0, 10.0))],
    "exact_qif": [{"lr": lr, "init_mean": mean} for lr, mean in itertools.product((3e-3, 1e-2), (4.0, 8.0))],
}


def build(model: str, arch: Arch, window: int, seed: int, config: dict[str, float], task_lr: float) -> nn.Module:
    if model == "exact_qif":
        return ExactNet(arch, seed, init_mean=config["init_mean"], lr=config["lr"])
    return SGNet(arch, window, seed, neuron=model, time=config["time"], sharpness=config["sharpness"],
                 lr=task_lr * config["lr_scale"])
