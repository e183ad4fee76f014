"""The paper's SHD-sized recurrent configuration (700 inputs -> 256 recurrent LIF -> 20 LIF), built in each
framework with the same weights and matched dynamics (leak 0.9 per step, threshold 1, soft reset detached
where the framework allows it). Used by ``stabilize_shd.py`` and the tests.

The weights are the frameworks' usual uniform initialisation, scaled so that the recurrent layer fires
(``input_scale``) and its recurrent drive matters (``recurrent_scale``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

N_IN, N_REC, N_OUT = 700, 256, 20


def weights(seed: int = 0, n_in: int = N_IN, n_rec: int = N_REC, n_out: int = N_OUT, input_scale: float = 8.0,
            recurrent_scale: float = 4.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def uniform(rows: int, cols: int, scale: float) -> torch.Tensor:
        bound = scale / math.sqrt(cols)
        return (torch.rand(rows, cols, generator=g) * 2 - 1) * bound

    w_rec = uniform(n_rec, n_rec, recurrent_scale)
    w_rec.fill_diagonal_(0.0)
    return {"in": uniform(n_rec, n_in, input_scale), "rec": w_rec, "out": uniform(n_out, n_rec, input_scale)}


def sample(steps: int = 100, batch: int = 32, n_in: int = N_IN, rate: float = 0.05, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, batch, n_in, generator=g) < rate).float()


def _linear(w: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


class SnnTorchSHD(nn.Module):
    """snnTorch tutorial style: explicit state, RLeaky (all-to-all recurrent Linear) then Leaky."""

    def __init__(self, w: dict[str, torch.Tensor]) -> None:
        import snntorch as snn

        super().__init__()
        n_rec = w["rec"].shape[0]
        self.fc_in = _linear(w["in"])
        self.lif_rec = snn.RLeaky(beta=0.9, linear_features=n_rec, reset_mechanism="subtract")
        with torch.no_grad():
            self.lif_rec.recurrent.weight.copy_(w["rec"])
            self.lif_rec.recurrent.bias.zero_()
        self.fc_out = _linear(w["out"])
        self.lif_out = snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spk, mem = self.lif_rec.init_rleaky()
        mem_out = self.lif_out.init_leaky()
        out = []
        for t in range(x.shape[0]):
            spk, mem = self.lif_rec(self.fc_in(x[t]), spk, mem)
            s_out, mem_out = self.lif_out(self.fc_out(spk), mem_out)
            out.append(s_out)
        return torch.stack(out)


class SpikingJellySHD(nn.Module):
    """SpikingJelly single-step LIFNode (tau = 10, no input decay, soft reset, detached) with a recurrent Linear
    in a hand-written loop."""

    def __init__(self, w: dict[str, torch.Tensor]) -> None:
        from spikingjelly.activation_based import neuron

        super().__init__()
        self.fc_in, self.fc_rec, self.fc_out = _linear(w["in"]), _linear(w["rec"]), _linear(w["out"])
        self.lif_rec = neuron.LIFNode(tau=10.0, decay_input=False, v_reset=None, detach_reset=True)
        self.lif_out = neuron.LIFNode(tau=10.0, decay_input=False, v_reset=None, detach_reset=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        functional.reset_net(self)
        spk = x.new_zeros(x.shape[1], self.fc_rec.in_features)  # on the input's device, in its dtype
        out = []
        for t in range(x.shape[0]):
            spk = self.lif_rec(self.fc_in(x[t]) + self.fc_rec(spk))
            out.append(self.lif_out(self.fc_out(spk)))
        return torch.stack(out)


class NorseSHD(nn.Module):
    """Norse LIFRecurrent layer (its own input and recurrent weights; dt * tau_mem_inv = 0.1, so leak 0.9) and
    a LIF readout. Norse's LIF has a synaptic current (tau_syn_inv = 200 per second) that the others lack."""

    def __init__(self, w: dict[str, torch.Tensor]) -> None:
        import norse.torch as norse

        super().__init__()
        p = norse.LIFParameters(tau_mem_inv=torch.tensor(100.0), v_th=torch.tensor(1.0))
        self.lif_rec = norse.LIFRecurrent(w["in"].shape[1], w["rec"].shape[0], p=p)
        with torch.no_grad():  # Norse scales the current by dt * tau_mem_inv = 0.1 per step
            self.lif_rec.input_weights.copy_(w["in"] * 10)
            self.lif_rec.recurrent_weights.copy_(w["rec"] * 10)
        self.fc_out = _linear(w["out"] * 10)
        self.lif_out = norse.LIF(p=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, _ = self.lif_rec(x)
        out, _ = self.lif_out(self.fc_out(z))
        return out


BUILDERS = {"snntorch": SnnTorchSHD, "spikingjelly": SpikingJellySHD, "norse": NorseSHD}


def available() -> list[str]:
    import importlib.util

    return [name for name in BUILDERS if importlib.util.find_spec(name) is not None]


#: a tiny version for tests that only need a real recurrent model in each framework
TINY = {"n_in": 12, "n_rec": 8, "n_out": 3}


def build(framework: str, dims: dict[str, int], *, steps: int, batch: int, rate: float, seed: int = 0,
          **scales: float) -> tuple[nn.Module, torch.Tensor]:
    """The network with ``dims`` in ``framework`` (the test is skipped when the framework is not installed) and a
    spike sample [steps, batch, n_in]."""
    import warnings

    import pytest

    pytest.importorskip(framework)
    x = sample(steps=steps, batch=batch, n_in=dims["n_in"], rate=rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BUILDERS[framework](weights(seed=seed, **dims, **scales)), x


def tiny(framework: str, seed: int = 0, steps: int = 6, batch: int = 2) -> tuple[nn.Module, torch.Tensor]:
    """The TINY network in ``framework`` and a spike sample [steps, batch, 12]."""
    return build(framework, TINY, steps=steps, batch=batch, rate=0.3, seed=seed)
