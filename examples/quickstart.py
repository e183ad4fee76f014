"""Quickstart: patch an snnTorch network's surrogate gradient in one call.

Trains a small snnTorch network on scikit-learn's 8x8 digits (shipped with scikit-learn, no download),
encoded as Poisson spike trains: once with snnTorch's default surrogate, then -- from the same initial
weights -- after ``sg.patch(net, surrogate="fast_sigmoid", ...)``. Prints accuracy and firing rate of
both runs and writes a PNG comparing the two surrogate shapes.

    python examples/quickstart.py            # ~30 s on 2 CPU cores
    python examples/quickstart.py --epochs 1 --out /tmp/sg  # faster
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch import nn

import sg_stability as sg


def load_digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0  # pixel intensities in [0, 1]
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n_test = len(y) // 5
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def spike_trains(x: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """Poisson (Bernoulli) rate coding: [B, 64] intensities -> [T, B, 64] spikes."""
    return (torch.rand(steps, *x.shape, generator=generator) < x).float()


class DigitsSNN(nn.Module):
    """64 -> 128 Leaky -> 10 Leaky, explicit membranes (the snnTorch tutorial style)."""

    def __init__(self, hidden: int = 128, beta: float = 0.9) -> None:
        super().__init__()
        import snntorch as snn

        self.fc1 = nn.Linear(64, hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(hidden, 10)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, spikes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        counts, hidden_spikes = 0.0, 0.0
        for x_t in spikes:
            spk1, mem1 = self.lif1(self.fc1(x_t), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            counts = counts + spk2
            hidden_spikes = hidden_spikes + spk1.mean()
        return counts, hidden_spikes / spikes.shape[0]  # output spike counts, hidden firing rate


def train_and_evaluate(net: DigitsSNN, data, *, epochs: int, steps: int, label: str, seed: int = 0) -> dict:
    from tqdm import tqdm

    x_train, y_train, x_test, y_test = data
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    batch = 64
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(y_train), generator=gen)
        bar = tqdm(range(0, len(order), batch), desc=f"{label} epoch {epoch + 1}/{epochs}", leave=False,
                   disable=None)  # no bar when the output is not a terminal
        for i in bar:
            idx = order[i : i + batch]
            counts, _ = net(spike_trains(x_train[idx], steps, gen))
            loss = nn.functional.cross_entropy(counts, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    with torch.no_grad():
        counts, rate = net(spike_trains(x_test, steps, torch.Generator().manual_seed(123)))
    return {
        "accuracy": (counts.argmax(1) == y_test).float().mean().item(),
        "hidden_rate": rate.item(),
        "output_rate": (counts / steps).mean().item(),
        "seconds": time.perf_counter() - start,
    }


def plot_surrogates(native: sg.surrogates.Surrogate, ours: sg.surrogates.Surrogate, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = torch.linspace(-2.0, 2.0, 801, dtype=torch.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for s, label, style in [(native, "snnTorch default: atan(alpha=2)", "-"), (ours, "patched", "--")]:
        d = s.describe()
        text = f"{label}\n  {s.family}: peak {d.peak:.2f}, HWHM {d.hwhm:.3f}, area {d.area:.2f}"
        left.plot(v, s.derivative(v), style, lw=2, label=text)
        right.plot(v, s.primitive(v), style, lw=2, label=label)
    right.step(v, (v > 0).double(), where="post", color="gray", lw=1, label="Heaviside (forward)")
    left.set(title="surrogate gradient  sigma'(v)", xlabel="v = membrane - threshold")
    right.set(title="its primitive sigma(v) vs the spike", xlabel="v = membrane - threshold")
    left.legend(fontsize=7, loc="upper left")
    right.legend(fontsize=7, loc="upper left")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=25, help="time steps per sample")
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--surrogate", default="fast_sigmoid")
    parser.add_argument("--dampening", type=float, default=1.0)
    parser.add_argument("--sharpness", type=float, default=1.0)
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = load_digits()
    initial = DigitsSNN()
    default_net = copy.deepcopy(initial)  # same initial weights for both runs
    patched_net = copy.deepcopy(initial)

    print(f"digits: {len(data[1])} train / {len(data[3])} test samples, {args.steps} time steps each")
    # before training: how do gradients flow through this network with snnTorch's default surrogate?
    report = sg.analyze(initial, spike_trains(data[0][:128], args.steps, torch.Generator().manual_seed(7)))
    print(report)
    print(f"wrote {report.plot(args.out / 'quickstart_analysis.png')}\n")
    before = train_and_evaluate(default_net, data, epochs=args.epochs, steps=args.steps, label="default")

    handle = sg.patch(patched_net, surrogate=args.surrogate, dampening=args.dampening, sharpness=args.sharpness)
    print(handle.summary())
    after = train_and_evaluate(patched_net, data, epochs=args.epochs, steps=args.steps, label="patched")

    print()
    rows = [("snnTorch default: atan(alpha=2)", before),
            (f"sg.patch: {args.surrogate}(dampening={args.dampening:g}, sharpness={args.sharpness:g})", after)]
    width = max(len(name) for name, _ in rows) + 2
    print(f"{'run':<{width}}{'test accuracy':>14}{'hidden rate':>13}{'output rate':>13}{'train s':>9}")
    for name, r in rows:
        print(f"{name:<{width}}{r['accuracy']:>14.3f}{r['hidden_rate']:>13.3f}{r['output_rate']:>13.3f}"
              f"{r['seconds']:>9.1f}")

    native = sg.from_native(default_net.lif1.spike_grad)  # read snnTorch's own surrogate
    png = args.out / "quickstart_surrogates.png"
    plot_surrogates(native, handle.surrogates["lif1"], png)
    print(f"\nwrote {png}")
    handle.remove()  # the original snnTorch closures are back
    assert not isinstance(patched_net.lif1.spike_grad, sg.surrogates.Surrogate)


if __name__ == "__main__":
    main()
