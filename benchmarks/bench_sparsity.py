"""Cost of rate collection + sparsity loss + diagnostics in a training step, per framework, on CPU.

Per framework: the SHD-style network of shd_networks.py (700 -> 256 recurrent LIF -> 20 LIF, each framework's
own modules), T = 100, batch 64, full training step (forward, loss, backward, optimizer step):

    plain                      cross-entropy only
    monitor + loss + diag      RateMonitor on every layer, the paper's squared sparsity loss (linear ramp, at full
                               weight), Diagnostics (spike counts, active region, gradient per time step)

Targets (issue 5): time <= 1.10 and peak memory <= 1.05 against plain. Method: benchmarks/_measure.py.

    python -m benchmarks.bench_sparsity                  # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import warnings
from collections.abc import Iterator

from benchmarks import _measure

_measure.reexec_with_fixed_mmap_threshold()

import torch  # noqa: E402
from torch import nn  # noqa: E402

import sg_stability as sg  # noqa: E402
from sg_stability.schedules import Constant  # noqa: E402
from sg_stability.sparsity import RateMonitor, SparsityLoss  # noqa: E402
from tests.zoo import shd_networks  # noqa: E402

TARGETS = {"time": 1.10, "memory": 1.05}


def run_case(framework: str, args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    net = shd_networks.BUILDERS[framework](shd_networks.weights(n_rec=args.hidden))
    handle = sg.patch(net, "fast_sigmoid", builtin=False)  # the diagnostics see the active region
    x = shd_networks.sample(args.steps, args.batch)
    y = torch.randint(0, shd_networks.N_OUT, (args.batch,))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: every round sees the same weights
    state: dict[str, object] = {}
    sparsity = SparsityLoss("squared", 0.02, schedule=Constant(1.0))

    @contextlib.contextmanager
    def collection() -> Iterator[None]:
        with RateMonitor(net) as monitor, sg.diagnostics.Diagnostics(net) as diag:
            state.update(monitor=monitor, diag=diag)
            try:
                yield
            finally:
                state.clear()

    def loss() -> torch.Tensor:
        monitor = state.get("monitor")
        if isinstance(monitor, RateMonitor):
            monitor.reset()
        total = nn.functional.cross_entropy(net(x).mean(0), y)
        if isinstance(monitor, RateMonitor):
            total = total + sparsity(monitor)
        return total

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()
        diag = state.get("diag")
        if diag is not None:
            diag.end_batch()  # type: ignore[attr-defined]

    variants = {"plain": _measure.nothing, "monitor + loss + diag": collection}
    version = __import__("importlib.metadata").metadata.version(framework)
    print(f"\n=== {framework} {version}: 700->{args.hidden} recurrent->20, T={args.steps}, batch {args.batch}, "
          f"{args.rounds} rounds after {args.warmup} warm-up rounds")
    _measure.compare(variants, net, loss, step, args.rounds, args.warmup, baseline="plain", targets=TARGETS)
    handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=shd_networks.N_REC)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, sg-stability {sg.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for framework in shd_networks.available():
            run_case(framework, args)


if __name__ == "__main__":
    main()
