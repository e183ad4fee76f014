"""Cost of patched surrogates in SpikingJelly 2.0 and Norse, against each framework's own, on CPU.

Model per framework: 700 -> 1024 LIF -> 20 LIF on a [T=100, B=64, 700] sequence, full training step.

SpikingJelly 2.0 (LIFNode, multi-step; its default surrogate Sigmoid(alpha=4) runs SpikingJelly's fused op):
    native                        SpikingJelly's default surrogate.Sigmoid(alpha=4)
    native SoftSign               SpikingJelly's own SoftSign(alpha=2), set by hand (baseline of the next-but-one row)
    sg sigmoid -> built-in        sg.patch(.., "sigmoid"): exactly Sigmoid(4), so SpikingJelly's class is installed
    sg fast_sigmoid -> built-in   sg.patch(.., "fast_sigmoid"): exactly SoftSign(2), SpikingJelly's class installed;
                                  compared with "native SoftSign" (same kernel), not with Sigmoid
    sg sigmoid, reference path    the same shape as our module (builtin=False): SpikingJelly's reference loop
    sg q_pseudospike, reference   a shape SpikingJelly has no fused kernel for
Norse (LIF layers; default method 'super', which Norse 1.1.0 computes as 1/(|x|+1)^2):
    native                        Norse's own 'super'
    sg fast_sigmoid (same shape)  fast_sigmoid(gamma=1, beta=0.5), what from_native reads 'super' as
    sg fast_sigmoid(1, 1)         our default fast_sigmoid

Targets: <= 1.00 where a patched surrogate is compared with the framework's own (SpikingJelly's built-in
mappings must keep the fused path, ratio ~1.0); the reference-path rows report the cost of a shape with no
built-in. Method: benchmarks/_measure.py.

    python -m benchmarks.bench_frameworks                       # both, about 3 minutes
    python -m benchmarks.bench_frameworks --framework norse
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import warnings

from benchmarks import _measure

_measure.reexec_with_fixed_mmap_threshold()

import torch  # noqa: E402
from torch import nn  # noqa: E402

import sg_stability as sg  # noqa: E402


def spikingjelly_case(args):
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    net = nn.Sequential(layer.Linear(args.inputs, args.hidden), neuron.LIFNode(tau=2.0, step_mode="m"),
                        layer.Linear(args.hidden, args.outputs), neuron.LIFNode(tau=2.0, step_mode="m"))
    functional.set_step_mode(net, "m")

    def forward(x):
        functional.reset_net(net)
        return net(x)

    neurons = [m for m in net if isinstance(m, neuron.LIFNode)]

    @contextlib.contextmanager
    def native_softsign():
        # SpikingJelly's own SoftSign(alpha=2), installed by hand: the baseline for "fast_sigmoid -> built-in"
        before = [n.surrogate_function for n in neurons]
        for n in neurons:
            n.surrogate_function = surrogate.SoftSign(alpha=2.0)
        try:
            yield
        finally:
            for n, s in zip(neurons, before, strict=True):
                n.surrogate_function = s

    variants = {
        "native": _measure.nothing,
        "native SoftSign": native_softsign,
        "sg sigmoid -> built-in": lambda: sg.patch(net, "sigmoid"),
        "sg fast_sigmoid -> built-in": lambda: sg.patch(net, "fast_sigmoid"),
        "sg sigmoid, reference path": lambda: sg.patch(net, "sigmoid", builtin=False),
        "sg q_pseudospike, reference": lambda: sg.patch(net, "q_pseudospike"),
    }
    with sg.patch(net, "sigmoid") as h:
        assert "fused" in h.summary()
    why = "the cost of SpikingJelly's reference path for a surrogate its fused kernels do not know"
    no_target = {"sg sigmoid, reference path": why, "sg q_pseudospike, reference": why}
    return "spikingjelly", net, forward, variants, no_target, {"sg fast_sigmoid -> built-in": "native SoftSign"}


def norse_case(args):
    import norse.torch as norse

    net = nn.ModuleList([nn.Linear(args.inputs, args.hidden), norse.LIF(), nn.Linear(args.hidden, args.outputs),
                         norse.LIF()])

    def forward(x):
        z, _ = net[1](net[0](x) * 40)
        z, _ = net[3](net[2](z) * 40)
        return z

    same = sg.plugins.read_native(net[1]).surrogate
    variants = {
        "native": _measure.nothing,
        f"sg fast_sigmoid(1, {same.sharpness:g})": lambda: sg.patch(net, same),
        "sg fast_sigmoid(1, 1)": lambda: sg.patch(net, "fast_sigmoid"),
    }
    return "norse", net, forward, variants, {}, {}


def run_case(case, args):
    name, net, forward, variants, no_target, baselines = case
    version = __import__("importlib.metadata").metadata.version(name)
    print(f"\n=== {name} {version}: {args.inputs}->{args.hidden}->{args.outputs}, T={args.steps}, batch {args.batch}, "
          f"{args.rounds} rounds after {args.warmup} warm-up rounds")
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: every round sees the same weights
    x = (torch.rand(args.steps, args.batch, args.inputs) < 0.05).float()
    y = torch.randint(0, args.outputs, (args.batch,))

    def loss():
        return nn.functional.cross_entropy(forward(x).mean(0), y)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    _measure.compare(variants, net, loss, step, args.rounds, args.warmup, baseline="native", no_target=no_target,
                     baselines=baselines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=["spikingjelly", "norse", "both"], default="both")
    _measure.network_arguments(parser, rounds=12)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, sg-stability {sg.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.framework in ("spikingjelly", "both"):
            run_case(spikingjelly_case(args), args)
        if args.framework in ("norse", "both"):
            run_case(norse_case(args), args)


if __name__ == "__main__":
    main()
