"""Let training decide the surrogate, at a thirteenth of a grid search's cost: ``sg.stabilize`` with your batches.

The quickstart's snnTorch network (64 -> 128 Leaky -> 10 Leaky) on scikit-learn's 8x8 digits as Poisson spike
trains (shipped with scikit-learn, no download). ``sg.stabilize(net, sample, batches=..., loss_fn=...)`` races
the stability analysis' candidates (``sg.candidates``, snnTorch's own atan among them) on the training split,
scored on a validation split, with a progress bar; it prints the race and writes its plot. Then the chosen
surrogate and snnTorch's default are each trained from the same initial weights and tested.

    python examples/tune_surrogate.py                 # about a minute on 2 CPU cores
    python examples/tune_surrogate.py --epochs 2      # faster
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from quickstart import DigitsSNN, load_digits, spike_trains, train_and_evaluate
from torch import nn

import sg_stability as sg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="time steps per sample")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = load_digits()
    n_val = len(y_train) // 5
    gen = torch.Generator().manual_seed(1)
    # fixed spike trains, so that every candidate sees the same batches
    train_x = spike_trains(x_train[n_val:], args.steps, gen)
    val_batches = [(spike_trains(x_train[:n_val], args.steps, gen), y_train[:n_val])]
    batches = [(train_x[:, i:i + 64], y_train[n_val:][i:i + 64]) for i in range(0, train_x.shape[1], 64)]

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        counts, _ = model(batch[0])
        return nn.functional.cross_entropy(counts, batch[1])

    def accuracy(model: nn.Module, val: list) -> float:
        (x, y), = val
        return float((model(x)[0].argmax(1) == y).float().mean())

    initial = DigitsSNN()
    net = copy.deepcopy(initial)
    handle = sg.stabilize(net, train_x[:, :256], batches=batches, loss_fn=loss_fn, val_batches=val_batches,
                          score=accuracy, epochs=args.epochs, lr=2e-3, run=lambda m, x: m(x))
    print(handle.race)
    print(f"wrote {handle.race.plot(args.out / 'tune_surrogate.png')}")
    data = (x_train, y_train, x_test, y_test)
    chosen = train_and_evaluate(net, data, epochs=args.epochs, steps=args.steps, label="chosen")
    default = train_and_evaluate(copy.deepcopy(initial), data, epochs=args.epochs, steps=args.steps,
                                 label="default")
    print(f"\n{'run':<48}{'test accuracy':>14}{'hidden rate':>13}")
    print(f"{'snnTorch default: atan(alpha=2)':<48}{default['accuracy']:>14.3f}{default['hidden_rate']:>13.3f}")
    print(f"{'sg.stabilize race: ' + handle.race.best.label:<48}{chosen['accuracy']:>14.3f}"
          f"{chosen['hidden_rate']:>13.3f}")
    print(f"race cost: {handle.race.cost_runs:.2f} full runs, {handle.race.seconds:.1f} s")


if __name__ == "__main__":
    main()
