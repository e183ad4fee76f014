"""Predicted vs measured per-step gradient gain on random LIF networks (sg_stability.stability).

For every configuration (size, recurrent weight scale, threshold, reset, surrogate family) a random
RecurrentLIF layer (700 Poisson inputs at 5 %, T = 100, batch 16) is run and three gains are compared:

    theory     the paper's estimate from the weights alone (uniform membrane between the stationary extremes)
    data       the estimate from the membranes recorded on the batch (E[sigma'(v)^2] over the measured v)
    measured   the root mean-square row norm of the autograd Jacobian dy_{t+1}/dy_t (recurrent layers), or
               the layer-to-layer gradient ratio dI_next/dv (feed-forward layers into a 128-neuron layer)

and, for recurrent layers, the per-step growth of ||dL/dy_t|| over the whole sequence (BPTT). Relative error
= |predicted - measured| / measured. Target (issue 4): median error of the data-driven estimate <= 15 %.

The same comparison is then made in every framework available, on the recurrent layer of the SHD-style
network (tests/zoo/shd_networks.py) at 64 / 256 / 1024 neurons, three recurrent weight scales and every
family, analyzed by sg.analyze (the measurement there is autograd through the framework's own modules).

    python -m benchmarks.validate_stability                 # the full grid, about 5 minutes on 2 cores
    python -m benchmarks.validate_stability --quick         # a small grid (seconds)
    python -m benchmarks.validate_stability --plot out/validate_stability.png
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

import sg_stability as sg
from sg_stability import stability as st
from sg_stability import testing as sg_testing
from sg_stability.surrogates import families
from tests.zoo import shd_networks

RESETS = [("subtract", False), ("subtract", True), ("multiplicative", False), ("zero", False)]


def one(n: int, scale: float, threshold: float, reset: str, reset_grad: bool, family: str, recurrent: bool,
        steps: int, batch: int, seed: int) -> dict:
    torch.manual_seed(seed)
    layer = sg_testing.RecurrentLIF(700, n, leak=0.9, threshold=threshold, reset=reset, reset_grad=reset_grad,
                            recurrent=recurrent, surrogate=family, weight_scale=scale, input_scale=3.0)
    z = (torch.rand(steps, batch, 700) < 0.05).float()
    with torch.no_grad():
        _, membranes = layer(z)
    v = torch.stack(membranes[steps // 2:]) - threshold
    row = {"n": n, "scale": scale, "threshold": threshold, "reset": reset + ("+grad" if reset_grad else ""),
           "family": family, "kind": "recurrent" if recurrent else "feed-forward",
           "rate": float((v > 0).double().mean())}
    dynamics = st.Dynamics(layer.leak, threshold, reset, reset_grad=reset_grad)
    if recurrent:
        w = layer.w_rec.weight
        row["theory"] = st.theory_gain(layer.surrogate, w, layer.w_in.weight, dynamics)
        row["data"] = st.data_gain(layer.surrogate, v, w, dynamics)
        row["measured"] = sg_testing.measured_jacobian_gain(layer, z)
        row["bptt"] = sg_testing.growth_per_step(sg_testing.bptt_norms(layer, z), skip=steps // 2)
    else:
        upper = torch.empty(128, n).uniform_(-1, 1) * (scale * (6.0 / (n + 128)) ** 0.5)
        _, sg2, _ = st.theory_moments(layer.surrogate, None, layer.w_in.weight, dynamics)
        row["theory"] = st.layer_gain(upper, sg2)
        row["data"] = st.layer_gain(upper, st.data_moments(layer.surrogate, v)[1])
        row["measured"] = sg_testing.measured_layer_gain(layer, upper, z)
        row["bptt"] = float("nan")
    return row


def framework_row(framework: str, n: int, scale: float, family: str, seed: int, steps: int, batch: int) -> dict:
    """The recurrent layer of the SHD-style network built in a framework, analyzed with sg.analyze."""
    w = shd_networks.weights(seed=seed, n_rec=n, recurrent_scale=scale)
    x = shd_networks.sample(steps, batch, seed=seed + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = shd_networks.BUILDERS[framework](w)
        layer = sg.analyze(net, x, surrogate=family, probes=8)["lif_rec"]
    return {"n": n, "scale": scale, "threshold": 1.0, "reset": framework, "family": family,
            "kind": f"{framework} (recurrent)", "rate": layer.firing_rate, "theory": layer.theory_gain,
            "data": layer.data_gain, "measured": layer.measured_gain,
            "bptt": layer.bptt_growth if layer.bptt_growth is not None else float("nan")}


def rel(a: float, b: float) -> float:
    return abs(a - b) / b if b > 0 else float("inf")


def summarize(rows: list[dict], key: str, label: str) -> None:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    print(f"\n{label:<26}{'configs':>8}{'median rate':>12}{'data err (median)':>19}{'data err (max)':>16}"
          f"{'theory err (median)':>21}{'bptt/measured':>15}")
    for name, rs in groups.items():
        de = [rel(r["data"], r["measured"]) for r in rs]
        te = [rel(r["theory"], r["measured"]) for r in rs]
        bias = [r["bptt"] / r["measured"] for r in rs if r["bptt"] == r["bptt"] and r["measured"] > 0]
        print(f"{name:<26}{len(rs):>8}{statistics.median(r['rate'] for r in rs):>12.3f}"
              f"{statistics.median(de):>18.1%}{max(de):>16.1%}{statistics.median(te):>20.1%}"
              f"{(statistics.median(bias) if bias else float('nan')):>15.3f}")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, key in zip(axes, ("data", "theory"), strict=True):
        for kind, marker in [("recurrent", "o"), ("feed-forward", "^")] + [
                (k, "s") for k in sorted({r["kind"] for r in rows}) if k not in ("recurrent", "feed-forward")]:
            rs = [r for r in rows if r["kind"] == kind]
            ax.scatter([r["measured"] for r in rs], [r[key] for r in rs], s=10, marker=marker, alpha=0.6,
                       label=kind)
        lim = [min(r["measured"] for r in rows) * 0.8, max(r["measured"] for r in rows) * 1.2]
        ax.plot(lim, lim, "k--", lw=1, label="prediction = measurement")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("measured gain (autograd)")
        ax.set_ylabel(f"{key} prediction")
        ax.set_title(f"{key}-driven estimate" if key == "data" else "paper's theory (weights only)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small grid, for tests")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    if args.quick:
        sizes, scales, thresholds, fams, resets, steps, batch = [64], [2.0], [1.0], ["fast_sigmoid", "gaussian"], \
            RESETS[:2], 40, 8
    else:
        sizes, scales, thresholds, fams, resets, steps, batch = [64, 256, 1024], [1.0, 3.0], [0.5, 1.0], \
            families(), RESETS, 100, 16
    grid = [(n, s, th, r, rg, f, True) for n, s, th, (r, rg), f in
            itertools.product(sizes, scales, thresholds, resets, fams)]
    grid += [(n, s, th, "subtract", False, f, False) for n, s, th, f in
             itertools.product(sizes, scales, thresholds, fams)]
    rows = [one(*cfg, steps=steps, batch=batch, seed=i) for i, cfg in enumerate(tqdm(grid, file=sys.stderr))]
    fw_sizes, fw_scales = ([64], [4.0]) if args.quick else ([64, 256, 1024], [2.0, 4.0, 6.0])
    fw_grid = list(itertools.product(shd_networks.available(), fw_sizes, fw_scales, fams))
    fw_rows = [framework_row(f, n, sc, fam, i, steps, batch)
               for i, (f, n, sc, fam) in enumerate(tqdm(fw_grid, file=sys.stderr))]
    print(f"torch {torch.__version__}; {len(rows)} reference + {len(fw_rows)} framework configurations; "
          f"leak 0.9, 700 inputs at 5 %, T = {steps}, batch {batch}; families: {', '.join(fams)}")
    summarize(rows + fw_rows, "kind", "layer kind")
    summarize(rows, "reset", "reset")
    summarize([r for r in rows if r["kind"] == "recurrent"], "family", "family (rec.)")
    if fw_rows:
        print("\n(framework rows: the SHD-style network of tests/zoo/shd_networks.py, analyzed by sg.analyze; "
              "Norse's measured gain is the BPTT growth, its synaptic current is not in the data-driven model)")
    everything = rows + fw_rows
    de = [rel(r["data"], r["measured"]) for r in everything]
    te = [rel(r["theory"], r["measured"]) for r in everything]
    print(f"\nALL: median relative error data-driven {statistics.median(de):.1%} (target <= 15 %: "
          f"{'met' if statistics.median(de) <= 0.15 else 'MISSED'}), theory {statistics.median(te):.1%}")
    if args.plot:
        plot(everything, args.plot)


if __name__ == "__main__":
    main()
