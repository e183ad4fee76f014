"""SpikingJelly end to end: stabilize a multi-step network, train it, checkpoint it with its surrogates, resume in
a freshly built model, and export to NIR and back with the surrogates kept.

    python examples/spikingjelly_nir.py                 # a few seconds on 2 CPU cores
    python examples/spikingjelly_nir.py --epochs 1 --out /tmp/sg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nir
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

import sg_stability as sg


def build(seed: int = 0) -> nn.Module:
    """Linear(64 -> 128) -> LIF -> LIF(128) -> Linear(128 -> 10), multi-step ([T, B, 64] in, [T, B, 10] out)."""
    torch.manual_seed(seed)
    net = nn.Sequential(layer.Linear(64, 128), neuron.LIFNode(tau=2.0), layer.Linear(128, 128),
                        neuron.LIFNode(tau=2.0), layer.Linear(128, 10))
    functional.set_step_mode(net, "m")
    return net


def loss_fn(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    functional.reset_net(net)  # SpikingJelly keeps the membranes between calls: start every sequence afresh
    return F.cross_entropy(net(x).mean(0), y)


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

    net = build()
    handle = sg.stabilize(net, x[:, :64], init="variance_flow", progress=False)  # weights that fire, then the surrogate
    print(f"sg.stabilize: {handle.choice.describe()}")
    print(handle.summary().splitlines()[0])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for epoch in range(args.epochs):
        for i in range(0, x.shape[1], 64):
            opt.zero_grad()
            loss_fn(net, x[:, i:i + 64], y[i:i + 64]).backward()
            opt.step()
        with torch.no_grad():
            functional.reset_net(net)
            accuracy = float((net(test_x).mean(0).argmax(1) == test_y).float().mean())
        print(f"epoch {epoch + 1}: test accuracy {accuracy:.3f}")

    # a checkpoint: the weights and the surrogates (a spec, plain JSON data), resumed in a new model
    torch.save({"model": net.state_dict(), "sg_spec": handle.to_dict()}, args.out / "spikingjelly.pt")
    ckpt = torch.load(args.out / "spikingjelly.pt", weights_only=False)
    resumed = build(seed=1)
    resumed_handle = sg.load_state_dict(resumed, ckpt["model"], ckpt["sg_spec"])
    print(f"checkpoint: resumed with the same surrogates: {resumed_handle.to_dict() == handle.to_dict()}")

    # NIR: SpikingJelly's exporter traces one step; each neuron's surrogate rides in its node's metadata
    functional.set_step_mode(net, "s")
    functional.reset_net(net)
    graph = sg.to_nir(net, x[0, :4])
    nir.write(args.out / "spikingjelly.nir", graph)
    _, imported_handle = sg.from_nir(nir.read(args.out / "spikingjelly.nir"), framework="spikingjelly")
    kept = [sg.from_native(s) if not isinstance(s, sg.surrogates.Surrogate) else s
            for s in imported_handle.surrogates.values()] if imported_handle is not None else []
    print(f"NIR: {len(graph.nodes)} nodes written to {args.out / 'spikingjelly.nir'}; re-imported with "
          f"{', '.join(f'{s.family}(γ={float(s.dampening):.3g}, β={float(s.sharpness):.3g})' for s in kept)}")


if __name__ == "__main__":
    main()
