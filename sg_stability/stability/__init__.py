"""Stability analysis as pure functions: the paper's Conditions I-IV, gain estimates and the depth rule.

- ``_checks``: :class:`Dynamics` (the neuron model's parameters), :class:`Verdict`, argument checks;
- ``_moments``: the mean-square gain of the transition derivative and the moments of sigma' (theory);
- ``_conditions``: Conditions I-IV, the depth rule and the root finder (model and reset kinds documented there);
- ``_gains``: data-driven and measured gains, the Hutchinson estimator and the growth formula;
"""

from ._checks import RESETS, Dynamics, Reset, Verdict, recorded_leak
from ._conditions import (
    condition_i,
    condition_ii,
    condition_iii,
    condition_iv,
    depth_dampening,
    log_grid,
    solve_gain,
    threshold_drive,
)
from ._gains import (
    calibrate,
    data_gain,
    data_moments,
    hutchinson_rms,
    late_growth,
    layer_gain,
    probe_steps,
    rademacher,
    recorded_diagonal,
)
from ._moments import mean_square_gain, theory_gain, theory_moments, uniform_gain, uniform_moment, voltage_range

__all__ = [
    "RESETS",
    "Dynamics",
    "Reset",
    "Verdict",
    "calibrate",
    "condition_i",
    "condition_ii",
    "condition_iii",
    "condition_iv",
    "data_gain",
    "data_moments",
    "depth_dampening",
    "hutchinson_rms",
    "late_growth",
    "layer_gain",
    "log_grid",
    "mean_square_gain",
    "probe_steps",
    "rademacher",
    "recorded_diagonal",
    "recorded_leak",
    "solve_gain",
    "theory_gain",
    "theory_moments",
    "threshold_drive",
    "uniform_gain",
    "uniform_moment",
    "voltage_range",
]
