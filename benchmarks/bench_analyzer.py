"""Analyzer cost on CPU.

1. The weight-only conditions (I, II, III, IV for fast_sigmoid, and the theory gain) for one recurrent layer of
   n neurons with 700 inputs, n = 1024 ... 8192. Target (issue 4): < 0.5 s at n = 1024.
2. sg.analyze with a sample batch on the SHD-sized network (700 -> 256 recurrent LIF -> 20, T = 100, batch 32),
   and sg.stabilize on it, per framework available.

    python -m benchmarks.bench_analyzer            # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings

import torch

import sg_stability as sg
from sg_stability import stability as st
from tests.zoo import shd_networks


def conditions(n: int, n_in: int = 700) -> float:
    g = torch.Generator().manual_seed(n)
    w_rec = (torch.rand(n, n, generator=g) * 2 - 1) * math.sqrt(6 / (2 * n))
    w_rec.fill_diagonal_(0)
    w_in = (torch.rand(n, n_in, generator=g) * 2 - 1) * math.sqrt(6 / (n + n_in))
    start = time.perf_counter()
    st.condition_i(n, 0.9, 1.0)
    st.condition_ii(n, n_in, float(w_in.var()))
    st.condition_iii(w_rec, st.Dynamics(0.9, 1.0))
    st.condition_iv("fast_sigmoid", w_rec, st.Dynamics(0.9, 1.0), w_in=w_in)
    st.theory_gain(sg.surrogates.get("fast_sigmoid"), w_rec, w_in, st.Dynamics(0.9, 1.0))
    return time.perf_counter() - start


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--hidden", type=int, default=shd_networks.N_REC, help="recurrent neurons of the SHD net")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats} runs")
    print(f"\n{'recurrent neurons':>18}{'conditions I-IV + theory gain, s':>36}")
    for n in args.sizes:
        t = statistics.median(conditions(n) for _ in range(args.repeats))
        note = f"   (target < 0.5 s: {'met' if t < 0.5 else 'MISSED'})" if n == 1024 else ""
        print(f"{n:>18}{t:>36.3f}{note}")
    x = shd_networks.sample(args.steps, args.batch)
    w = shd_networks.weights(n_rec=args.hidden)
    print(f"\nSHD-sized network (700 -> {args.hidden} -> 20), T = {args.steps}, batch {args.batch}:")
    print(f"{'framework':<14}{'analyze s':>11}{'stabilize s':>13}")
    for framework in shd_networks.available():
        net = shd_networks.BUILDERS[framework](w)
        t_analyze = timed(lambda net=net: sg.analyze(net, x), args.repeats)
        t_stabilize = timed(lambda net=net: sg.stabilize(net, x).remove(), 1)
        print(f"{framework:<14}{t_analyze:>11.2f}{t_stabilize:>13.1f}")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
