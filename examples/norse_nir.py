"""Norse end to end: stabilize a network of Norse cells, train it, checkpoint it with its surrogates, resume in a
freshly built model, and export to NIR and back with the surrogates kept.

    python examples/norse_nir.py                 # a few seconds on 2 CPU cores
    python examples/norse_nir.py --epochs 1 --out /tmp/sg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nir
import norse.torch as norse
import torch
import torch.nn.functional as F
from torch import nn

import sg_stability as sg


class DigitsNet(nn.Module):
    """Linear(64 -> 128) -> LIFBoxCell -> Linear(128 -> 10), stepped over time; the readout averaged over steps."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.cells = norse.SequentialState(nn.Linear(64, 128), norse.LIFBoxCell(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state, outs = None, []
        for x_t in x:  # [T, B, 64]: one step at a time, the cells' state carried along
            out, state = self.cells(x_t, state)
            outs.append(out)
        return torch.stack(outs).mean(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    data = sg.datasets.digits(steps=20, seed=0)
    x, y = data.x[:, :args.train], data.y[:args.train]
    test_x, test_y = data.x[:, -300:], data.y[-300:]

    net = DigitsNet()
    handle = sg.stabilize(net, x[:, :64], init="variance_flow", progress=False)  # weights that fire, then the SG
    print(f"sg.stabilize: {handle.choice.describe()}")
    print(handle.summary().splitlines()[0])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for epoch in range(args.epochs):
        for i in range(0, x.shape[1], 64):
            opt.zero_grad()
            F.cross_entropy(net(x[:, i:i + 64]), y[i:i + 64]).backward()
            opt.step()
        with torch.no_grad():
            accuracy = float((net(test_x).argmax(1) == test_y).float().mean())
        print(f"epoch {epoch + 1}: test accuracy {accuracy:.3f}")

    # a checkpoint: the weights and the surrogates (a spec, plain JSON data), resumed in a new model
    torch.save({"model": net.state_dict(), "sg_spec": handle.to_dict()}, args.out / "norse.pt")
    ckpt = torch.load(args.out / "norse.pt", weights_only=False)
    resumed = DigitsNet(seed=1)
    resumed_handle = sg.load_state_dict(resumed, ckpt["model"], ckpt["sg_spec"])
    print(f"checkpoint: resumed with the same surrogates: {resumed_handle.to_dict() == handle.to_dict()}")

    # NIR: Norse's exporter traces the cells one step at a time; the surrogate rides in the node's metadata
    graph = sg.to_nir(net.cells, x[0, :4])
    nir.write(args.out / "norse.nir", graph)
    _, imported_handle = sg.from_nir(nir.read(args.out / "norse.nir"), framework="norse")
    kept = list(imported_handle.surrogates.values()) if imported_handle is not None else []
    print(f"NIR: {len(graph.nodes)} nodes written to {args.out / 'norse.nir'}; re-imported with "
          f"{', '.join(f'{s.family}(γ={float(s.dampening):.3g}, β={float(s.sharpness):.3g})' for s in kept)}")


if __name__ == "__main__":
    main()
