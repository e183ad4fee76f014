"""LIF against QIF (issue 24; Klos & Memmesheimer): accuracy, spike counts and the loss landscape's fragmentation.

    python -m benchmarks.evidence.qif                         # randman and digits, 3 seeds (about 40 min, 2 cores)
    python -m benchmarks.evidence.qif --quick --seeds 1 --tasks randman --out /tmp/q   # a smoke test (~1 min)
    python -m benchmarks.evidence.qif --shd /data/shd          # adds Spiking Heidelberg Digits from its HDF5 files

Three models per task (``qif_nets``): LIF and QIF trained with surrogate gradients in the same discrete-time
network, and the exact continuous-time QIF network (``sg_stability.exact``). Each model gets its own small search
(8 points for the two surrogate-gradient models, 4 for the exact one), chosen by validation accuracy on seed 0;
the best point is then trained with 3 seeds. After training, ``sg.landscape`` measures the fragmentation (the
fraction of steps larger than 10x the median step) along one filter-normalised direction, on a test batch of 64
and on 8 single samples (the paper's single-sample analysis). On the single samples, every step above the
median is also bisected 30 times (``refine=``, ``jump_factor=1.01``): the steps that do not shrink are
discontinuities, whatever their size, and a continuous loss has none. Every run appends a JSON line to
``<out>/results.jsonl``; a rerun skips what is there. The report goes to ``<out>/qif.md`` and the figure of the
three models' landscapes on the same task to ``docs/img/qif_vs_lif_landscapes.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("lif", "qif", "exact_qif")
LABELS = {"lif": "LIF, surrogate gradient", "qif": "QIF, surrogate gradient", "exact_qif": "QIF, exact gradient"}
RADIUS, POINTS, SINGLES = 0.25, 41, 8
QUICK_POINTS, QUICK_SINGLES = 11, 2
REFINE = 30  # bisections per grid jump: what is left of a steep but continuous stretch is 2**-30 of a step
BREAK_FACTOR = 1.01  # every step above the median is bisected: the discontinuities, whatever their size


def key(job: dict[str, Any]) -> str:
    cfg = "/".join(f"{k}={v:g}" for k, v in sorted(job["config"].items()))
    return f"{job['task']}/{job['model']}/{job['seed']}/{job['phase']}/{cfg}"


def work(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    import sg_stability as sg
    from benchmarks.evidence import qif_nets
    from benchmarks.evidence.tasks import TASKS, add_shd, quick, splits
    from benchmarks.evidence.train import evaluate, fit, loss_fn

    torch.set_num_threads(1)
    if job.get("shd") and "shd" not in TASKS:
        add_shd(job["shd"])
    task = quick(TASKS[job["task"]]) if job.get("quick") else TASKS[job["task"]]
    train, val, test = splits(task, job["seed"])
    model = qif_nets.build(job["model"], task.arch(train), task.window, job["seed"], job["config"], task.lr)
    t0 = time.perf_counter()
    fit(model, task, train, job["seed"])
    seconds = time.perf_counter() - t0
    val_acc, _ = evaluate(model, val)
    record: dict[str, Any] = {**job, "val_acc": val_acc, "train_s": seconds}
    if job["phase"] == "search":
        return record
    test_acc, test_loss = evaluate(model, test)  # leaves the test set's spike count on the model
    record.update(test_acc=test_acc, test_loss=test_loss, spikes_per_sample=model.spikes_per_sample)
    points, count = (QUICK_POINTS, QUICK_SINGLES) if job.get("quick") else (POINTS, SINGLES)
    batch = (test.x[:, :64], test.y[:64])
    whole = sg.landscape(model, loss_fn, batch, points=points, radius=RADIUS, seed=job["seed"], progress=False)
    singles = [(test.x[:, k:k + 1], test.y[k:k + 1]) for k in range(count)]
    per = sg.landscape(model, loss_fn, singles, points=points, radius=RADIUS, seed=job["seed"], per_sample=True,
                       progress=False)
    breaks = sg.landscape(model, loss_fn, singles, points=points, radius=RADIUS, seed=job["seed"],
                          per_sample=True, jump_factor=BREAK_FACTOR, refine=REFINE, progress=False)
    record.update(fragmentation=whole.fragmentation, fragmentation_single=per.fragmentation,
                  breaks_single=breaks.jumps / len(singles),
                  roughness=whole.roughness, profile=[float(v) for v in whole.loss],
                  profile_single=[float(v) for v in per.loss[0]])
    return record


def run_all(jobs: list[dict[str, Any]], out: Path, workers: int) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    done = {}
    if path.exists():
        done = {key(r): r for r in map(json.loads, path.read_text().splitlines())}
    todo = [j for j in jobs if key(j) not in done]
    with ProcessPoolExecutor(workers) as pool, path.open("a") as f:
        for k, record in enumerate(pool.map(work, todo)):
            f.write(json.dumps(record) + "\n")
            f.flush()
            done[key(record)] = record
            print(f"[{k + 1}/{len(todo)}] {key(record)} val {record['val_acc']:.3f}", flush=True)
    return [done[key(j)] for j in jobs]


def best_config(results: list[dict[str, Any]]) -> dict[str, float]:
    return max(results, key=lambda r: r["val_acc"])["config"]


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def report(tasks: list[str], final: dict[tuple[str, str], list[dict[str, Any]]], out: Path, seeds: int) -> str:
    head = (f"| task | model | best search point | test accuracy ({seeds} seeds) | hidden spikes / sample | "
            "fragmentation (batch of 64) | fragmentation (single samples) | discontinuities per single-sample "
            "profile |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        for model in MODELS:
            rows = final[(task, model)]
            cfg = ", ".join(f"{k} {v:g}" for k, v in rows[0]["config"].items())
            lines.append(f"| {task} | {LABELS[model]} | {cfg} | {mean_sd([r['test_acc'] for r in rows])} | "
                         f"{statistics.mean(r['spikes_per_sample'] for r in rows):.1f} | "
                         f"{mean_sd([r['fragmentation'] for r in rows])} | "
                         f"{mean_sd([r['fragmentation_single'] for r in rows])} | "
                         f"{mean_sd([r['breaks_single'] for r in rows])} |")
    text = "\n".join(lines) + "\n"
    (out / "qif.md").write_text(text)
    return text


def plot(task: str, final: dict[tuple[str, str], list[dict[str, Any]]], path: Path) -> None:
    """Per model: the test loss along one direction for a batch of 64 (top) and for one sample (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(MODELS), figsize=(4.2 * len(MODELS), 5.6), sharex=True)
    for col, model in enumerate(MODELS):
        rows = final[(task, model)]
        for row, field, what in ((0, "profile", "batch of 64"), (1, "profile_single", "one sample")):
            ax = axes[row][col]
            for r in rows:
                n = len(r[field])
                alphas = [RADIUS * (2 * k / (n - 1) - 1) for k in range(n)]
                ax.plot(alphas, r[field], marker=".", markersize=3, lw=1, label=f"seed {r['seed']}")
            if col == 0:
                ax.set_ylabel(f"{task}: test loss, {what}")
        breaks = statistics.mean(r["breaks_single"] for r in rows)
        axes[0][col].set_title(f"{LABELS[model]}\n{breaks:.1f} discontinuities per single-sample profile",
                               fontsize=9)
        axes[1][col].set_xlabel("step along a filter-normalised direction")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="randman,digits")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "out" / "qif")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny splits, 2 epochs, 1 search point per model, coarse "
                   "landscapes")
    p.add_argument("--shd", default=None, help="folder holding shd_train.h5 and shd_test.h5 (adds the 'shd' task)")
    p.add_argument("--figure", type=Path, default=None, help="where the landscapes figure goes (default: docs/img)")
    args = p.parse_args(argv)
    from benchmarks.evidence.qif_nets import SEARCH

    tasks = args.tasks.split(",") + (["shd"] if args.shd and "shd" not in args.tasks else [])
    args.out.mkdir(parents=True, exist_ok=True)
    options = {"quick": args.quick, **({"shd": args.shd} if args.shd else {})}
    search = {m: SEARCH[m][:1] if args.quick else SEARCH[m] for m in MODELS}
    jobs = [{"task": t, "model": m, "seed": 0, "phase": "search", "config": c, **options}
            for t in tasks for m in MODELS for c in search[m]]
    found = run_all(jobs, args.out, args.workers)
    best = {(t, m): best_config([r for r in found if r["task"] == t and r["model"] == m])
            for t in tasks for m in MODELS}
    finals = [{"task": t, "model": m, "seed": s, "phase": "final", "config": best[(t, m)], **options}
              for t in tasks for m in MODELS for s in range(args.seeds)]
    results = run_all(finals, args.out, args.workers)
    final = {(t, m): [r for r in results if r["task"] == t and r["model"] == m] for t in tasks for m in MODELS}
    print(report(tasks, final, args.out, args.seeds))
    plot(tasks[0], final, args.figure or (args.out / "qif_vs_lif_landscapes.png" if args.quick
                                          else ROOT / "docs" / "img" / "qif_vs_lif_landscapes.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
