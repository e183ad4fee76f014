"""The example and the benchmark script run end to end at toy size (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("snntorch")
pytestmark = pytest.mark.slow  # every test runs a script in a subprocess


def run(*args: str) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_quickstart_trains_both_runs_and_writes_the_plot(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    stdout = run("examples/quickstart.py", "--epochs", "1", "--steps", "5", "--out", str(tmp_path))
    assert "snnTorch default: atan(alpha=2)" in stdout and "sg.patch: fast_sigmoid" in stdout
    assert "2 neuron sites patched" in stdout
    png = tmp_path / "quickstart_surrogates.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "StabilityReport: 2 spiking layers" in stdout
    assert (tmp_path / "quickstart_analysis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_snntorch_benchmark_script_runs(tmp_path):
    stdout = run("benchmarks/bench_snntorch_surrogate.py", "--rounds", "2", "--warmup", "0", "--steps", "4",
                 "--inputs", "20", "--hidden", "16", "--outputs", "3", "--batch", "4")
    for name in ("native", "sg atan", "sg fsig"):
        assert name in stdout
    assert "time ratio" in stdout and "peak ratio" in stdout


def test_framework_benchmark_script_runs():
    pytest.importorskip("spikingjelly")
    pytest.importorskip("norse")
    stdout = run("benchmarks/bench_frameworks.py", "--rounds", "2", "--warmup", "0", "--steps", "4",
                 "--inputs", "20", "--hidden", "16", "--outputs", "3", "--batch", "4")
    assert "=== spikingjelly" in stdout and "=== norse" in stdout
    assert "sg sigmoid -> built-in" in stdout and "no target" in stdout


def test_stability_scripts_run(tmp_path):
    pytest.importorskip("snntorch")
    out = run("benchmarks/stabilize_shd.py", "--hidden", "32", "--steps", "30", "--batch", "4",
              "--plot", str(tmp_path / "shd.png"))
    assert "framework default" in out and "stabilize: fast_sigmoid" in out
    assert (tmp_path / "shd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = run("benchmarks/bench_analyzer.py", "--sizes", "64", "--repeats", "1", "--hidden", "32", "--steps", "20",
              "--batch", "4")
    assert "conditions I-IV" in out and "analyze s" in out


def test_sparsity_recipe_example_runs(tmp_path):
    pytest.importorskip("snntorch")
    pytest.importorskip("sklearn")
    out = run("examples/sparsity_recipe.py", "--epochs", "2", "--steps", "5", "--out", str(tmp_path))
    for name in ("recipe: high initial rate + gradual sparsity", "fixed-weight sparsity", "no sparsity loss"):
        assert name in out
    assert "initialisation: firing-rate calibration to 0.5" in out and "grad growth/step" in out
    assert (tmp_path / "sparsity_recipe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sparsity_benchmark_script_runs():
    pytest.importorskip("snntorch")
    out = run("benchmarks/bench_sparsity.py", "--rounds", "2", "--warmup", "0", "--steps", "5", "--batch", "4",
              "--hidden", "16")
    assert "monitor + loss + diag" in out and "time ratio" in out


def test_tune_example_races_and_plots(tmp_path):
    pytest.importorskip("snntorch")
    out = run("examples/tune_surrogate.py", "--epochs", "1", "--steps", "5", "--out", str(tmp_path))
    assert "TuneReport: 9 candidates" in out and "<- chosen" in out and "race cost" in out
    assert (tmp_path / "tune_surrogate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
