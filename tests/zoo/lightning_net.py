"""A LightningModule around the TINY snnTorch network of ``shd_networks``, for the Lightning integration tests
(importable in a fresh process, as ``load_from_checkpoint`` needs)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from sg_stability.lightning import Restorable
from tests.zoo import shd_networks


class TinyNet(Restorable, pl.LightningModule):
    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net, _ = shd_networks.tiny("snntorch", steps=6, batch=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x.transpose(0, 1)).mean(0), y)  # loader batches are [batch, steps, inputs]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def loader(n: int = 16, seed: int = 0) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 6, 12, generator=g) < 0.3).float()
    y = torch.randint(0, 3, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
