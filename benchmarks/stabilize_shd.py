"""sg.stabilize on the paper's SHD-sized recurrent network (700 -> 256 recurrent LIF -> 20 LIF), per framework.

For each framework available, the same weights are built into its own modules (tests/zoo/shd_networks.py).
The framework's default surrogate and the surrogate chosen by sg.stabilize are compared on a gradient injected
at the last of 100 steps: its norm at every earlier step, relative to the last step, and its growth per step.
The criterion: with stabilize, the gradient does not grow going back in time (BPTT growth <= 1.01 per step).
Holding it flat (growth exactly 1) is not the aim: on the evidence harness that trained worse (README).

    python -m benchmarks.stabilize_shd                 # about a minute on 2 cores
    python -m benchmarks.stabilize_shd --plot out/stabilize_shd.png
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

import sg_stability as sg
from tests.zoo import shd_networks


def row(framework: str, label: str, report: sg.StabilityReport, seconds: float | None) -> dict:
    layer = report.layers[0]
    return {"framework": framework, "surrogate": label, "rate": layer.firing_rate, "data": layer.data_gain,
            "measured": layer.measured_gain, "bptt": layer.bptt_growth, "spread": layer.gradient_spread,
            "norms": layer.gradient_norms, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=shd_networks.N_REC)
    parser.add_argument("--family", default="fast_sigmoid")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    w = shd_networks.weights(n_rec=args.hidden)
    x = shd_networks.sample(args.steps, args.batch)
    rows = []
    for framework in shd_networks.available():
        net = shd_networks.BUILDERS[framework](w)
        rows.append(row(framework, "framework default", sg.analyze(net, x), None))
        start = time.perf_counter()
        handle = sg.stabilize(net, x, family=args.family)
        seconds = time.perf_counter() - start
        chosen = handle.report.layers[0].surrogate
        label = f"stabilize: {chosen.family}(gamma={float(chosen.dampening):.3g}, beta={float(chosen.sharpness):.3g})"
        rows.append(row(framework, label, handle.report, seconds))
        handle.remove()
    print(f"torch {torch.__version__}; {shd_networks.N_IN} -> {args.hidden} recurrent LIF -> {shd_networks.N_OUT}, "
          f"T = {args.steps}, batch {args.batch}; recurrent layer shown")
    print(f"\n{'framework':<14}{'surrogate':<50}{'rate':>6}{'data g':>8}{'meas. g':>8}{'BPTT g':>8}"
          f"{'spread':>10}{'no growth':>11}{'time s':>8}")
    for r in rows:
        def f(v: float | None, fmt: str = ".3f") -> str:
            return "-" if v is None else format(v, fmt)

        ok = r["bptt"] is not None and r["bptt"] <= 1.01
        print(f"{r['framework']:<14}{r['surrogate']:<50}{r['rate']:>6.3f}{f(r['data']):>8}{f(r['measured']):>8}"
              f"{f(r['bptt']):>8}{f(r['spread'], '.3g'):>10}{('yes' if ok else 'NO'):>11}"
              f"{f(r['seconds'], '.1f'):>8}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.5))
        for r in rows:
            if r["norms"]:
                style = "-" if r["surrogate"].startswith("stabilize") else ":"
                ax.plot(r["norms"], style, label=f"{r['framework']}: {r['surrogate'].split(':')[0]}")
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_ylabel("||dL/dI_t|| / ||dL/dI_T||")
        ax.set_title("gradient injected at the last step, going back in time (recurrent layer)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
