"""The paper's claims, each put to a test on the evidence harness: one command, named parts, each resumable.

    python -m benchmarks.evidence.claims                        # every part (about 75 minutes on 2 cores)
    python -m benchmarks.evidence.claims --parts families,lr    # some parts
    python -m benchmarks.evidence.claims --quick --out /tmp/c   # every part at smoke-test size (~2 minutes)

Each part keeps its runs in ``<out>/<part>/results.jsonl`` (a rerun skips what is recorded); the tables go to
``<out>/claims.md`` (``claims_report.py``). The arms are described in ``arms.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAMILIES3 = ("fast_sigmoid", "triangular", "atan")  # three shapes for the sparsity recipe
RATES = ("0.05", "0.158", "0.5")  # initial rates: a sparse start, and the paper's two (Table 1)


@dataclass(frozen=True)
class Part:
    claim: str
    tasks: str
    methods: str
    frameworks: str = "snntorch,spikingjelly,norse"
    grid: str = "none"
    extra: tuple[str, ...] = ()
    #: at smoke-test size: the first task (or these), snnTorch only, and this grid
    quick_tasks: str | None = None
    quick_grid: str | None = None


PARTS = {
    "paper": Part("Conditions III/IV give a good gamma*, beta*",
                  "randman,memory,deep,digits,heldout,rowdigits,coldigits", "paper,stabilize,default"),
    "families": Part("the fast sigmoid does best; the full 8-family grid", "digits,deep", "default,stabilize",
                     frameworks="snntorch,norse", grid="families", quick_grid="small"),
    "lr": Part("... across learning rates", "digits,deep", "", frameworks="snntorch,norse", grid="families_small",
               extra=("--lr-scales", "0.25,4"), quick_grid="small"),
    "difficulty": Part("harder tasks need a more careful choice", "randman2,randman5,randman10", "default,stabilize",
                       frameworks="snntorch,norse", grid="full", quick_tasks="randman2,randman10", quick_grid="small"),
    "sparsity": Part("a calibrated high initial rate plus a ramped sparsity loss", "deep,memory",
                     ",".join([f"shape_{f}" for f in FAMILIES3] + [f"{k}_{r}_{f}" for k in ("calib", "recipe")
                                                                   for r in RATES for f in FAMILIES3]),
                     frameworks="snntorch,norse"),
    "sparsity_long": Part("... with twice the training", "deep,memory",
                          ",".join([f"shape_{f}" for f in FAMILIES3] + [f"recipe_0.158_{f}" for f in FAMILIES3]),
                          frameworks="snntorch,norse", extra=("--epochs-scale", "2")),
    "qtail": Part("the tail q matters and has a predicted value", "digits,heldout,memory",
                  "qtail_1.5,qtail_3,qtail_10,qtail_predicted"),
    "fluctuation": Part("fluctuation-driven initialisation", "digits,deep,heldout",
                        "default,init_fluctuation,init_fluctuation_threshold"),
    "aids": Part("steepness annealing, threshold annealing, noise injection", "digits,deep,memory",
                 "stabilize,anneal_sharpness,anneal_sharpness_up,anneal_threshold,noise"),
    "decolle": Part("DECOLLE-style local losses with firing-rate control", "deep,deepdigits",
                    "stabilize,decolle,decolle_fr0.158,decolle_fr0.5"),
}


def arguments(part: Part, out: Path, quick: bool, workers: int) -> list[str]:
    tasks = (part.quick_tasks or part.tasks.split(",")[0]) if quick else part.tasks
    args = ["--tasks", tasks, "--frameworks", "snntorch" if quick else part.frameworks,
            "--grid", (part.quick_grid or part.grid) if quick else part.grid, "--methods", part.methods,
            "--seeds", "1" if quick else "3", "--workers", str(workers), "--no-report", "--out", str(out), *part.extra]
    return [*args, "--quick"] if quick else args


def main(argv: list[str] | None = None) -> int:
    from benchmarks.evidence import run
    from benchmarks.evidence.claims_report import write

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}")
    p.add_argument("--out", default=str(HERE.parent.parent / "out" / "claims"))
    p.add_argument("--quick", action="store_true", help="every part at smoke-test size: 1 seed, snnTorch, 2 epochs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-report", action="store_true")
    args = p.parse_args(argv)
    names = [n for n in args.parts.split(",") if n]
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {unknown}; the parts are {', '.join(PARTS)}")
    out = Path(args.out)
    for name in names:
        print(f"== {name}: {PARTS[name].claim}", flush=True)
        run.main(arguments(PARTS[name], out / name, args.quick, args.workers))
    if not args.no_report:
        print(f"wrote {write(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
