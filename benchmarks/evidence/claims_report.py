"""The claims tables from the parts' ``results.jsonl`` (``claims.py`` runs them): ``<out>/claims.md``.

    python -m benchmarks.evidence.claims_report [--out out/claims]

Every cell is the mean test accuracy over seeds ± its sample standard deviation. "Better" or "worse" means beyond the
larger of the two seed spreads; anything else is "within the spread".
"""

from __future__ import annotations

import argparse
import statistics as st
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.evidence.claims import FAMILIES3, PARTS, RATES
from benchmarks.evidence.report import load
from benchmarks.evidence.run import SHAPES

Stats = tuple[float, float, int]  # mean, standard deviation, seeds


class GridPoint(NamedTuple):
    shape: str  # a family, or "q_pseudospike:<tail>"
    dampening: float
    sharpness: float
    lr_scale: float


Cells = dict[str | GridPoint, Stats]  # a method's name, or a grid point -> its stats


def _stats(values: list[float]) -> Stats:
    return st.mean(values), st.stdev(values) if len(values) > 1 else 0.0, len(values)


def _cell(s: Stats | None) -> str:
    return "-" if s is None else f"{s[0]:.3f} ± {s[1]:.2f}"


def _shape(cfg: dict[str, Any]) -> str:
    return cfg["family"] + (f":{cfg['tail']:g}" if "tail" in cfg else "")


def by_method(rows: list[dict[str, Any]], key: str = "test_acc") -> dict[tuple[str, str], Cells]:
    """(task, framework) -> method name or :class:`GridPoint` -> stats."""
    acc: dict[tuple[str, str], dict[str | GridPoint, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        c = r["config"]
        name = GridPoint(_shape(c), c["dampening"], c["sharpness"], c.get("lr_scale", 1.0)) \
            if c["method"] == "grid" else c["method"]
        acc[(r["task"], r["framework"])][name].append(r[key])
    return {k: {m: _stats(v) for m, v in ms.items()} for k, ms in sorted(acc.items())}


def versus(base: Stats, other: Stats) -> int:
    """+1 better, -1 worse (beyond the larger seed spread), 0 within it."""
    d, spread = other[0] - base[0], max(base[1], other[1])
    return 0 if abs(d) <= spread else (1 if d > 0 else -1)


def tally(stats: dict[tuple[str, str], Cells], base: str, other: str) -> str:
    votes = [versus(ms[base], ms[other]) for ms in stats.values() if base in ms and other in ms]
    return (f"better on {votes.count(1)}, within the spread on {votes.count(0)}, worse on {votes.count(-1)} "
            f"of {len(votes)} pairs")


def method_table(stats: dict[tuple[str, str], Cells], columns: dict[str, str],
                 rates: dict[tuple[str, str], Cells] | None = None) -> str:
    lines = ["| task | framework | " + " | ".join(columns.values()) + " |", "|---|---|" + "---|" * len(columns)]
    for (task, fw), ms in stats.items():
        cells = []
        for m in columns:
            cell = _cell(ms.get(m))
            if rates is not None and m in rates.get((task, fw), {}):
                cell += f" (rate {rates[(task, fw)][m][0]:.3f})"
            cells.append(cell)
        lines.append(f"| {task} | {fw} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def family_scores(ms: Cells, lr: float, points: set[tuple[float, float]] | None = None) -> dict[str, Stats]:
    """Per shape: its best grid point at learning-rate scale ``lr`` (by mean test accuracy over seeds), among
    ``points`` (dampening, sharpness) when given."""
    best: dict[str, Stats] = {}
    for name, s in ms.items():
        if not isinstance(name, GridPoint) or name.lr_scale != lr:
            continue
        if points is not None and (name.dampening, name.sharpness) not in points:
            continue
        if name.shape not in best or s[0] > best[name.shape][0]:
            best[name.shape] = s
    return best


def families_section(stats: dict[tuple[str, str], Cells], lrs: tuple[float, ...],
                     points: set[tuple[float, float]] | None) -> tuple[str, list[str]]:
    shapes = [s for s in SHAPES if any(family_scores(ms, lrs[0], points).get(s) for ms in stats.values())]
    head = ("| task | framework | lr × | " + " | ".join(shapes) +
            " | best shape | fast_sigmoid's rank | shapes within the seed spread of the best |")
    lines, wins = [head, "|---|---|---|" + "---|" * (len(shapes) + 3)], []
    for (task, fw), ms in stats.items():
        for lr in lrs:
            scores = family_scores(ms, lr, points)
            if not scores:
                continue
            order = sorted(scores, key=lambda s: -scores[s][0])
            rank = order.index("fast_sigmoid") + 1 if "fast_sigmoid" in order else None
            tied = versus(scores[order[0]], scores["fast_sigmoid"]) == 0 if rank else False
            wins.append(f"{task}/{fw}/lr×{lr:g}: best {order[0]}, fast_sigmoid rank {rank}"
                        f"{' (within the spread of the best)' if tied and rank != 1 else ''}")
            lines.append(f"| {task} | {fw} | {lr:g} | " + " | ".join(
                f"**{scores[s][0]:.3f}**" if s == order[0] else (f"{scores[s][0]:.3f}" if s in scores else "-")
                for s in shapes) + f" | {order[0]} | {rank} of {len(order)} | "
                f"{sum(versus(scores[order[0]], scores[s]) == 0 for s in order)} |")
    return "\n".join(lines), wins


def plot_families(stats: dict[tuple[str, str], Cells], points: set[tuple[float, float]], path: Path) -> Path:
    """One panel per task x framework: each shape's best of ``points`` against the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(stats)
    fig, axes = plt.subplots(1, len(pairs), figsize=(max(3.6 * len(pairs) + 1.0, 6.0), 3.8), squeeze=False)
    lrs = (0.25, 1.0, 4.0)
    for ax, pair in zip(axes[0], pairs, strict=True):
        by_lr = [family_scores(stats[pair], lr, points) for lr in lrs]
        for shape in SHAPES:
            ys = [scores[shape][0] if shape in scores else float("nan") for scores in by_lr]
            style = {"lw": 2.6, "color": "black"} if shape == "fast_sigmoid" else {"lw": 1.0, "alpha": 0.8}
            ax.plot(lrs, ys, marker="o", ms=3, label=shape, **style)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(lrs, [f"{v:g}×" for v in lrs])
        ax.set_title(f"{pair[0]} / {pair[1]}", fontsize=10)
        ax.set_xlabel("learning rate (× the task's)")
    axes[0][0].set_ylabel("test accuracy, best of 4 points")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Every surrogate family across learning rates (fast_sigmoid in black)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def robustness(stats: dict[tuple[str, str], Cells], lrs: tuple[float, ...],
               points: set[tuple[float, float]] | None) -> str:
    """Per shape over every task x framework x learning rate: mean rank, wins, cells within the seed spread of
    the best, and the largest shortfall to the best."""
    ranks: dict[str, list[int]] = defaultdict(list)
    gaps: dict[str, list[float]] = defaultdict(list)
    near: dict[str, int] = defaultdict(int)
    for ms in stats.values():
        for lr in lrs:
            scores = family_scores(ms, lr, points)
            if not scores:
                continue
            order = sorted(scores, key=lambda s: -scores[s][0])
            for shape, sc in scores.items():
                ranks[shape].append(order.index(shape) + 1)
                gaps[shape].append(scores[order[0]][0] - sc[0])
                near[shape] += versus(scores[order[0]], sc) == 0
    lines = ["| shape | mean rank | best in | within the seed spread of the best in | largest shortfall to the best |",
             "|---|---|---|---|---|"]
    for shape in sorted(ranks, key=lambda s: st.mean(ranks[s])):
        n = len(ranks[shape])
        lines.append(f"| {shape} | {st.mean(ranks[shape]):.1f} | {ranks[shape].count(1)} of {n} | {near[shape]} of "
                     f"{n} | {max(gaps[shape]):.3f} |")
    return "\n".join(lines)


def landing(stats: dict[tuple[str, str], Cells]) -> list[str]:
    """Where the framework default and sg.stabilize land among the grid's points (at the task's learning rate)."""
    notes = []
    for (task, fw), ms in stats.items():
        grid = [s[0] for n, s in ms.items() if isinstance(n, GridPoint) and n.lr_scale == 1.0]
        if not grid:
            continue
        where = [f"{label} {ms[m][0]:.3f} (above {sum(g < ms[m][0] for g in grid) / len(grid):.0%} of the "
                 f"{len(grid)} points)" for m, label in (("default", "default"), ("stabilize", "sg.stabilize"))
                 if m in ms]
        notes.append(f"{task}/{fw}: grid median {st.median(grid):.3f}; " + "; ".join(where))
    return notes


def difficulty_section(stats: dict[tuple[str, str], Cells]) -> str:
    lines = [("| task | framework | grid best | grid median | best − median | framework default | sg.stabilize | "
              "sg.stabilize / best |"), "|---|---|---|---|---|---|---|---|"]
    for (task, fw), ms in stats.items():
        grid = sorted(s[0] for n, s in ms.items() if isinstance(n, GridPoint))
        if not grid:
            continue
        best, median = grid[-1], st.median(grid)
        lines.append(f"| {task} | {fw} | {best:.3f} | {median:.3f} | {best - median:.3f} | "
                     f"{_cell(ms.get('default'))} | {_cell(ms.get('stabilize'))} | "
                     f"{ms['stabilize'][0] / best:.3f} |" if "stabilize" in ms else "- |")
    return "\n".join(lines)


def paper_section(rows: list[dict[str, Any]], stats: dict[tuple[str, str], Cells]) -> str:
    """The paper arm with what it patched: the rule per layer, the median gamma*, how often each condition had a
    root (over layer runs)."""
    layers: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["config"]["method"] == "paper":
            layers[(r["task"], r["framework"])].extend(r["paper"])
    lines = [("| task | framework | rule | γ* (median) | γ* / β* feasible | the paper's γ*, β* | sg.stabilize | "
              "framework default |"), "|---|---|---|---|---|---|---|---|"]
    for key, ms in stats.items():
        ls = layers.get(key, [])
        if not ls:
            continue
        rules = ", ".join(sorted({layer["rule"] for layer in ls}))
        g_ok, b_ok = sum(layer["gamma_feasible"] for layer in ls), sum(layer["beta_feasible"] for layer in ls)
        lines.append(f"| {key[0]} | {key[1]} | {rules} | {st.median(layer['gamma'] for layer in ls):.3g} | "
                     f"{g_ok}/{len(ls)}, {b_ok}/{len(ls)} | {_cell(ms.get('paper'))} | {_cell(ms.get('stabilize'))} | "
                     f"{_cell(ms.get('default'))} |")
    return "\n".join(lines)


def sparsity_section(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """One row per task x framework x shape; columns: no calibration, then calib/recipe at each initial rate."""
    acc, rate = by_method(rows), by_method(rows, "final_rate")
    kinds = [k for k in ["shape"] + [f"{k}_{r}" for k in ("calib", "recipe") for r in RATES]
             if any(m.startswith(k + "_") for ms in acc.values() for m in ms)]
    lines = ["| task | framework | shape | " + " | ".join("no calibration" if k == "shape" else k.replace("_", " ")
                                                         for k in kinds) + " |", "|---|---|---|" + "---|" * len(kinds)]
    votes: dict[str, list[int]] = defaultdict(list)
    for (task, fw), ms in acc.items():
        for f in FAMILIES3:
            cells = []
            for k in kinds:
                m = f"{k}_{f}"
                cells.append(f"{_cell(ms.get(m))} (rate {rate[(task, fw)][m][0]:.3f})" if m in ms else "-")
                if k != "shape" and m in ms and f"shape_{f}" in ms:
                    votes[k].append(versus(ms[f"shape_{f}"], ms[m]))
            lines.append(f"| {task} | {fw} | {f} | " + " | ".join(cells) + " |")
    notes = tuple(f"{k.replace('_', ' ')} against no calibration: better in {v.count(1)}, within the spread in "
                  f"{v.count(0)}, worse in {v.count(-1)} of {len(v)} (task, framework, shape) cases"
                  for k, v in votes.items())
    return ("\n".join(lines), *notes)


def write(out: Path) -> Path:
    parts = {name: load(out / name) for name in PARTS if (out / name / "results.jsonl").exists()}
    text = ["# The paper's claims: the measured tables", "",
            ("Generated by `python -m benchmarks.evidence.claims_report`; mean test accuracy ± sample standard "
             "deviation over seeds; \"better\"/\"worse\" = beyond the larger of the two seed spreads."), ""]

    def section(title: str, body: str, *notes: str) -> None:
        text.extend([f"## {title}", "", body, "", *[f"- {n}" for n in notes], ""])

    if "paper" in parts:
        s = by_method(parts["paper"])
        section("paper: the paper's gamma*, beta*", paper_section(parts["paper"], s),
                f"paper against sg.stabilize: {tally(s, 'stabilize', 'paper')}",
                f"paper against the framework default: {tally(s, 'default', 'paper')}")
    if "families" in parts:
        s = by_method(parts["families"] + parts.get("lr", []))
        body, wins = families_section(s, (1.0,), None)
        section("families: every family's best point of the 120-point grid (task's learning rate)", body, *wins,
                *landing(s))
        if "lr" in parts:
            centre = {(r["config"]["dampening"], r["config"]["sharpness"]) for r in parts["lr"]}
            body, wins = families_section(s, (0.25, 1.0, 4.0), centre)
            figure = plot_families(s, centre, out / "claims_families_lr.png")
            section("lr: every family's best of 4 central points, at 3 learning rates", body, *wins,
                    f"figure: {figure.name}")
            section("lr, summed up: each shape over every task x framework x learning rate",
                    robustness(s, (0.25, 1.0, 4.0), centre))
    if "difficulty" in parts:
        section("difficulty: RandMan's class count, the spread of the 48-point grid",
                difficulty_section(by_method(parts["difficulty"])))
    for name in ("sparsity", "sparsity_long"):
        if name in parts:
            section(f"{name}: a calibrated initial rate, without (calib) and with (recipe) the ramped sparsity "
                    "loss; the final firing rate in brackets", *sparsity_section(parts[name]))
    if "qtail" in parts:
        s = by_method(parts["qtail"])
        section("qtail: the tail of q-PseudoSpike", method_table(s, {m: m for m in (
            "qtail_1.5", "qtail_3", "qtail_10", "qtail_predicted")}))
    if "fluctuation" in parts:
        s = by_method(parts["fluctuation"])
        section("fluctuation: fluctuation-driven initialisation", method_table(s, {
            "default": "default init", "init_fluctuation": "fluctuation (mu_u = 0)",
            "init_fluctuation_threshold": "fluctuation (at threshold)"}),
            f"mu_u = 0 against the default: {tally(s, 'default', 'init_fluctuation')}",
            f"at threshold against the default: {tally(s, 'default', 'init_fluctuation_threshold')}")
    if "aids" in parts:
        s = by_method(parts["aids"])
        section("aids: annealing and noise injection, on top of sg.stabilize", method_table(s, {
            "stabilize": "none", "anneal_sharpness": "sharpness: wide → chosen",
            "anneal_sharpness_up": "sharpness: chosen → 4× sharper", "anneal_threshold": "threshold annealing",
            "noise": "noise injection"}), *[f"{m} against none: {tally(s, 'stabilize', m)}" for m in (
                "anneal_sharpness", "anneal_sharpness_up", "anneal_threshold", "noise")])
    if "decolle" in parts:
        s, r = by_method(parts["decolle"]), by_method(parts["decolle"], "final_rate")
        section("decolle: local per-layer losses, with and without firing-rate control", method_table(s, {
            "stabilize": "end-to-end BPTT", "decolle": "local losses", "decolle_fr0.158": "+ rate control 0.158",
            "decolle_fr0.5": "+ rate control 0.5"}, r),
            *[f"{m} against end-to-end: {tally(s, 'stabilize', m)}" for m in ("decolle", "decolle_fr0.158",
                                                                             "decolle_fr0.5")])
    path = out / "claims.md"
    path.write_text("\n".join(text))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent.parent / "out" / "claims"))
    print(write(Path(p.parse_args(argv).out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
