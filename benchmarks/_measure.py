"""Shared measurement for the benchmark scripts: paired rounds, peak memory, bytes held for backward.

Time: every round runs every variant once (order rotated round by round); ratios are taken within a round
and summarised by their median with a bootstrap 95% interval. Peak memory: the resident set size reached
during one training step above the resident size before it (Linux: VmHWM reset through
/proc/self/clear_refs; glibc's mmap threshold is fixed so freed tensors leave the resident set). Bytes held
for backward: the distinct storages autograd still holds when the forward pass ends (exact, noise-free).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import random
import statistics
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


def reexec_with_fixed_mmap_threshold() -> None:
    """glibc reads the threshold at process start: re-run the script with it set (call before importing torch)."""
    if os.environ.get(MMAP_ENV) is None and sys.platform.startswith("linux"):
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)  # run as ``python -m benchmarks.<name>``: re-run it the same way
        command = ["-m", spec.name] if spec is not None else [main.__file__]
        os.execve(sys.executable, [sys.executable, *command, *sys.argv[1:]], {**os.environ, MMAP_ENV: "65536"})


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _reset_peak() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(step: Callable[[], None]) -> tuple[float, int]:
    """(seconds, peak resident bytes above the start) of one call of ``step``."""
    rss_before = _status("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    return seconds, max(0, _status("VmHWM") - rss_before)


def held_for_backward(forward_loss: Callable[[], object]) -> int:
    """Bytes of the distinct storages autograd holds for backward when ``forward_loss()`` returns."""
    import torch

    saved: list[weakref.ref] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward_loss()
    gc.collect()
    live = {}
    for ref in saved:
        t = ref()
        if t is not None:
            live[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    loss.backward()  # type: ignore[attr-defined]
    return sum(live.values())


def ratio(a: float, b: float) -> float:
    # tiny models can stay inside already-resident pages: a zero peak on both sides is equal memory
    return a / b if b else (1.0 if a == b else math.inf)


def bootstrap_median_ci(values: list[float], rng: random.Random, n: int = 2000) -> tuple[float, float]:
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n)]


Variant = Callable[[], AbstractContextManager[object]]


def paired_rounds(variants: dict[str, Variant], step: Callable[[], None], rounds: int, warmup: int
                  ) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    peaks: dict[str, list[int]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        results = {}
        for n in order:
            with variants[n]():
                results[n] = measure(step)
        if r >= warmup:
            for n in names:
                times[n].append(results[n][0])
                peaks[n].append(results[n][1])
    return times, peaks


def report(times: dict[str, list[float]], peaks: dict[str, list[int]], held: dict[str, int], baseline: str,
           no_target: dict[str, str] | None = None, baselines: dict[str, str] | None = None,
           targets: dict[str, float] | None = None) -> list[tuple[str, float, float, float]]:
    """Print the table and a verdict against the target <= 1.00 for every variant that is nobody's baseline,
    except those in ``no_target`` (variant -> why its cost is only reported). Each variant is compared with
    ``baselines.get(variant, baseline)``. Returns the ratios."""
    rng = random.Random(0)
    baselines = baselines or {}
    references = {baseline, *baselines.values()}
    print(f"\n{'variant':<30}{'against':<16}{'median step s':>14}{'peak MB':>9}{'held MB':>9}"
          f"{'time ratio (95% CI)':>26}{'peak ratio (95% CI)':>26}{'held ratio':>12}")
    rows = []
    for n, n_times in times.items():
        base = baselines.get(n, baseline)
        t_ratio = [ratio(a, b) for a, b in zip(n_times, times[base], strict=True)]
        m_ratio = [ratio(a, b) for a, b in zip(peaks[n], peaks[base], strict=True)]
        tr, mr = statistics.median(t_ratio), statistics.median(m_ratio)
        tci, mci = bootstrap_median_ci(t_ratio, rng), bootstrap_median_ci(m_ratio, rng)
        hr = ratio(held[n], held[base])
        print(f"{n:<30}{base:<16}{statistics.median(n_times):>14.4f}{statistics.median(peaks[n]) / 1e6:>9.1f}"
              f"{held[n] / 1e6:>9.1f}{tr:>11.3f} ({tci[0]:.3f}-{tci[1]:.3f}){mr:>11.3f} ({mci[0]:.3f}-{mci[1]:.3f})"
              f"{hr:>12.3f}")
        if n not in references:
            rows.append((n, tr, mr, hr, tci[0], mci[0]))
    print()
    for n, tr, mr, hr, t_low, m_low in rows:
        measured = f"{n}: time {tr:.3f}, peak memory {mr:.3f}, held for backward {hr:.3f}"
        if n in (no_target or {}):
            print(f"{measured} -> no target: {no_target[n]}")  # type: ignore[index]
            continue
        t_max, m_max = (targets or {}).get("time", 1.0), (targets or {}).get("memory", 1.0)
        stated = f"time <= {t_max:.2f}, memory <= {m_max:.2f}"
        if round(tr, 2) <= t_max and round(mr, 2) <= m_max and round(hr, 2) <= m_max:  # targets have two decimals
            verdict = f"meets the target ({stated})"
        elif round(hr, 2) <= m_max and t_low <= t_max and m_low <= m_max:
            verdict = f"above the target ({stated}) but not distinguishable from it: the 95% CI contains it"
        else:
            verdict = f"MISSES the target ({stated})"
        print(f"{measured} -> {verdict}")
    return [row[:4] for row in rows]


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield None


def network_arguments(parser: argparse.ArgumentParser, rounds: int) -> None:
    """The options every training-step benchmark shares: rounds, warm-up and the 700 -> hidden -> 20 network."""
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--inputs", type=int, default=700)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--outputs", type=int, default=20)


def compare(variants: dict[str, Variant], net: Any, loss: Callable[[], Any], step: Callable[[], None], rounds: int,
            warmup: int, baseline: str, **report_options: Any) -> list[tuple[str, float, float, float]]:
    """Bytes held for backward per variant, then paired timed rounds, then the report against ``baseline``."""
    held = {}
    for name, variant in variants.items():
        with variant():
            held[name] = held_for_backward(loss)
    net.zero_grad(set_to_none=True)
    times, peaks = paired_rounds(variants, step, rounds, warmup)
    return report(times, peaks, held, baseline=baseline, **report_options)
