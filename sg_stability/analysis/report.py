"""What :func:`sg_stability.analyze` returns: per-layer results, a table (``print(report)``) and a plot."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from .._names import short_names, shortened_note
from .._plotting import legend, save_figure, subplots
from ..stability import Dynamics, Verdict, late_growth
from ..surrogates import Surrogate


@dataclass
class LayerReport:
    """What :func:`analyze` found for one spiking layer (one neuron site)."""

    name: str
    framework: str
    kind: str
    neurons: int
    surrogate: Surrogate
    surrogate_source: str
    firing_rate: float
    dead: float
    saturated: float
    active: float
    gain_kind: str
    theory_gain: float | None
    data_gain: float | None
    measured_gain: float | None
    dampening: Verdict | None
    sharpness: Verdict | None
    sharpness_theory: Verdict | None
    tail: Verdict | None
    diagnosis: str
    notes: list[str] = field(default_factory=list)
    dynamics: Dynamics | None = None
    gradient_norms: list[float] | None = field(default=None, repr=False)

    @property
    def bptt_growth(self) -> float | None:
        """Per-step growth of the gradient injected at the last step, going back over the second half of the
        sequence (the quantity BPTT really experiences; > 1 grows)."""
        return late_growth(self.gradient_norms)

    @property
    def gradient_spread(self) -> float | None:
        """Largest factor between the gradient norm at any step and at the last step (1 = flat)."""
        norms = [n for n in (self.gradient_norms or []) if n > 0]
        return max(max(norms), 1.0 / min(norms)) if norms else None

    @property
    def gain(self) -> float | None:
        """The best available gain: measured, else data-driven, else theory."""
        for g in (self.measured_gain, self.data_gain, self.theory_gain):
            if g is not None and math.isfinite(g):
                return g
        return None


#: layer-name column of the report's tables: longer names are shortened (rows stay under 120 characters)
NAME_WIDTH = 27


@dataclass
class StabilityReport:
    """Per-layer results of :func:`analyze`; ``print(report)`` is a table, ``report.plot(path)`` a PNG."""

    layers: list[LayerReport]
    steps: int
    #: set by ``sg.analyze`` and ``sg.stabilize``: the surrogate ``sg.stabilize`` installs without training data
    #: (an ``sg_stability.Candidate``: the stability analysis' first choice, with its measured reach and growth)
    recommended: Any = None
    #: the preferred candidates the recommendation passed over, and why (e.g. they widen the gradient's spread)
    passed_over: list[str] = field(default_factory=list)
    #: set by ``sg.analyze`` and ``sg.stabilize``: the whole decision (an ``sg_stability.analysis.choice.Choice``:
    #: the candidate, a per-layer dampening where it was rescaled, and why, naming every fallback)
    recommendation: Any = None

    def __getitem__(self, name: str) -> LayerReport:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no spiking layer {name!r}; layers: {[layer.name for layer in self.layers]}")

    def __len__(self) -> int:
        return len(self.layers)

    def __str__(self) -> str:
        def f(x: float | None, fmt: str = ".3f") -> str:
            return "-" if x is None or not math.isfinite(x) else format(x, fmt)

        shown = short_names([r.name for r in self.layers], NAME_WIDTH)  # distinct, and rows under 120 characters
        width = max([len("layer"), *(len(n) for n in shown.values())]) + 2
        title = (f"StabilityReport: {len(self.layers)} spiking layers, {self.steps} time steps "
                 "(gains per step; BPTT: measured growth going back in time)")
        head = (f"{'layer':<{width}}{'kind':<26}{'neurons':>9}{'rate':>7}{'dead':>6}{'sat.':>6}{'active':>7}"
                "  surrogate now")
        lines = [title, head]
        for r in self.layers:
            now = f"{r.surrogate.family}({short_param(r.surrogate.dampening)}, {short_param(r.surrogate.sharpness)})"
            lines.append(f"{shown[r.name]:<{width}}{r.kind[:25]:<26}{r.neurons:>9}{r.firing_rate:>7.3f}{r.dead:>6.2f}"
                         f"{r.saturated:>6.2f}{r.active:>7.2f}  {now}")
        note = shortened_note(shown)
        if note:
            lines.append(note + " (in full below, with each layer's diagnosis)")
        lines.append("")
        lines.append(f"{'layer':<{width}}{'gain kind':<16}{'theory':>9}{'data':>9}{'meas.':>9}{'BPTT':>9}"
                     f"{'gamma*':>9}{'beta*':>9}")
        for r in self.layers:
            beta = r.sharpness.value if r.sharpness is not None and r.sharpness.feasible else None
            gamma = r.dampening.value if r.dampening is not None and r.dampening.feasible else None
            none = r.sharpness is not None and not r.sharpness.feasible
            lines.append(
                f"{shown[r.name]:<{width}}{r.gain_kind:<16}{f(r.theory_gain, '.4g'):>9}{f(r.data_gain, '.4g'):>9}"
                f"{f(r.measured_gain, '.4g'):>9}{f(r.bptt_growth, '.4g'):>9}{f(gamma, '.3g'):>9}"
                f"{'none' if none else f(beta, '.3g'):>9}")
        lines.append("(gamma*, beta*: the paper's Conditions III and IV for g = target, a diagnostic; none = no value "
                     "reaches it,")
        lines.append(" the notes say what to change. sg.stabilize installs the recommendation below, not these)")
        if self.recommendation is not None:
            r = self.recommendation
            what = r.describe() if r.candidate is not None else "keep each layer's own surrogate"
            lines.extend(textwrap.wrap(f"recommended: {what} -- sg.stabilize's choice (sg.candidates: the shortlist)",
                                       116, subsequent_indent="    "))
            lines.extend(textwrap.wrap(r.how, 116, initial_indent="    why: ", subsequent_indent="    "))
        elif self.recommended is not None:
            c = self.recommended
            growth = f", measured BPTT growth {c.growth:.3f}/step" if c.growth is not None else ""
            spread = f", gradient spread across layers {c.spread:.3g}x" if c.spread is not None else ""
            lines.append(f"recommended: {c.label}{growth}{spread} -- what sg.stabilize installs without training "
                         "data; give it batches= and loss_fn= to let a short training race decide (sg.candidates)")
        elif self.passed_over:
            lines.append("recommended: keep each layer's own surrogate -- every candidate widens the gradient's "
                         "spread across layers (sg.candidates)")
        if self.recommendation is None:  # the decision's reasons name them
            lines.extend(f"    passed over {p}" for p in self.passed_over)
        lines.append("")
        for r in self.layers:
            lines.append(f"{r.name}: {r.diagnosis}")
            lines.extend(f"    note: {n}" for n in r.notes)
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Write a PNG: firing statistics and gains per layer, and gradient norm versus time step."""
        names = [r.name for r in self.layers]
        x = range(len(names))
        fig, axes = subplots(3, (15, 4.2))
        ax = axes[0]
        for k, (key, label) in enumerate((("firing_rate", "firing rate"), ("dead", "dead"),
                                          ("saturated", "saturated"), ("active", "in active region"))):
            ax.bar([i + 0.2 * k - 0.3 for i in x], [getattr(r, key) for r in self.layers], 0.2, label=label)
        ax.set_xticks(list(x), names, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title("firing statistics (fraction)")
        legend(ax, fontsize=8)
        ax = axes[1]
        for k, key in enumerate(("theory_gain", "data_gain", "measured_gain")):
            ax.bar([i + 0.27 * k - 0.27 for i in x], [getattr(r, key) or 0.0 for r in self.layers], 0.27,
                   label=key.replace("_gain", ""))
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.set_xticks(list(x), [f"{r.name}\n({r.gain_kind})" for r in self.layers], rotation=30, ha="right")
        ax.set_title("per-step gradient gain g (1 = stable)")
        legend(ax, fontsize=8)
        ax = axes[2]
        for r in self.layers:
            if r.gradient_norms:
                ax.plot(range(len(r.gradient_norms)), r.gradient_norms, label=r.name)
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_ylabel("||dL/dI_t|| / ||dL/dI_T||")
        ax.set_title("gradient injected at the last step, going back in time")
        legend(ax, fontsize=8)
        return save_figure(fig, path, dpi=110)


def short_param(p: Any) -> str:
    """A surrogate parameter in a table cell: its value, or 'per-neuron'."""
    if isinstance(p, Tensor) and p.numel() > 1:
        return "per-neuron"
    return f"{float(p):.3g}"
