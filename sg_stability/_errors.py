"""Exceptions and warnings of sg_stability.

Every error message has four parts: what was wrong, the value received, what is allowed, and how
to fix it. Exceptions inherit from :class:`SGStabilityError` *and* the matching builtin, so
``except ValueError`` keeps working in user code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_MISSING = object()


class SGStabilityError(Exception):
    """Base class of every error raised by sg_stability."""

    def __init__(
        self,
        what: str,
        *,
        got: object = _MISSING,
        allowed: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.what = what
        self.got = got
        self.allowed = allowed
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        lines = [self.what]
        if self.got is not _MISSING:
            lines.append(f"  got: {self.got!r}" if not isinstance(self.got, _Raw) else f"  got: {self.got}")
        if self.allowed:
            lines.append(f"  allowed: {self.allowed}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


class _Raw(str):
    """A `got` value that is already formatted (printed without repr quotes)."""


def raw(text: str) -> _Raw:
    return _Raw(text)


class ConfigError(SGStabilityError, ValueError):
    """An argument has a wrong value or type."""


class UnknownSurrogateError(ConfigError, KeyError):
    """A surrogate family name is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message otherwise
        return self.args[0] if self.args else ""


class NotConvertibleError(ConfigError):
    """A framework's native surrogate has no canonical equivalent (``from_native``)."""

    def __init__(self, what: str, *, reason: str, got: object = _MISSING, allowed: str | None = None,
                 fix: str | None = None) -> None:
        self.reason = reason
        super().__init__(what, got=got, allowed=allowed, fix=fix)


class NoNeuronsFoundError(SGStabilityError, ValueError):
    """The model holds no spiking neuron that an adapter claims, or ``targets`` matched none."""


class PreflightError(SGStabilityError, ValueError):
    """One or more neuron sites cannot take the requested change. Nothing was changed."""

    def __init__(self, problems: Sequence[Problem], *, total_sites: int) -> None:
        self.problems = list(problems)
        paths = sorted({p.path for p in self.problems})
        body = "".join(f"\n    {p.render()}" for p in self.problems)
        super().__init__(
            f"{len(paths)} of {total_sites} neuron sites cannot be patched; nothing was changed",
            got=raw(body),
            allowed="sites without the problems listed above",
            fix="apply the per-site fix above, leave those sites out with targets=, "
            "or pass strict=False to patch the other sites and skip these",
        )


class AlreadyPatchedError(SGStabilityError, RuntimeError):
    """A site already holds a surrogate installed by a live sg_stability handle."""


class PatchConflictError(SGStabilityError, RuntimeError):
    """Something else changed a patched attribute; restoring it would lose that change."""


class AdapterError(SGStabilityError, RuntimeError):
    """An adapter failed while applying a change; everything applied so far was rolled back."""


class RaceError(SGStabilityError, RuntimeError):
    """The training race could not choose on what it measured (a non-finite loss, gradient, weights or score, or
    every candidate diverged). The model was restored as it was."""


class NotCopyableError(SGStabilityError, TypeError):
    """A patch handle was copied or pickled: it stands for a live patch on one model object."""


class SGStabilityWarning(UserWarning):
    """Base class of every warning emitted by sg_stability."""


class PartialMatchWarning(SGStabilityWarning):
    """Some ``targets`` patterns matched no neuron (with ``strict=False``)."""


class SkippedSitesWarning(SGStabilityWarning):
    """Some neuron sites were skipped because of preflight problems (with ``strict=False``)."""


class LayoutWarning(SGStabilityWarning):
    """An analysis sample's time layout looks different from how the model consumed it (pass ``time_dim=``)."""


class PluginLoadWarning(SGStabilityWarning):
    """A third-party adapter plugin failed to load and is ignored."""


@dataclass(frozen=True)
class Problem:
    """Why one neuron site cannot take a requested change (collected before anything is mutated)."""

    path: str
    what: str
    fix: str
    kind: str = ""

    def render(self) -> str:
        path = self.path or "(model)"
        where = f"{path} ({self.kind})" if self.kind else path
        return f"{where}: {self.what}; fix: {self.fix}"


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""
