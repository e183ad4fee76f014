"""A patched model with the sparsity loss under DistributedDataParallel (gloo, 2 CPU processes): the gradients
equal those of one process on the same global batch, and every rank holds the same schedule state."""

from __future__ import annotations

import os
import socket
import sys
import traceback
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import sg_stability as sg
from sg_stability.schedules import LinearRamp
from sg_stability.sparsity import RateMonitor, SparsityLoss

STEPS, GLOBAL_BATCH, FEATURES, CLASSES = 8, 8, 12, 3


class Net(nn.Module):
    def __init__(self) -> None:
        import snntorch as snn

        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.lif1 = nn.Linear(FEATURES, 16), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(16, CLASSES), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m1, m2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for t in range(x.shape[0]):
            s1, m1 = self.lif1(self.fc1(x[t]) * 3, m1)
            s2, m2 = self.lif2(self.fc2(s1) * 3, m2)
            out.append(s2)
        return torch.stack(out)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(STEPS, GLOBAL_BATCH, FEATURES, generator=g)
    return x, torch.randint(0, CLASSES, (GLOBAL_BATCH,), generator=g)


def loss_and_grads(model: nn.Module, monitor: RateMonitor, loss: SparsityLoss, x, y) -> dict[str, torch.Tensor]:
    monitor.reset()
    out = model(x)
    total = nn.functional.cross_entropy(out.mean(0), y) + loss(monitor)
    total.backward()
    inner = model.module if hasattr(model, "module") else model
    return {n: p.grad.detach().clone() for n, p in inner.named_parameters()}


def schedule_loss() -> SparsityLoss:
    loss = SparsityLoss("squared", 0.02, weight=5.0, schedule=LinearRamp(10))
    for _ in range(5):
        loss.step()  # value 0.75: the sparsity term is on
    return loss


def worker(rank: int, world: int, port: int, out_file: str) -> None:
    try:
        _work(rank, world, port, out_file)
    except BaseException:  # noqa: BLE001 - reported, then the child exits with 1 and mp.spawn fails the test
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    # gloo's threads can abort the interpreter's normal teardown after destroy_process_group ("terminate called
    # without an active exception", about 1 run in 30): the work is done and saved, so leave without it
    sys.stderr.flush()
    os._exit(0)


def _work(rank: int, world: int, port: int, out_file: str) -> None:
    warnings.simplefilter("ignore")
    os.environ.setdefault("SG_STABILITY_DISABLE_PLUGIN_AUTOLOAD", "1")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        net = Net()
        with sg.patch(net, "fast_sigmoid", sharpness=0.5):
            ddp = nn.parallel.DistributedDataParallel(net)
            x, y = data()
            part = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
            with RateMonitor(ddp, sync=True) as monitor:
                grads = loss_and_grads(ddp, monitor, schedule_loss(), x[:, part], y[part])
            states: list[object] = [None] * world
            dist.all_gather_object(states, schedule_loss().state_dict())
        if rank == 0:
            torch.save({"grads": grads, "states": states}, out_file)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gradients_equal_one_process_on_the_global_batch(tmp_path):
    pytest.importorskip("snntorch")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.fail("torch.distributed with gloo is required for this test")  # CPU wheels ship it
    out_file = tmp_path / "ddp.pt"
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(worker, args=(2, port, str(out_file)), nprocs=2, join=True)
    result = torch.load(out_file)

    net = Net()
    with sg.patch(net, "fast_sigmoid", sharpness=0.5), RateMonitor(net) as monitor:
        x, y = data()
        single = loss_and_grads(net, monitor, schedule_loss(), x, y)
    assert single.keys() == result["grads"].keys()
    for name, g in single.items():
        torch.testing.assert_close(result["grads"][name], g, rtol=1e-5, atol=1e-7, msg=name)
    assert any(float(g.abs().sum()) > 0 for g in single.values())
    first, second = result["states"]
    assert first == second == schedule_loss().state_dict()
