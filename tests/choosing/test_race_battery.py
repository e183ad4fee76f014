"""The race's bad-input battery: a broken loss, gradient, score or batch, a wrong result from any callable the
user passes, and the traces a race could leave. Each case either raises a four-part error with the model exactly
as it was, or behaves correctly; the cases are a table, as in tests/core/test_bad_input_battery.py.

The model is the TINY recurrent network of tests/zoo/shd_networks.py in snnTorch; the candidates are given, so
no case pays for the stability analysis.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sg_stability as sg
from sg_stability.choosing.race import RUNGS
from sg_stability.testing import module_fingerprint
from tests.zoo import shd_networks

pytest.importorskip("snntorch")
STEPS, BATCH, CLASSES = 6, 4, 3


def net(framework: str = "snntorch") -> tuple[nn.Module, torch.Tensor]:
    return shd_networks.tiny(framework, steps=STEPS, batch=BATCH)


def data(seed: int = 0, n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [((torch.rand(STEPS, BATCH, 12, generator=g) < 0.3).float(), torch.randint(0, CLASSES, (BATCH,),
                                                                                      generator=g))
            for _ in range(n)]


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).mean(0)  # [steps, batch, classes] -> [batch, classes]


def ce(model: nn.Module, batch: Any) -> torch.Tensor:
    return F.cross_entropy(logits(model, batch[0]), batch[1])


def nan_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    return ce(model, batch) * math.nan


def nan_gradient(model: nn.Module, batch: Any) -> torch.Tensor:
    out = logits(model, batch[0])  # sqrt(0) has an infinite derivative: a finite loss, a NaN gradient
    return F.cross_entropy(out, batch[1]) + torch.sqrt((out - out.detach()).abs().sum())


def no_grad_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    return ce(model, batch).detach()


CANDIDATES = [sg.surrogates.get("fast_sigmoid", sharpness=s) for s in (1.0, 4.0)]


def race(model: nn.Module, sample: torch.Tensor, **kw: Any) -> sg.ChosenPatch:
    options: dict[str, Any] = {"batches": data(), "loss_fn": ce, "candidates": CANDIDATES, "epochs": 2,
                               "progress": False, **kw}
    return sg.tune(model, sample, options.pop("batches"), **options)


def snapshot(model: nn.Module) -> tuple[Any, dict[str, torch.Tensor]]:
    return module_fingerprint(model), {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: tuple[Any, dict[str, torch.Tensor]]) -> None:
    fingerprint, state = before
    assert module_fingerprint(model) == fingerprint, "an attribute no longer holds the identical object"
    now = model.state_dict()
    assert now.keys() == state.keys()
    assert all(torch.equal(now[k], v) for k, v in state.items()), "the weights changed"
    assert not sg.is_patched(model), "a patch was left behind"


def four_part(err: BaseException, *needles: str) -> None:
    msg = str(err)
    for part in ("got:", "allowed:", "fix:"):
        assert part in msg, f"no {part!r} part in:\n{msg}"
    for needle in needles:
        assert needle in msg, f"{needle!r} not named in:\n{msg}"


class OtherModel(nn.Linear):
    def __init__(self) -> None:
        super().__init__(2, 2)


def exhausted() -> Any:
    it = iter(data(n=1))
    list(it)
    return it


# (id, keyword arguments of the race, error class, words the message must hold)
REFUSED: list[tuple[str, dict[str, Any], type[Exception], tuple[str, ...]]] = [
    ("nan-loss-from-the-first-batch", {"loss_fn": nan_loss}, sg.RaceError, ("nan", "validation batch 0")),
    ("finite-loss-nan-gradient", {"loss_fn": nan_gradient}, sg.RaceError,
     ("every candidate", "non-finite gradient on training batch 0 of epoch 0", "fast_sigmoid")),
    ("nan-gradient-keep-weights", {"loss_fn": nan_gradient, "keep_weights": True}, sg.RaceError,
     ("every candidate",)),
    ("nan-score", {"score": lambda m, b: math.nan}, sg.RaceError, ("score returned nan",)),
    ("inf-score", {"score": lambda m, b: -math.inf}, sg.RaceError, ("score returned -inf",)),
    ("none-score", {"score": lambda m, b: None}, sg.ConfigError, ("score must return a number", "None")),
    ("string-score", {"score": lambda m, b: "0.9"}, sg.ConfigError, ("score must return a number", "'0.9'")),
    ("vector-score", {"score": lambda m, b: torch.ones(3)}, sg.ConfigError, ("score must return a number",)),
    ("empty-val-batches", {"val_batches": []}, sg.ConfigError, ("val_batches is empty",)),
    ("exhausted-val-iterator", {"val_batches": exhausted()}, sg.ConfigError, ("val_batches is empty",)),
    ("one-xy-tuple-as-val-batches", {"val_batches": data(n=1)[0]}, sg.ConfigError,
     ("looks like one batch", "val_batches=[")),
    ("one-xy-tuple-as-batches", {"batches": data(n=1)[0]}, sg.ConfigError, ("looks like one batch",)),
    ("batches-callable-returns-none", {"batches": lambda epoch: None}, sg.ConfigError,
     ("batches(epoch=0) did not return", "NoneType")),
    ("batches-callable-returns-a-tensor", {"batches": lambda epoch: torch.zeros(3)}, sg.ConfigError,
     ("batches(epoch=0) did not return",)),
    ("optimizer-returns-a-non-optimizer", {"optimizer": lambda m: "adam"}, sg.ConfigError,
     ("must return a torch optimizer", "str")),
    ("optimizer-over-another-model", {"optimizer": lambda m: torch.optim.SGD(OtherModel().parameters(), lr=0.1)},
     sg.ConfigError, ("not this model's parameters",)),
    ("optimizer-over-nothing", {"optimizer": lambda m: torch.optim.SGD([torch.zeros(1, requires_grad=True)],
                                                                       lr=0.1)},
     sg.ConfigError, ("not this model's parameters",)),
    ("loss-without-grad", {"loss_fn": no_grad_loss}, sg.ConfigError, ("without a gradient", "requires_grad=False")),
    ("loss-not-a-scalar", {"loss_fn": lambda m, b: logits(m, b[0])}, sg.ConfigError,
     ("scalar tensor", "of shape (4, 3)")),
    ("accuracy-on-time-major-output", {"loss_fn": ce, "score": "accuracy",
                                       "val_batches": [(data(n=1)[0][0], data(n=1)[0][1])]},
     sg.ConfigError, ("score='accuracy'", "[6, 4, 3]")),
]


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse"])
@pytest.mark.parametrize(("kw", "error", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_the_race_refuses_to_choose_on_broken_evidence_and_restores_the_model(kw, error, words, framework):
    model, x = net(framework)
    before = snapshot(model)
    rng = torch.get_rng_state()
    with pytest.raises(error) as info:
        race(model, x, **kw)
    four_part(info.value, *words)
    assert_unchanged(model, before)
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_an_exception_inside_loss_fn_comes_out_unchanged_with_where_it_happened():
    model, x = net()
    before = snapshot(model)
    boom = RuntimeError("shape mismatch in my loss")
    calls = []

    def loss_fn(m: nn.Module, b: Any) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:  # the first call scores the untrained model; the second trains
            raise boom
        return ce(m, b)

    with pytest.raises(RuntimeError) as info:
        race(model, x, loss_fn=loss_fn)
    assert info.value is boom
    notes = "\n".join(getattr(boom, "__notes__", []))
    assert "loss_fn(model, batch) on training batch" in notes and "tensor [6, 4, 12] float32" in notes
    assert_unchanged(model, before)


def _raise(error: Exception) -> Any:
    raise error


@pytest.mark.parametrize(("where", "kw"), [
    ("score(model, val_batches) for candidate", {"score": lambda m, b: _raise(ZeroDivisionError("mine"))}),
    ("optimizer(model)", {"optimizer": lambda m: _raise(ZeroDivisionError("mine"))}),
    ("batches(epoch=0)", {"batches": lambda epoch: _raise(ZeroDivisionError("mine"))}),
])
def test_an_exception_inside_any_callable_comes_out_unchanged_with_its_name(where, kw):
    model, x = net()
    before = snapshot(model)
    with pytest.raises(ZeroDivisionError, match="mine") as info:
        race(model, x, **kw)
    assert any(where in note for note in info.value.__notes__)
    assert_unchanged(model, before)


def test_our_own_check_of_a_result_is_not_blamed_on_the_callable():
    model, x = net()
    with pytest.raises(sg.ConfigError) as info:
        race(model, x, loss_fn=no_grad_loss)
    assert not getattr(info.value, "__notes__", None)


def test_a_frozen_model_is_named_before_anything_trains():
    model, x = net()
    for p in model.parameters():
        p.requires_grad_(False)
    before = snapshot(model)
    with pytest.raises(sg.ConfigError) as info:
        race(model, x)
    four_part(info.value, "no trainable parameters")
    assert_unchanged(model, before)


def test_one_diverging_candidate_loses_and_the_others_race_on():
    """The first candidate's loss turns NaN on its second step (not at the initial weights): it diverges and is
    stopped before the step; the other trains and wins."""
    model, x = net()
    calls = []

    def loss_fn(m: nn.Module, b: Any) -> torch.Tensor:
        calls.append(1)  # call 1 scores the untrained model; calls 2 and 3 are the first candidate's two steps
        return ce(m, b) * (math.nan if len(calls) == 3 else 1.0)

    handle = race(model, x, loss_fn=loss_fn)
    report = handle.race
    loser, winner = report.candidates
    assert loser.diverged and loser.failure == "non-finite loss on training batch 1 of epoch 0"
    assert report.best is winner and not winner.diverged and len(winner.scores) == len(RUNGS)
    assert "diverged: non-finite loss" in str(report)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    handle.remove()


def test_keep_weights_keeps_finite_trained_weights():
    model, x = net()
    before = snapshot(model)[1]
    handle = race(model, x, keep_weights=True)
    now = model.state_dict()
    assert any(not torch.equal(now[k], v) for k, v in before.items()), "the winner's weights were not kept"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    handle.remove()


def test_the_race_leaves_no_trace():
    model, x = net()
    for p in model.parameters():
        p.grad = None
    given = [sg.Candidate(c, "given") for c in CANDIDATES]
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    handle = race(model, x, candidates=given)
    assert torch.equal(torch.get_rng_state(), rng), "the global random state changed"
    assert all(p.grad is None for p in model.parameters()), ".grad left on a parameter"
    assert all(c.scores == [] and not c.learned and not c.diverged for c in given), "a given Candidate was mutated"
    assert all(len(c.scores) >= 1 for c in handle.race.candidates)
    handle.remove()


def test_an_existing_grad_is_put_back_as_it_was():
    model, x = net()
    grads = {n: torch.full_like(p, 0.5) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = grads[n]
    race(model, x).remove()
    assert all(p.grad is grads[n] for n, p in model.named_parameters())


def test_a_learnable_candidate_races_like_the_others_and_the_users_parameter_is_untouched():
    model, x = net()
    damp = nn.Parameter(torch.tensor(0.5))
    learnable = sg.surrogates.get("fast_sigmoid", dampening=damp, sharpness=2.0)
    before = snapshot(model)[1]
    handle = race(model, x, candidates=[learnable, *CANDIDATES])
    assert float(damp.detach()) == 0.5 and damp.grad is None, "the user's Parameter was trained"
    assert {k: v for k, v in model.state_dict().items() if k in before}.keys() == before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert len(handle.race.candidates) == 3 and all(c.scores for c in handle.race.candidates[:3])
    installed = [s.dampening for s in handle.surrogates.values()]
    if isinstance(handle.race.best.surrogate.dampening, nn.Parameter):  # the learnable one won: the user's own
        assert all(d is damp for d in installed)                          # Parameter is what trains from now on
    else:
        assert all(d is not damp for d in installed)
    handle.remove()


def test_reusing_the_same_candidates_gives_the_same_race():
    model, x = net()
    given = [sg.Candidate(c, "given") for c in CANDIDATES]
    first = race(model, x, candidates=given)
    scores = [c.scores for c in first.race.candidates]
    first.remove()
    second = race(model, x, candidates=given)
    assert [c.scores for c in second.race.candidates] == scores
    second.remove()


# -- stabilize's race options, time_dim, handles, initialiser overflow ----------------------------------------
OTHER: list[tuple[str, Callable[[nn.Module, torch.Tensor], Any], type[Exception], tuple[str, ...]]] = [
    ("stabilize-keep-weights-without-batches", lambda m, x: sg.stabilize(m, x, keep_weights=True, progress=False),
     sg.ConfigError, ("keep_weights is an option of the training race", "batches")),
    ("stabilize-race-without-batches", lambda m, x: sg.stabilize(m, x, race=sg.RaceOptions(epochs=2)),
     sg.ConfigError, ("race is an option of the training race",)),
    ("tuple-sample-with-time-dim", lambda m, x: sg.analyze(m, (x,), time_dim=1), sg.ConfigError,
     ("time_dim moves the time dimension of a tensor sample", "tuple")),
    ("dict-sample-with-time-dim", lambda m, x: sg.candidates(m, {"x": x}, time_dim=1), sg.ConfigError,
     ("not a tensor", "dict")),
    ("fluctuation-sigma-u-beyond-float32", lambda m, x: sg.init.fluctuation(m, x, sigma_u=1e150), sg.ConfigError,
     ("non-finite", "float32")),
    ("fluctuation-mu-u-1e200", lambda m, x: sg.init.fluctuation(m, x, mu_u=1e200), sg.ConfigError,
     ("non-finite",)),
    ("stabilize-init-sigma-u-beyond-float32",
     lambda m, x: sg.stabilize(m, x, init="fluctuation", init_options={"sigma_u": 1e150}), sg.ConfigError,
     ("the initialisation computed non-finite",)),
]


@pytest.mark.parametrize(("call", "error", "words"), [c[1:] for c in OTHER], ids=[c[0] for c in OTHER])
def test_other_new_surfaces_refuse_clearly_and_change_nothing(call, error, words):
    model, x = net()
    before = snapshot(model)
    with pytest.raises(error) as info:
        call(model, x)
    four_part(info.value, *words)
    assert_unchanged(model, before)


@pytest.mark.parametrize(("copier", "words"), [
    (copy.copy, "copy.copy(handle)"),
    (copy.deepcopy, "copy.deepcopy(handle)"),
    (pickle.dumps, "pickle.dumps(handle)"),
    (lambda h: torch.save(h, io.BytesIO()), "torch.save(handle)"),
])
def test_a_handle_refuses_to_be_copied_or_pickled(copier, words):
    model, _ = net()
    handle = sg.patch(model, surrogate="fast_sigmoid")
    with pytest.raises(sg.NotCopyableError) as info:
        copier(handle)
    assert isinstance(info.value, TypeError)
    four_part(info.value, words)
    assert handle.remove() is True and handle.remove() is False
    assert not sg.is_patched(model)


def test_a_chosen_patch_refuses_to_be_deep_copied_too():
    model, x = net()
    handle = race(model, x)
    with pytest.raises(sg.NotCopyableError):
        copy.deepcopy(handle)
    handle.remove()
