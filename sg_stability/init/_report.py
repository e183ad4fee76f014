"""What an initialiser changed (:class:`InitReport`), and the one place weights are written (:class:`Writer`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .._errors import ConfigError


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
    skipped: list[str] = field(default_factory=list)
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
        lines.extend(f"skipped: {s}" for s in self.skipped)
        return "\n".join(lines)


def stats(t: Tensor) -> tuple[float, float]:
    t64 = t.detach().double()
    return float(t64.mean()), float(t64.std()) if t64.numel() > 1 else 0.0


class Writer:
    """Writes new values into weights in place (Parameter identity, optimizer state and zero diagonals kept) and
    records each change in the report (with a backup when asked)."""

    def __init__(self, report: InitReport, backup: bool) -> None:
        self.report = report
        self.backup = backup
        if backup:
            report._backup = []

    def write(self, layer: str, role: str, param: Tensor, new: Tensor, rule: str) -> None:
        if not isinstance(param, nn.Parameter) and not param.requires_grad:
            raise ConfigError(f"{layer}: the {role} weights are not a Parameter that can be written in place",
                              got=type(param).__name__, allowed="nn.Parameter",
                              fix="initialise this layer by hand")
        before = stats(param)
        zero_diag = param.dim() == 2 and param.shape[0] == param.shape[1] and bool(
            (torch.diagonal(param.detach()) == 0).all())
        with torch.no_grad():
            if self.backup and self.report._backup is not None and all(p is not param for p, _ in self.report._backup):
                self.report._backup.append((param, param.detach().clone()))
            new = new.to(param.dtype).reshape(param.shape)
            if zero_diag:
                new = new.clone()
                new.fill_diagonal_(0.0)
            param.copy_(new)
        self.report.changes.append(WeightChange(layer, role, before, stats(param), rule))


def check_parametrized(model: nn.Module) -> None:
    from torch.nn.utils import parametrize

    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            raise ConfigError("the model has parametrized weights (torch.nn.utils.parametrize), which cannot be "
                              "initialised in place", got=name or type(module).__name__,
                              allowed="plain nn.Parameter weights",
                              fix="initialise before registering the parametrization, or remove it first")
