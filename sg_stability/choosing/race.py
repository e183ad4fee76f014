"""``sg.tune``: a surrogate finder in the spirit of a learning-rate finder.

The stability analysis narrows shape x dampening x sharpness down to a handful of candidates
(:func:`sg_stability.candidates`); ``tune`` ranks them by real training on the user's own data with successive
halving: every candidate trains for a quarter of the full training budget, the best third (at least three)
continues to half, three finalists to three quarters, and the best of them and the analysis' own choice are
decided at the full budget -- late enough that a surrogate which learns fast early and then plateaus is not
picked for its start. The model's weights are restored afterwards
(unless ``keep_weights``) and the winner is patched in; ``handle.race`` says what was tried, what each scored,
and what it cost.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError, RaceError, raw
from .._patching import patch
from .._state import preserved_state
from .._validate import flag, integer
from ..surrogates import Surrogate, get
from .choice import candidates as analysis_shortlist
from .handle import ChosenPatch
from .options import Batches, LossFn, RaceOptions, ScoreFn, race_options
from .race_checks import (
    batches_given,
    calling,
    checked_loss,
    checked_optimizer,
    checked_score,
    describe,
    epoch_of,
    finite_norm,
    leaves_no_trace,
    validation,
    validation_losses,
)
from .race_prior import decide, keeping, paired_values, prior_of
from .race_report import TuneReport
from .shortlist import Candidate

#: fraction of the full training budget each rung has trained for when it is scored, and how many survive it
RUNGS = (0.25, 0.5, 0.75, 1.0)
#: a candidate has "learned" once its validation loss is this fraction below the untrained model's; until one
#: has, scores are noise and the shortlist's own order (the stability analysis' preference) decides
LEARNED = 0.02
#: candidates compared at the last rung: a candidate that starts late but learns further must survive the second
FINALISTS = 3
#: trained to the full budget: the best finalist and the prior (or the best two), decided on what a user would get
LAST = 2



def accuracy(model: nn.Module, batches: Sequence[Any]) -> float:
    """Classification accuracy of ``model(x).argmax(-1)`` against ``y`` over ``(x, y)`` batches, minus a
    thousandth of the cross-entropy so that equal accuracies are ranked by their loss."""
    right = total = 0
    loss = 0.0
    for batch in batches:
        if not (isinstance(batch, list | tuple) and len(batch) == 2):
            raise ConfigError("score='accuracy' needs (x, y) validation batches", got=raw(describe(batch)),
                              allowed="batches of (inputs, integer labels)",
                              fix="pass score='loss' or score=callable(model, val_batches) for other batches")
        x, y = batch
        out = model(x)
        if not isinstance(out, Tensor) or tuple(out.shape[:-1]) != tuple(y.shape):
            raise ConfigError("score='accuracy' needs class scores of shape [*labels.shape, classes]",
                              got=raw(f"model output {describe(out)} for labels {describe(y)}"),
                              allowed="model(x) of shape [batch, classes] for labels [batch] (or [..., classes] "
                              "for labels [...])",
                              fix="reduce the output over time in the model (e.g. sum the output spikes over "
                              "time), or pass score='loss' or score=callable(model, val_batches)")
        right += int((out.argmax(-1) == y).sum())
        total += int(y.numel())
        loss += float(torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1),
                                                        reduction="sum"))
    return (right - 1e-3 * loss) / max(total, 1)


def tune(model: nn.Module, sample: Any, batches: Batches, *, loss_fn: LossFn, race: RaceOptions | None = None,
         candidates: Sequence[Surrogate | Candidate] | None = None, run: Callable[[nn.Module, Any], Any] | None = None,
         seed: int = 0, progress: bool = True, **options: Any) -> ChosenPatch:
    """Pick the surrogate that trains best on your data, at a fraction of a grid search's cost.

    ``batches``: the training batches of one epoch (a list, re-iterated each epoch, or ``epoch -> iterable``;
    any other iterable, e.g. a DataLoader, is read once, so that every candidate sees the same batches);
    ``loss_fn(model, batch)`` returns the scalar loss. ``race`` (:class:`RaceOptions`: ``val_batches``,
    ``score``, ``epochs``, ``optimizer``, ``lr``, ``keep_weights``; each can also be passed by name) says how the
    candidates train and are scored. ``epochs`` is the length of your full training: the finder trains its
    candidates for 1/4, 1/2, 3/4 and all of it (successive halving: all, then the best third but at least 3, then
    the best 3, then the best and the analysis' choice), ``n/4 + k/4 + 3/4 + 2/4`` full runs for ``n`` candidates
    with ``k = max(3, ceil(n/3))`` (4.25 runs for the default shortlist of 9, 0.089 of a 48-point grid).
    ``candidates`` default to :func:`sg_stability.candidates` (the stability analysis' shortlist). Returns the
    winner's patch as a :class:`ChosenPatch`; ``handle.race`` is the :class:`TuneReport`. The weights are restored
    to what they were before (``keep_weights=True`` keeps the winner's trained weights instead).

    Over the analysis' shortlist (``candidates=None``, or a :class:`Shortlist`), its prior -- exactly what
    ``sg.stabilize`` installs without data (``shortlist.prior``; per layer where that rescales the dampening per
    layer) -- stays to the last rung and is replaced only by a candidate that beats it by more than two standard
    errors of their paired validation difference (with ``score="accuracy"``, or by more than two in each sample's
    log-likelihood of its label and more than one in accuracy; ``report.decision`` says which).

    The race refuses to choose on broken evidence: a loss that is not finite before any training, a score that
    is not a finite number, or every candidate diverging (a non-finite loss, gradient or weights) raise
    :class:`RaceError` with the model restored. A candidate whose gradient is not finite stops before the step
    that would apply it, so non-finite weights never survive. The race leaves no trace: the global random state,
    every ``.grad`` and the given ``Candidate`` objects and surrogates (learnable ones included) are as before.
    """
    opts = race_options(race, options, "tune")
    integer(seed, "seed", example="seed=0", where="tune")
    flag(progress, "progress", where="tune")
    score, epochs, keep_weights = opts.score, opts.epochs, opts.keep_weights
    if not callable(loss_fn):
        raise ConfigError("loss_fn must be callable", got=loss_fn, allowed="loss_fn(model, batch) -> scalar tensor",
                          fix="pass e.g. loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1])")
    scorer, metric = _scorer(score, loss_fn)
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError("tune: the model has no trainable parameters, so no candidate can train",
                          got=raw(f"{sum(1 for _ in model.parameters())} parameters, none with requires_grad=True"),
                          allowed="a model with parameters that require grad",
                          fix="unfreeze the weights the race should train (p.requires_grad_(True))")
    batches = batches_given(batches, "batches", allow_callable=True)
    val_batches = validation(opts.val_batches) if opts.val_batches is not None else None
    given = _given_candidates(candidates)
    first = epoch_of(batches, 0)
    if not first:
        raise ConfigError("batches is empty", got=batches, allowed="an iterable of at least one training batch",
                          fix="pass the list of training batches of one epoch")
    held_out = val_batches is None
    if held_out:
        cut = max(1, len(first) // 5)
        if len(first) < 2:
            raise ConfigError("need held-out batches to score candidates", got=f"{len(first)} training batch",
                              allowed="val_batches=..., or at least 2 training batches",
                              fix="pass val_batches=[...] (a validation split)")
        val_batches, first = first[-cut:], first[:-cut]
    assert val_batches is not None
    chosen_from = given if given is not None else analysis_shortlist(model, sample, run=run)
    prior = prior_of(candidates if candidates is not None else chosen_from)  # what the analysis alone would pick
    # the race's own Candidates, and its own copy of a surrogate with learnable parameters: yours stay untouched
    pool = [_racing_candidate(c) if isinstance(c, Candidate) else Candidate(_racing(c), "given") for c in chosen_from]
    if not pool:
        raise ConfigError("no candidates to rank", got=candidates, allowed="a non-empty list of surrogates",
                          fix="leave candidates=None for the stability analysis' shortlist")

    def epoch_batches(e: int) -> list[Any]:
        b = first if e == 0 and held_out else epoch_of(batches, e)
        return b[:len(first)] if held_out else b

    steps_per_epoch = len(first)
    total = max(1, round(epochs * steps_per_epoch))
    initial = copy.deepcopy(model.state_dict())
    states: dict[int, tuple[dict[str, Any], dict[str, Any] | None, int]] = {}
    t0 = time.perf_counter()
    trained = 0
    alive = list(range(len(pool)))
    keep = [len(pool), min(len(pool), max(3, math.ceil(len(pool) / 3))), min(len(pool), FINALISTS),
            min(len(pool), LAST)]
    with preserved_state(model), leaves_no_trace(model):  # hidden state, flags, RNG and .grad as they were
        bar = _bar(progress, sum(keep[i] * (RUNGS[i] - (RUNGS[i - 1] if i else 0)) for i in range(len(RUNGS))) * total)
        try:
            model.eval()
            with torch.no_grad():
                start_loss = _start_loss(model, loss_fn, val_batches)  # the surrogate does not change the forward
            for rung, fraction in enumerate(RUNGS):
                alive = keeping(alive, keep[rung], prior)
                until = max(1, round(fraction * total))
                for i in alive:
                    cand = pool[i]
                    state, opt_state, done = states.get(i, (initial, None, 0))
                    trained += until - done
                    model.load_state_dict(state)
                    with patch(model, **cand.patch_kwargs(), builtin=False):
                        with calling("optimizer(model)"):
                            opt = opts.make_optimizer(model)
                        opt = checked_optimizer(opt, model)
                        if opt_state is not None:
                            opt.load_state_dict(opt_state)
                        torch.manual_seed(seed + done)
                        done, failure = _train(model, opt, loss_fn, epoch_batches, steps_per_epoch, done, until,
                                               bar, cand.label)
                        value, val_loss = -math.inf, math.nan
                        if failure is None:
                            with torch.no_grad():
                                val_loss = _mean_loss(model, loss_fn, val_batches)
                                if not math.isfinite(val_loss):
                                    failure = f"validation loss {val_loss} after {done} training steps"
                                else:
                                    with calling(f"score(model, val_batches) for candidate {cand.label}"):
                                        got = scorer(model, val_batches)
                                    value = checked_score(got, f"candidate {cand.label} after {done} steps")
                        cand.failure = cand.failure or failure
                        cand.diverged = cand.failure is not None
                        cand.learned = not cand.diverged and start_loss - val_loss > LEARNED * abs(start_loss)
                        cand.scores.append((fraction, value))
                        states[i] = ({k: v.detach().clone() for k, v in model.state_dict().items() if k in initial},
                                     copy.deepcopy(opt.state_dict()), done)
                # candidates that learned, best score first; then those that have not (yet), in the shortlist's order
                alive.sort(key=lambda i: (not pool[i].diverged, pool[i].learned,
                                          pool[i].score if pool[i].learned else -i), reverse=True)
                alive = [i for i in alive if not pool[i].diverged]
                if not alive:
                    raise _all_diverged(pool)
            winner, decision = decide(model, pool, states, alive[0], prior,
                                      lambda m: paired_values(m, val_batches, score, loss_fn))
        finally:
            if bar is not None:
                bar.close()
            model.load_state_dict(initial)
    best = pool[winner]
    if keep_weights:  # the winner's weights, and its trained copy of the surrogate (learnable parameters too)
        model.load_state_dict(states[winner][0])
        installed = best.patch_kwargs()
    else:
        original = chosen_from[winner]
        installed = original.patch_kwargs() if isinstance(original, Candidate) else {"surrogate": original}
    report = TuneReport(pool, best, float(epochs), trained / steps_per_epoch, time.perf_counter() - t0, metric,
                        decision)
    return ChosenPatch.taking_over(patch(model, **installed), race=report)


def _racing(surrogate: Surrogate) -> Surrogate:
    """The surrogate the race trains with: a copy when it has parameters that training would change."""
    return copy.deepcopy(surrogate) if any(True for _ in surrogate.parameters()) else surrogate


def _racing_candidate(c: Candidate) -> Candidate:
    """The race's own copy of a candidate: fresh scores, and its own copies of learnable surrogates."""
    per_layer = None if c.per_layer is None else {path: _racing(s) for path, s in c.per_layer.items()}
    return dataclasses.replace(c, surrogate=_racing(c.surrogate), per_layer=per_layer,
                               layer_gradients=dict(c.layer_gradients), scores=[], learned=False, diverged=False,
                               failure=None)


def _given_candidates(candidates: Any) -> list[Surrogate | Candidate] | None:
    if candidates is None:
        return None
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise ConfigError("tune: candidates must be a list of surrogates", got=candidates,
                          allowed="a list of Surrogate instances, family names or sg.Candidate, or None",
                          fix='pass e.g. candidates=["fast_sigmoid", "atan"], or None for the shortlist')
    return [c if isinstance(c, Candidate) else get(c) for c in candidates]


def _all_diverged(pool: list[Candidate]) -> RaceError:
    failed = [c for c in pool if c.failure is not None]
    return RaceError("tune: every candidate still in the race diverged, so none can be chosen; the model is as it "
                     "was", got=raw("; ".join(f"{c.label}: {c.failure}" for c in failed[:4])
                                    + (f"; and {len(failed) - 4} more" if len(failed) > 4 else "")),
                     allowed="a race in which a candidate trains with a finite loss, gradient and weights",
                     fix="check loss_fn's gradient (sqrt or log of 0 gives NaN), lower lr, and check the batches "
                     "for NaN or inf")


def _start_loss(model: nn.Module, loss_fn: LossFn, batches: Sequence[Any]) -> float:
    """The untrained model's validation loss: a non-finite one on any batch means no candidate can be judged."""
    losses = validation_losses(model, loss_fn, batches)
    for b, (batch, value) in enumerate(zip(batches, losses, strict=True)):
        if not math.isfinite(value):
            raise RaceError(f"loss_fn returned {value} on validation batch {b} before any training: no candidate "
                            "can be judged on it", got=raw(f"loss {value} for {describe(batch)}"),
                            allowed="a finite loss on every validation batch at the model's initial weights",
                            fix="check the batch for NaN/inf and loss_fn for log(0) or 0/0")
    return sum(losses) / len(losses)


def _mean_loss(model: nn.Module, loss_fn: LossFn, batches: Sequence[Any]) -> float:
    return sum(validation_losses(model, loss_fn, batches)) / max(len(batches), 1)


def _scorer(score: str | ScoreFn, loss_fn: LossFn) -> tuple[ScoreFn, str]:
    if callable(score):
        return score, "score"
    if score == "accuracy":
        return accuracy, "accuracy"
    if score == "loss":
        def neg_loss(model: nn.Module, batches: Sequence[Any]) -> float:
            return -_mean_loss(model, loss_fn, batches)
        return neg_loss, "-loss"
    raise ConfigError("unknown score", got=score, allowed="'loss', 'accuracy' or a callable(model, val_batches)",
                      fix="pass score='accuracy' for classification")


def _train(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: LossFn, epoch_batches: Callable[[int], list[Any]],
           steps_per_epoch: int, done: int, until: int, bar: Any, label: str) -> tuple[int, str | None]:
    """Train from global step ``done`` to ``until``. Returns the steps done and, when the candidate diverged,
    where: a non-finite loss or gradient stops it before the step that would apply it."""
    model.train()
    params = [p for group in opt.param_groups for p in group["params"]]
    while done < until:
        epoch, offset = divmod(done, steps_per_epoch)
        todo = epoch_batches(epoch)[offset:offset + until - done]
        if not todo:
            raise ConfigError(f"epoch {epoch} of the training batches is shorter than the first", got=offset,
                              allowed=f"{steps_per_epoch} batches in every epoch",
                              fix="pass a list of batches, or batches=lambda epoch: ... returning a full epoch")
        for b, batch in enumerate(todo, start=offset):
            where = f"training batch {b} of epoch {epoch}"
            opt.zero_grad()
            with calling(f"loss_fn(model, batch) on {where} ({describe(batch)}), candidate {label}"):
                loss = loss_fn(model, batch)
            loss = checked_loss(loss, where, training=True)
            if done == 0 and not bool(torch.isfinite(loss.detach())):
                raise RaceError(f"loss_fn returned {float(loss)} on {where} at the model's initial weights, before "
                                "any training step: every candidate would start from it",
                                got=raw(f"loss {float(loss)} for {describe(batch)}"),
                                allowed="a finite loss at the initial weights",
                                fix="check the batch for NaN/inf and loss_fn for log(0) or 0/0")
            loss.backward()
            grads = [p.grad for p in params if p.grad is not None]
            if not bool(finite_norm([loss, *grads])):
                kind = "loss" if not bool(torch.isfinite(loss.detach())) else "gradient"
                return until, f"non-finite {kind} on {where}"
            opt.step()
            done += 1
            if bar is not None:
                bar.update(1)
    model.eval()
    if not bool(finite_norm(params)):
        return done, f"non-finite weights after {done} training steps"
    return done, None


def _bar(progress: bool, total: float) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=int(total), desc="sg.tune", unit="step")
