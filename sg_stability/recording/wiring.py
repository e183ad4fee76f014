"""How a recorded run is wired: which weight module feeds each neuron and which feeds its spikes back (from the
execution order), the containers around a neuron, and the normalisation layers whose output a neuron sees."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .records import Record, weight_of

Event = tuple[str, Any, Any]  # ("w", weight module, record of the neuron whose spikes it consumed) or ("n", record)


#: normalisation layers: what the neuron sees after one of them does not move when the weights before it move
NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def affine_parameters(norm: nn.Module | None) -> tuple[Tensor, Tensor] | None:
    """A normalisation layer's learnable ``(bias, weight)`` (what an initialiser can set), or None without them."""
    bias, weight = getattr(norm, "bias", None), getattr(norm, "weight", None)
    return (bias, weight) if isinstance(bias, nn.Parameter) and isinstance(weight, nn.Parameter) else None


def wire(events: list[Event]) -> None:
    """From the execution order: a weight module that consumes a neuron's own spikes and runs before its
    next call is its recurrent weight; the weight module that most often runs last before it is its feed."""
    pending: list[tuple[nn.Module, Record | None]] = []
    feeds: dict[int, dict[nn.Module, float]] = {}
    recurrent: dict[int, set[nn.Module]] = {}
    for position, (kind, obj, source) in enumerate(events):
        if kind == "w":
            pending.append((obj, source))
            continue
        rec = obj
        if rec.first_event < 0:
            rec.first_event = position
        own = {m for m, src in pending if src is rec and _maps_back(m, rec)}
        recurrent.setdefault(id(rec), set()).update(own)
        others = [m for m, src in pending if src is not rec]
        counts = feeds.setdefault(id(rec), {})
        for k, m in enumerate(others):  # the last one counts most; earlier ones break ties (an input
            counts[m] = counts.get(m, 0) + (1.0 if k == len(others) - 1 else 0.5)  # projection run once)
        pending = []
    for kind, rec, _ in events:
        if kind == "n" and rec.feed is None and rec.recurrent is None:
            loops = recurrent.get(id(rec), set())
            rec.recurrent = next(iter(loops), None)
            candidates = {m: c for m, c in feeds.get(id(rec), {}).items() if m not in loops}
            rec.feed = max(candidates, key=lambda m: candidates[m]) if candidates else None


def _maps_back(module: nn.Module, rec: Record | None) -> bool:
    """Whether a weight that consumes ``rec``'s spikes can be its recurrent weight: a matrix must map the
    neurons back onto as many neurons (a feed-forward layer after the neuron in a loop over time, e.g.
    Linear(128 -> 10) after 128 neurons, runs before the neuron's next step too, and is no recurrence)."""
    w = weight_of(module)
    if rec is None or w is None or w.dim() != 2 or not rec.outputs:
        return True
    return w.shape[0] == rec.outputs[-1].shape[-1]


def ancestors(model: nn.Module, path: str) -> tuple[nn.Module, ...]:
    """The modules from ``model`` down to the parent of the module at ``path``."""
    if not path:
        return ()
    chain = [model]
    for name in path.split(".")[:-1]:
        chain.append(getattr(chain[-1], name))
    return tuple(chain)
