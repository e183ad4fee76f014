"""Evidence harness: does the surrogate sg-stability chooses train better? One command, resumable.

    python -m benchmarks.evidence.run                     # every task x framework x seed x configuration
    python -m benchmarks.evidence.run --tasks memory --frameworks norse --seeds 1 --grid small
    python -m benchmarks.evidence.run --shd /data/shd     # adds Spiking Heidelberg Digits from its HDF5 files
    python -m benchmarks.evidence.run --quick --seeds 1 --grid small --out /tmp/ev   # a smoke test, ~1 min

Every run appends one JSON line to ``<out>/results.jsonl``; a rerun skips what is already there. Then
``report.py`` writes the Markdown table and the plots (run.py calls it at the end).
Configurations, all trained with the same seeds, data and budget:
- ``default``: the framework's own surrogate (snnTorch atan(2), SpikingJelly Sigmoid(4), Norse SuperSpike(100));
- ``grid``: families x dampening x sharpness (48 points; ``--grid small``: 8);
- ``stabilize``: ``sg.stabilize(model, sample)`` (analysis only);
- ``tune``: ``sg.tune`` (the stability analysis' candidates ranked by short training on the training split's
  own validation part).
Random search with the same compute as ``tune`` is computed by ``report.py`` from the grid runs (random subsets of
the grid, the best by validation accuracy).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.evidence.arms import SPARSITY_METHODS

HERE = Path(__file__).resolve().parent

SHAPES = ("fast_sigmoid", "atan", "sigmoid", "triangular", "gaussian", "exponential", "rectangular",
          "q_pseudospike:1.5", "q_pseudospike:3", "q_pseudospike:10")  # every family; q-PseudoSpike at 3 tails
GRIDS = {
    "full": (("fast_sigmoid", "atan", "sigmoid", "triangular"), (0.1, 0.3, 1.0), (0.5, 1.5, 4.0, 12.0)),
    "small": (("fast_sigmoid", "atan"), (0.3, 1.0), (1.0, 4.0)),
    "families": (SHAPES, (0.1, 0.3, 1.0), (0.5, 1.5, 4.0, 12.0)),  # the full 8-family grid (120 points)
    "families_small": (SHAPES, (0.3, 1.0), (1.5, 4.0)),  # its centre (40 points), for the learning-rate axis
    "none": ((), (), ()),  # only the methods: e.g. --grid none --methods stabilize --no-report to compare versions
}
METHODS = ("default", "stabilize", "tune")
#: the first sparsity study runs on these tasks only
SPARSITY_TASKS = ("deep", "memory")


def grid_configs(name: str) -> list[dict[str, Any]]:
    families, dampenings, sharpnesses = GRIDS[name]
    configs = []
    for shape, d, s in itertools.product(families, dampenings, sharpnesses):
        family, _, tail = shape.partition(":")
        configs.append({"method": "grid", "family": family, "dampening": d, "sharpness": s,
                        **({"tail": float(tail)} if tail else {})})
    return configs


def key(job: dict[str, Any]) -> str:
    cfg = job["config"]
    tail = (f"{cfg['family']}/{cfg['dampening']}/{cfg['sharpness']}" if cfg["method"] == "grid" else cfg["method"])
    tail += "".join(f"/{k}={cfg[k]:g}" for k in ("tail", "lr_scale", "epochs_scale") if k in cfg)
    return f"{job['task']}/{job['framework']}/{job['seed']}/{tail}"


def jobs(tasks: list[str], frameworks: list[str], seeds: int, grid: str, methods: list[str],
         options: dict[str, Any], scales: list[dict[str, float]] = ({},)) -> Iterator[dict[str, Any]]:  # type: ignore[assignment]
    """Every task x framework x seed x configuration x training scale (``{"lr_scale": 4.0}``: 4x the task's
    learning rate; ``{"epochs_scale": 2}``: twice its epochs; ``{}``: as the task says)."""
    for task, framework, seed in itertools.product(tasks, frameworks, range(seeds)):
        sparse = [m for m in methods if m in SPARSITY_METHODS and task in SPARSITY_TASKS]
        configs = [{"method": m} for m in methods if m not in SPARSITY_METHODS] + grid_configs(grid) + \
            [{"method": m} for m in sparse]
        for config, scale in itertools.product(configs, scales):
            yield {"task": task, "framework": framework, "seed": seed, "config": {**config, **scale}, **options}


def configure(config: dict[str, Any], task: Any, job_seed: int) -> Any:
    import sg_stability as sg
    from benchmarks.evidence.arms import arm, is_arm

    method = config["method"]
    if method == "default":
        return None
    if method == "grid":
        surrogate = sg.surrogates.get(config["family"], dampening=config["dampening"], sharpness=config["sharpness"],
                                      **({"tail": config["tail"]} if "tail" in config else {}))

        def patch(model: Any, train: Any, val: Any) -> dict[str, Any]:
            sg.patch(model, surrogate=surrogate)
            return {}
        return patch
    if method == "stabilize":
        def stabilize(model: Any, train: Any, val: Any) -> dict[str, Any]:
            handle = sg.stabilize(model, train.x[:, :64])
            return {"chosen": {p: repr(s) for p, s in handle.surrogates.items()}}
        return stabilize
    if method.startswith("tune"):
        import torch

        from benchmarks.evidence.train import batches, loss_fn

        score = "loss" if method == "tune_loss" else "accuracy"  # the harness' metric is test accuracy

        def tune(model: Any, train: Any, val: Any) -> dict[str, Any]:
            # the same training batches, seed and validation split the grid's random search selects with
            handle = sg.tune(model, train.x[:, :64], lambda e: batches(train, task.batch, job_seed * 1000 + e),
                             loss_fn=loss_fn, val_batches=[(val.x, val.y)], score=score, epochs=task.epochs,
                             optimizer=lambda m: torch.optim.Adam(m.param_groups(task.lr)), seed=job_seed,
                             progress=False)
            return {"chosen": handle.race.best.label, "cost_runs": handle.race.cost_runs,
                    "tuning": str(handle.race)}
        return tune
    if is_arm(method):
        return arm(method, task, job_seed)
    raise ValueError(method)


def work(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from benchmarks.evidence.tasks import TASKS, add_shd, quick
    from benchmarks.evidence.train import run

    if job.get("shd") and "shd" not in TASKS:
        add_shd(job["shd"])
    task = quick(TASKS[job["task"]]) if job.get("quick") else TASKS[job["task"]]
    cfg = job["config"]
    task = replace(task, lr=task.lr * cfg.get("lr_scale", 1.0),
                   epochs=round(task.epochs * cfg.get("epochs_scale", 1.0)))
    t0 = time.perf_counter()
    result = run(job["framework"], task, job["seed"], configure(job["config"], task, job["seed"]))
    return {**job, "key": key(job), **result, "wall_s": time.perf_counter() - t0}


def execute(all_jobs: Iterable[dict[str, Any]], out: Path, workers: int) -> None:
    """Run every job not yet recorded in ``<out>/results.jsonl`` (by :func:`key`), appending one line each."""
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = set()
    if results.exists():
        done = {json.loads(line)["key"] for line in results.read_text().splitlines() if line.strip()}
    todo = [j for j in all_jobs if key(j) not in done]
    print(f"{len(done)} runs recorded, {len(todo)} to run, {workers} workers -> {results}", flush=True)
    from tqdm import tqdm

    if workers > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ctx.Pool(workers) as pool, results.open("a") as f:
            for r in tqdm(pool.imap_unordered(work, todo), total=len(todo), smoothing=0.05):
                f.write(json.dumps(r) + "\n")
                f.flush()
    else:
        with results.open("a") as f:
            for j in tqdm(todo, smoothing=0.05):
                f.write(json.dumps(work(j)) + "\n")
                f.flush()


def main(argv: list[str] | None = None) -> int:
    from benchmarks.evidence.tasks import CLAIM_TASKS, HELD_OUT_FOR_THE_LIKELIHOOD, TASKS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=",".join(t for t in TASKS if t not in CLAIM_TASKS
                                               and t not in HELD_OUT_FOR_THE_LIKELIHOOD))
    p.add_argument("--frameworks", default="snntorch,spikingjelly,norse")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--grid", choices=sorted(GRIDS), default="full")
    p.add_argument("--methods", default=",".join(METHODS + SPARSITY_METHODS))
    p.add_argument("--lr-scales", default="1", help="learning rates as multiples of each task's, e.g. 0.25,1,4")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="train this many times each task's epochs")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default=str(HERE.parent.parent / "out" / "evidence"))
    p.add_argument("--shd", default=None, help="folder holding shd_train.h5 and shd_test.h5 (adds the 'shd' task)")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--quick", action="store_true", help="every task at smoke-test size (a few dozen samples)")
    args = p.parse_args(argv)
    if args.shd:
        from benchmarks.evidence.tasks import add_shd

        add_shd(args.shd)
        if "shd" not in args.tasks.split(","):
            args.tasks += ",shd"
    out = Path(args.out)
    options = {k: v for k, v in (("quick", args.quick), ("shd", args.shd)) if v}
    scales = [{**({"lr_scale": float(v)} if float(v) != 1.0 else {}),
               **({"epochs_scale": args.epochs_scale} if args.epochs_scale != 1.0 else {})}
              for v in args.lr_scales.split(",")]
    execute(jobs(args.tasks.split(","), args.frameworks.split(","), args.seeds, args.grid,
                 [m for m in args.methods.split(",") if m], options, scales), out, args.workers)
    if not args.no_report:
        from benchmarks.evidence.report import report

        report(out, grid=args.grid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
