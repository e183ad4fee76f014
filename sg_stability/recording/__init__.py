"""The recorded run: the engine every measurement, initialiser and choice runs on.

- :mod:`.records` -- :class:`Record` (one neuron site in a run), :data:`Run`, :data:`StepRef`;
- :mod:`.tracing` -- :func:`traced`: one forward pass with recording surrogates and hooks, as a :class:`Trace`;
- :mod:`.wiring` -- which weight module feeds each neuron and which feeds its spikes back (execution order);
- :mod:`.switch` -- :class:`SurrogateSwitch`: one recorded graph differentiated with any surrogate;
- :mod:`.probes` -- gradients of the recorded tensors (batched random probes);
- :mod:`.sample_checks` -- checks of the sample and of what the run consumed (``time_dim``, NaN, shared neurons).
"""

from .records import Record, Run, StepRef
from .tracing import Trace, traced

__all__ = ["Record", "Run", "StepRef", "Trace", "traced"]
