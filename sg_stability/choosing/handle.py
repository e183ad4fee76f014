"""The handle ``sg.stabilize`` and ``sg.tune`` return: the patch, and what chose it."""

from __future__ import annotations

from .._handle import PatchHandle
from ..analysis import StabilityReport
from ..init import InitReport
from .choice import Choice
from .race_report import TuneReport
from .shortlist import Shortlist


class ChosenPatch(PatchHandle):
    """A :class:`~sg_stability.PatchHandle` (``remove()``, context manager, ``summary()``) whose surrogates were
    chosen for the model, with what chose them. Every field is set when the handle is built:

    - ``choice``: the decision (:class:`~sg_stability.choosing.Choice`: the candidate, per-layer surrogates, why);
    - ``shortlist``: the stability analysis' candidates (``sg.candidates``), most preferred first (None from a
      ``sg.tune`` given its own candidates);
    - ``race``: the training race's :class:`TuneReport` (None where the analysis alone chose);
    - ``report``: the :class:`StabilityReport` of the model as patched (``sg.stabilize``; None from ``sg.tune``);
    - ``init_report``: the :class:`~sg_stability.init.InitReport` of ``stabilize(..., init=...)``, else None.
    """

    choice: Choice | None = None
    shortlist: Shortlist | None = None
    race: TuneReport | None = None
    report: StabilityReport | None = None
    init_report: InitReport | None = None

    @property
    def tuning(self) -> TuneReport | None:
        """The training race's report (the same as ``race``)."""
        return self.race

    @property
    def candidates(self) -> Shortlist | None:
        """The stability analysis' shortlist (the same as ``shortlist``)."""
        return self.shortlist
