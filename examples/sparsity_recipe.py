"""The paper's recipe at small scale: start with a high firing rate, then introduce a sparsity loss gradually.

Three runs of the same snnTorch network (64 -> 128 Leaky -> 10 Leaky) on scikit-learn's 8x8 digits as Poisson
spike trains (shipped with scikit-learn, no download), from the same initial weights:

    recipe      sg.init.calibrate_rate to a hidden rate of 0.5 (high initial rate), then the squared sparsity
                loss towards a rate of 0.05 with the paper's linear ramp (0 until E/5, full weight from 3E/5)
    fixed       the same sparsity loss at full weight from the first epoch (the usual fixed-weight practice)
    none        no sparsity loss

Every run uses the paper's surrogate (``sg.patch(net, "fast_sigmoid")``) and attaches a RateMonitor (the
differentiable rates) and Diagnostics (per-epoch rate, dead fraction, gradient per step). Prints final test
accuracy and hidden firing rate, and writes a plot of rate and accuracy per epoch.

    python examples/sparsity_recipe.py                  # about 35 s on 2 CPU cores
    python examples/sparsity_recipe.py --epochs 3       # faster
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from quickstart import DigitsSNN, load_digits, spike_trains
from torch import nn

import sg_stability as sg
from sg_stability.schedules import Constant, LinearRamp
from sg_stability.sparsity import RateMonitor, SparsityLoss


def evaluate(net: DigitsSNN, x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float]:
    with torch.no_grad():
        counts, rate = net(spike_trains(x, steps, torch.Generator().manual_seed(123)))
    return float((counts.argmax(1) == y).float().mean()), float(rate)


def train(net: DigitsSNN, data, *, epochs: int, steps: int, loss: SparsityLoss | None, label: str,
          seed: int = 0) -> dict[str, list[float]]:
    from tqdm import tqdm

    x_train, y_train, x_test, y_test = data
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    history: dict[str, list[float]] = {"accuracy": [], "rate": [], "weight": []}
    acc, rate = evaluate(net, x_test, y_test, steps)
    history["accuracy"].append(acc)
    history["rate"].append(rate)
    history["weight"].append(loss.value if loss else 0.0)
    with RateMonitor(net, layers="lif1") as monitor, sg.diagnostics.Diagnostics(net) as diag:
        for _epoch in tqdm(range(epochs), desc=label, leave=False, disable=None):
            order = torch.randperm(len(y_train), generator=gen)
            for i in range(0, len(order), 64):
                idx = order[i : i + 64]
                monitor.reset()
                counts, _ = net(spike_trains(x_train[idx], steps, gen))
                total = nn.functional.cross_entropy(counts, y_train[idx])
                if loss is not None:
                    total = total + loss(monitor)
                optimizer.zero_grad()
                total.backward()
                optimizer.step()
                diag.end_batch()
            diag.end_epoch()
            if loss is not None:
                loss.step()
            acc, rate = evaluate(net, x_test, y_test, steps)
            history["accuracy"].append(acc)
            history["rate"].append(rate)
            history["weight"].append(loss.value if loss else 0.0)
        history["summary"] = [diag.summary()]  # type: ignore[list-item]
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--steps", type=int, default=20, help="time steps per sample")
    parser.add_argument("--target", type=float, default=0.05, help="sparsity target rate")
    parser.add_argument("--strength", type=float, default=20.0, help="full weight of the sparsity loss")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()

    torch.manual_seed(0)
    data = load_digits()
    initial = DigitsSNN()
    calibrated = copy.deepcopy(initial)
    sample = spike_trains(data[0][:256], args.steps, torch.Generator().manual_seed(7))
    init = sg.init.calibrate_rate(calibrated, sample, target_rate=0.5, run=lambda m, x: m(x))
    print(init)

    runs = {
        "recipe: high initial rate + gradual sparsity": (
            calibrated, SparsityLoss("squared", args.target, weight=args.strength,
                                     schedule=LinearRamp(args.epochs))),
        "fixed-weight sparsity": (copy.deepcopy(initial), SparsityLoss("squared", args.target, weight=args.strength,
                                                                       schedule=Constant(1.0))),
        "no sparsity loss": (copy.deepcopy(initial), None),
    }
    results = {}
    for name, (net, loss) in runs.items():
        with sg.patch(net, "fast_sigmoid"):  # the paper's surrogate, the same in every run
            results[name] = train(net, data, epochs=args.epochs, steps=args.steps, loss=loss, label=name)

    width = max(map(len, results)) + 2
    print(f"\n{'run':<{width}}{'test accuracy':>14}{'hidden rate':>13}{'initial rate':>14}")
    for name, h in results.items():
        print(f"{name:<{width}}{h['accuracy'][-1]:>14.3f}{h['rate'][-1]:>13.3f}{h['rate'][0]:>14.3f}")
    print("\ndiagnostics of the recipe run, last epoch:\n" + results[next(iter(results))]["summary"][0])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for name, h in results.items():
        epochs = range(len(h["rate"]))
        ax_rate.plot(epochs, h["rate"], marker=".", label=name)
        ax_acc.plot(epochs, h["accuracy"], marker=".", label=name)
    ax_rate.axhline(args.target, color="k", ls=":", lw=1, label=f"target rate {args.target:g}")
    ax_rate.set_title("hidden firing rate (test set)")
    ax_acc.set_title("test accuracy")
    for ax in (ax_rate, ax_acc):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = args.out / "sparsity_recipe.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
