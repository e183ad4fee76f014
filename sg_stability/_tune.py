"""``sg.tune``: a surrogate finder in the spirit of a learning-rate finder.

The stability analysis narrows shape x dampening x sharpness down to a handful of candidates
(:func:`sg_stability.candidates`); ``tune`` ranks them by real training on the user's own data with successive
halving: every candidate trains for a quarter of the full training budget, the best third (at least three)
continues to half, and three finalists are compared after three quarters -- late enough that a surrogate which
learns fast early and then plateaus is not picked for its start. The model's weights are restored afterwards
(unless ``keep_weights``) and the winner is patched in; ``handle.tuning`` says what was tried, what each scored,
and what it cost.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._api import patch
from ._errors import ConfigError, raw
from ._handle import PatchHandle
from ._transaction import preserved_state
from ._validate import flag, integer, real
from .analysis import Candidate
from .analysis import candidates as shortlist
from .analysis.plotting import legend, save_figure, subplots
from .surrogates import Surrogate, get

LossFn = Callable[[nn.Module, Any], Tensor]
ScoreFn = Callable[[nn.Module, Sequence[Any]], float]
Batches = Iterable[Any] | Callable[[int], Iterable[Any]]

#: fraction of the full training budget each rung has trained for when it is scored, and how many survive it
RUNGS = (0.25, 0.5, 0.75)
#: a candidate has "learned" once its validation loss is this fraction below the untrained model's; until one
#: has, scores are noise and the shortlist's own order (the stability analysis' preference) decides
LEARNED = 0.02
#: candidates compared at the last rung: a candidate that starts late but learns further must survive the second
FINALISTS = 3


@dataclass
class TuneReport:
    """What :func:`tune` tried and chose. ``print(report)`` is a table; ``report.plot(path)`` a PNG."""

    candidates: list[Candidate]
    best: Candidate
    epochs: float
    cost_epochs: float
    seconds: float
    metric: str

    @property
    def cost_runs(self) -> float:
        """The finder's training compute in full training runs (``epochs`` each)."""
        return self.cost_epochs / self.epochs

    def __str__(self) -> str:
        fractions = sorted({f for c in self.candidates for f, _ in c.scores})
        width = max(len(c.label) for c in self.candidates) + 2
        head = (f"{'candidate':<{width}}{'reach':>7}{'growth':>8}"
                + "".join(f"{f'@{f:.3g}':>9}" for f in fractions))
        lines = [(f"TuneReport: {len(self.candidates)} candidates ranked by validation {self.metric}; "
                  f"cost {self.cost_epochs:.3g} epochs = {self.cost_runs:.2f} full runs, {self.seconds:.1f} s"),
                 ("(reach: least fraction of a layer's points where the surrogate passes half its peak; growth: "
                  "measured BPTT growth per step; @f: score after training for the fraction f of the full "
                  "budget; * = had not learned yet, ranked by the shortlist's order)"), head]
        for c in sorted(self.candidates, key=lambda c: (-len(c.scores), -c.score)):
            by_f = dict(c.scores)
            cells = "".join(f"{by_f[f]:>9.4g}" if f in by_f else f"{'':>9}" for f in fractions)
            mark = "  <- chosen" if c is self.best else (" (diverged)" if c.diverged else "")
            if c.scores and not c.learned and not c.diverged:
                mark += " *"
            lines.append(f"{c.label:<{width}}{_opt(c.reach, '.3f'):>7}{_opt(c.growth, '.3f'):>8}{cells}{mark}")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Validation score against training budget, one line per candidate, the chosen one bold."""
        fig, ax = subplots(1, (7.5, 4.5))
        for c in self.candidates:
            if not c.scores:
                continue
            xs, ys = zip(*c.scores, strict=True)
            best = c is self.best
            ax.plot(xs, ys, marker="o", lw=2.5 if best else 1, alpha=1 if best else 0.6,
                    label=c.label + (" (chosen)" if best else ""))
        ax.set_xlabel("fraction of the full training budget")
        ax.set_ylabel(f"validation {self.metric}")
        ax.set_title("sg.tune: successive halving over the stability analysis' candidates")
        legend(ax, fontsize=7, ncol=2)
        return save_figure(fig, path, dpi=110)


def _opt(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


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


def check_race_options(epochs: Any, lr: Any, seed: Any, progress: Any, optimizer: Any) -> None:
    """Four-part errors for the training race's options, before anything trains."""
    real(epochs, "epochs", above=0.0, example="epochs= the number of epochs your full training runs", where="tune")
    if optimizer is None:
        real(lr, "lr", above=0.0, example="lr=1e-3", where="tune")
    elif not callable(optimizer):
        raise ConfigError("tune: optimizer must build an optimizer for a model", got=optimizer,
                          allowed="a callable model -> torch.optim.Optimizer, or None (Adam at lr)",
                          fix="pass optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1)")
    integer(seed, "seed", example="seed=0", where="tune")
    flag(progress, "progress", where="tune")


def tune(model: nn.Module, sample: Any, batches: Batches, *, loss_fn: LossFn, val_batches: Sequence[Any] | None = None,
         score: str | ScoreFn = "loss", epochs: float = 10, candidates: Sequence[Surrogate | Candidate] | None = None,
         optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None, lr: float = 1e-3,
         run: Callable[[nn.Module, Any], Any] | None = None, seed: int = 0, keep_weights: bool = False,
         progress: bool = True) -> PatchHandle:
    """Pick the surrogate that trains best on your data, at a fraction of a grid search's cost.

    ``batches``: the training batches of one epoch (a list, re-iterated each epoch, or ``epoch -> iterable``;
    any other iterable, e.g. a DataLoader, is read once, so that every candidate sees the same batches);
    ``loss_fn(model, batch)`` returns the scalar loss; ``val_batches`` are held-out batches that score the
    candidates (default: the last fifth of the first epoch's batches, which are then not trained on);
    ``score`` is ``"loss"`` (lower validation loss wins), ``"accuracy"`` (for ``(x, y)`` batches and
    class-score outputs) or ``score(model, val_batches) -> float`` (higher wins). ``epochs`` is the length of your
    full training: the finder trains its candidates for 1/4, 1/2 and 3/4 of it (successive halving: all, then
    the best third but at least 3, then the best 3), ``n/4 + k/4 + 3/4`` full runs for ``n`` candidates with
    ``k = max(3, ceil(n/3))`` (3.75 runs for the default shortlist of 9, a thirteenth of a 48-point grid).
    ``candidates`` default to :func:`sg_stability.candidates` (the stability analysis' shortlist);
    ``optimizer(model)`` builds a fresh optimizer per candidate (default Adam at ``lr``). Returns the handle of
    the winner's patch; ``handle.tuning`` is the :class:`TuneReport`. The weights are restored to what they were
    before (``keep_weights=True`` keeps the winner's partly trained weights instead).
    """
    check_race_options(epochs, lr, seed, progress, optimizer)
    keep_weights = flag(keep_weights, "keep_weights", where="tune")
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
            (candidates if candidates is not None else shortlist(model, sample, run=run))]
    if not pool:
        raise ConfigError("no candidates to rank", got=candidates, allowed="a non-empty list of surrogates",
                          fix="leave candidates=None for the stability analysis' shortlist")
    make_opt = optimizer or (lambda m: torch.optim.Adam(m.parameters(), lr=lr))

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
                        opt = make_opt(model)
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
    handle = patch(model, surrogate=best.surrogate)
    handle.tuning = TuneReport(pool, best, float(epochs), trained / steps_per_epoch, time.perf_counter() - t0, metric)
    return handle


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
