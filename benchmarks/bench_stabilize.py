"""Wall time of ``sg.stabilize`` (analysis only), ``sg.candidates`` and ``sg.analyze`` on two networks:
the quickstart's (snnTorch 64 -> 128 Leaky -> 10 Leaky, 25 steps) and a 128-neuron snnTorch RLeaky layer on a
64-sample batch of 64 steps. The target: stabilize <= 2 s on 2 cores.

    python -m benchmarks.bench_stabilize [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import sg_stability as sg
from benchmarks.evidence.nets import Arch, build
from examples.quickstart import DigitsSNN, load_digits, spike_trains


def timed(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if isinstance(out, sg.PatchHandle):
            out.remove()
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    x_train = load_digits()[0]
    nets = {
        "quickstart (64 -> 128 -> 10 Leaky, T=25, batch 256)":
            (DigitsSNN(), spike_trains(x_train[:256], 25, torch.Generator().manual_seed(7)),
             lambda m, x: m(x)),
        "RLeaky 128 (T=64, batch 64)":
            (build("snntorch", Arch("rec", 40, (128,), 10, input_gain=3.0), seed=0, window=64),
             (torch.rand(64, 64, 40, generator=torch.Generator().manual_seed(1)) < 0.1).float(), None),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.rounds} rounds (s)")
    print(f"{'network':<52}{'analyze':>9}{'candidates':>12}{'stabilize':>11}{'target':>8}")
    for name, (net, x, run) in nets.items():
        a = timed(lambda net=net, x=x, run=run: sg.analyze(net, x, run=run), args.rounds)
        c = timed(lambda net=net, x=x, run=run: sg.candidates(net, x, run=run), args.rounds)
        s = timed(lambda net=net, x=x, run=run: sg.stabilize(net, x, run=run), args.rounds)
        print(f"{name:<52}{a:>9.2f}{c:>12.2f}{s:>11.2f}{'<= 2':>8}{'  ok' if s <= 2 else '  MISSED'}")


if __name__ == "__main__":
    main()
