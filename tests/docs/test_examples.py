"""The examples run end to end at toy size (no timing assertions). The benchmarks' own check is benchmarks/smoke.py."""

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





def test_sparsity_recipe_example_runs(tmp_path):
    pytest.importorskip("snntorch")
    pytest.importorskip("sklearn")
    out = run("examples/sparsity_recipe.py", "--epochs", "2", "--steps", "5", "--out", str(tmp_path))
    for name in ("recipe: high initial rate + gradual sparsity", "fixed-weight sparsity", "no sparsity loss"):
        assert name in out
    assert "initialisation: firing-rate calibration to 0.5" in out and "grad growth/step" in out
    assert (tmp_path / "sparsity_recipe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



def test_tune_example_races_and_plots(tmp_path):
    pytest.importorskip("snntorch")
    out = run("examples/tune_surrogate.py", "--epochs", "1", "--steps", "5", "--out", str(tmp_path))
    assert "TuneReport: 9 candidates" in out and "<- chosen" in out and "race cost" in out
    assert (tmp_path / "tune_surrogate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_trains_the_default_and_the_stabilized_choice_from_the_same_weights(tmp_path):
    pytest.importorskip("sklearn")
    out = run("examples/demo.py", "--seeds", "1", "--epochs", "1", "--train", "64", "--out", str(tmp_path))
    assert "snnTorch default: atan(" in out and "sg.stabilize:     fast_sigmoid" in out
    assert "seed 0: test accuracy default" in out and "mean over 1 seed(s): default" in out and "(gain " in out
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("example", ["spikingjelly_nir", "norse_nir"])
def test_framework_examples_stabilize_train_checkpoint_and_round_trip_nir(example, tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip(example.split("_")[0])
    pytest.importorskip("nir")
    out = run(f"examples/{example}.py", "--epochs", "1", "--train", "64", "--out", str(tmp_path))
    assert "sg.stabilize: fast_sigmoid" in out and "epoch 1: test accuracy" in out
    assert "checkpoint: resumed with the same surrogates: True" in out
    assert "re-imported with fast_sigmoid(" in out
    framework = example.split("_")[0]
    assert (tmp_path / f"{framework}.nir").stat().st_size > 0 and (tmp_path / f"{framework}.pt").exists()


def test_exact_qif_example_adds_a_spike_moves_spikes_and_trains_a_silent_network(tmp_path):
    pytest.importorskip("sklearn")
    out = run("examples/exact_qif.py", "--epochs", "1", "--train", "64", "--out", str(tmp_path))
    assert "1. one neuron: spike time 6.33 (a pseudospike" in out and "-> 2.50" in out
    assert "2. recurrent network, 10 neurons" in out and "epoch 1: validation accuracy" in out
    assert (tmp_path / "exact_qif.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
