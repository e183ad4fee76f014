"""What sg-stability is for, in one minute: a task where snnTorch's default surrogate trains poorly, trained
from the same initial weights with the default and with the surrogate ``sg.stabilize`` chooses (no training data,
one forward pass), over several seeds.

The task is the evidence harness's ``digits``: scikit-learn's 8x8 digits (shipped with scikit-learn, nothing is
downloaded), latency-coded over 20 steps, through Linear(64 -> 128) -> RLeaky(128, recurrent) -> a linear readout
averaged over the steps. Prints test accuracy per seed and the mean, and writes a PNG of the learning curves.

    python examples/demo.py                  # 5 seeds, about 15 s on 2 CPU cores
    python examples/demo.py --seeds 1 --epochs 2 --out /tmp/sg
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import sg_stability as sg


class DigitsRSNN(nn.Module):
    """Linear -> snnTorch RLeaky (leak 0.9, subtractive reset) -> readout averaged over every step."""

    def __init__(self, seed: int, inputs: int = 64, hidden: int = 128, classes: int = 10, gain: float = 3.0) -> None:
        import snntorch as snn

        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(inputs, hidden, bias=False)
        with torch.no_grad():
            self.fc.weight.mul_(gain)  # inputs strong enough that the recurrent layer fires
        self.lif = snn.RLeaky(beta=0.9, linear_features=hidden, reset_mechanism="subtract")
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spk, mem = self.lif.init_rleaky()
        outs = []
        for x_t in x:
            spk, mem = self.lif(self.fc(x_t), spk, mem)
            outs.append(spk)
        return self.out(torch.stack(outs)).mean(0)


def train(net: nn.Module, data: tuple, *, epochs: int, seed: int, label: str) -> list[float]:
    """Adam at 2e-3, batches of 64; the test accuracy after every epoch."""
    from tqdm import tqdm

    train_set, test_set = data
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    curve = []
    for _ in tqdm(range(epochs), desc=label, leave=False, disable=None):
        order = torch.randperm(train_set.y.numel(), generator=gen)
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(net(train_set.x[:, idx]), train_set.y[idx]).backward()
            opt.step()
        with torch.no_grad():
            curve.append(float((net(test_set.x).argmax(1) == test_set.y).float().mean()))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()

    start = time.perf_counter()
    curves: dict[str, list[list[float]]] = {"default": [], "stabilize": []}
    for seed in range(args.seeds):
        data = sg.datasets.digits(steps=20, seed=seed)
        train_set = sg.datasets.SpikeDataset(data.x[:, :args.train], data.y[:args.train], 10)
        test_set = sg.datasets.SpikeDataset(data.x[:, -300:], data.y[-300:], 10)
        default = DigitsRSNN(seed)
        chosen = copy.deepcopy(default)  # the same initial weights
        handle = sg.stabilize(chosen, train_set.x[:, :64], progress=False)  # one forward pass, no labels
        if seed == 0:
            native = sg.from_native(default.lif.spike_grad)
            print(f"snnTorch default: {native.family}(dampening={float(native.dampening):.3g}, "
                  f"sharpness={float(native.sharpness):.3g})")
            print(f"sg.stabilize:     {handle.choice.describe()}")
        curves["default"].append(train(default, (train_set, test_set), epochs=args.epochs, seed=seed,
                                       label=f"seed {seed} default"))
        curves["stabilize"].append(train(chosen, (train_set, test_set), epochs=args.epochs, seed=seed,
                                         label=f"seed {seed} stabilize"))
        print(f"seed {seed}: test accuracy default {curves['default'][-1][-1]:.3f}, "
              f"stabilize {curves['stabilize'][-1][-1]:.3f}")
        handle.remove()

    finals = {k: [c[-1] for c in v] for k, v in curves.items()}
    spread = {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in finals.items()}
    means = {k: statistics.mean(v) for k, v in finals.items()}
    print(f"mean over {args.seeds} seed(s): default {means['default']:.3f} ± {spread['default']:.3f}, "
          f"stabilize {means['stabilize']:.3f} ± {spread['stabilize']:.3f} "
          f"(gain {means['stabilize'] - means['default']:+.3f})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (name, runs), color in zip(curves.items(), ("tab:gray", "tab:blue"), strict=True):
        for k, curve in enumerate(runs):
            ax.plot(range(1, len(curve) + 1), curve, color=color, alpha=0.8,
                    label=("snnTorch default" if name == "default" else "sg.stabilize") if k == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title("digits, recurrent SNN: same initial weights, one curve per seed")
    ax.legend()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "demo.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"plot: {path}   ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
