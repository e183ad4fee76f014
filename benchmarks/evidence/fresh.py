"""The race against the grid's best, measured on seeds the grid's best was not chosen on.

The grid's best point is the largest of 48 means over 3 seeds: chosen and measured on the same seeds, it carries
the luck of the seeds that made it the largest (the winner's curse), and every ratio against it is biased low.
This script takes each task x framework's best point as the evidence harness chose it (on its seeds), and trains
it again on new seeds, together with the race, ``sg.stabilize`` and the framework default, with the same data,
budget and seeds. One command, resumable:

    python -m benchmarks.evidence.run --seeds 3 --grid full --methods tune,stabilize,default --out out/evidence
    python -m benchmarks.evidence.fresh --selected out/evidence --seeds 5 --out out/evidence-fresh

Every run appends one JSON line to ``<out>/results.jsonl`` (as ``run.py``), and ``<out>/summary.md`` gets the
table: the grid's best on its own seeds and on the fresh ones, and every method's mean ± sample standard deviation
over the fresh seeds; ``<out>/evidence_fresh.png`` plots it.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics as st
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.evidence.report import _cfg, _f, load, summarise
from benchmarks.evidence.run import HERE, execute

METHODS = ("default", "stabilize", "tune")


def selections(selected: Path) -> dict[tuple[str, str], tuple[dict[str, Any], float, int]]:
    """Each task x framework's best grid point in the harness run ``selected``: its configuration, its mean test
    accuracy there and the number of seeds it was chosen on."""
    rows = load(selected)
    configs = {(r["task"], r["framework"], _cfg(r)): r["config"] for r in rows if r["config"]["method"] == "grid"}
    chosen = {}
    for s in summarise(rows):
        if s["best_cfg"] is not None:
            chosen[(s["task"], s["framework"])] = (configs[(s["task"], s["framework"], s["best_cfg"])], s["best"],
                                                   s["seeds"])
    if not chosen:
        raise SystemExit(f"no complete grid in {selected / 'results.jsonl'}: run benchmarks.evidence.run with a grid "
                         "there first")
    return chosen


def fresh_jobs(chosen: dict[tuple[str, str], tuple[dict[str, Any], float, int]], seeds: int,
               options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The best point and every method, on ``seeds`` seeds after the ones each best point was chosen on."""
    for (task, framework), (config, _, n) in sorted(chosen.items()):
        for seed in range(n, n + seeds):
            for c in (config, *({"method": m} for m in METHODS)):
                yield {"task": task, "framework": framework, "seed": seed, "config": c, **options}


def summary(chosen: dict[tuple[str, str], tuple[dict[str, Any], float, int]], out: Path) -> list[dict[str, Any]]:
    """Per pair: the grid's best on its own seeds and on the fresh ones, and each method over the fresh seeds."""
    accs: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in load(out):
        pair = (r["task"], r["framework"])
        if pair in chosen and r["seed"] >= chosen[pair][2]:
            accs[(*pair, "best" if r["config"]["method"] == "grid" else r["config"]["method"])].append(r["test_acc"])
    rows = []
    for (task, framework), (config, best, _) in sorted(chosen.items()):
        row: dict[str, Any] = {"task": task, "framework": framework, "config": config, "chosen_on": best}
        for m in ("best", *METHODS):
            v = accs.get((task, framework, m), [])
            row[m] = st.mean(v) if v else math.nan
            row[m + "_std"] = st.stdev(v) if len(v) > 1 else 0.0
            row[m + "_n"] = len(v)
        rows.append(row)
    return rows


def below_default(r: dict[str, Any], m: str = "tune") -> bool:
    """Below the framework default by more than one seed spread (the larger of the two sample deviations)."""
    return bool(r[m] < r["default"] - max(r[m + "_std"], r["default_std"]))


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| task | framework | grid best (config) | on its own seeds | on the fresh seeds | default | "
            "sg.stabilize | race (sg.tune) | race / best | race / stabilize | seeds |")
    lines = [head, "|---" * 11 + "|"]
    for r in rows:
        name = _cfg({"config": r["config"]})
        lines.append(
            f"| {r['task']} | {r['framework']} | {name} | {_f(r['chosen_on'])} | "
            + " | ".join(f"{_f(r[m])} ± {_f(r[m + '_std'], '.3f')}" for m in ("best", *METHODS))
            + f" | {_f(r['tune'] / r['best'] if r['best'] else math.nan)} | "
            f"{_f(r['tune'] / r['stabilize'] if r['stabilize'] else math.nan)} | {r['tune_n']} |")
    done = [r for r in rows if r["tune_n"] and r["best_n"] and r["best"] > 0]
    if done:
        ratios = [r["tune"] / r["best"] for r in done]
        own = [r["tune"] / r["chosen_on"] for r in done if r["chosen_on"] > 0]
        below = [f"{r['task']}/{r['framework']}" for r in done if below_default(r)]
        lines += ["",
                  (f"- race / grid best on the fresh seeds: median {st.median(ratios):.3f} (min {min(ratios):.3f}) "
                   f"over {len(done)} pairs; against the best's mean on its own seeds: median {st.median(own):.3f}"),
                  f"- race / sg.stabilize: min {min(r['tune'] / r['stabilize'] for r in done):.3f}",
                  "- race below the framework default by more than one seed spread: " + (", ".join(below) or "none")]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Per pair: the grid's best on its own seeds (hollow) and on the fresh ones, beside every method there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(rows) + 2), 4.4))
    xs = range(len(rows))
    ax.scatter(xs, [r["chosen_on"] for r in rows], s=70, facecolors="none", edgecolors="0.3",
               label="grid best, on the seeds it was chosen on")
    marks = (("best", "0.3", "o", "grid best, fresh seeds"), ("default", "tab:red", "v", "framework default"),
             ("stabilize", "tab:orange", "s", "sg.stabilize"), ("tune", "tab:green", "*", "race (sg.tune)"))
    for k, (m, color, marker, label) in enumerate(marks):
        ax.errorbar([x + 0.1 * (k - 1.5) for x in xs], [r[m] for r in rows], yerr=[r[m + "_std"] for r in rows],
                    fmt=marker, color=color, markersize=9 if m == "tune" else 6, capsize=2, label=label)
    ax.set_xticks(list(xs), [f"{r['task']}\n{r['framework']}" for r in rows], fontsize=7)
    ax.set_ylabel("test accuracy (mean ± sd over the fresh seeds)")
    ax.set_title("The grid's best re-measured on fresh seeds, beside the race")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--selected", default=str(HERE.parent.parent / "out" / "evidence"),
                   help="the evidence harness' output folder whose grid chose each pair's best point")
    p.add_argument("--seeds", type=int, default=5, help="fresh seeds, after the ones the grid was run on")
    p.add_argument("--tasks", default=None, help="only these tasks (default: every pair with a grid)")
    p.add_argument("--frameworks", default=None)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default=str(HERE.parent.parent / "out" / "evidence-fresh"))
    p.add_argument("--quick", action="store_true", help="every task at smoke-test size (a few dozen samples)")
    args = p.parse_args(argv)
    chosen = {pair: v for pair, v in selections(Path(args.selected)).items()
              if (args.tasks is None or pair[0] in args.tasks.split(","))
              and (args.frameworks is None or pair[1] in args.frameworks.split(","))}
    out = Path(args.out)
    execute(fresh_jobs(chosen, args.seeds, {"quick": True} if args.quick else {}), out, args.workers)
    rows = summary(chosen, out)
    text = table(rows)
    (out / "summary.md").write_text(text + "\n")
    plot(rows, out / "evidence_fresh.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
