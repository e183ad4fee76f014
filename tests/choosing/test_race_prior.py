"""The race's prior (exactly what ``sg.stabilize`` installs without data, per layer where it rescales the
dampening): kept to the last rung, and replaced only when the best beats it by more than two standard errors of
their paired validation difference."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sg_stability as sg
from sg_stability.choosing.race_prior import keeping, prior_of
from sg_stability.choosing.shortlist import Shortlist
from tests.zoo import shd_networks

pytest.importorskip("snntorch")


def test_keeping_puts_the_prior_back_in_the_last_place():
    assert keeping([4, 2, 0, 1, 3], 3, prior=3) == [4, 2, 3]
    assert keeping([4, 2, 0, 1, 3], 3, prior=2) == [4, 2, 0]
    assert keeping([4, 2, 0], 3, prior=None) == [4, 2, 0]
    assert keeping([4, 2], 3, prior=1) == [4, 2]  # a diverged prior has left the race: nothing to put back


def test_a_plain_list_has_no_prior_and_a_shortlist_its_preferred_candidate():
    s = [sg.surrogates.get("fast_sigmoid", sharpness=b) for b in (1.0, 4.0)]
    assert prior_of(s) is None
    short = Shortlist([sg.Candidate(s[0], "analysis", reach=0.0), sg.Candidate(s[1], "analysis", reach=0.9)])
    assert prior_of(short) == 1  # the first one reaches nothing: the analysis prefers the second


def data(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [((torch.rand(6, 4, 12, generator=g) < 0.3).float(), torch.randint(0, 3, (4,), generator=g))
            for _ in range(n)]


def ce(model: nn.Module, batch: Any) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]).mean(0), batch[1])


def sharpness_of(model: nn.Module) -> float:
    return float(next(iter(sg.find_neurons(model)[0].driver.current().values())).sharpness)


def race(score: Any) -> sg.ChosenPatch:
    """Two candidates on a shortlist whose preferred one (the prior) is the first, fast_sigmoid(β=1)."""
    model, x = shd_networks.tiny("snntorch", steps=6, batch=4)
    short = Shortlist([sg.Candidate(sg.surrogates.get("fast_sigmoid", sharpness=b), "analysis", reach=0.9)
                       for b in (1.0, 4.0)])
    train = data(4)
    return sg.tune(model, x, train, loss_fn=ce, candidates=short, val_batches=train[:2] + data(6)[2:], score=score,
                   epochs=8, lr=0.05, progress=False)  # validated partly on its training batches: both learn


def test_a_challenger_within_the_noise_does_not_replace_the_prior():
    def score(model: nn.Module, batches: list) -> float:
        challenger = sharpness_of(model) == 4.0
        if len(batches) != 1:  # the race's own ranking: the challenger looks a little better
            return 0.51 if challenger else 0.5
        odd = int(batches[0][1].sum()) % 2 == 1  # per validation batch, the two disagree by far more than 0.01
        return 0.5 + (0.01 if challenger else 0.0) + (0.3 if odd != challenger else -0.3)

    handle = race(score)
    report = handle.race
    assert report.best.label.endswith("β=1)") and "kept the analysis' choice" in report.decision
    assert "kept the analysis' choice" in str(report)
    assert all(float(s.sharpness) == 1.0 for s in handle.surrogates.values())
    handle.remove()


def test_a_challenger_clearly_better_on_every_batch_replaces_the_prior():
    def score(model: nn.Module, batches: list) -> float:
        return 0.9 if sharpness_of(model) == 4.0 else 0.5

    handle = race(score)
    assert handle.race.best.label.endswith("β=4)") and "beat the analysis' choice" in handle.race.decision
    handle.remove()


class DeepStack(nn.Module):
    """Five feed-forward snnTorch layers whose preferred candidate widens the gradient's spread across layers, so
    that ``sg.stabilize`` rescales its dampening per layer."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        g = torch.Generator().manual_seed(0)
        dims = [12, 64, 64, 64, 64, 64]
        self.fcs = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(dims))
        self.lifs = nn.ModuleList(snn.Leaky(beta=0.9) for _ in dims[1:])
        self.out = nn.Linear(dims[-1], 3, bias=False)
        for fc in self.fcs:
            bound = 2.0 / fc.in_features ** 0.5
            nn.init.uniform_(fc.weight, -bound, bound, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mems = [lif.init_leaky() for lif in self.lifs]
        outs = []
        for t in range(x.shape[0]):
            h = x[t]
            for k, (fc, lif) in enumerate(zip(self.fcs, self.lifs, strict=True)):
                h, mems[k] = lif(fc(h), mems[k])
            outs.append(self.out(h))
        return torch.stack(outs)


def deep_stack() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return DeepStack(), (torch.rand(20, 8, 12, generator=torch.Generator().manual_seed(1)) < 0.3).float()


def dampenings(handle: Any) -> dict[str, float]:
    return {path: float(s.dampening) for path, s in handle.surrogates.items()}


def test_the_prior_is_exactly_the_data_free_choice_rescaled_per_layer_in_the_preferred_candidates_place():
    model, x = deep_stack()
    pool = sg.candidates(model, x)
    said = sg.analyze(model, x).recommendation
    assert said.per_layer is not None  # the network this test is about: one dampening would widen the spread
    prior = pool.prior
    assert prior is pool[0] and prior.per_layer is not None and prior.label.endswith("rescaled per layer")
    assert {p: float(s.dampening) for p, s in prior.per_layer.items()} == pytest.approx(
        {p: float(s.dampening) for p, s in said.per_layer.items()})
    # it takes the place of the candidate it was rescaled from: the race costs what it did
    assert len(pool) == 9 and sum(c.label.startswith(said.candidate.label) for c in pool) == 1
    with sg.stabilize(model, x, progress=False) as handle:
        free = dampenings(handle)
    assert len(set(free.values())) > 1 and free == pytest.approx(
        {p: float(s.dampening) for p, s in prior.per_layer.items()})


@pytest.mark.parametrize("keep_weights", [False, True])
def test_a_race_that_keeps_a_per_layer_prior_installs_exactly_what_stabilize_installs_without_data(keep_weights):
    model, x = deep_stack()
    with sg.stabilize(model, x, progress=False) as handle:
        free = dampenings(handle)
    g = torch.Generator().manual_seed(2)
    train = [((torch.rand(20, 8, 12, generator=g) < 0.3).float(), torch.randint(0, 3, (8,), generator=g))
             for _ in range(3)]

    def tie(model: nn.Module, batches: list) -> float:  # every candidate scores the same: the prior stays
        return 0.5

    handle = sg.stabilize(model, x, batches=train, loss_fn=ce, val_batches=train[:2], score=tie, epochs=4,
                          lr=0.01, keep_weights=keep_weights, progress=False)
    assert "kept the analysis' choice" in handle.race.decision or handle.race.decision == ""
    assert handle.race.best.label.endswith("rescaled per layer")
    assert handle.choice.per_layer is not None and "won a training race" in handle.choice.how
    assert dampenings(handle) == pytest.approx(free)
    handle.remove()


def test_each_layers_own_surrogates_as_the_prior_are_added_last_and_patched_layer_by_layer():
    from sg_stability.choosing.choice import Choice, _as_candidate

    own = {"a.b": sg.surrogates.get("atan"), "c": sg.surrogates.get("sigmoid")}
    pool = Shortlist([sg.Candidate(sg.surrogates.get("fast_sigmoid"), "analysis", reach=0.9)])
    pool.prior = _as_candidate(pool, Choice(None, own, "every candidate widens the spread"))
    assert len(pool) == 2 and pool.prior is pool[1] and pool.prior.label == "each layer's own surrogate"
    assert prior_of(pool) == 1
    targets = pool.prior.patch_kwargs()["targets"]
    assert targets == {"a.b": own["a.b"], "c": own["c"]}
    assert pool[0].patch_kwargs() == {"surrogate": pool[0].surrogate}


def decided(best: dict[str, list[float]], prior: dict[str, list[float]]) -> tuple[int, str]:
    """``decide`` between candidate 1 (the race's best, β=4) and the prior 0 (β=1) whose validation values are
    given."""
    from sg_stability.choosing.race_prior import decide

    model, _ = shd_networks.tiny("snntorch", steps=6, batch=4)
    pool = [sg.Candidate(sg.surrogates.get("fast_sigmoid", sharpness=b), "analysis") for b in (1.0, 4.0)]
    states = {i: (model.state_dict(), None, 0) for i in (0, 1)}
    return decide(model, pool, states, 1, 0, lambda m: best if sharpness_of(m) == 4.0 else prior)


def test_a_clearly_better_likelihood_with_an_accuracy_leaning_the_same_way_replaces_the_prior():
    n = 150
    right = [1.0] * 100 + [0.0] * 50
    better = [1.0] * 103 + [0.0] * 47  # +0.02: 3 samples more, 1.7 standard errors: not enough alone
    g = torch.Generator().manual_seed(0)
    logp = (-1.0 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)).tolist()
    sharper = [v + 0.1 for v in logp]  # every sample's label 0.1 nats likelier
    winner, why = decided({"accuracy": better, "log-likelihood": sharper}, {"accuracy": right, "log-likelihood": logp})
    assert winner == 1 and "log-likelihood +0.1" in why and "accuracy +0.02" in why
    # without the likelihood beside it, the same accuracy gain is within the noise
    winner, why = decided({"accuracy": better}, {"accuracy": right})
    assert winner == 0 and "within the validation noise" in why
    # a better likelihood never outweighs an accuracy that is not higher, or higher only within one standard error
    mixed = [0.0] + [1.0] * 101 + [0.0] * 48  # 2 samples gained, 1 lost: +0.0067 ± 0.012, 0.6 standard errors
    for acc in (right, [1.0] * 99 + [0.0] * 51, mixed):
        winner, why = decided({"accuracy": acc, "log-likelihood": sharper}, {"accuracy": right, "log-likelihood": logp})
        assert winner == 0 and "kept the analysis' choice" in why


def test_paired_values_for_accuracy_are_each_samples_correctness_and_label_log_likelihood():
    from sg_stability.choosing.race_prior import paired_values

    model, _ = shd_networks.tiny("snntorch", steps=6, batch=4)
    batches = [(x, y) for x, y in data(2)]

    class Head(nn.Module):  # [batch, classes] from the tiny net's [time, batch, classes]
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).mean(0)

    wrapped = Head()
    got = paired_values(wrapped, batches, "accuracy", ce)
    with torch.no_grad():
        outs = [wrapped(x) for x, _ in batches]
    want_right = [float(v) for o, (_, y) in zip(outs, batches, strict=True) for v in (o.argmax(-1) == y)]
    want_logp = [float(v) for o, (_, y) in zip(outs, batches, strict=True)
                 for v in -F.cross_entropy(o.double(), y, reduction="none")]
    assert got["accuracy"] == want_right
    assert got["log-likelihood"] == pytest.approx(want_logp, abs=1e-12)
    assert list(got) == ["accuracy", "log-likelihood"]
    assert list(paired_values(wrapped, batches, "loss", lambda m, b: F.cross_entropy(m(b[0]), b[1]))) == ["-loss"]
