"""Lightning and TensorBoard, with the real packages: the SGStability callback stabilizes at fit start, logs the
diagnostics to the trainer's loggers, saves the spec in checkpoints, and load_from_checkpoint re-patches (in a
fresh process too); Diagnostics.log_to writes to a TensorBoard SummaryWriter."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sg_stability as sg

pl = pytest.importorskip("lightning.pytorch")
pytest.importorskip("snntorch")
pytest.importorskip("tensorboard")

from sg_stability.lightning import KEY, SGStability, spec_of  # noqa: E402
from tests.zoo import shd_networks  # noqa: E402
from tests.zoo.lightning_net import TinyNet, loader  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu", "log_every_n_steps": 1}
# Lightning's and torch's own deprecation and hint warnings (not ours: SGStabilityWarning is never raised here)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")


def fit(tmp_path: Path, module: pl.LightningModule, callback: SGStability, epochs: int = 2) -> Path:
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = pl.Trainer(max_epochs=epochs, default_root_dir=tmp_path, callbacks=[callback, checkpoints],
                         logger=pl.loggers.CSVLogger(tmp_path, name="logs"), **QUIET)
    trainer.fit(module, loader())
    return tmp_path / "ckpt" / "last.ckpt"


@pytest.mark.slow  # a training run and a fresh process
def test_the_callback_stabilizes_logs_and_checkpoints_and_a_fresh_process_loads_it_patched(tmp_path):
    module = TinyNet()
    _, sample = shd_networks.tiny("snntorch", steps=6, batch=4)
    callback = SGStability(stabilize=True, sample=sample)
    last = fit(tmp_path, module, callback)
    assert callback.handle is not None and sg.is_patched(module)
    saved = torch.load(last, weights_only=False)[KEY]
    assert saved == spec_of(module) and len(saved["sites"]) == 2
    with open(next((tmp_path / "logs").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    columns = {k for row in rows for k, v in row.items() if v}
    assert {"sg/net.lif_rec/rate", "sg/net.lif_rec/dead", "sg/net.lif_out/rate"} <= columns
    script = (f"import json; from sg_stability.lightning import spec_of; from tests.zoo.lightning_net import TinyNet\n"
              f"m = TinyNet.load_from_checkpoint({str(last)!r})\nprint(json.dumps(spec_of(m)))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == saved


def test_a_learned_surrogate_comes_back_with_load_from_checkpoint(tmp_path):
    module = TinyNet(lr=0.01)
    learnable = sg.surrogates.get("fast_sigmoid", dampening=torch.nn.Parameter(torch.tensor(0.5)))
    sg.patch(module, surrogate=learnable)
    last = fit(tmp_path, module, SGStability(diagnostics=False), epochs=1)
    trained = float(learnable.dampening.detach())
    assert trained != 0.5  # the optimizer trained it
    loaded = TinyNet.load_from_checkpoint(last)
    assert {float(s.dampening.detach()) for s in sg._handle.live_handles(loaded)[0].surrogates.values()} == {trained}


def test_log_to_writes_every_metric_to_a_tensorboard_summary_writer(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    model, x = shd_networks.tiny("snntorch")
    with sg.diagnostics.Diagnostics(model) as diag:
        model(x).square().sum().backward()
        diag.end_epoch()
        writer = SummaryWriter(tmp_path)
        logged = diag.log_to(writer, step=7)
        writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(logged) and "sg/lif_rec/rate" in logged
    for tag, value in logged.items():
        (event,) = events.Scalars(tag)
        assert event.step == 7 and event.value == pytest.approx(value, rel=1e-6)


def test_log_to_refuses_what_it_cannot_log():
    model, x = shd_networks.tiny("snntorch")
    with sg.diagnostics.Diagnostics(model) as diag:
        with pytest.raises(sg.ConfigError, match="no epoch recorded yet"):
            diag.log_to(pl.loggers.CSVLogger("unused"), step=0)
        model(x).sum().backward()
        diag.end_epoch()
        with pytest.raises(sg.ConfigError, match="neither log_metrics nor add_scalar") as info:
            diag.log_to(object(), step=0)
        assert "fix:" in str(info.value)
        with pytest.raises(sg.ConfigError, match="step must be an integer"):
            diag.log_to(pl.loggers.CSVLogger("unused"), step=1.5)


def test_stabilize_without_a_sample_is_refused_when_the_callback_is_built():
    with pytest.raises(sg.ConfigError, match="needs a sample"):
        SGStability(stabilize=True)
