"""Training diagnostics: which layers are dead, saturated, outside the surrogate's reach, or losing their
gradient over time -- at a glance, for any model the adapters understand.

``diag = sg.diagnostics.Diagnostics(model)`` hooks every spiking layer. During training it counts spikes per
neuron (detached), the membrane values inside the surrogate's active region (where the slot holds a surrogate
``sg.patch`` installed; on every ``active_every``-th step, 4 by default, which keeps the cost low), and the
gradient norm that reaches each time step's spikes in backward. Call
``diag.end_epoch()`` once per epoch to close an epoch's record; ``print(diag.summary())`` gives a table with
hints, ``diag.plot(path)`` a PNG dashboard. Memory is a few numbers per neuron and per time step, whatever the
sequence length; ``diag.remove()`` removes the hooks, which is all it added.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import torch
from torch import Tensor, nn

from ._errors import ConfigError
from ._names import short_names, shortened_note
from ._patching import neuron_sites
from ._plotting import legend, save_figure, subplots
from ._validate import flag, option
from .adapter_api import NeuronSite
from .stability import late_growth
from .surrogates import Surrogate

__all__ = ["Diagnostics", "EpochRecord"]


@dataclass
class EpochRecord:
    """One layer's statistics over one epoch."""

    rate: float
    dead: float
    saturated: float
    active: float | None
    gradient_norms: list[float]  # RMS over batches of ||dL/ds_t||, per time step t

    @property
    def gradient_growth(self) -> float | None:
        """Per-step growth of the gradient going back in time (> 1: grows), over the second half of the steps
        (``sg_stability.stability.late_growth``, the formula ``sg.analyze`` reports too)."""
        return late_growth(self.gradient_norms)


@dataclass
class _LayerStats:
    site: NeuronSite
    hwhm: float | None
    spikes: Tensor | None = None  # per-neuron spike counts in the epoch
    events: int = 0  # (step, sample) pairs seen in the epoch
    active: Tensor | int = 0  # a tensor while counting: no host sync per step
    membranes: int = 0
    step: int = 0  # step index within the current forward pass
    calls: int = 0  # surrogate calls seen (only the adapter's spike call of each step is counted)
    grad_parts: list[tuple[int, Tensor]] = field(default_factory=list)  # this batch: (first step, squared norms)
    grad_sum: list[float] = field(default_factory=list)  # this epoch, per step
    grad_count: list[int] = field(default_factory=list)
    history: list[EpochRecord] = field(default_factory=list)


class Diagnostics:
    """Per-layer training diagnostics; see the module docstring."""

    def __init__(self, model: nn.Module, *, gradients: bool = True, active_every: int = 4) -> None:
        sites = neuron_sites(model, "diagnostics.Diagnostics")
        if isinstance(active_every, bool) or not isinstance(active_every, int) or active_every < 1:
            raise ConfigError("active_every must be a positive integer", got=active_every, allowed="1, 2, ...",
                              fix="pass 1 to look at every step, or a larger stride to save time")
        self.gradients = flag(gradients, "gradients", where="Diagnostics")
        self.active_every = active_every
        self.layers: dict[str, _LayerStats] = {}
        self._hooks: list[Any] = []
        for site in sites:
            slot = site.driver.observed()
            hwhm = None
            if isinstance(slot, Surrogate) and not isinstance(slot.sharpness, Tensor):
                hwhm = float(slot.describe().hwhm)
                self._hooks.append(slot.register_forward_hook(self._surrogate_hook(site.path)))
            layer = _LayerStats(site, hwhm)
            self.layers[site.path] = layer
            self._hooks.append(site.module.register_forward_hook(self._spike_hook(layer)))

    # -- hooks -------------------------------------------------------------------------------------------------
    def _surrogate_hook(self, path: str) -> Callable[..., None]:

        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            layer = self.layers[path]
            if layer.hwhm is None or not args or not isinstance(args[0], Tensor):
                return
            call = layer.calls
            layer.calls += 1
            pattern = layer.site.driver.call_pattern()
            if call % pattern.calls_per_step != pattern.spike_call % pattern.calls_per_step:
                return  # e.g. snnTorch's detached reset call on the previous membrane
            if (call // pattern.calls_per_step) % self.active_every:
                return  # the active-region fraction is estimated on every active_every-th step
            v = args[0].detach()
            layer.active = layer.active + torch.count_nonzero(v.abs() <= layer.hwhm)
            layer.membranes += v.numel()

        return hook

    def _spike_hook(self, layer: _LayerStats) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            spikes = layer.site.driver.spikes(out)
            if spikes is None or spikes.dim() == 0:
                return
            lead = layer.site.driver.call_pattern().leading_dims(spikes)
            counts = spikes.detach().sum(tuple(range(lead)))
            layer.spikes = counts if layer.spikes is None else layer.spikes + counts
            layer.events += math.prod(spikes.shape[:lead])
            steps = spikes.shape[0] if lead == 2 else 1
            first = layer.step
            layer.step += steps
            if self.gradients and spikes.requires_grad and torch.is_grad_enabled():
                spikes.register_hook(self._grad_hook(layer, first, lead == 2))

        return hook

    def _grad_hook(self, layer: _LayerStats, first: int, sequence: bool) -> Callable[[Tensor], None]:
        def hook(grad: Tensor) -> None:
            g = grad.detach()
            dims = tuple(range(1, g.dim())) if sequence else None
            norms = torch.linalg.vector_norm(g, dim=dims)  # no squared copy of the gradient
            layer.grad_parts.append((first, norms.reshape(-1)))  # squared on the host, once per batch

        return hook

    @staticmethod
    def _fold(layer: _LayerStats) -> None:
        """Move this batch's per-step squared norms into the epoch's sums (one host sync per batch)."""
        for first, norms in layer.grad_parts:
            for k, value in enumerate(n * n for n in norms.double().tolist()):
                t = first + k
                while len(layer.grad_sum) <= t:
                    layer.grad_sum.append(0.0)
                    layer.grad_count.append(0)
                layer.grad_sum[t] += value
                layer.grad_count[t] += 1
        layer.grad_parts = []

    # -- epochs --------------------------------------------------------------------------------------------------
    def end_batch(self) -> None:
        """Mark the end of a forward/backward pass (resets the time-step counters). Called automatically by
        :meth:`end_epoch`; call it yourself after each batch when one forward does not start at step 0."""
        for layer in self.layers.values():
            layer.step = 0
            layer.calls = 0
            self._fold(layer)

    def end_epoch(self) -> dict[str, EpochRecord]:
        """Close the epoch: store and return each layer's record, and start counting afresh."""
        self.end_batch()
        out = {}
        for path, layer in self.layers.items():
            if layer.spikes is None or layer.events == 0:
                continue
            per_neuron = layer.spikes.double().flatten() / layer.events
            record = EpochRecord(
                rate=float(per_neuron.mean()), dead=float((per_neuron == 0).double().mean()),
                saturated=float((per_neuron >= 1).double().mean()),
                active=float(layer.active) / layer.membranes if layer.membranes else None,
                gradient_norms=[math.sqrt(v / c) if c else 0.0 for v, c in zip(layer.grad_sum, layer.grad_count,
                                                                                 strict=True)])
            layer.history.append(record)
            out[path] = record
            layer.spikes, layer.events, layer.active, layer.membranes = None, 0, 0, 0
            layer.grad_sum, layer.grad_count = [], []
        return out

    def history(self, path: str) -> list[EpochRecord]:
        """The epoch records of one layer (its path, as in :meth:`summary`)."""
        option(path, "layer", self.layers, example="a layer path as summary() prints it", where="Diagnostics.history")
        return self.layers[path].history

    # -- reporting -----------------------------------------------------------------------------------------------
    def summary(self) -> str:
        """The last epoch per layer, with hints."""
        shown = short_names(list(self.layers), 60)  # distinct, and rows under 120 characters
        width = max([len("layer"), *(len(n) for n in shown.values())]) + 2
        lines = [f"{'layer':<{width}}{'rate':>8}{'dead':>7}{'sat.':>7}{'active':>8}{'grad growth/step':>18}"]
        hints: list[str] = []
        for path, layer in self.layers.items():
            if not layer.history:
                continue
            r = layer.history[-1]
            growth = r.gradient_growth
            lines.append(f"{shown[path]:<{width}}{r.rate:>8.3f}{r.dead:>7.2f}{r.saturated:>7.2f}"
                         f"{'-' if r.active is None else format(r.active, '.2f'):>8}"
                         f"{'-' if growth is None else format(growth, '.3f'):>18}")
            hints.extend(f"{path}: {h}" for h in _hints(r, len(r.gradient_norms)))
        if len(lines) == 1:
            return "no epoch recorded yet: call end_epoch() after training an epoch"
        note = shortened_note(shown)
        if note:
            lines.append(note)
        return "\n".join(lines + ([""] + hints if hints else ["", "no problems seen"]))

    def metrics(self, prefix: str = "sg") -> dict[str, float]:
        """The last epoch of every layer as flat scalars: ``{prefix}/{layer}/rate``, ``dead``, ``saturated``,
        ``active`` and ``gradient_growth`` (the last two where measured)."""
        out: dict[str, float] = {}
        for path, layer in self.layers.items():
            if not layer.history:
                continue
            r, name = layer.history[-1], f"{prefix}/{path or 'model'}"
            values = {"rate": r.rate, "dead": r.dead, "saturated": r.saturated, "active": r.active,
                      "gradient_growth": r.gradient_growth}
            out.update({f"{name}/{k}": float(v) for k, v in values.items() if v is not None})
        return out

    def log_to(self, logger: Any, step: int, *, prefix: str = "sg") -> dict[str, float]:
        """Log :meth:`metrics` at ``step`` to a TensorBoard ``SummaryWriter`` (anything with ``add_scalar``) or a
        Lightning logger (anything with ``log_metrics``: TensorBoard, CSV, W&B, MLflow loggers); returns them."""
        if isinstance(step, bool) or not isinstance(step, int):
            raise ConfigError("Diagnostics.log_to: step must be an integer", got=step,
                              allowed="the global step or the epoch number", fix="pass step=trainer.global_step")
        values = self.metrics(prefix)
        if not values:
            raise ConfigError("Diagnostics.log_to: no epoch recorded yet, so there is nothing to log",
                              got="0 epochs", allowed="log_to after end_epoch()",
                              fix="call diag.end_epoch() at the end of each epoch, then diag.log_to(...)")
        if callable(getattr(logger, "log_metrics", None)):
            logger.log_metrics(values, step=step)
        elif callable(getattr(logger, "add_scalar", None)):
            for tag, value in values.items():
                logger.add_scalar(tag, value, step)
        else:
            raise ConfigError("Diagnostics.log_to: the logger has neither log_metrics nor add_scalar",
                              got=type(logger).__name__,
                              allowed="a torch.utils.tensorboard SummaryWriter, or a Lightning logger "
                              "(trainer.logger)", fix="pass SummaryWriter(log_dir) or trainer.logger")
        return values

    def plot(self, path: str | Path) -> Path:
        """A PNG dashboard: rate, dead and saturated fractions and active fraction per epoch, and the last
        epoch's gradient norm per time step."""
        fig, axes = subplots(4, (18, 4))
        for name, layer in self.layers.items():
            epochs = range(1, len(layer.history) + 1)
            axes[0].plot(epochs, [r.rate for r in layer.history], marker=".", label=name)
            axes[1].plot(epochs, [r.dead for r in layer.history], marker=".", label=f"{name} dead")
            axes[1].plot(epochs, [r.saturated for r in layer.history], ls="--", label=f"{name} saturated")
            if any(r.active is not None for r in layer.history):
                axes[2].plot(epochs, [r.active if r.active is not None else float("nan") for r in layer.history],
                             marker=".", label=name)
            if layer.history and layer.history[-1].gradient_norms:
                norms = layer.history[-1].gradient_norms
                axes[3].plot(range(len(norms)), [n if n > 0 else float("nan") for n in norms], label=name)
        for ax, title in zip(axes, ("firing rate", "dead / saturated fraction", "fraction in active region",
                                    "||dL/ds_t|| per time step (last epoch)"), strict=True):
            ax.set_title(title)
            legend(ax, fontsize=7)
        for ax in axes[:3]:
            ax.set_xlabel("epoch")
        axes[3].set_xlabel("time step t")
        axes[3].set_yscale("log")
        return save_figure(fig, path, dpi=100)

    # -- lifetime ------------------------------------------------------------------------------------------------
    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _hints(r: EpochRecord, steps: int) -> list[str]:
    out = []
    if r.dead >= 0.5:
        out.append(f"{r.dead:.0%} of the neurons never spiked this epoch: raise the input weights, lower the "
                   "threshold, or start from sg.init.calibrate_rate(model, sample, target_rate=0.5)")
    if r.saturated >= 0.5:
        out.append(f"{r.saturated:.0%} of the neurons spiked at every step: lower the input weights or raise "
                   "the threshold; a sparsity loss (sg.sparsity.SparsityLoss) pulls the rate down")
    if r.active is not None and r.active < 0.05:
        out.append(f"only {r.active:.1%} of the membrane values are inside the surrogate's active region: "
                   "widen it (lower sharpness) or run sg.stabilize")
    growth = r.gradient_growth
    if growth is not None and steps > 1:
        total = growth ** (steps - 1)
        if total > 100:
            out.append(f"the training gradient at these spikes grows {growth:.3f}x per step going back in time "
                       f"({total:.2g}x over {steps} steps). That counts every path into a step: recurrent weights, "
                       "the membranes' leak (also across layers of a feed-forward net) and the loss terms of later "
                       "steps; sg.analyze(model, sample)'s BPTT column isolates this layer's own growth, and "
                       "sg.stabilize acts on it")
        elif total < 0.01:
            out.append(f"the training gradient at these spikes shrinks to {growth:.3f}x per step going back in "
                       f"time ({total:.2g}x over {steps} steps): early steps barely learn; sg.analyze(model, "
                       "sample) shows whether the surrogate or the leak causes it")
    return out
