"""The recorded run: one forward pass on a sample with recording surrogates and hooks, and what it found.

- every neuron site gets a recording surrogate (its own surrogate read into canonical form, or the one
  requested), installed with ``builtin=False`` through a transaction that is rolled back on exit, so the model
  is left exactly as it was; the surrogate inputs are the centred membranes ``v`` (the adapter's call pattern
  says which call per step is the spike);
- forward hooks record the order in which weight modules and neurons run: the last weight module before a
  neuron feeds it (``nn.Sequential`` and hand-written ``forward`` alike); a weight module that consumes a
  neuron's own spikes before its next call is its recurrent weight; weights a neuron holds itself come from
  its adapter.

:func:`traced` yields a :class:`Trace`; ``trace.rerun()`` runs the sample again with the same hooks (after
weights changed), so an initialiser traces once per call.

The forward pass (the spikes) does not depend on the surrogate, only the backward does: every recording
surrogate's output goes through a :class:`SurrogateSwitch`, whose choice (``with trace.switched(s):``) sets the
derivative the recorded graph is differentiated with. One recorded run then serves every candidate surrogate
(``sg.candidates`` measures a dozen on one forward pass; a VGG-sized model's forward can take seconds).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError, raw
from .._handle import model_lock
from .._install import install
from .._patching import neuron_sites, require_module
from .._state import preserved_state
from .._transaction import Transaction
from ..adapter_api import NeuronSite, PatchOptions
from ..plugins import read_native
from ..surrogates import Surrogate, get
from .records import Record, Run, weight_of
from .sample_checks import check_layout, check_parameters, check_sample, check_shared_neurons
from .switch import SurrogateSwitch
from .wiring import NORMS, Event, ancestors, wire


def analysis_surrogate(site: NeuronSite, requested: Surrogate | None) -> tuple[Surrogate, str]:
    """The surrogate to record ``site`` with, and where it came from."""
    if requested is not None:
        return requested, "requested"
    current = site.driver.observed()
    if isinstance(current, Surrogate):
        return current, "installed"
    reading = read_native(current)
    label = (getattr(current, "__qualname__", None) or type(current).__name__).split(".<locals>")[0]
    if reading.surrogate is not None:
        return reading.surrogate, f"read from the framework's {label}: {reading.surrogate!r}"
    return get("fast_sigmoid"), f"fast_sigmoid(1, 1) assumed: {reading.reason}"


class Trace:
    """One recorded run: per neuron site its :class:`Record`, and the inputs and outputs of every weight
    module outside the neurons (``weight_io``)."""

    def __init__(self, model: nn.Module, sample: Any, run: Run, grad: bool, records: dict[str, Record]) -> None:
        self.model, self.sample, self._run, self.grad = model, sample, run, grad
        self.records = records
        self.weight_io: dict[nn.Module, list[tuple[Tensor, Tensor]]] = {}
        self.events: list[Event] = []
        self.owner: dict[int, Record] = {}  # id of a spike tensor -> the record that produced it
        self.output: Any = None  # what the last run returned
        self.normalised: dict[int, tuple[nn.Module, Tensor]] = {}  # id of a normalisation's output -> (it, output)
        self.switch = SurrogateSwitch()

    @contextlib.contextmanager
    def switched(self, choice: Surrogate | Mapping[str, Surrogate] | None) -> Iterator[None]:
        """Differentiate the recorded graph with ``choice`` inside the block (see :class:`SurrogateSwitch`)."""
        before, self.switch.choice = self.switch.choice, choice
        try:
            yield
        finally:
            self.switch.choice = before

    def ordered(self) -> list[Record]:
        """The records of neurons that ran, in the order they first ran."""
        return sorted((r for r in self.records.values() if r.calls), key=lambda r: r.first_event)

    def rerun(self) -> None:
        """Run the sample again (e.g. after weights changed) and record afresh, with the same hooks."""
        for rec in self.records.values():
            rec.clear()
        self.weight_io.clear()
        self.events.clear()
        self.owner.clear()
        self.output = None
        self.normalised.clear()
        for rec in self.records.values():
            rec.site.driver.reset_state()
        sample = self.sample
        # a leaf sample with a gradient lets the measurement reach neurons that hold their input weights
        fed = sample.detach().requires_grad_(self.grad) if isinstance(sample, Tensor) and sample.is_floating_point() \
            else sample
        # every run draws the same random numbers (dropout masks, stochastic encoders), so runs with different
        # surrogates or weights differ by those alone; the caller's random state is left as it was
        devices = sorted({p.device.index or 0 for p in self.model.parameters() if p.device.type == "cuda"})
        try:
            with torch.random.fork_rng(devices=devices), torch.set_grad_enabled(self.grad):
                torch.manual_seed(0)
                self.output = self._run(self.model, fed)
        except Exception as exc:
            shape = tuple(sample.shape) if isinstance(sample, Tensor) else type(sample).__name__
            raise ConfigError(
                f"running the model on the sample failed: {type(exc).__name__}: {exc}".split("\n")[0],
                got=raw(f"sample of shape {shape}"),
                allowed="a batch the model accepts as it is called in training",
                fix="pass a sample with the model's input shape (time first for multi-step models), or "
                    "run=lambda model, x: ... that runs it the way your training loop does") from exc
        wire(self.events)

    # -- hooks -------------------------------------------------------------------------------------------------
    def input_hook(self, rec: Record) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:  # returns None: the arguments stay as they are
            rec.inputs.append(args[0] if args else None)
            rec.norms.append(self.normalisation_of(args[0]) if args else None)
            self.events.append(("n", rec, None))

        return hook

    def output_hook(self, rec: Record) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            spikes = rec.site.driver.spikes(out)
            if spikes is not None:
                rec.outputs.append(spikes)  # kept alive, so its id is not reused during the run
                self.owner[id(spikes)] = rec

        return hook

    def norm_hook(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if isinstance(out, Tensor):
            self.normalised[id(out)] = (module, out)  # the output is kept, so its id is not reused in the run

    def normalisation_of(self, x: Any) -> nn.Module | None:
        """The normalisation layer that produced ``x`` (or the tensor ``x`` is a view of: a reshape, a flatten)."""
        while isinstance(x, Tensor):
            entry = self.normalised.get(id(x))
            if entry is not None and entry[1] is x:
                return entry[0]
            x = x._base
        return None

    def weight_hook(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        source = self.owner.get(id(args[0])) if args and isinstance(args[0], Tensor) else None
        self.events.append(("w", module, source))
        if args and isinstance(args[0], Tensor) and isinstance(out, Tensor):
            self.weight_io.setdefault(module, []).append((args[0].detach(), out.detach()))


@contextlib.contextmanager
def traced(model: nn.Module, sample: Any, *, run: Run | None = None, surrogate: str | Surrogate | None = None,
           grad: bool = True) -> Iterator[Trace]:
    """Run ``model`` on ``sample`` with recording surrogates and hooks installed; everything is removed on exit,
    so the model is left exactly as it was. Raises a four-part error when the run fails."""
    require_module(model, "analyze")
    if run is not None and not callable(run):
        raise ConfigError("run must be a callable run(model, sample)", got=run,
                          allowed="None (the model is called on the sample) or a function (model, x) -> output",
                          fix="pass e.g. run=lambda model, x: model(x)")
    check_sample(sample, run)
    with model_lock(model):  # no other thread patches the model from the first look at it to the last
        sites = neuron_sites(model, "analyze")
        check_parameters(model)
        with preserved_state(model):  # the model's state is put back on exit
            yield from _traced(model, sites, sample, run=run, surrogate=surrogate, grad=grad)


def _traced(model: nn.Module, sites: list[NeuronSite], sample: Any, *, run: Run | None,
            surrogate: str | Surrogate | None, grad: bool) -> Iterator[Trace]:
    requested = get(surrogate) if surrogate is not None else None
    records = {s.path: Record(s, *analysis_surrogate(s, requested), ancestors=ancestors(model, s.path)) for s in sites}
    trace = Trace(model, sample, run or (lambda m, x: m(x)), grad, records)
    swap: Transaction | None = None
    hooks: list[Any] = []
    try:
        # recording surrogates where the slot does not hold one of ours (framework surrogates, or SpikingJelly's
        # fused classes a live patch installed), through a transaction of our own that is rolled back on exit
        unpatched = [(r.site, r.surrogate) for r in records.values()
                     if not isinstance(r.site.driver.observed(), Surrogate)]
        swap, *_ = install(unpatched, PatchOptions(builtin=False), strict=True)
        internal = {id(m) for s in sites for m in s.module.modules()}
        for module in model.modules():
            if id(module) not in internal and weight_of(module) is not None:
                hooks.append(module.register_forward_hook(trace.weight_hook))
            if id(module) not in internal and isinstance(module, NORMS):
                hooks.append(module.register_forward_hook(trace.norm_hook))
        for rec in records.values():
            hooks.append(rec.site.module.register_forward_pre_hook(trace.input_hook(rec)))
            hooks.append(rec.site.module.register_forward_hook(trace.output_hook(rec)))
            observed = rec.site.driver.observed()
            if isinstance(observed, Surrogate):
                hooks.append(observed.register_forward_hook(
                    lambda mod, args, out, rec=rec: rec.calls.append(args[0])))
            for slot in {id(o): o for o in rec.site.driver.current().values() if isinstance(o, Surrogate)}.values():
                hooks.append(slot.register_forward_hook(trace.switch.hook(rec)))
        trace.rerun()
        steps = {rec.site.module: len(rec.spike_steps()) for rec in trace.ordered()}
        check_shared_neurons(model, steps, sample, run)
        check_layout(sample, run, max(steps.values(), default=0))
        yield trace
    finally:
        for h in hooks:
            h.remove()
        if swap is not None:
            swap.rollback()
