"""The evidence harness (benchmarks/evidence): its smallest configuration runs end to end, in a subprocess
(the suite does not import from benchmarks/), and produces its table, plots and one JSON line per run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# whole models, subprocesses or training runs: not in ./dev test --fast
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "benchmarks" / "evidence" / "run.py"
COLUMNS = ["task", "framework", "grid best (config)", "grid median", "default", "sg.stabilize", "sg.tune",
           "random search (k runs)", "tune / best", "tune cost (runs)", "choose s: stabilize / tune", "grid s"]


def harness(out: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(HARNESS), "--quick", "--seeds", "1", "--grid", "small",
                           "--workers", "1", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_the_smallest_harness_runs_every_configuration_and_writes_its_table(tmp_path):
    pytest.importorskip("snntorch")
    pytest.importorskip("spikingjelly")
    pytest.importorskip("norse")
    out = harness(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    tasks, frameworks = {"randman", "memory", "deep", "digits"}, {"snntorch", "spikingjelly", "norse"}
    # every task x framework ran the default, stabilize, tune and all 8 small-grid points; the sparsity study
    # ran on its two tasks
    for task in tasks:
        for fw in frameworks:
            methods = [r["config"]["method"] for r in rows if r["task"] == task and r["framework"] == fw]
            assert methods.count("grid") == 8 and {"default", "stabilize", "tune"} <= set(methods)
            if task in ("deep", "memory"):
                assert {"sparsity_recipe", "sparsity_init_only", "sparsity_fixed", "sparsity_none"} <= set(methods)
    assert all(0.0 <= r["test_acc"] <= 1.0 and r["train_s"] > 0 for r in rows)
    table = (tmp_path / "summary.md").read_text()
    header = table.splitlines()[0]
    assert [c.strip() for c in header.strip("|").split("|")] == COLUMNS
    assert len([line for line in table.splitlines() if line.startswith("| ") and "---" not in line]) >= 12 + 1
    assert "median accuracy / grid best" in table and "recipe: init" in table
    assert all((tmp_path / f"evidence_{t}.png").read_bytes()[:4] == b"\x89PNG" for t in tasks)
    assert "grid best" in out
    # resumable: a second run finds everything recorded and runs nothing
    again = harness(tmp_path)
    assert f"{len(rows)} runs recorded, 0 to run" in again


@pytest.mark.slow
def test_the_harness_takes_shd_files_from_disk(tmp_path):
    pytest.importorskip("snntorch")
    h5py = pytest.importorskip("h5py")
    import numpy as np

    rng = np.random.default_rng(0)
    for name, n in (("shd_train.h5", 120), ("shd_test.h5", 60)):
        with h5py.File(tmp_path / name, "w") as f:
            times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype("float32")))
            units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype("uint16")))
            labels = rng.integers(0, 4, n)
            for i in range(n):  # class c fires units 100c..100c+50 early in the utterance
                k = rng.integers(20, 60)
                times[i] = np.sort(rng.uniform(0, 0.5, k)).astype("float32")
                units[i] = (100 * labels[i] + rng.integers(0, 50, k)).astype("uint16")
            f.create_dataset("labels", data=labels.astype("uint16"))
    out = tmp_path / "out"
    harness(out, "--tasks", "shd", "--frameworks", "snntorch", "--shd", str(tmp_path), "--methods", "default")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["task"] for r in rows} == {"shd"} and len(rows) == 9  # the default and 8 grid points
