"""torch.compile with learnable surrogate parameters: graph breaks and the compiled training step, against the same
network with float parameters, measured in the same run.

The range check of a learnable dampening/sharpness reads a value back from the device; inside a compiled graph it
used to break the graph twice per neuron and step (20 breaks for 10 steps of 2 layers). It is skipped there now.

    python -m benchmarks.bench_compile                      # aot_eager backend, 30 steps
    python -m benchmarks.bench_compile --backend inductor --steps 50
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from torch import nn

import sg_stability as sg


class Net(nn.Module):
    """snnTorch 64 -> 128 Leaky -> 10 Leaky, stepped over time (the tutorial style)."""

    def __init__(self) -> None:
        import snntorch as snn

        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.lif1 = nn.Linear(64, 128), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(128, 10), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m1, m2, out = self.lif1.init_leaky(), self.lif2.init_leaky(), []
        for x_t in x:
            s1, m1 = self.lif1(self.fc1(x_t), m1)
            s2, m2 = self.lif2(self.fc2(s1), m2)
            out.append(s2)
        return torch.stack(out)


def measure(learnable: bool, backend: str, steps: int, x: torch.Tensor) -> tuple[int, float]:
    net = Net()
    dampening = nn.Parameter(torch.tensor(0.5)) if learnable else 0.5
    sg.patch(net, surrogate=sg.surrogates.get("fast_sigmoid", dampening=dampening))
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        breaks = torch._dynamo.explain(net)(x).graph_break_count
        torch._dynamo.reset()
        compiled = torch.compile(net, backend=backend)
        for _ in range(3):  # compile and warm up
            compiled(x).sum().backward()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            compiled(x).sum().backward()
            times.append(time.perf_counter() - start)
    return breaks, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="aot_eager")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--time", type=int, default=10)
    args = parser.parse_args()
    x = (torch.rand(args.time, 32, 64, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    results = {kind: measure(kind == "learnable", args.backend, args.steps, x) for kind in ("float", "learnable")}
    print(f"torch.compile(backend={args.backend!r}), {args.time} steps x batch 32, "
          f"median of {args.steps} training steps")
    for kind, (breaks, seconds) in results.items():
        print(f"  {kind:<10} graph breaks {breaks:>3}   {seconds * 1000:7.2f} ms/step")
    print(f"time ratio learnable / float: {results['learnable'][1] / results['float'][1]:.2f}")


if __name__ == "__main__":
    main()
