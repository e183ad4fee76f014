"""Neuron models of sg_stability's own, for models of any framework: :class:`QIF`, a time-discretised quadratic
integrate-and-fire neuron with one of sg_stability's surrogates. An adapter registered like the frameworks' ones
lets ``sg.patch``, ``sg.analyze`` and ``sg.stabilize`` treat it like any framework neuron."""

from ._qif import QIF

__all__ = ["QIF"]
