"""``sg.stabilize(model, sample)``: choose the surrogate from the stability analysis (and, given training
batches, from a short training race between its candidates), patch, and report."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from .._errors import ConfigError, raw
from .._handle import PatchHandle
from .._patching import patch
from .._validate import flag
from ..analysis import analyze_layers
from ..analysis.analyzer import check_options
from ..init import check_method, initialize
from ..recording import Run, traced
from ..recording.sample_checks import with_time_dim
from ..surrogates import get
from .choice import Choice, shortlist_and_choice
from .handle import ChosenPatch
from .options import FIELDS, Batches, LossFn, RaceOptions, race_options
from .race import tune


def _check(batches: Any, loss_fn: Any) -> None:
    if (batches is None) != (loss_fn is None):
        given, missing = ("batches", "loss_fn") if loss_fn is None else ("loss_fn", "batches")
        raise ConfigError(f"{given} was given without {missing}", got=f"{given} only",
                          allowed="both (the surrogate is then chosen by a short training race) or neither "
                          "(chosen by the stability analysis alone)",
                          fix=f"pass {missing}=... too, or leave both out")


def stabilize(model: nn.Module, sample: Any, *, batches: Batches | None = None, loss_fn: LossFn | None = None,
              race: RaceOptions | None = None, family: str = "fast_sigmoid", init: str | None = None,
              init_options: dict[str, Any] | None = None, run: Run | None = None, target: float = 1.0,
              probes: int = 4, seed: int = 0, progress: bool = True, time_dim: int | None = None,
              keep_spread: bool = True, **params: Any) -> ChosenPatch:
    """Choose one surrogate for every spiking layer and patch the model, in one call.

    1. optionally initialise the weights first: ``init`` is one of ``sg.init.METHODS`` ("at_threshold" is the
       paper's high initial firing rate), with ``init_options``; ``handle.init_report`` says what changed. The
       weights are not restored by ``handle.remove()`` unless ``init_options={"backup": True}`` was given and
       ``handle.init_report.restore()`` is called (decisions D5); if ``stabilize`` fails after initialising,
       the weights are put back as they were;
    2. the stability analysis' shortlist (:func:`sg_stability.candidates`): ``family`` (with ``params``, e.g. a
       q_pseudospike ``tail``) in threshold units, areas 1/3, 1 and 1/10 of a unit step, each with its measured
       BPTT growth (growing ones last), then the model's own surrogate;
    3. without training data the analysis' preferred candidate is installed (``candidates.preferred()``). Where
       it widens the spread of the gradient across layers beyond what the model's own surrogates give
       (``SPREAD_SLACK``; deep feed-forward nets: a low dampening shrinks the gradient at every layer), its
       dampening is rescaled per layer and re-measured; if that still widens it, the first candidate that does
       not is installed, else each layer keeps its own surrogate; the note says which. ``keep_spread=False``
       installs the preferred candidate regardless (BENCHMARKS.md: on the 5-layer evidence task with Adam this
       trained better on Norse, whose reset is differentiated, and the same on snnTorch and SpikingJelly);
    4. with ``batches`` and ``loss_fn`` (as for :func:`sg_stability.tune`; ``race`` is its
       :class:`RaceOptions`, whose fields -- ``val_batches``, ``score``, ``epochs``, ``optimizer``, ``lr``,
       ``keep_weights`` -- can also be passed by name): the candidates race by successive halving on your data
       and the best one is installed (``handle.race`` is the race's :class:`TuneReport`, 4.25 full runs of
       compute for the default shortlist); without them the analysis' first choice is installed;
    5. returns a :class:`ChosenPatch`: ``handle.report`` is :func:`analyze` of the model as patched (``target``
       and ``probes`` are passed on), ``handle.shortlist`` the shortlist, ``handle.choice`` the decision.
       ``handle.remove()`` restores the original surrogates.

    Other keyword arguments (``params``) are the family's parameters (e.g. a q_pseudospike ``tail``).

    ``time_dim`` as for :func:`analyze`: it moves the sample's time dimension first; the race's batches go to
    ``loss_fn`` as they are (``loss_fn`` feeds the model). Every argument
    is checked before anything changes; a failure after the initialisation puts the weights back.
    """
    # every argument is checked before the first change (the initialisation), so a typo changes nothing
    _check(batches, loss_fn)
    check_options(probes, seed, target)
    # checked even when no race runs: a typo is a typo
    race_fields = {k: params.pop(k) for k in list(params) if k in FIELDS}
    if batches is None and (race is not None or race_fields):
        named = next(iter(race_fields), "race")
        raise ConfigError(f"stabilize: {named} is an option of the training race, which runs only with batches and "
                          "loss_fn", got=raw(f"{named}={race_fields.get(named, race)!r} without batches"),
                          allowed="race options (" + ", ".join(FIELDS) + ") together with batches= and loss_fn=",
                          fix=f"pass batches=... and loss_fn=... to race the candidates, or drop {named}")
    race = race_options(race, race_fields, "stabilize")
    flag(progress, "progress", where="stabilize")
    keep_spread = flag(keep_spread, "keep_spread", where="stabilize")
    base = get(family, **params)
    run = with_time_dim(run, time_dim)
    if init is not None:
        init_options = check_method(init, init_options, "stabilize")
    elif init_options:
        raise ConfigError("stabilize: init_options were given without init", got=init_options,
                          allowed="init_options together with init=<method>",
                          fix='pass init="at_threshold" (or another sg.init.METHODS name), or drop init_options')
    snapshot = copy.deepcopy(model.state_dict()) if init is not None else None
    handle: PatchHandle | None = None
    tuning = None
    try:
        init_report = None
        if init is not None:
            init_report = initialize(model, sample, init, run=run, **(init_options or {}))
        with traced(model, sample, run=run) as trace:  # one forward pass serves every measurement
            pool, choice = shortlist_and_choice(trace, base, seed, keep_spread=keep_spread)
        if batches is not None and loss_fn is not None:
            raced = tune(model, sample, batches, loss_fn=loss_fn, race=race, candidates=pool, run=run, seed=seed,
                         progress=progress)
            handle, tuning = raced, raced.race
            assert tuning is not None
            won = pool[next(i for i, c in enumerate(tuning.candidates) if c is tuning.best)]
            how = f"won a training race between {len(pool)} candidates ({tuning.cost_runs:.2f} full runs)"
            choice = Choice(choice.candidate, choice.per_layer, how) if won is pool.prior else Choice(won, None, how)
        else:
            assert pool.prior is not None
            handle = patch(model, **pool.prior.patch_kwargs())
        report = analyze_layers(model, sample, run=run, probes=probes, seed=seed, target=target)
    except BaseException:  # a failure at any point leaves the model as it was
        if handle is not None:
            handle.remove()
        if snapshot is not None:
            model.load_state_dict(snapshot)
        raise
    report.recommended = choice.candidate
    report.recommendation = choice
    installed = "kept each layer's own surrogate" if choice.candidate is None else f"installed {choice.describe()}"
    return ChosenPatch.taking_over(handle, choice=choice, shortlist=pool, race=tuning,
                                   report=report, init_report=init_report,
                                   notes=(*handle.notes, f"{installed}: {choice.how}"))

