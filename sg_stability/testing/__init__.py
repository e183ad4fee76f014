"""Checks and reference measurements for users, adapter authors and the project's own tests.

- :mod:`.conformance` -- :func:`verify_patch`: a patch on your own model is exact (bit-identical spikes, exact
  surrogate gradients, exact undo), in one call;
- :mod:`.reference` -- :class:`RecurrentLIF`, a recurrent LIF layer that follows the analyzer's equations exactly;
- :mod:`.measured` -- gains measured by autograd (the ground truth the stability estimates are checked against).

    from sg_stability.testing import verify_patch
    report = verify_patch(model, run)          # raises AssertionError naming what failed
"""

from ..stability._gains import growth_per_step
from .conformance import ConformanceReport, SurrogateProbe, module_fingerprint, verify_patch
from .measured import (
    bptt_growth,
    bptt_norms,
    hutchinson_gain,
    measure,
    measured_jacobian_gain,
    measured_layer_gain,
    record_membranes,
)
from .reference import RecurrentLIF

__all__ = [
    "ConformanceReport",
    "RecurrentLIF",
    "SurrogateProbe",
    "bptt_growth",
    "bptt_norms",
    "growth_per_step",
    "hutchinson_gain",
    "measure",
    "measured_jacobian_gain",
    "measured_layer_gain",
    "module_fingerprint",
    "record_membranes",
    "verify_patch",
]
