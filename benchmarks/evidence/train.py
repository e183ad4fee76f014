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


def fit(model: nn.Module, task: Task, train: SpikeDataset, seed: int, epochs: int | None = None,
        sparsity: Any = None) -> float:
    """Adam on the cross-entropy; ``sparsity`` = (RateMonitor, SparsityLoss) adds the rate penalty and steps
    its schedule once per epoch."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.param_groups(task.lr))  # type: ignore[operator]
    loss = float("nan")
    for epoch in epoch_batches(task, train, seed)[: epochs or task.epochs]:
        for batch in epoch:
            opt.zero_grad()
            if sparsity is not None:
                sparsity[0].reset()
            out = loss_fn(model, batch)
            total = out + sparsity[1](sparsity[0]) if sparsity is not None else out
            total.backward()
            opt.step()
            loss = out.item()
        if sparsity is not None:
            sparsity[1].step()
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
    sparsity = chosen.pop("_sparsity", None)
    initial_rate = hidden_rate(model, test, sparsity[0] if sparsity is not None else None)
    t0 = time.perf_counter()
    final_loss = fit(model, task, train, seed, sparsity=sparsity)
    t_train = time.perf_counter() - t0
    if sparsity is not None:
        sparsity[0].remove()
    val_acc, _ = evaluate(model, val)
    test_acc, test_loss = evaluate(model, test)
    return {"val_acc": val_acc, "test_acc": test_acc, "test_loss": test_loss, "final_loss": final_loss,
            "train_s": t_train, "choose_s": t_choose, "initial_rate": initial_rate,
            "final_rate": hidden_rate(model, test), **chosen}
