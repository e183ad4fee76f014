"""Initialisers that take spiking into account, applied to the weights that feed each spiking layer.

The analysis' tracing (``sg_stability.analysis.traced``, once per call, run again after each layer) finds the
weights (the last weight module before each neuron, recurrent weights by their loop, weights a neuron holds
itself) and each neuron's dynamics through its adapter. Weights are changed in
place (``param.copy_``): Parameter identity, optimizer references, hooks and zero diagonals are kept. Layers are
initialised in execution order, each with the input statistics produced by the layers already initialised.

- :func:`at_threshold` -- Conditions I and II (paper.md 3.1-3.2): mean membrane at threshold, i.e. a high initial
  firing rate; recurrent variance balancing the input and recurrent currents.
- :func:`fluctuation` -- Rossbroich, Gygax & Zenke (2022): weights from the membrane mean and fluctuations
  wanted (Campbell's theorem); ``mu_u="threshold"`` is the paper's variant with the mean membrane at threshold
  (paper.md 5.2).
- :func:`variance_flow` -- Micheli et al. (2024): ``Var[w] = 1 / (n * E[z^2])`` (paper.md 7b).
- :func:`calibrate_rate` -- the paper's data-driven "adjfi": per layer, shift the bias (or the weight mean)
  until the layer fires at ``target_rate`` on the sample (bisection, with a progress bar).

Weights are not restored by a patch handle (decisions D5); pass ``backup=True`` and call ``report.restore()``.
"""

from ._at_threshold import at_threshold, stability
from ._fluctuation import fluctuation, variance_flow
from ._methods import METHODS, check_method, initialize
from ._rate import calibrate_rate
from ._report import InitReport, WeightChange

__all__ = ["METHODS", "InitReport", "WeightChange", "at_threshold", "calibrate_rate", "check_method", "fluctuation",
           "initialize", "stability", "variance_flow"]
