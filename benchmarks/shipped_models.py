"""The models the frameworks ship, at their published widths: how long analyze and stabilize take, what stabilize
does to the spread of the gradient across layers, and where calibrate_rate puts every layer's firing rate.

    python -m benchmarks.shipped_models                       # every model, full size (BENCHMARKS.md)
    python -m benchmarks.shipped_models --size small          # the test suite's sizes, a minute
    python -m benchmarks.shipped_models --models sj/sew,norse/VGG11 --no-rates

The builders are tests/zoo/shipped_models.py (shared with tests/adapters/test_shipped_models.py). Prints a
Markdown table and writes one JSON line per model to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

import sg_stability as sg  # noqa: E402
from sg_stability._state import preserved_state  # noqa: E402
from sg_stability.testing import measure  # noqa: E402
from tests.zoo.shipped_models import MODELS  # noqa: E402


def row(name: str, size: str, rates: bool) -> dict:
    m = MODELS[name](size)
    out: dict = {"model": name, "size": size, "sites": len(sg.find_neurons(m.model)),
                 "params_M": sum(p.numel() for p in m.model.parameters()) / 1e6}
    with preserved_state(m.model):  # the model's own cost: one forward pass with gradients, as the analysis runs it
        t0 = time.perf_counter()
        (m.run or (lambda model, x: model(x)))(m.model, m.sample)
        out["forward_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = sg.analyze(m.model, m.sample, run=m.run)
    out["analyze_s"] = time.perf_counter() - t0
    out["undescribed"] = sorted({r.kind for r in report.layers if r.dynamics is None})
    before = measure(m.model, m.sample, None, run=m.run)
    t0 = time.perf_counter()
    handle = sg.stabilize(m.model, m.sample, run=m.run, progress=False)
    out["stabilize_s"] = time.perf_counter() - t0
    after = measure(m.model, m.sample, None, run=m.run)
    out.update(spread_before=before.spread, spread_after=after.spread, installed=handle.notes[-1])
    handle.remove()
    if rates:
        model = copy.deepcopy(m.model) if not name.startswith(("norse", "mixed")) else MODELS[name](size).model
        t0 = time.perf_counter()
        init = sg.init.calibrate_rate(model, m.sample, run=m.run, target_rate=0.5, tolerance=0.02, progress=False)
        out["rate_s"] = time.perf_counter() - t0
        got = [r.firing_rate for r in sg.analysis.analyze_layers(model, m.sample, run=m.run).layers]
        out.update(rates=got, reached=sum(abs(r - 0.5) <= 0.02 for r in got), skipped=init.skipped,
                   notes=init.notes)
    return out


def fmt(x: float | None, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def table(rows: list[dict]) -> str:
    head = ("| model | sites | params (M) | forward s | analyze s | stabilize s | spread before | spread after | "
            "rates at 0.5 +- 0.02 (median) | calibrate s |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rates = (f"{r['reached']}/{len(r['rates'])} ({statistics.median(r['rates']):.2f})" if "rates" in r else "-")
        lines.append(f"| {r['model']} | {r['sites']} | {r['params_M']:.2f} | {fmt(r.get('forward_s'), '.2f')} | "
                     f"{r['analyze_s']:.1f} | "
                     f"{r['stabilize_s']:.1f} | {fmt(r['spread_before'])} | {fmt(r['spread_after'])} | {rates} | "
                     f"{fmt(r.get('rate_s'), '.1f')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["small", "full"], default="full")
    parser.add_argument("--models", default="", help="comma-separated substrings of model names (default: all)")
    parser.add_argument("--no-rates", action="store_true", help="skip calibrate_rate (the slowest part)")
    parser.add_argument("--out", default=str(ROOT / "out" / "shipped_models.jsonl"))
    parser.add_argument("--report", action="store_true", help="only print the table of what --out holds")
    args = parser.parse_args()
    if args.report:
        rows = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
        print(table([r for r in rows if r["size"] == args.size]))
        return
    warnings.simplefilter("ignore")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    from tqdm.auto import tqdm

    wanted = [n for n in MODELS if not args.models or any(k in n for k in args.models.split(","))]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out, "a") as sink:
        for name in tqdm(wanted, desc="shipped models"):
            r = row(name, args.size, not args.no_rates)
            rows.append(r)
            sink.write(json.dumps(r) + "\n")
            sink.flush()
    print(table(rows))
    for r in rows:
        print(f"- {r['model']}: {r['installed']}")
        if r["undescribed"]:
            print(f"  analyzer has no dynamics for: {', '.join(r['undescribed'])}")
        for s in r.get("skipped", []):
            print(f"  calibrate_rate skipped {s}")


if __name__ == "__main__":
    main()
