"""Choosing a surrogate: the stability analysis' shortlist, the decision without data, the training race, and the
entry points that install the choice.

- :mod:`.shortlist` -- :func:`candidates`: the surrogates worth trying, in order of preference (:class:`Shortlist`);
- :mod:`.choice` -- :class:`Choice`: what ``sg.stabilize`` installs without training data;
- :mod:`.recommend` -- :func:`analyze`: the stability report plus that choice;
- :mod:`.options`, :mod:`.race`, :mod:`.race_report` -- :func:`tune`: a training race over the shortlist
  (:class:`RaceOptions`, :class:`TuneReport`);
- :mod:`.stabilizing` -- :func:`stabilize`: analysis (and optionally a race) then patch, in one call;
- :mod:`.handle` -- :class:`ChosenPatch`: the handle both return, with what chose the patch.
"""

from .choice import Choice, candidates
from .handle import ChosenPatch
from .options import RaceOptions
from .race import tune
from .race_report import TuneReport
from .recommend import analyze
from .shortlist import AREAS, GROWTH_LIMIT, MIN_REACH, SHARPNESS_UNITS, SPREAD_SLACK, Candidate, Shortlist
from .stabilizing import stabilize

__all__ = [
    "AREAS",
    "GROWTH_LIMIT",
    "MIN_REACH",
    "SHARPNESS_UNITS",
    "SPREAD_SLACK",
    "Candidate",
    "Choice",
    "ChosenPatch",
    "RaceOptions",
    "Shortlist",
    "TuneReport",
    "analyze",
    "candidates",
    "stabilize",
    "tune",
]
