"""The training race's options as one typed object that ``sg.tune`` and ``sg.stabilize`` share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError, did_you_mean
from .._validate import flag, real

LossFn = Callable[[nn.Module, Any], Tensor]
ScoreFn = Callable[[nn.Module, Sequence[Any]], float]
Batches = Iterable[Any] | Callable[[int], Iterable[Any]]
OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]


@dataclass(frozen=True)
class RaceOptions:
    """How the training race trains and scores its candidates (:func:`sg_stability.tune`, and
    :func:`sg_stability.stabilize` given ``batches``). Checked when built, so a typo fails before anything trains.

    ``val_batches``: held-out batches that score the candidates (default: the last fifth of the first epoch's
    batches, which are then not trained on); ``score``: ``"loss"`` (lower validation loss wins), ``"accuracy"``
    (``(x, y)`` batches, class-score outputs) or ``score(model, val_batches) -> float`` (higher wins);
    ``epochs``: the length of your full training (the race trains for 1/4, 1/2, 3/4 and all of it);
    ``optimizer(model)``: builds a fresh optimizer per candidate (default Adam at ``lr``); ``keep_weights``: keep
    the winner's partly trained weights instead of restoring the model's.

    Each field can also be passed by name to ``tune`` and ``stabilize`` (``sg.tune(..., epochs=5)``): it then
    replaces that field of ``race``.
    """

    val_batches: Sequence[Any] | None = None
    score: str | ScoreFn = "loss"
    epochs: float = 10
    optimizer: OptimizerFactory | None = None
    lr: float = 1e-3
    keep_weights: bool = False

    def __post_init__(self) -> None:
        real(self.epochs, "epochs", above=0.0, example="epochs= the number of epochs your full training runs",
             where="tune")
        if self.optimizer is None:
            real(self.lr, "lr", above=0.0, example="lr=1e-3", where="tune")
        elif not callable(self.optimizer):
            raise ConfigError("tune: optimizer must build an optimizer for a model", got=self.optimizer,
                              allowed="a callable model -> torch.optim.Optimizer, or None (Adam at lr)",
                              fix="pass optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1)")
        flag(self.keep_weights, "keep_weights", where="tune")

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return self.optimizer(model) if self.optimizer is not None else torch.optim.Adam(model.parameters(),
                                                                                         lr=self.lr)


#: the names ``tune`` and ``stabilize`` accept in place of a ``race`` field
FIELDS = tuple(f.name for f in dataclasses.fields(RaceOptions))


def race_options(race: Any, overrides: Mapping[str, Any], where: str) -> RaceOptions:
    """``race`` (None: the defaults) with the fields named in ``overrides`` replaced; four-part errors for a
    ``race`` that is not a :class:`RaceOptions` and for a name that is not one of its fields."""
    unknown = [k for k in overrides if k not in FIELDS]
    if unknown:
        raise ConfigError(f"{where}: unknown keyword argument {unknown[0]!r}", got=unknown[0],
                          allowed=f"the fields of sg.RaceOptions: {', '.join(FIELDS)}",
                          fix=f"check the spelling.{did_you_mean(unknown[0], FIELDS)}")
    if race is None:
        race = RaceOptions()
    elif not isinstance(race, RaceOptions):
        raise ConfigError(f"{where}: race must be sg.RaceOptions", got=race,
                          allowed="sg.RaceOptions(epochs=..., lr=..., score=..., ...) or None (the defaults)",
                          fix="pass race=sg.RaceOptions(...), or its fields by name (epochs=5, lr=1e-3)")
    return dataclasses.replace(race, **overrides) if overrides else race
