"""What a training race tried and chose (:class:`TuneReport`): a table and a plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._plotting import legend, save_figure, subplots
from .shortlist import Candidate


@dataclass
class TuneReport:
    """What :func:`tune` tried and chose. ``print(report)`` is a table; ``report.plot(path)`` a PNG."""

    candidates: list[Candidate]
    best: Candidate
    epochs: float
    cost_epochs: float
    seconds: float
    metric: str
    decision: str = ""  # why the winner won over the analysis' own choice, where they differed

    @property
    def cost_runs(self) -> float:
        """The finder's training compute in full training runs (``epochs`` each)."""
        return self.cost_epochs / self.epochs

    def __str__(self) -> str:
        fractions = sorted({f for c in self.candidates for f, _ in c.scores})
        width = max(len(c.label) for c in self.candidates) + 2
        head = (f"{'candidate':<{width}}{'reach':>7}{'growth':>8}"
                + "".join(f"{f'@{f:.3g}':>9}" for f in fractions))
        lines = [(f"TuneReport: {len(self.candidates)} candidates ranked by validation {self.metric}; "
                  f"cost {self.cost_epochs:.3g} epochs = {self.cost_runs:.2f} full runs, {self.seconds:.1f} s"),
                 ("(reach: least fraction of a layer's points where the surrogate passes half its peak; growth: "
                  "measured BPTT growth per step; @f: score after training for the fraction f of the full "
                  "budget; * = had not learned yet, ranked by the shortlist's order)"), head]
        for c in sorted(self.candidates, key=lambda c: (-len(c.scores), -c.score)):
            by_f = dict(c.scores)
            cells = "".join(f"{by_f[f]:>9.4g}" if f in by_f else f"{'':>9}" for f in fractions)
            mark = "  <- chosen" if c is self.best else (f" (diverged: {c.failure})" if c.diverged else "")
            if c.scores and not c.learned and not c.diverged:
                mark += " *"
            lines.append(f"{c.label:<{width}}{_opt(c.reach, '.3f'):>7}{_opt(c.growth, '.3f'):>8}{cells}{mark}")
        if self.decision:
            lines.append(self.decision)
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Validation score against training budget, one line per candidate, the chosen one bold."""
        fig, ax = subplots(1, (7.5, 4.5))
        for c in self.candidates:
            if not c.scores:
                continue
            xs, ys = zip(*c.scores, strict=True)
            best = c is self.best
            ax.plot(xs, ys, marker="o", lw=2.5 if best else 1, alpha=1 if best else 0.6,
                    label=c.label + (" (chosen)" if best else ""))
        ax.set_xlabel("fraction of the full training budget")
        ax.set_ylabel(f"validation {self.metric}")
        ax.set_title("sg.tune: successive halving over the stability analysis' candidates")
        legend(ax, fontsize=7, ncol=2)
        return save_figure(fig, path, dpi=110)


def _opt(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)
