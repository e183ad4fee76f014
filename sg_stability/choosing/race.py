"""``sg.tune``: a surrogate finder in the spirit of a learning-rate finder.

The stability analysis narrows shape x dampening x sharpness down to a handful of candidates
(:func:`sg_stability.candidates`); ``tune`` ranks them by real training on the user's own data with successive
halving: every candidate trains for a quarter of the full training budget, the best third (at least three)
continues to half, and three finalists are compared after three quarters -- late enough that a surrogate which
learns fast early and then plateaus is not picked for its start. The model's weights are restored afterwards
(unless ``keep_weights``) and the winner is patched in; ``handle.race`` says what was tried, what each scored,
and what it cost.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError, raw
from .._patching import patch
from .._state import preserved_state
from .._validate import flag, integer
from ..surrogates import Surrogate, get
from .handle import ChosenPatch
from .options import Batches, LossFn, RaceOptions, ScoreFn, race_options
from .race_report import TuneReport
from .shortlist import Candidate
from .shortlist import candidates as analysis_shortlist

#: fraction of the full training budget each rung has trained for when it is scored, and how many survive it
RUNGS = (0.25, 0.5, 0.75)
#: a candidate has "learned" once its validation loss is this fraction below the untrained model's; until one
#: has, scores are noise and the shortlist's own order (the stability analysis' preference) decides
LEARNED = 0.02
#: candidates compared at the last rung: a candidate that starts late but learns further must survive the second
FINALISTS = 3



def _epoch(batches: Batches, epoch: int) -> list[Any]:
    return list(batches(epoch) if callable(batches) else batches)


def accuracy(model: nn.Module, batches: Sequence[Any]) -> float:
    """Classification accuracy of ``model(x).argmax(-1)`` against ``y`` over ``(x, y)`` batches, minus a
    thousandth of the cross-entropy so that equal accuracies are ranked by their loss."""
    right = total = 0
    loss = 0.0
    for x, y in batches:
        out = model(x)
        right += int((out.argmax(-1) == y).sum())
        total += int(y.numel())
        loss += float(torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1),
                                                        reduction="sum"))
    return (right - 1e-3 * loss) / max(total, 1)


def _iterable(value: Any, name: str, allow_callable: bool = False) -> Any:
    if (allow_callable and callable(value)) or (isinstance(value, Iterable) and not isinstance(value, str | Tensor)):
        return value if isinstance(value, Sequence) or callable(value) else list(value)
    raise ConfigError(f"tune: {name} must be an iterable of batches", got=raw(type(value).__name__),
                      allowed="a list of batches (or a DataLoader)" + (", or epoch -> batches" if allow_callable
                                                                       else ""),
                      fix=f"pass {name}=[batch, ...]")


def _loss(loss_fn: LossFn, model: nn.Module, batch: Any) -> Tensor:
    loss = loss_fn(model, batch)
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise ConfigError("tune: loss_fn must return the loss as a scalar tensor",
                          got=raw(type(loss).__name__ + (f" of shape {tuple(loss.shape)}" if isinstance(loss, Tensor)
                                                         else "")),
                          allowed="a tensor with one element that depends on the model's output",
                          fix="return e.g. F.cross_entropy(model(x), y) (reduce it with .mean() or .sum())")
    return loss


def tune(model: nn.Module, sample: Any, batches: Batches, *, loss_fn: LossFn, race: RaceOptions | None = None,
         candidates: Sequence[Surrogate | Candidate] | None = None, run: Callable[[nn.Module, Any], Any] | None = None,
         seed: int = 0, progress: bool = True, **options: Any) -> ChosenPatch:
    """Pick the surrogate that trains best on your data, at a fraction of a grid search's cost.

    ``batches``: the training batches of one epoch (a list, re-iterated each epoch, or ``epoch -> iterable``;
    any other iterable, e.g. a DataLoader, is read once, so that every candidate sees the same batches);
    ``loss_fn(model, batch)`` returns the scalar loss. ``race`` (:class:`RaceOptions`: ``val_batches``,
    ``score``, ``epochs``, ``optimizer``, ``lr``, ``keep_weights``; each can also be passed by name) says how the
    candidates train and are scored. ``epochs`` is the length of your full training: the finder trains its
    candidates for 1/4, 1/2 and 3/4 of it (successive halving: all, then the best third but at least 3, then the
    best 3), ``n/4 + k/4 + 3/4`` full runs for ``n`` candidates with ``k = max(3, ceil(n/3))`` (3.75 runs for the
    default shortlist of 9, a thirteenth of a 48-point grid). ``candidates`` default to
    :func:`sg_stability.candidates` (the stability analysis' shortlist). Returns the winner's patch as a
    :class:`ChosenPatch`; ``handle.race`` is the :class:`TuneReport`. The weights are restored to what they were
    before (``keep_weights=True`` keeps the winner's partly trained weights instead).
    """
    opts = race_options(race, options, "tune")
    integer(seed, "seed", example="seed=0", where="tune")
    flag(progress, "progress", where="tune")
    val_batches, score, epochs, keep_weights = opts.val_batches, opts.score, opts.epochs, opts.keep_weights
    if not callable(loss_fn):
        raise ConfigError("loss_fn must be callable", got=loss_fn, allowed="loss_fn(model, batch) -> scalar tensor",
                          fix="pass e.g. loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1])")
    scorer, metric = _scorer(score, loss_fn)
    batches = _iterable(batches, "batches", allow_callable=True)
    if val_batches is not None:
        val_batches = _iterable(val_batches, "val_batches")
    if candidates is not None:
        if isinstance(candidates, str) or not isinstance(candidates, Sequence):
            raise ConfigError("tune: candidates must be a list of surrogates", got=candidates,
                              allowed="a list of Surrogate instances, family names or sg.Candidate, or None",
                              fix='pass e.g. candidates=["fast_sigmoid", "atan"], or None for the shortlist')
        candidates = [c if isinstance(c, Candidate) else get(c) for c in candidates]
    if not callable(batches) and not isinstance(batches, Sequence):
        batches = list(batches)  # read once: a generator would run dry, and every candidate sees the same batches
    first = _epoch(batches, 0)
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
    pool = [c if isinstance(c, Candidate) else Candidate(c, "given") for c in
            (candidates if candidates is not None else analysis_shortlist(model, sample, run=run))]
    if not pool:
        raise ConfigError("no candidates to rank", got=candidates, allowed="a non-empty list of surrogates",
                          fix="leave candidates=None for the stability analysis' shortlist")

    def epoch_batches(e: int) -> list[Any]:
        b = _epoch(batches, e)
        return b[:len(first)] if held_out else b

    steps_per_epoch = len(first)
    total = max(1, round(epochs * steps_per_epoch))
    initial = copy.deepcopy(model.state_dict())
    states: dict[int, tuple[dict[str, Any], dict[str, Any] | None, int]] = {}
    t0 = time.perf_counter()
    trained = 0
    alive = list(range(len(pool)))
    keep = [len(pool), min(len(pool), max(3, math.ceil(len(pool) / 3))), min(len(pool), FINALISTS)]
    with preserved_state(model):  # hidden state and train/eval flags as they were, whatever happens
        bar = _bar(progress, sum(keep[i] * (RUNGS[i] - (RUNGS[i - 1] if i else 0)) for i in range(len(RUNGS))) * total)
        try:
            model.eval()
            with torch.no_grad():
                start_loss = _mean_loss(model, loss_fn, val_batches)  # the surrogate does not change the forward pass
            for rung, fraction in enumerate(RUNGS):
                alive = alive[:keep[rung]]
                until = max(1, round(fraction * total))
                for i in alive:
                    cand = pool[i]
                    state, opt_state, done = states.get(i, (initial, None, 0))
                    trained += until - done
                    model.load_state_dict(state)
                    with patch(model, surrogate=cand.surrogate, builtin=False):
                        opt = opts.make_optimizer(model)
                        if opt_state is not None:
                            opt.load_state_dict(opt_state)
                        torch.manual_seed(seed + done)
                        done, ok = _train(model, opt, loss_fn, epoch_batches, steps_per_epoch, done, until, bar)
                        with torch.no_grad():
                            val_loss = _mean_loss(model, loss_fn, val_batches) if ok else math.nan
                            value = scorer(model, val_batches) if ok and math.isfinite(val_loss) else -math.inf
                        cand.diverged = cand.diverged or not math.isfinite(value)
                        cand.learned = not cand.diverged and start_loss - val_loss > LEARNED * abs(start_loss)
                        cand.scores.append((fraction, value))
                        states[i] = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()), done)
                # candidates that learned, best score first; then those that have not (yet), in the shortlist's order
                alive.sort(key=lambda i: (not pool[i].diverged, pool[i].learned,
                                          pool[i].score if pool[i].learned else -i), reverse=True)
        finally:
            if bar is not None:
                bar.close()
            model.load_state_dict(initial)
    best = pool[alive[0]]
    if keep_weights:
        model.load_state_dict(states[alive[0]][0])
    report = TuneReport(pool, best, float(epochs), trained / steps_per_epoch, time.perf_counter() - t0, metric)
    return ChosenPatch.taking_over(patch(model, surrogate=best.surrogate), race=report)


def _mean_loss(model: nn.Module, loss_fn: LossFn, batches: Sequence[Any]) -> float:
    return sum(float(_loss(loss_fn, model, b)) for b in batches) / max(len(batches), 1)


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
           steps_per_epoch: int, done: int, until: int, bar: Any) -> tuple[int, bool]:
    """Train from global step ``done`` to ``until``; False when the loss stops being finite."""
    model.train()
    while done < until:
        epoch, offset = divmod(done, steps_per_epoch)
        todo = epoch_batches(epoch)[offset:offset + until - done]
        if not todo:
            raise ConfigError(f"epoch {epoch} of the training batches is shorter than the first", got=offset,
                              allowed=f"{steps_per_epoch} batches in every epoch",
                              fix="pass a list of batches, or batches=lambda epoch: ... returning a full epoch")
        for batch in todo:
            opt.zero_grad()
            loss = _loss(loss_fn, model, batch)
            if not torch.isfinite(loss):
                return until, False
            loss.backward()
            opt.step()
            done += 1
            if bar is not None:
                bar.update(1)
    model.eval()
    return done, True


def _bar(progress: bool, total: float) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=int(total), desc="sg.tune", unit="step")
