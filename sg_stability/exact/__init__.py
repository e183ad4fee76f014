"""Exact, smooth spike-based gradients for networks of QIF neurons (Klos & Memmesheimer, arXiv 2309.14523).

The network is simulated event by event in continuous time: between input spikes every neuron follows its
closed-form solution, spike times come from that solution, and autograd differentiates through the event times, so
the gradient of a loss on spike times is exact. For QIF (theta) neurons spikes appear and vanish only at the trial's
end, so the loss is continuous in the weights; after the trial the pseudodynamics let gradient descent add spikes.
The same simulator runs LIF neurons (``neuron="lif"``) for comparison: their spikes appear inside the trial, and the
loss jumps.

    import sg_stability.exact as ex
    net = ex.Network([64, 32, 10], recurrent=[True, False], duration=4.0)
    run = net(ex.SpikeTrains.from_steps(x, dt=0.2))     # x: [T, B, 64] binned spikes
    loss = ex.first_spike_loss(run, labels)             # the label's neuron should fire first
    loss.backward()                                     # exact gradients
"""

from ._lines import LineJumps, bisect_jump, line_jumps
from ._models import LIF, QIF
from ._network import Network, Run, SpikeTrains, accuracy, first_spike_loss, spike_time_loss

__all__ = ["LIF", "QIF", "LineJumps", "Network", "Run", "SpikeTrains", "accuracy", "bisect_jump", "first_spike_loss",
           "line_jumps", "spike_time_loss"]
