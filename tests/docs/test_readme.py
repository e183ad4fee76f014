"""Every Python code block of the README and of every docs/ page runs as written, each in a fresh namespace
that holds the names the prose says the reader has (a snnTorch network ``net`` with the module paths the
examples name, a sample, training batches, a loss): a copied block does not fail at its second line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
# the adapter block registers a plugin process-wide: tests/test_adapter_contract.py runs it as written and
# unregisters it again
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(page.relative_to(ROOT).as_posix(), k, b) for page in PAGES
          for k, b in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL))
          if "sg.plugins.register(TinyAdapter())" not in b]
T, B, F, H, C = 8, 4, 6, 10, 3


class ReadmeNet(nn.Module):
    """The network the README's examples talk about: module paths ``encoder.*``, ``lif1``, ``lif3``, ``readout``;
    snnTorch Leaky neurons with hidden state (reset by ``snntorch.utils.reset``); input ``[T, batch, features]``,
    output the class scores (spike counts) ``[batch, classes]``."""

    def __init__(self) -> None:
        import snntorch as snn

        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(F, H), snn.Leaky(beta=0.9, init_hidden=True))
        self.fc1, self.lif1 = nn.Linear(H, H), snn.Leaky(beta=0.9, init_hidden=True)
        self.fc3, self.lif3 = nn.Linear(H, H), snn.Leaky(beta=0.9, threshold=0.8, init_hidden=True)
        self.fc_out, self.readout = nn.Linear(H, C), snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from snntorch import utils

        utils.reset(self)
        out = []
        for t in range(x.shape[0]):
            z = self.lif3(self.fc3(self.lif1(self.fc1(self.encoder(x[t])))))
            out.append(self.readout(self.fc_out(z)))
        return torch.stack(out).sum(0)


def namespace() -> dict:
    import snntorch

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = ReadmeNet()
    x = (torch.rand(T, B, F, generator=gen) < 0.4).float() * 2
    batches = [((torch.rand(T, B, F, generator=gen) < 0.4).float() * 2, torch.randint(0, C, (B,), generator=gen))
               for _ in range(6)]

    def loss_fn(model: nn.Module, batch: tuple) -> torch.Tensor:
        inputs, labels = batch
        return nn.functional.cross_entropy(model(inputs), labels)

    criterion = nn.functional.cross_entropy
    return {"net": net, "model": net, "sample": x, "x": x, "train": batches[:4], "train_batches": batches[:4],
            "val": batches[4:], "val_batches": batches[4:], "loss_fn": loss_fn, "loader": batches[:2],
            "criterion": criterion, "optimizer": torch.optim.Adam(net.parameters(), 1e-3), "E": 2,
            "snntorch": snntorch}


@pytest.mark.parametrize(("page", "index", "code"), BLOCKS, ids=[f"{p}#{k}" for p, k, _ in BLOCKS])
def test_every_python_block_of_the_docs_runs_as_written(page, index, code, tmp_path, monkeypatch):
    pytest.importorskip("snntorch")
    monkeypatch.chdir(tmp_path)  # plots land in the test's folder (out/...)
    (tmp_path / "out").mkdir()
    exec(compile(code, f"{page} python block {index}", "exec"), namespace())  # noqa: S102 -- our own docs


def test_every_page_has_python_blocks_and_the_readme_stays_short():
    pages = {p for p, _, _ in BLOCKS}
    assert {"README.md", "docs/guide.md", "docs/choosing.md", "docs/training.md"} <= pages
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
