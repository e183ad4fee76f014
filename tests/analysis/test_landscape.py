"""``sg.landscape``: loss and gradient norm along filter-normalised directions, and their fragmentation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sg_stability as sg
from sg_stability._landscape import profile_fragmentation as fragmentation

pytestmark = pytest.mark.analysis


class Quadratic(nn.Module):
    """loss = ||W||^2 + ||b||^2: along W + a*d it is ||W||^2 + 2a<W,d> + a^2||d||^2 + ||b||^2, by hand."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.pow(2).sum() + self.b.pow(2).sum() + 0 * x.sum()


def quadratic_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return model(batch)


def test_a_quadratic_loss_matches_the_hand_derived_profile_along_a_filter_normalised_direction():
    model = Quadratic()
    report = sg.landscape(model, quadratic_loss, torch.zeros(1), points=5, radius=2.0, seed=7, progress=False)
    # the same direction, drawn as documented: Gaussian per weight tensor, each row rescaled to the weight row's norm
    g = torch.Generator().manual_seed(7)
    d = torch.randn(4, 3, generator=g, dtype=torch.float64)
    d = d * (model.w.detach().norm(dim=1) / d.norm(dim=1)).view(-1, 1)
    assert torch.allclose(d.norm(dim=1), model.w.detach().norm(dim=1))
    w, b = model.w.detach(), model.b.detach()
    for a, loss, grad in zip(report.coordinates, report.loss, report.grad_norm, strict=True):
        moved = w + a * d
        assert float(loss) == pytest.approx(float(moved.pow(2).sum() + b.pow(2).sum()), rel=1e-12)
        # the biases stay fixed but their gradient counts: grad = (2(W + a d), 2b)
        assert float(grad) == pytest.approx(math.sqrt(float(4 * moved.pow(2).sum() + 4 * b.pow(2).sum())), rel=1e-12)
    assert report.coordinates == pytest.approx([-2.0, -1.0, 0.0, 1.0, 2.0])
    # a parabola falls then rises (one valley): no jumps, roughness between 1 and 2
    assert report.jumps == 0 and report.fragmentation == 0.0 and 1.0 <= report.roughness <= 2.0


def test_fragmentation_counts_jumps_over_the_median_step_and_measures_wiggle():
    smooth = [(x / 10) ** 2 for x in range(-10, 11)]
    assert fragmentation(smooth) == {"jumps": 0, "steps": 20, "roughness": pytest.approx(2.0)}  # one valley
    assert fragmentation([x / 10 for x in range(21)])["roughness"] == pytest.approx(1.0)  # monotone
    stairs = [0.01 * i + (1.0 if i >= 12 else 0.0) for i in range(21)]  # one step of 1.0 among steps of 0.01
    f = fragmentation(stairs)
    assert f["jumps"] == 1 and f["steps"] == 20 and f["roughness"] == pytest.approx(1.0)  # monotone
    zigzag = [0.0, 1.0, 0.0, 1.0, 0.0]
    assert fragmentation(zigzag)["roughness"] == pytest.approx(4.0)  # total variation 4 over a range of 1
    assert fragmentation([1.0, math.nan, 2.0, 3.0])["steps"] == 2
    assert fragmentation([5.0])["steps"] == 0


class Threshold(nn.Module):
    """An exact step in the loss: it jumps by 1 where the weights' sum rises above its value at the start (so any
    direction crosses it right next to the centre), plus a gentle slope."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((2, 2), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.w.sum()
        step = (s.detach() > 0.4 + 1e-6).to(s.dtype)  # no gradient through the step, as in a spiking forward pass
        return 0.01 * s + step + 0 * x.sum()


def test_a_discontinuous_loss_shows_jumps_where_a_smooth_one_shows_none():
    model = Threshold()
    report = sg.landscape(model, quadratic_loss, torch.zeros(1), points=41, radius=1.0, progress=False)
    assert report.jumps == 1 and report.fragmentation == pytest.approx(1 / 40)
    assert "jumps" in str(report) and "roughness" in str(report)


def test_two_directions_give_a_grid_whose_centre_is_the_model_as_it_was():
    model = Quadratic()
    base = float(quadratic_loss(model, torch.zeros(1)).detach())
    report = sg.landscape(model, quadratic_loss, torch.zeros(1), directions=2, points=5, progress=False)
    assert tuple(report.loss.shape) == (5, 5) and tuple(report.grad_norm.shape) == (5, 5)
    assert float(report.loss[2, 2]) == pytest.approx(base, rel=1e-12)
    assert report.steps == 2 * 5 * 4  # every row and every column is a profile of 4 steps


def snn_and_batch():
    snn = pytest.importorskip("snntorch")
    from snntorch import utils

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(6, 16), snn.Leaky(beta=0.9, init_hidden=True)
            self.fc2, self.lif2 = nn.Linear(16, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True)
            self.norm = nn.BatchNorm1d(16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            utils.reset(self)
            out = []
            for t in range(x.shape[0]):
                spk, _ = self.lif2(self.fc2(self.lif1(self.norm(self.fc1(x[t])))))
                out.append(spk)
            return torch.stack(out).sum(0)

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(10, 8, 6, generator=g) < 0.5).float() * 3
    y = torch.randint(0, 3, (8,), generator=g)
    return Net(), (x, y)


def ce(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1])


def test_a_patched_snntorch_model_is_explored_and_left_exactly_as_it_was(tmp_path):
    model, batch = snn_and_batch()
    ce(model, batch).backward()  # gradients the user already has must survive
    handle = sg.patch(model, "fast_sigmoid", dampening=0.3, sharpness=1.0)
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.eval()
    report = sg.landscape(model, ce, batch, points=7, radius=0.5, progress=False)
    assert torch.isfinite(report.loss).all() and torch.isfinite(report.grad_norm).all()
    assert (report.grad_norm > 0).all()  # the surrogate carries a gradient at every point
    assert float(report.loss[3]) == pytest.approx(float(ce(model, batch).detach()), rel=1e-6)
    assert all(torch.equal(params[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(grads[k], p.grad) for k, p in model.named_parameters())
    assert not model.training and sg.is_patched(model)
    assert report.plot(tmp_path / "landscape.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    handle.remove()


def test_per_sample_landscapes_share_the_directions():
    model, (x, y) = snn_and_batch()
    model.eval()  # BatchNorm needs more than one sample per batch in training mode
    samples = [(x[:, i:i + 1], y[i:i + 1]) for i in range(3)]
    report = sg.landscape(model, ce, samples, per_sample=True, points=5, radius=0.5, progress=False, seed=1)
    assert tuple(report.loss.shape) == (3, 5)
    for i, sample in enumerate(samples):  # each row is that sample's own landscape on the same directions
        alone = sg.landscape(model, ce, sample, points=5, radius=0.5, progress=False, seed=1)
        assert torch.allclose(report.loss[i], alone.loss, rtol=1e-6)
    fig = report.plot()
    assert len(fig.axes) == 2


def test_a_loss_fn_that_fails_midway_leaves_the_model_as_it_was():
    model, batch = snn_and_batch()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    calls = []

    def flaky(m: nn.Module, b: tuple) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("out of memory, say")
        return ce(m, b)

    with pytest.raises(RuntimeError, match="out of memory"):
        sg.landscape(model, flaky, batch, points=5, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"directions": 3}, "directions"),
    ({"points": 2}, "points"),
    ({"radius": 0.0}, "radius"),
    ({"radius": float("nan")}, "radius"),
    ({"per_sample": "yes"}, "per_sample"),
    ({"loss_fn": "ce"}, "loss_fn must be callable"),
    ({"loss_fn": lambda m, b: m(b[0])}, "scalar"),
    ({"loss_fn": lambda m, b: torch.tensor(1.0)}, "does not depend"),
    ({"per_sample": True}, "list of single-sample batches"),
    ({"refine": -1}, "refine"),
    ({"refine": 2.5}, "refine"),
])
def test_bad_input_is_a_four_part_error_and_leaves_the_model(kwargs, words):
    model, batch = snn_and_batch()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    args = {"loss_fn": ce, **kwargs}
    with pytest.raises(sg.ConfigError) as info:
        sg.landscape(model, args.pop("loss_fn"), batch, progress=False, **args)
    text = str(info.value)
    assert words in text and "got:" in text and "allowed:" in text and "fix:" in text
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_model_without_a_weight_matrix_is_refused():
    class Scalars(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a.sum() * x.sum()

    with pytest.raises(sg.ConfigError, match="no trainable weight matrix"):
        sg.landscape(Scalars(), quadratic_loss, torch.ones(1), progress=False)


class OneWeight(nn.Module):
    """A 1 x 1 weight of 1: a filter-normalised direction is +-1, so the step ``a`` puts the weight at 1 +- a."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1, 1, dtype=torch.float64))


def test_refine_drops_a_steep_continuous_stretch_and_keeps_a_real_jump():
    model = OneWeight()
    steep = lambda m, b: torch.tanh(400 * (m.w.sum() - 1.13))  # noqa: E731 -- rises within 0.01, between grid points
    step = lambda m, b: (m.w.sum() > 1.13).double() + 0.1 * m.w.sum()  # noqa: E731 -- a jump of 1 at w = 1.13
    for seed in (0, 1):  # either sign of the direction: the crossing is at a = +-0.13
        options = {"points": 11, "radius": 0.5, "seed": seed, "progress": False}
        assert sg.landscape(model, steep, None, **options).jumps == 1  # the grid cannot tell
        assert sg.landscape(model, steep, None, refine=30, **options).jumps == 0
        assert sg.landscape(model, step, None, **options).jumps == 1
        assert sg.landscape(model, step, None, refine=30, **options).jumps == 1
    assert torch.equal(model.w, torch.ones(1, 1, dtype=torch.float64))
