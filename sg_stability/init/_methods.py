"""The initialisers by name, for ``sg.stabilize(..., init=...)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .._errors import ConfigError
from .._validate import keywords
from ._at_threshold import at_threshold, stability
from ._fluctuation import fluctuation, variance_flow
from ._rate import calibrate_rate
from ._report import InitReport

#: the initialisers by name ("stability" is the deprecated name of "at_threshold")
METHODS: dict[str, Callable[..., InitReport]] = {"at_threshold": at_threshold, "fluctuation": fluctuation,
                                                  "variance_flow": variance_flow, "rate": calibrate_rate,
                                                  "stability": stability}


def check_method(method: Any, options: Any, where: str) -> dict[str, Any]:
    """A four-part error unless ``method`` is one of :data:`METHODS` and ``options`` are keywords it takes
    (``run`` excepted: the caller passes it); returns the options as a dict."""
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"{where}: unknown initialisation method", got=method,
                          allowed=f"one of {sorted(m for m in METHODS if m != 'stability')}",
                          fix='e.g. init="at_threshold" (the paper: mean membrane at threshold, a high initial '
                              'firing rate)')
    return keywords(options, "options", METHODS[method], skip=("run",), where=f"{where}({method!r})")


def initialize(model: nn.Module, sample: Any, method: str, **options: Any) -> InitReport:
    """Apply the initialiser ``method`` (one of :data:`METHODS`) with its ``options``."""
    run = options.pop("run", None)
    checked = check_method(method, options, "initialize")
    return METHODS[method](model, sample, run=run, **checked)
