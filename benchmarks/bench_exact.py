"""The exact event-driven QIF simulator (``sg_stability.exact``, issue 24): speed, gradient accuracy, continuity.

1. Speed (target: forward + backward <= 2 s on 2 cores): a 100-neuron recurrent network, batch 32, 50 input spikes
   per sample over 20 channels, at three activity levels; the median of 5 rounds. Beside it, the same network in
   discrete time (``sg_stability.neurons.QIF``, 400 Euler steps over the trial, surrogate gradient), the usual
   way to train it, measured in the same run.
2. Gradients (target: relative error <= 1e-4, float64): autograd against central finite differences on random
   small feed-forward and recurrent networks, every weight.
3. Continuity (target: no jump larger than 10x the median step): the loss along 100 random lines through a spike
   crossing, QIF and LIF in the same simulator; a jump is a step that stays that large under 40 bisections
   (``exact.line_jumps``). For LIF also every step above the median, bisected 20 times.

    python -m benchmarks.bench_exact            # about 6 minutes on 2 cores
    python -m benchmarks.bench_exact --quick    # about 30 s
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import sg_stability.exact as ex
from sg_stability.neurons import QIF
from tests.zoo.exact_lines import crossing_lines


def exact_round(mean: float, std: float) -> tuple[float, float, float]:
    net = ex.Network([20, 100], recurrent=True, duration=4.0, init_mean=mean, init_std=std, seed=0)
    g = torch.Generator().manual_seed(0)
    inputs = ex.SpikeTrains(torch.rand(32, 50, generator=g, dtype=torch.float64) * 4.0,
                            torch.randint(0, 20, (32, 50), generator=g))
    t0 = time.perf_counter()
    run = net(inputs)
    run.first.sum().backward()
    return time.perf_counter() - t0, float(run.trial_counts.sum(1).double().mean()), float(run.first.max().detach())


class Discrete(nn.Module):
    """The same 20 -> 100 recurrent QIF network in discrete time: 400 Euler steps over the trial."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.rec = nn.Linear(20, 100, bias=False), nn.Linear(100, 100, bias=False)
        self.qif = QIF(tau=100.0, rheobase=1.0)  # dt / tau = 0.01: 400 steps = 4 tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v, s, out = None, torch.zeros(x.shape[1], 100), []
        for t in range(x.shape[0]):
            s, v = self.qif(self.fc(x[t]) + self.rec(s), v)
            out.append(s)
        return torch.stack(out)


def discrete_round() -> float:
    torch.manual_seed(0)
    net = Discrete()
    x = torch.zeros(400, 32, 20)
    g = torch.Generator().manual_seed(0)
    x[torch.randint(0, 400, (32 * 50,), generator=g), torch.arange(32).repeat_interleave(50),
      torch.randint(0, 20, (32 * 50,), generator=g)] = 1.0
    t0 = time.perf_counter()
    net(x).sum().backward()
    return time.perf_counter() - t0


def speed(rounds: int) -> None:
    print("1. speed: 100 recurrent neurons, batch 32, 50 input spikes per sample (target: forward + backward <= 2 s)")
    discrete = statistics.median(discrete_round() for _ in range(rounds))
    for mean, std in ((0.0, 2.0), (10.0, 4.0), (30.0, 6.0)):
        got = [exact_round(mean, std) for _ in range(rounds)]
        seconds = statistics.median(g[0] for g in got)
        print(f"   weights N({mean:g}/n, {std:g}^2/n): {got[0][1]:7.1f} trial spikes/sample, forward + backward "
              f"{seconds:.3f} s ({'meets' if seconds <= 2.0 else 'MISSES'} the target); discrete-time QIF, 400 steps: "
              f"{discrete:.3f} s (ratio {seconds / discrete:.2f})")


def gradients(networks: int) -> None:
    worst = 0.0
    for seed in range(networks):
        g = torch.Generator().manual_seed(seed)
        net = ex.Network([5, 7, 3], recurrent=[seed % 2 == 1] * 2, duration=3.0, spikes=2, init_mean=6.0,
                         init_std=3.0, seed=seed)
        inputs = ex.SpikeTrains.from_steps((torch.rand(10, 3, 5, generator=g) < 0.3).float(), dt=0.3)
        targets = torch.rand(3, 3, 2, generator=g, dtype=torch.float64) * 3.0

        def loss(net: ex.Network = net, inputs: ex.SpikeTrains = inputs, targets: torch.Tensor = targets
                 ) -> torch.Tensor:
            return ex.spike_time_loss(net(inputs), targets)

        loss().backward()
        for p in net.parameters():
            for i in range(p.numel()):
                with torch.no_grad():
                    p.view(-1)[i] += 1e-6
                    up = float(loss().detach())
                    p.view(-1)[i] -= 2e-6
                    down = float(loss().detach())
                    p.view(-1)[i] += 1e-6
                fd = (up - down) / 2e-6
                worst = max(worst, abs(float(p.grad.view(-1)[i]) - fd) / max(abs(fd), 1e-3))
    print(f"2. gradients: {networks} random networks, every weight: worst relative error to central finite "
          f"differences {worst:.2e} ({'meets' if worst <= 1e-4 else 'MISSES'} the target 1e-4)")


def continuity(lines: int) -> None:
    print(f"3. continuity: {lines} random lines through a spike crossing, 31 points each")
    qif = [ex.line_jumps(f, points=31) for f in crossing_lines("qif", lines)]
    print(f"   QIF: {sum(bool(r.jumps) for r in qif)} of {lines} lines have a jump larger than 10x the median step "
          f"(target 0)")
    lif_lines = crossing_lines("lif", lines)
    lif = [ex.line_jumps(f, points=31) for f in lif_lines]
    print(f"   LIF: {sum(bool(r.jumps) for r in lif)} of {lines} lines have a jump larger than 10x the median step")
    lif_any = [ex.line_jumps(f, points=31, jump_factor=1.0, bisections=20) for f in lif_lines]
    jumps = [len(r.jumps) for r in lif_any]
    print(f"   LIF: {sum(j > 0 for j in jumps)} of {lines} lines have a jump larger than the median step "
          f"({statistics.mean(jumps):.1f} such jumps per line)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 rounds, 2 networks, 10 lines")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    speed(2 if args.quick else 5)
    gradients(2 if args.quick else 6)
    continuity(10 if args.quick else 100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
