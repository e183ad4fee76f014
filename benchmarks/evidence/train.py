"""One training run: seeded, Adam, cross-entropy on the readout; returns the numbers the harness records."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.evidence.nets import build
from benchmarks.evidence.tasks import Task, splits
from sg_stability.datasets import SpikeDataset


def batches(data: SpikeDataset, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(data.y.numel(), generator=torch.Generator().manual_seed(seed))
    return [(data.x[:, order[i:i + size]], data.y[order[i:i + size]]) for i in range(0, len(order), size)]


def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


@torch.no_grad()
def evaluate(model: nn.Module, data: SpikeDataset) -> tuple[float, float]:
    logits = model(data.x)
    return (logits.argmax(1) == data.y).float().mean().item(), F.cross_entropy(logits, data.y).item()


def epoch_batches(task: Task, train: SpikeDataset, seed: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    return [batches(train, task.batch, seed * 1000 + e) for e in range(task.epochs)]


class Extra:
    """Something a configuration adds to training: a term of the loss, per-epoch steps, a clean-up. ``monitor`` is
    a RateMonitor it attached, if any (the firing rates are then read through it)."""

    monitor: Any = None

    def before_batch(self) -> None:
        pass

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor | None:
        return None

    def epoch_end(self) -> None:
        pass

    def remove(self) -> None:
        pass


class RatePenalty(Extra):
    """A sparsity loss on the rates a RateMonitor collects; its schedule steps once per epoch."""

    def __init__(self, monitor: Any, penalty: Any) -> None:
        self.monitor, self.penalty = monitor, penalty

    def before_batch(self) -> None:
        self.monitor.reset()

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.penalty(self.monitor)

    def epoch_end(self) -> None:
        self.penalty.step()

    def remove(self) -> None:
        self.monitor.remove()


class Scheduled(Extra):
    """One of ``sg_stability.anneal``'s schedule-driven changes: ``step()`` once per epoch, ``remove()`` at the end."""

    def __init__(self, change: Any) -> None:
        self.change = change

    def epoch_end(self) -> None:
        self.change.step()

    def remove(self) -> None:
        self.change.remove()


def fit(model: nn.Module, task: Task, train: SpikeDataset, seed: int, epochs: int | None = None,
        extras: list[Extra] = ()) -> float:  # type: ignore[assignment]
    """Adam on the cross-entropy, plus what ``extras`` add to the loss and do at each epoch's end."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.param_groups(task.lr))  # type: ignore[operator]
    loss = float("nan")
    for epoch in epoch_batches(task, train, seed)[: epochs or task.epochs]:
        for batch in epoch:
            opt.zero_grad()
            for extra in extras:
                extra.before_batch()
            out = loss_fn(model, batch)
            total = out
            for extra in extras:
                term = extra.loss(batch)
                total = total + term if term is not None else total
            total.backward()
            opt.step()
            loss = out.item()
        for extra in extras:
            extra.epoch_end()
    return loss


@torch.no_grad()
def hidden_rate(model: nn.Module, data: SpikeDataset, monitor: Any = None) -> float:
    """Mean firing rate over every spiking layer on ``data`` (through ``monitor`` when one is attached)."""
    from sg_stability.sparsity import RateMonitor

    if monitor is not None:
        monitor.reset()
        model(data.x)
        return float(monitor.mean_rate())
    with RateMonitor(model) as own:
        model(data.x)
        return float(own.mean_rate())


def prepared(framework: str, task: Task, seed: int) -> tuple[nn.Module, SpikeDataset, SpikeDataset, SpikeDataset]:
    train, val, test = splits(task, seed)
    model = build(framework, task.arch(train), seed, task.window)
    return model, train, val, test


def run(framework: str, task: Task, seed: int, configure: Any = None) -> dict[str, Any]:
    """Build, optionally ``configure(model, train, val)`` (patches it; returns a dict of what it chose), train,
    evaluate."""
    model, train, val, test = prepared(framework, task, seed)
    t0 = time.perf_counter()
    torch.manual_seed(seed)  # what configure draws (e.g. an initialiser's random recurrent weights) is reproducible
    chosen = configure(model, train, val) if configure is not None else {}
    t_choose = time.perf_counter() - t0
    extras: list[Extra] = chosen.pop("_extras", [])
    monitor = next((e.monitor for e in extras if e.monitor is not None), None)
    initial_rate = hidden_rate(model, test, monitor)
    t0 = time.perf_counter()
    final_loss = fit(model, task, train, seed, extras=extras)
    t_train = time.perf_counter() - t0
    for extra in reversed(extras):
        extra.remove()
    val_acc, _ = evaluate(model, val)
    test_acc, test_loss = evaluate(model, test)
    return {"val_acc": val_acc, "test_acc": test_acc, "test_loss": test_loss, "final_loss": final_loss,
            "train_s": t_train, "choose_s": t_choose, "initial_rate": initial_rate,
            "final_rate": hidden_rate(model, test), **chosen}
