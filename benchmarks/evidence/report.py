"""Summarise ``results.jsonl``: the Markdown table (``summary.md``), per-task plots, and the targets.

    python -m benchmarks.evidence.report [--out out/evidence]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics as st
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
METHOD_LABELS = {"default": "framework default", "stabilize": "sg.stabilize", "tune": "sg.tune"}


def load(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    latest = {r["key"]: r for r in rows}  # a rerun of the same key replaces the earlier line
    return list(latest.values())


def _cfg(r: dict[str, Any]) -> str:
    c = r["config"]
    name = f"{c['family']}({c['dampening']:g},{c['sharpness']:g})" if c["method"] == "grid" else c["method"]
    return name + "".join(f" {k}={c[k]:g}" for k in ("tail", "lr_scale", "epochs_scale") if k in c)


def random_search(grid: dict[int, dict[str, dict[str, Any]]], k: int, draws: int = 2000, seed: int = 0) -> float:
    """Expected test accuracy of random search over the grid's configurations with ``k`` full runs, picking the
    best by validation accuracy, averaged over seeds and ``draws`` random subsets."""
    rng = random.Random(seed)
    accs = []
    for runs in grid.values():
        names = sorted(runs)
        for _ in range(draws // max(len(grid), 1)):
            pick = max(rng.sample(names, min(k, len(names))), key=lambda n: (runs[n]["val_acc"], -runs[n]["test_loss"]))
            accs.append(runs[pick]["test_acc"])
    return st.mean(accs) if accs else math.nan


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["framework"])].append(r)
    out = []
    for (task, fw), rs in sorted(groups.items()):
        grid: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        by_cfg: dict[str, list[float]] = defaultdict(list)
        methods: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rs:
            if r["config"]["method"] == "grid":
                grid[r["seed"]][_cfg(r)] = r
                by_cfg[_cfg(r)].append(r["test_acc"])
            else:
                methods[r["config"]["method"]].append(r)
        seeds = sorted(grid)
        complete = {c: v for c, v in by_cfg.items() if len(v) == len(seeds)}
        means = {c: st.mean(v) for c, v in complete.items()}
        best_cfg = max(means, key=means.__getitem__) if means else None
        row: dict[str, Any] = {"task": task, "framework": fw, "seeds": len(seeds), "grid_points": len(means),
                               "grid_means": means, "best_cfg": best_cfg,
                               "best": means[best_cfg] if best_cfg else math.nan,
                               "median": st.median(means.values()) if means else math.nan,
                               "grid_train_s": sum(r["train_s"] for s in grid.values() for r in s.values())}
        for m, mrs in methods.items():
            accs = [r["test_acc"] for r in mrs]
            row[m] = st.mean(accs)
            row[m + "_std"] = st.pstdev(accs) if len(accs) > 1 else 0.0
            row[m + "_loss"] = st.mean(r["final_loss"] for r in mrs)
            row[m + "_choose_s"] = st.mean(r["choose_s"] for r in mrs)
            row[m + "_n"] = len(mrs)
            rates = [(r["initial_rate"], r["final_rate"]) for r in mrs if "final_rate" in r]
            if rates:
                row[m + "_rates"] = (st.mean(a for a, _ in rates), st.mean(b for _, b in rates))
            if m == "tune":
                row["tune_cost_runs"] = st.mean(r.get("cost_runs", math.nan) for r in mrs)
                row["tune_chosen"] = [r.get("chosen") for r in mrs]
        k = max(1, round(row.get("tune_cost_runs", 3.0)))
        row["random_k"] = k
        row["random"] = random_search(grid, k) if grid else math.nan
        row["train_s"] = st.mean(r["train_s"] for r in rs)
        out.append(row)
    return out


def _f(x: Any, fmt: str = ".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def table(summary: list[dict[str, Any]]) -> str:
    head = ("| task | framework | grid best (config) | grid median | default | sg.stabilize | sg.tune | "
            "random search (k runs) | tune / best | tune cost (runs) | choose s: stabilize / tune | grid s |")
    lines = [head, "|" + "---|" * head.count("|")[:-1] if False else "|" + "---|" * (head.count("|") - 1)]
    for r in summary:
        ratio = r.get("tune", math.nan) / r["best"] if r["best"] else math.nan
        lines.append(
            f"| {r['task']} | {r['framework']} | {_f(r['best'])} ({r['best_cfg']}) | {_f(r['median'])} | "
            f"{_f(r.get('default'))} ± {_f(r.get('default_std'), '.2f')} | "
            f"{_f(r.get('stabilize'))} ± {_f(r.get('stabilize_std'), '.2f')} | "
            f"{_f(r.get('tune'))} ± {_f(r.get('tune_std'), '.2f')} | {_f(r['random'])} ({r['random_k']}) | "
            f"{_f(ratio)} | {_f(r.get('tune_cost_runs'), '.2f')} / {r['grid_points']} | "
            f"{_f(r.get('stabilize_choose_s'), '.2f')} / {_f(r.get('tune_choose_s'), '.1f')} | "
            f"{_f(r['grid_train_s'] / max(r['seeds'], 1), '.0f')} |")
    return "\n".join(lines)


def sparsity_table(summary: list[dict[str, Any]]) -> str:
    rows = [r for r in summary if "sparsity_none" in r]
    if not rows:
        return ""
    lines = [("| task | framework | recipe: init=\"at_threshold\" + ramped sparsity loss "
              "| init=\"at_threshold\" alone | fixed-weight sparsity loss | no sparsity loss |"),
             "|---|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for m in ("sparsity_recipe", "sparsity_init_only", "sparsity_fixed", "sparsity_none"):
            a, b = r.get(m + "_rates", (math.nan, math.nan))
            cells.append(f"{_f(r.get(m))} ± {_f(r.get(m + '_std'), '.2f')} (rate {_f(a, '.3f')} → {_f(b, '.3f')})")
        lines.append(f"| {r['task']} | {r['framework']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(summary: list[dict[str, Any]]) -> str:
    lines = []
    for m in ("tune", "stabilize"):
        ratios = [r[m] / r["best"] for r in summary if m in r and r["best"] > 0]
        below = [f"{r['task']}/{r['framework']}" for r in summary if m in r and r[m] < r.get("default", -1)]
        if ratios:
            lines.append(f"- {METHOD_LABELS[m]}: median accuracy / grid best = {st.median(ratios):.3f} "
                         f"(min {min(ratios):.3f}) over {len(ratios)} task x framework pairs; "
                         f"below the framework default on: {', '.join(below) or 'none'}")
    costs = [r["tune_cost_runs"] / r["grid_points"] for r in summary if "tune_cost_runs" in r and r["grid_points"]]
    if costs:
        lines.append(f"- sg.tune's training cost / the grid's: {max(costs):.3f} at most "
                     f"(median {st.median(costs):.3f})")
    return "\n".join(lines)


def plots(summary: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for task in sorted({r["task"] for r in summary}):
        rows = [r for r in summary if r["task"] == task]
        fig, ax = plt.subplots(figsize=(2.6 * len(rows) + 1.5, 4.2))
        for i, r in enumerate(rows):
            vals = sorted(r["grid_means"].values())
            jitter = [(k / max(len(vals) - 1, 1) - 0.5) * 0.35 for k in range(len(vals))]
            ax.scatter([i + j for j in jitter], vals, s=12, color="0.6", label="grid points" if i == 0 else None)
            if vals:
                ax.boxplot([vals], positions=[i], widths=0.5, showfliers=False)
            for m, color, marker in (("default", "tab:red", "v"), ("stabilize", "tab:orange", "s"),
                                     ("tune", "tab:green", "*")):
                if m in r:
                    ax.scatter([i + 0.32], [r[m]], color=color, marker=marker, s=110 if m == "tune" else 60,
                               zorder=3, label=METHOD_LABELS[m] if i == 0 else None)
        ax.set_xticks(range(len(rows)), [r["framework"] for r in rows])
        ax.set_ylabel("test accuracy (mean over seeds)")
        ax.set_title(f"{task}: the grid's spread, the framework default and sg-stability's choices")
        ax.legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        path = out / f"evidence_{task}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def report(out: Path, grid: str = "full") -> str:
    summary = summarise(load(out))
    text = "\n\n".join(t for t in (table(summary), targets(summary), sparsity_table(summary)) if t)
    (out / "summary.md").write_text(text + "\n")
    plots(summary, out)
    print(text)
    return text


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(HERE.parent.parent / "out" / "evidence"))
    report(Path(p.parse_args().out))
