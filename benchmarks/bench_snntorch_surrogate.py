"""Cost of our surrogate against snnTorch's own, in a full training step.

Model: 700 -> 1024 Leaky -> 20 Leaky (snnTorch, explicit membranes), T = 100, batch 64, CPU.
Variants, measured in the same process on the same model and weights:

    native    snnTorch's default surrogate, surrogate.atan(alpha=2)
    sg atan   the same shape through sg.patch (from_native reads it as atan(gamma=1, beta=1))
    sg fsig   sg.patch(..., "fast_sigmoid", dampening=1, sharpness=1)

Target: ratio <= 1.00 for time and memory (method: benchmarks/_measure.py).

    python -m benchmarks.bench_snntorch_surrogate            # about 35 s
"""

from __future__ import annotations

import argparse
import platform

from benchmarks import _measure

_measure.reexec_with_fixed_mmap_threshold()

import torch  # noqa: E402
from torch import nn  # noqa: E402

import sg_stability as sg  # noqa: E402


class Net(nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int, beta: float = 0.9) -> None:
        super().__init__()
        import snntorch as snn

        self.fc1, self.lif1 = nn.Linear(n_in, hidden), snn.Leaky(beta=beta)
        self.fc2, self.lif2 = nn.Linear(hidden, n_out), snn.Leaky(beta=beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        out = []
        for x_t in x:
            spk1, mem1 = self.lif1(self.fc1(x_t), mem1)
            _, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(mem2)
        return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _measure.network_arguments(parser, rounds=15)
    args = parser.parse_args()

    import snntorch

    torch.manual_seed(0)
    net = Net(args.inputs, args.hidden, args.outputs)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: every round sees the same weights
    x = (torch.rand(args.steps, args.batch, args.inputs) < 0.05).float()
    y = torch.randint(0, args.outputs, (args.batch,))
    assert sg.from_native(net.lif1.spike_grad).params() == {"dampening": 1.0, "sharpness": 1.0}

    def loss() -> torch.Tensor:
        return nn.functional.cross_entropy(net(x).mean(0), y)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    variants = {
        "native": _measure.nothing,
        "sg atan": lambda: sg.patch(net, "atan", dampening=1.0, sharpness=1.0),
        "sg fsig": lambda: sg.patch(net, "fast_sigmoid", dampening=1.0, sharpness=1.0),
    }
    print(f"torch {torch.__version__}, snntorch {snntorch.__version__}, sg-stability {sg.__version__}, "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"model {args.inputs}->{args.hidden}->{args.outputs} Leaky, T={args.steps}, batch {args.batch}; "
          f"{args.rounds} rounds after {args.warmup} warm-up rounds")
    _measure.compare(variants, net, loss, step, args.rounds, args.warmup, baseline="native")


if __name__ == "__main__":
    main()
