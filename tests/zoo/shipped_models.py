"""The models the frameworks ship (or their tutorials build), built from the frameworks' own model modules.

``MODELS[name](size)`` returns a :class:`Shipped`: the model, a sample batch (time first) and the ``run`` that
drives it the way its framework's examples do. ``size="small"`` (tests: narrow widths, small inputs, 2-4 steps)
keeps each model's structure; ``size="full"`` (``benchmarks/shipped_models.py``) is the published width and input.
Shared by the test suite and the benchmark, so both exercise the same models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Shipped:
    model: nn.Module
    sample: torch.Tensor
    run: Callable[[nn.Module, Any], Any] | None
    framework: str
    loss_on_membrane: bool = False  # the output is a membrane (the snnTorch tutorials' loss)


def _seeded(seed: int = 0) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _rate_input(shape: tuple[int, ...], p: float = 0.3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) < p).float()


def _image_input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen)


# -- SpikingJelly ------------------------------------------------------------------------------------------------
def _sj():
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    return functional, layer, neuron, surrogate


def _torchvision_stand_in() -> None:
    """SpikingJelly's ResNets import ``load_state_dict_from_url`` from torchvision, only to download pretrained
    weights (never done here). torchvision's PyPI wheels are built against CUDA torch and do not load beside a
    CPU build, so where it is missing a stand-in module gives that one function (torch.hub's, which torchvision
    re-exports)."""
    import importlib.util
    import sys
    import types

    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return
    package = types.ModuleType("torchvision")
    package.__path__ = []
    utils = types.ModuleType("torchvision._internally_replaced_utils")
    utils.load_state_dict_from_url = torch.hub.load_state_dict_from_url  # type: ignore[attr-defined]
    package._internally_replaced_utils = utils  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": package, "torchvision._internally_replaced_utils": utils})


def _sj_run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    functional, *_ = _sj()
    functional.reset_net(model)
    return model(x)


def _sj_neuron(name: str = "LIFNode") -> dict:
    """The neuron arguments the SpikingJelly examples build these models with: ATan, detached reset."""
    _, _, neuron, surrogate = _sj()
    return {"spiking_neuron": getattr(neuron, name), "surrogate_function": surrogate.ATan(), "detach_reset": True}


def _sj_multistep(model: nn.Module, sample: torch.Tensor) -> Shipped:
    functional, *_ = _sj()
    functional.set_step_mode(model, "m")
    return Shipped(model, sample, _sj_run, "spikingjelly")


def sj_mnist_net(size: str) -> Shipped:
    from spikingjelly.activation_based.model.parametric_lif_net import MNISTNet

    _seeded()
    model = MNISTNet(channels=8 if size == "small" else 128, **_sj_neuron("ParametricLIFNode"))
    steps, batch = (3, 2) if size == "small" else (4, 8)
    return _sj_multistep(model, _image_input((steps, batch, 1, 28, 28)))


def sj_cifar10dvs_net(size: str) -> Shipped:
    from spikingjelly.activation_based.model.parametric_lif_net import CIFAR10DVSNet

    _seeded()
    model = CIFAR10DVSNet(channels=4 if size == "small" else 128, **_sj_neuron())
    steps, batch = (3, 1) if size == "small" else (4, 2)
    return _sj_multistep(model, _rate_input((steps, batch, 2, 128, 128), 0.2))


def sj_spiking_resnet18(size: str) -> Shipped:
    _torchvision_stand_in()
    from spikingjelly.activation_based.model import spiking_resnet

    _seeded()
    blocks = [1, 1, 1, 1] if size == "small" else [2, 2, 2, 2]
    model = spiking_resnet.SpikingResNet(spiking_resnet.BasicBlock, blocks, num_classes=10, **_sj_neuron("IFNode"))
    steps, batch, hw = (2, 1, 16) if size == "small" else (4, 2, 64)
    return _sj_multistep(model, _image_input((steps, batch, 3, hw, hw)))


def sj_sew_resnet18(size: str) -> Shipped:
    _torchvision_stand_in()
    from spikingjelly.activation_based.model import sew_resnet

    _seeded()
    blocks = [1, 1, 1, 1] if size == "small" else [2, 2, 2, 2]
    model = sew_resnet.SEWResNet(sew_resnet.BasicBlock, blocks, num_classes=10, cnf="ADD", **_sj_neuron("IFNode"))
    steps, batch, hw = (2, 1, 16) if size == "small" else (4, 2, 64)
    return _sj_multistep(model, _image_input((steps, batch, 3, hw, hw)))


def _sj_zoo(model_class: type, size: str, small: dict, full: dict, steps_batch_hw: tuple[int, int, int]) -> Shipped:
    """A SpikingJelly zoo model that takes ``T``: ``small`` or ``full`` constructor arguments."""
    _seeded()
    steps, batch, hw = steps_batch_hw
    model = model_class(T=steps, num_classes=10, **(small if size == "small" else full), **_sj_neuron())
    return _sj_multistep(model, _image_input((steps, batch, 3, hw, hw)))


def sj_ms_resnet18(size: str) -> Shipped:
    from spikingjelly.activation_based.model.ms_resnet import MSResNet

    return _sj_zoo(MSResNet, size, {"layers": (1, 1, 1, 1), "base_channels": 8}, {},
                   (2, 1, 16) if size == "small" else (4, 2, 64))


def sj_spikformer(size: str) -> Shipped:
    from spikingjelly.activation_based.model.spikformer import Spikformer

    patches = {"img_size_h": 32, "img_size_w": 32, "patch_size": 4}
    return _sj_zoo(Spikformer, size, {**patches, "embed_dims": 32, "num_heads": 2, "mlp_ratio": 2.0, "depths": 1},
                   {**patches, "embed_dims": 384, "num_heads": 12, "depths": 4},
                   (2, 1, 32) if size == "small" else (4, 2, 32))


def sj_spike_driven_transformer(size: str) -> Shipped:
    from spikingjelly.activation_based.model.spike_driven_transformer import SpikeDrivenTransformer

    return _sj_zoo(SpikeDrivenTransformer, size, {"embed_dims": 32, "num_heads": 2, "depths": 1}, {},
                   (2, 1, 32) if size == "small" else (4, 2, 64))


def sj_ottt_vgg11(size: str) -> Shipped:
    from spikingjelly.activation_based.model import spiking_vggws_ottt as ottt

    _, _, neuron, surrogate = _sj()
    _seeded()
    if size == "small":
        model = ottt.OTTTSpikingVGG([8, "M", 16, "M", 512, "M"], num_classes=10, spiking_neuron=neuron.OTTTLIFNode,
                                    surrogate_function=surrogate.Sigmoid(alpha=4.0))
    else:
        model = ottt.OTTTSpikingVGG(ottt.cfgs["A"], num_classes=10, spiking_neuron=neuron.OTTTLIFNode,  # VGG11
                                    light_classifier=False, surrogate_function=surrogate.Sigmoid(alpha=4.0))
    steps, batch, hw = (3, 1, 16) if size == "small" else (4, 2, 32)

    def run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:  # OTTT trains online: one call per step
        functional, *_ = _sj()
        functional.reset_net(net)
        return torch.stack([net(x[t]) for t in range(x.shape[0])])

    return Shipped(model, _image_input((steps, batch, 3, hw, hw)), run, "spikingjelly")


# -- Norse --------------------------------------------------------------------------------------------------------
def norse_convnet(size: str) -> Shipped:
    from norse.torch.models.conv import ConvNet

    _seeded()
    steps, batch = (12, 1) if size == "small" else (32, 16)  # Norse's membranes need ~10 steps to first spike
    return Shipped(ConvNet(num_channels=1, feature_size=28), _image_input((steps, batch, 1, 28, 28)), None, "norse")


def norse_vgg11(size: str) -> Shipped:
    from norse.torch import LIF
    from norse.torch.models import vgg
    from norse.torch.module.lift import Lift

    _seeded()
    if size == "small":
        model = vgg.VGG(vgg.make_layers([8, "M", 16, "M", 16, "M"]), num_classes=10)
        # the published classifier is 25088 -> 4096 -> 4096; the same structure, narrow
        model.avgpool = Lift(nn.AdaptiveAvgPool2d((2, 2)))
        model.classifier = nn.Sequential(Lift(nn.Linear(16 * 4, 32)), LIF(), Lift(nn.Dropout()),
                                         Lift(nn.Linear(32, 32)), LIF(), Lift(nn.Dropout()), Lift(nn.Linear(32, 10)))
        steps, batch, hw = 3, 1, 16
    else:
        model = vgg.vgg11(num_classes=10)
        steps, batch, hw = 4, 2, 32
    return Shipped(model, _image_input((steps, batch, 3, hw, hw)), None, "norse")


def norse_sequential_state(size: str) -> Shipped:
    import norse.torch as nt

    _seeded()
    f_in, hidden = (6, 8) if size == "small" else (100, 256)
    steps, batch = (6, 3) if size == "small" else (50, 32)
    model = nt.SequentialState(nt.Lift(nn.Linear(f_in, hidden)), nt.LIF(), nt.Lift(nn.Linear(hidden, hidden)),
                               nt.LIFAdEx(), nt.Lift(nn.Linear(hidden, 10)), nt.IAF())
    return Shipped(model, 3 * _image_input((steps, batch, f_in)), lambda m, x: m(x)[0], "norse")


def norse_lsnn_lif(size: str) -> Shipped:
    import norse.torch as nt

    class LSNNNet(nn.Module):  # Norse's memory-task example: an LSNN layer, then a recurrent LIF readout layer
        def __init__(self, f_in: int, hidden: int) -> None:
            super().__init__()
            self.lsnn = nt.LSNNRecurrent(f_in, hidden)
            self.lif = nt.LIFRecurrent(hidden, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z, _ = self.lsnn(x)
            out, _ = self.lif(z)
            return out

    _seeded()
    f_in, hidden = (6, 8) if size == "small" else (100, 256)
    steps, batch = (8, 3) if size == "small" else (50, 32)
    return Shipped(LSNNNet(f_in, hidden), _rate_input((steps, batch, f_in), 0.3), None, "norse")


# -- snnTorch (as its tutorials build them) ---------------------------------------------------------------------------
def _snn():
    import snntorch as snn
    from snntorch import surrogate, utils

    return snn, surrogate, utils


def _stepwise(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The tutorials' loop: reset hidden states, one call per step, stack the output membranes."""
    _, _, utils = _snn()
    utils.reset(model)
    outs = []
    for t in range(x.shape[0]):
        out = model(x[t])
        outs.append(out[1] if isinstance(out, tuple) else out)
    return torch.stack(outs)


def snntorch_conv_init_hidden(size: str) -> Shipped:
    snn, surrogate, _ = _snn()
    _seeded()
    grad = surrogate.atan()
    model = nn.Sequential(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2), snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True),
                          nn.Conv2d(12, 64, 5), nn.MaxPool2d(2), snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True),
                          nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
                          snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True, output=True))
    steps, batch = (4, 2) if size == "small" else (25, 128)
    return Shipped(model, _image_input((steps, batch, 1, 28, 28)), _stepwise, "snntorch", loss_on_membrane=True)


def _initial_state(neuron: nn.Module) -> tuple:
    """The tutorials' ``init_leaky()`` / ``init_synaptic()`` / ...: the neuron's zero state."""
    init = next(getattr(neuron, n) for n in dir(neuron) if n.startswith("init_") and n != "init_hidden")
    state = init()
    return state if isinstance(state, tuple) else (state,)


class _TwoLayer(nn.Module):
    """Tutorial-style network with explicit state: fc1 -> neuron1 -> fc2 -> neuron2 (output: its membrane)."""

    def __init__(self, f_in: int, hidden: int, first: nn.Module, second: nn.Module) -> None:
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(f_in, hidden), first
        self.fc2, self.lif2 = nn.Linear(hidden, 10), second

    @staticmethod
    def _step(neuron: nn.Module, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        out = neuron(x, *state)  # RLeaky / RSynaptic take their own spikes back as state
        return out[0], (out if type(neuron).__name__ in ("RLeaky", "RSynaptic") else out[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1, s2, outs = _initial_state(self.lif1), _initial_state(self.lif2), []
        for t in range(x.shape[0]):
            spk1, s1 = self._step(self.lif1, self.fc1(x[t]), s1)
            _, s2 = self._step(self.lif2, self.fc2(spk1), s2)
            outs.append(s2[-1])
        return torch.stack(outs)


def _dense_sizes(size: str) -> tuple[int, int, int, int]:
    return (6, 8, 6, 3) if size == "small" else (700, 256, 100, 64)  # features, hidden, steps, batch


def _two_layer(size: str, first: Callable[[int], nn.Module], second: nn.Module) -> Shipped:
    _seeded()
    f_in, hidden, steps, batch = _dense_sizes(size)
    model = _TwoLayer(f_in, hidden, first(hidden), second)
    return Shipped(model, _rate_input((steps, batch, f_in)), None, "snntorch", loss_on_membrane=True)


def snntorch_rleaky(size: str) -> Shipped:
    snn, surrogate, _ = _snn()
    return _two_layer(size, lambda h: snn.RLeaky(beta=0.9, linear_features=h, spike_grad=surrogate.fast_sigmoid()),
                      snn.Leaky(beta=0.9, spike_grad=surrogate.fast_sigmoid()))


def snntorch_rsynaptic(size: str) -> Shipped:
    snn, surrogate, _ = _snn()
    return _two_layer(size, lambda h: snn.RSynaptic(alpha=0.9, beta=0.8, linear_features=h,
                                                    spike_grad=surrogate.fast_sigmoid()),
                      snn.Leaky(beta=0.9, spike_grad=surrogate.fast_sigmoid()))


def snntorch_synaptic_alpha(size: str) -> Shipped:
    snn, surrogate, _ = _snn()
    return _two_layer(size, lambda h: snn.Synaptic(alpha=0.9, beta=0.8, spike_grad=surrogate.fast_sigmoid()),
                      snn.Alpha(alpha=0.9, beta=0.8, spike_grad=surrogate.fast_sigmoid()))


def snntorch_sconv2dlstm(size: str) -> Shipped:
    snn, surrogate, _ = _snn()

    class ConvLSTMNet(nn.Module):  # tutorial: SConv2dLSTM -> pool -> linear -> Leaky, init_hidden
        def __init__(self, channels: int, hw: int) -> None:
            super().__init__()
            self.sclstm = snn.SConv2dLSTM(1, channels, 3, spike_grad=surrogate.atan(), init_hidden=True)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(channels * (hw // 2) ** 2, 10)
            self.out = snn.Leaky(beta=0.5, spike_grad=surrogate.atan(), init_hidden=True, output=True)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.out(self.fc(self.pool(self.sclstm(x)).flatten(1)))

    _seeded()
    channels, hw, steps, batch = (4, 8, 4, 2) if size == "small" else (16, 28, 25, 32)
    return Shipped(ConvLSTMNet(channels, hw), _image_input((steps, batch, 1, hw, hw)), _stepwise, "snntorch",
                   loss_on_membrane=True)


def snntorch_parallel(size: str) -> Shipped:
    snn, surrogate, _ = _snn()

    class ParallelNet(nn.Module):  # whole-sequence layers: LeakyParallel -> linear -> StateLeaky
        def __init__(self, f_in: int, hidden: int) -> None:
            super().__init__()
            self.lif1 = snn.LeakyParallel(input_size=f_in, hidden_size=hidden, spike_grad=surrogate.fast_sigmoid())
            self.fc2 = nn.Linear(hidden, 10)
            self.lif2 = snn.StateLeaky(beta=0.9, channels=10, spike_grad=surrogate.fast_sigmoid())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, mem = self.lif2(self.fc2(self.lif1(x)))
            return mem

    _seeded()
    f_in, hidden, steps, batch = _dense_sizes(size)
    return Shipped(ParallelNet(f_in, hidden), _rate_input((steps, batch, f_in)), None, "snntorch",
                   loss_on_membrane=True)


# -- all three frameworks in one model -------------------------------------------------------------------------
def mixed(size: str) -> Shipped:
    import norse.torch as nt

    snn, surrogate, _ = _snn()
    _, _, neuron, sj_surrogate = _sj()

    class Mixed(nn.Module):
        def __init__(self, f_in: int, hidden: int) -> None:
            super().__init__()
            self.fc1, self.snn_lif = nn.Linear(f_in, hidden), snn.Leaky(beta=0.9, spike_grad=surrogate.atan())
            self.fc2, self.sj_lif = nn.Linear(hidden, hidden), neuron.LIFNode(tau=2.0,
                                                                              surrogate_function=sj_surrogate.ATan())
            self.fc3, self.norse_lif = nn.Linear(hidden, 10), nt.LIFCell()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            functional, *_ = _sj()
            functional.reset_net(self)
            mem, state, outs = self.snn_lif.reset_mem(), None, []
            for t in range(x.shape[0]):
                z, mem = self.snn_lif(self.fc1(x[t]), mem)
                z = self.sj_lif(self.fc2(z))
                z, state = self.norse_lif(self.fc3(z), state)
                outs.append(z)
            return torch.stack(outs)

    _seeded()
    f_in, hidden, steps, batch = _dense_sizes(size)
    return Shipped(Mixed(f_in, hidden), 3 * _image_input((steps, batch, f_in)), None, "mixed")


MODELS: dict[str, Callable[[str], Shipped]] = {
    "sj/MNISTNet(PLIF)": sj_mnist_net,
    "sj/CIFAR10DVSNet": sj_cifar10dvs_net,
    "sj/spiking_resnet18": sj_spiking_resnet18,
    "sj/sew_resnet18": sj_sew_resnet18,
    "sj/ms_resnet18": sj_ms_resnet18,
    "sj/Spikformer": sj_spikformer,
    "sj/SpikeDrivenTransformer": sj_spike_driven_transformer,
    "sj/OTTT_VGG11": sj_ottt_vgg11,
    "norse/ConvNet": norse_convnet,
    "norse/VGG11": norse_vgg11,
    "norse/SequentialState(LIF,LIFAdEx,IAF)": norse_sequential_state,
    "norse/LSNN+LIFRecurrent": norse_lsnn_lif,
    "snntorch/conv_init_hidden": snntorch_conv_init_hidden,
    "snntorch/RLeaky": snntorch_rleaky,
    "snntorch/RSynaptic": snntorch_rsynaptic,
    "snntorch/Synaptic+Alpha": snntorch_synaptic_alpha,
    "snntorch/SConv2dLSTM": snntorch_sconv2dlstm,
    "snntorch/LeakyParallel+StateLeaky": snntorch_parallel,
    "mixed/snntorch+spikingjelly+norse": mixed,
}

