"""The offline datasets: deterministic per seed, well-formed, and RandMan's difficulty knobs do what they say."""

from __future__ import annotations

import pytest
import torch

from sg_stability import ConfigError, datasets


def _first_spike_times(x: torch.Tensor) -> torch.Tensor:
    steps = x.shape[0]
    t = torch.arange(steps, dtype=torch.float32)[:, None, None].expand_as(x)
    return torch.where(x > 0, t, torch.full_like(t, float(steps))).min(0).values  # [samples, channels]


def _linear_accuracy(d: datasets.SpikeDataset) -> float:
    from sklearn.linear_model import LogisticRegression

    feats = _first_spike_times(d.x).numpy()
    n = len(d.y) // 2
    clf = LogisticRegression(max_iter=2000).fit(feats[:n], d.y[:n].numpy())
    return float(clf.score(feats[n:], d.y[n:].numpy()))


@pytest.mark.parametrize("make", [datasets.randman, datasets.delayed_cue, datasets.spirals, datasets.digits])
def test_deterministic_per_seed_and_binary(make):
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert set(a.x.unique().tolist()) <= {0.0, 1.0}
    assert a.x.shape[1] == a.y.numel() and int(a.y.max()) == a.classes - 1


def test_randman_one_spike_per_channel():
    d = datasets.randman(classes=3, channels=7, samples_per_class=11, steps=30)
    assert d.x.shape == (30, 33, 7)
    assert torch.equal(d.x.sum(0), torch.ones(33, 7))
    assert d.y.bincount().tolist() == [11, 11, 11]


def test_randman_easy_is_separable_and_impossible_is_not():
    easy = datasets.randman(classes=2, channels=20, dim=1, samples_per_class=200, steps=50, alpha=2.0, seed=0)
    # rough (alpha = 0) 3-D manifolds squeezed into 2 channels fill the space: the classes overlap
    impossible = datasets.randman(classes=2, channels=2, dim=3, samples_per_class=200, alpha=0.0, basis=10, seed=0)
    assert _linear_accuracy(easy) > 0.9
    assert _linear_accuracy(impossible) < 0.6


@pytest.mark.slow
def test_randman_gets_harder_with_more_classes():
    few = datasets.randman(classes=2, channels=10, samples_per_class=150, seed=1)
    many = datasets.randman(classes=10, channels=10, samples_per_class=30, dim=2, seed=1)
    assert _linear_accuracy(few) > _linear_accuracy(many) + 0.2


def test_delayed_cue_layout():
    d = datasets.delayed_cue(classes=3, samples=60, cue_steps=4, delay=50, go_steps=3, channels_per_class=2,
                             noise_channels=5, noise_rate=0.0, cue_rate=1.0)
    assert d.x.shape == (57, 60, 3 * 2 + 5 + 1)
    # the cue fires only the sample's class channels, nothing fires in the delay, the go channel at the end
    for i in range(60):
        c = int(d.y[i])
        assert d.x[:4, i, 2 * c:2 * c + 2].all() and d.x[:4, i].sum() == 8
    assert d.x[4:54].sum() == 0
    assert d.x[54:, :, -1].all()


def test_digits_ships_offline_and_codes_latency():
    d = datasets.digits(steps=10)
    assert d.x.shape == (10, 1797, 64) and d.classes == 10
    assert float(d.x.sum(0).max()) == 1.0  # latency code: at most one spike per pixel


def test_split_is_a_partition():
    d = datasets.spirals(samples_per_class=20)
    a, b = d.split(0.75, seed=0)
    assert a.y.numel() == 45 and b.y.numel() == 15
    assert sorted(torch.cat([a.y, b.y]).tolist()) == sorted(d.y.tolist())


@pytest.mark.parametrize("call", [
    lambda: datasets.randman(classes=1),
    lambda: datasets.randman(alpha=float("nan")),
    lambda: datasets.delayed_cue(noise_rate=2.0),
    lambda: datasets.spirals(channels_per_axis=1),
    lambda: datasets.digits(coding="phase"),
])
def test_bad_arguments_get_four_part_errors(call):
    with pytest.raises(ConfigError) as err:
        call()
    text = str(err.value)
    assert "got:" in text and "allowed:" in text and "fix:" in text


def test_load_shd_reads_the_hdf5_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    import numpy as np

    path = tmp_path / "shd_tiny.h5"
    with h5py.File(path, "w") as f:
        vlen_f = h5py.vlen_dtype(np.dtype("float32"))
        vlen_u = h5py.vlen_dtype(np.dtype("uint16"))
        times = f.create_dataset("spikes/times", (2,), dtype=vlen_f)
        units = f.create_dataset("spikes/units", (2,), dtype=vlen_u)
        times[0], units[0] = np.array([0.0, 0.5, 0.99], "float32"), np.array([0, 3, 699], "uint16")
        times[1], units[1] = np.array([0.25, 1.5], "float32"), np.array([5, 6], "uint16")  # 1.5 s is cut
        f.create_dataset("labels", data=np.array([7, 19], "uint16"))
    d = datasets.load_shd(path, steps=4)
    assert d.x.shape == (4, 2, 700) and d.y.tolist() == [7, 19] and d.classes == 20
    assert d.x[0, 0, 0] == 1 and d.x[2, 0, 3] == 1 and d.x[3, 0, 699] == 1 and d.x[1, 1, 5] == 1
    assert d.x.sum() == 4


def test_load_shd_missing_file_says_where(tmp_path):
    with pytest.raises(ConfigError, match="no SHD file"):
        datasets.load_shd(tmp_path / "nope.h5")
