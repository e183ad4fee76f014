"""What an initialiser changed (:class:`InitReport`), and the one place weights are written (:class:`Writer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

import torch
from torch import Tensor, nn

from .._errors import ConfigError, raw


@dataclass(frozen=True)
class WeightChange:
    layer: str
    role: str  # "input", "recurrent" or "bias"
    before: tuple[float, float]  # mean, std
    after: tuple[float, float]
    rule: str


@dataclass
class InitReport:
    """What an initialiser changed, per layer. ``restore()`` puts the old values back (``backup=True`` only)."""

    method: str
    changes: list[WeightChange] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # layers left unchanged, each with the reason
    notes: list[str] = field(default_factory=list)  # changed layers with a caveat (e.g. a target not fully reached)
    _backup: list[tuple[Tensor, Tensor]] | None = field(default=None, repr=False)

    def restore(self) -> None:
        if self._backup is None:
            raise ConfigError("this initialisation kept no backup", got=self.method,
                              allowed="restore() after an initialiser called with backup=True",
                              fix="call the initialiser with backup=True to be able to restore the weights")
        with torch.no_grad():
            for param, old in self._backup:
                param.copy_(old)

    def __str__(self) -> str:
        head = (f"{'layer':<16}{'weights':<11}{'mean before':>13}{'std before':>12}{'mean after':>12}"
                f"{'std after':>11}  rule")
        lines = [f"initialisation: {self.method}", head]
        for c in self.changes:
            lines.append(f"{c.layer[:15]:<16}{c.role:<11}{c.before[0]:>13.4g}{c.before[1]:>12.4g}"
                         f"{c.after[0]:>12.4g}{c.after[1]:>11.4g}  {c.rule}")
        lines.extend(f"note: {n}" for n in self.notes)
        lines.extend(f"skipped: {s}" for s in self.skipped)
        return "\n".join(lines)


def stats(t: Tensor) -> tuple[float, float]:
    t64 = t.detach().double()
    return float(t64.mean()), float(t64.std()) if t64.numel() > 1 else 0.0


class Writer:
    """Writes new values into weights in place (Parameter identity, optimizer state and zero diagonals kept) and
    records each change in the report (with a backup when asked).

    Every tensor it writes (or that :meth:`touch` names before an in-place trial) keeps its original values until
    :meth:`finish`; inside ``with writer:`` any exception -- a bad value, a failed run, ``KeyboardInterrupt`` --
    puts them all back, so a failed initialisation leaves the model as it was."""

    def __init__(self, report: InitReport, backup: bool) -> None:
        self.report = report
        self.backup = backup
        self._originals: dict[int, tuple[Tensor, Tensor]] = {}

    def touch(self, param: Tensor) -> None:
        """Keep ``param``'s current values (before the first in-place change)."""
        if id(param) not in self._originals:
            self._originals[id(param)] = (param, param.detach().clone())

    def write(self, layer: str, role: str, param: Tensor, new: Tensor, rule: str) -> None:
        if not isinstance(param, nn.Parameter) and not param.requires_grad:  # e.g. a product of two weights
            self.report.skipped.append(f"{layer}: its {role} weight is computed from other weights (a container's "
                                       "feedback through a Linear of its own), not a parameter: not written")
            return
        cast = new.to(param.dtype)  # checked after the cast: 1e150 is finite in float64, inf in float32
        if not bool(torch.isfinite(cast).all()):
            largest = float(new.double().abs().nan_to_num(nan=0.0).max())
            raise ConfigError(f"{layer}: the initialisation computed non-finite {role} weights ({rule}); nothing "
                              "was changed", got=raw(f"{int((~torch.isfinite(cast)).sum())} NaN/inf values in "
                                                     f"{str(param.dtype).removeprefix('torch.')} (largest computed "
                                                     f"|w| {largest:.3g})"),
                              allowed="finite weights in the parameter's dtype"
                              + (f" (|w| <= {torch.finfo(param.dtype).max:.3g})" if param.dtype.is_floating_point
                                 else ""),
                              fix="check the options (a mu_u or sigma_u too large for the dtype) and the sample "
                              "(finite, the model's input layout); a layer that never spikes on the sample gives no "
                              "statistics")
        before = stats(param)
        zero_diag = param.dim() == 2 and param.shape[0] == param.shape[1] and bool(
            (torch.diagonal(param.detach()) == 0).all())
        self.touch(param)
        with torch.no_grad():
            new = cast.reshape(param.shape)
            if zero_diag:
                new = new.clone()
                new.fill_diagonal_(0.0)
            param.copy_(new)
        self.report.changes.append(WeightChange(layer, role, before, stats(param), rule))

    def rollback(self) -> None:
        with torch.no_grad():
            for param, old in self._originals.values():
                param.copy_(old)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.rollback()
        elif self.backup:
            self.report._backup = list(self._originals.values())
        self._originals = {}


def check_parametrized(model: nn.Module) -> None:
    from torch.nn.utils import parametrize

    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            raise ConfigError("the model has parametrized weights (torch.nn.utils.parametrize), which cannot be "
                              "initialised in place", got=name or type(module).__name__,
                              allowed="plain nn.Parameter weights",
                              fix="initialise before registering the parametrization, or remove it first")
