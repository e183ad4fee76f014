"""``sg.analyze(model, sample)``: per spiking layer, firing statistics, three estimates of the gradient gain
(theory, data-driven, measured) and recommended surrogate parameters, for models of any adapter's framework.

How it works, in one forward pass on ``sample``:

- every neuron site gets a recording surrogate (its own surrogate read into canonical form, or the one
  requested), installed with ``sg.patch(..., builtin=False)`` and removed afterwards, so the model is left
  exactly as it was; the surrogate inputs are the centred membranes ``v`` (the adapter's call pattern says
  which call per step is the spike);
- forward hooks record the order in which weight modules and neurons run: the last weight module before a
  neuron feeds it (``nn.Sequential`` and hand-written ``forward`` alike); weights a neuron holds itself
  (recurrent ones) come from its adapter, and so do its dynamics (leak, threshold, reset);
- measured gains come from autograd on the recorded graph (Hutchinson estimates with Rademacher probes):
  recurrent and temporal gains from ``dL/dI_t`` against ``dL/dI_{t+1}`` for ``L = <u, v_{t+1}>`` (I: the
  neuron's input current), layer-to-layer gains from ``dL/dv`` of a layer for ``L = <u, I_next>``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._api import install, neuron_sites
from ._errors import ConfigError, raw
from ._transaction import Transaction
from .adapter_api import Dynamics, NeuronSite, PatchOptions
from .plugins import read_native
from .stability import _conditions as cond
from .stability import _gains as gains
from .surrogates import Surrogate, get

Run = Callable[[nn.Module, Any], Any]
STEP_REF = tuple[Tensor, int | None]  # a tensor, and the index along dim 0 when it holds the whole sequence


@dataclass
class LayerReport:
    """What :func:`analyze` found for one spiking layer (one neuron site)."""

    name: str
    framework: str
    kind: str
    neurons: int
    surrogate: Surrogate
    surrogate_source: str
    firing_rate: float
    dead: float
    saturated: float
    active: float
    gain_kind: str
    theory_gain: float | None
    data_gain: float | None
    measured_gain: float | None
    dampening: cond.Verdict | None
    sharpness: cond.Verdict | None
    sharpness_theory: cond.Verdict | None
    tail: cond.Verdict | None
    diagnosis: str
    notes: list[str] = field(default_factory=list)
    dynamics: Dynamics | None = None
    gradient_norms: list[float] | None = field(default=None, repr=False)

    @property
    def bptt_growth(self) -> float | None:
        """Per-step growth of the gradient injected at the last step, going back over the second half of the
        sequence (the quantity BPTT really experiences; > 1 grows)."""
        return _growth(self.gradient_norms)

    @property
    def gradient_spread(self) -> float | None:
        """Largest factor between the gradient norm at any step and at the last step (1 = flat)."""
        norms = [n for n in (self.gradient_norms or []) if n > 0]
        return max(max(norms), 1.0 / min(norms)) if norms else None

    @property
    def gain(self) -> float | None:
        """The best available gain: measured, else data-driven, else theory."""
        for g in (self.measured_gain, self.data_gain, self.theory_gain):
            if g is not None and math.isfinite(g):
                return g
        return None


@dataclass
class StabilityReport:
    """Per-layer results of :func:`analyze`; ``print(report)`` is a table, ``report.plot(path)`` a PNG."""

    layers: list[LayerReport]
    steps: int
    #: set by ``sg.analyze`` and ``sg.stabilize``: the surrogate ``sg.stabilize`` installs without training data
    #: (an ``sg_stability.Candidate``: the stability analysis' first choice, with its measured reach and growth)
    recommended: Any = None

    def __getitem__(self, name: str) -> LayerReport:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no spiking layer {name!r}; layers: {[layer.name for layer in self.layers]}")

    def __len__(self) -> int:
        return len(self.layers)

    def __str__(self) -> str:
        def f(x: float | None, fmt: str = ".3f") -> str:
            return "-" if x is None or not math.isfinite(x) else format(x, fmt)

        head = (f"{'layer':<12}{'framework':<13}{'neurons':>8}{'rate':>7}{'dead':>6}{'sat.':>6}{'active':>7}"
                f"  {'gain kind':<15}{'theory':>7}{'data':>7}{'meas.':>7}{'BPTT':>7}  {'surrogate now':<24}"
                f"{'gamma*':>7}{'beta*':>8}")
        title = (f"StabilityReport: {len(self.layers)} spiking layers, {self.steps} time steps "
                 "(gains per step; BPTT = measured growth of a gradient going back in time)")
        lines = [title, head]
        for r in self.layers:
            beta = r.sharpness.value if r.sharpness is not None and r.sharpness.feasible else None
            gamma = r.dampening.value if r.dampening is not None and r.dampening.feasible else None
            none = r.sharpness is not None and not r.sharpness.feasible
            now = f"{r.surrogate.family}({_short(r.surrogate.dampening)}, {_short(r.surrogate.sharpness)})"
            lines.append(
                f"{r.name[:11]:<12}{r.framework[:12]:<13}{r.neurons:>8}{r.firing_rate:>7.3f}{r.dead:>6.2f}"
                f"{r.saturated:>6.2f}{r.active:>7.2f}  {r.gain_kind:<15}{f(r.theory_gain):>7}{f(r.data_gain):>7}"
                f"{f(r.measured_gain):>7}{f(r.bptt_growth):>7}  {now[:23]:<24}{f(gamma, '.3g'):>7}"
                f"{'none' if none else f(beta, '.3g'):>8}")
        lines.append("(gamma*, beta*: the paper's Conditions III and IV for g = target; none = no value reaches it, "
                     "the notes say what to change)")
        if self.recommended is not None:
            c = self.recommended
            growth = f", measured BPTT growth {c.growth:.3f}/step" if c.growth is not None else ""
            reach = f", reach {c.reach:.3f}" if c.reach is not None else ""
            lines.append(f"recommended: {c.label}{growth}{reach} -- what sg.stabilize installs without training "
                         "data; give it batches= and loss_fn= to let a short training race decide (sg.candidates)")
        lines.append("")
        for r in self.layers:
            lines.append(f"{r.name}: {r.diagnosis}")
            lines.extend(f"    note: {n}" for n in r.notes)
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Write a PNG: firing statistics and gains per layer, and gradient norm versus time step."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [r.name for r in self.layers]
        x = range(len(names))
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        ax = axes[0]
        for k, (key, label) in enumerate((("firing_rate", "firing rate"), ("dead", "dead"),
                                          ("saturated", "saturated"), ("active", "in active region"))):
            ax.bar([i + 0.2 * k - 0.3 for i in x], [getattr(r, key) for r in self.layers], 0.2, label=label)
        ax.set_xticks(list(x), names, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title("firing statistics (fraction)")
        ax.legend(fontsize=8)
        ax = axes[1]
        for k, key in enumerate(("theory_gain", "data_gain", "measured_gain")):
            ax.bar([i + 0.27 * k - 0.27 for i in x], [getattr(r, key) or 0.0 for r in self.layers], 0.27,
                   label=key.replace("_gain", ""))
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.set_xticks(list(x), [f"{r.name}\n({r.gain_kind})" for r in self.layers], rotation=30, ha="right")
        ax.set_title("per-step gradient gain g (1 = stable)")
        ax.legend(fontsize=8)
        ax = axes[2]
        for r in self.layers:
            if r.gradient_norms:
                ax.plot(range(len(r.gradient_norms)), r.gradient_norms, label=r.name)
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_ylabel("||dL/dI_t|| / ||dL/dI_T||")
        ax.set_title("gradient injected at the last step, going back in time")
        ax.legend(fontsize=8)
        return save_figure(fig, path, dpi=110)


def save_figure(fig: Any, path: str | Path, dpi: int) -> Path:
    """Lay out, write as PNG (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def _short(p: Any) -> str:
    if isinstance(p, Tensor) and p.numel() > 1:
        return "per-neuron"
    return f"{float(p):.3g}"


# -- recording ---------------------------------------------------------------------------------------------
@dataclass
class _Record:
    site: NeuronSite
    surrogate: Surrogate
    source: str
    calls: list[Tensor] = field(default_factory=list)
    inputs: list[Tensor | None] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    first_event: int = -1
    feed: nn.Module | None = None
    recurrent: nn.Module | None = None


def _input_recorder(rec: _Record, events: list[tuple[str, Any, Any]]) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:  # returns None: the arguments stay as they are
        rec.inputs.append(args[0] if args else None)
        events.append(("n", rec, None))

    return hook


def _output_recorder(rec: _Record, owner: dict[int, _Record]) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        spikes = rec.site.driver.spikes(out)
        if spikes is not None:
            rec.outputs.append(spikes)  # kept alive, so its id is not reused during the run
            owner[id(spikes)] = rec

    return hook


def _weight_recorder(events: list[tuple[str, Any, Any]], owner: dict[int, _Record],
                     weight_io: dict[nn.Module, list[tuple[Tensor, Tensor]]]) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        source = owner.get(id(args[0])) if args and isinstance(args[0], Tensor) else None
        events.append(("w", module, source))
        if args and isinstance(args[0], Tensor) and isinstance(out, Tensor):
            weight_io.setdefault(module, []).append((args[0].detach(), out.detach()))

    return hook


def _wire(events: list[tuple[str, Any, Any]]) -> None:
    """From the execution order: a weight module that consumes a neuron's own spikes and runs before its
    next call is its recurrent weight; the weight module that most often runs last before it is its feed."""
    pending: list[tuple[nn.Module, _Record | None]] = []
    feeds: dict[int, dict[nn.Module, float]] = {}
    recurrent: dict[int, set[nn.Module]] = {}
    for position, (kind, obj, source) in enumerate(events):
        if kind == "w":
            pending.append((obj, source))
            continue
        rec = obj
        if rec.first_event < 0:
            rec.first_event = position
        own = {m for m, src in pending if src is rec}
        recurrent.setdefault(id(rec), set()).update(own)
        others = [m for m, src in pending if src is not rec]
        counts = feeds.setdefault(id(rec), {})
        for k, m in enumerate(others):  # the last one counts most; earlier ones break ties (an input
            counts[m] = counts.get(m, 0) + (1.0 if k == len(others) - 1 else 0.5)  # projection run once)
        pending = []
    for kind, rec, _ in events:
        if kind == "n" and rec.feed is None and rec.recurrent is None:
            loops = recurrent.get(id(rec), set())
            rec.recurrent = next(iter(loops), None)
            candidates = {m: c for m, c in feeds.get(id(rec), {}).items() if m not in loops}
            rec.feed = max(candidates, key=lambda m: candidates[m]) if candidates else None


def _analysis_surrogate(site: NeuronSite, requested: Surrogate | None) -> tuple[Surrogate, str]:
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


def _weight_of(module: nn.Module) -> Tensor | None:
    w = getattr(module, "weight", None)
    return w if isinstance(w, Tensor) and w.dim() >= 2 else None


def _spike_steps(record: _Record) -> list[STEP_REF]:
    pattern = record.site.driver.call_pattern()
    calls = record.calls[pattern.spike_call::pattern.calls_per_step] if pattern.calls_per_step > 1 else record.calls
    if pattern.whole_sequence:
        return [(c, t) for c in calls for t in range(c.shape[0])]
    return [(c, None) for c in calls]


def _input_steps(record: _Record, steps: int) -> list[STEP_REF] | None:
    ins = [i for i in record.inputs if isinstance(i, Tensor)]
    if len(ins) == steps:
        return [(i, None) for i in ins]
    if len(ins) == 1 and ins[0].dim() > 0 and ins[0].shape[0] == steps and steps > 1:
        return [(ins[0], t) for t in range(steps)]
    return None


def _at(ref: STEP_REF, grad: Tensor | None) -> Tensor | None:
    if grad is None:
        return None
    return grad if ref[1] is None else grad[ref[1]]


def _value(ref: STEP_REF) -> Tensor:
    return ref[0] if ref[1] is None else ref[0][ref[1]]


def _grads(loss: Tensor, refs: list[STEP_REF]) -> list[Tensor | None]:
    tensors = list({id(r[0]): r[0] for r in refs}.values())
    usable = [t for t in tensors if t.requires_grad]
    got = dict(zip((id(t) for t in usable),
                   torch.autograd.grad(loss, usable, retain_graph=True, allow_unused=True) if usable else [],
                   strict=True))
    return [_at(r, got.get(id(r[0]))) for r in refs]


# -- measured gains ----------------------------------------------------------------------------------------
def _measured_temporal(xs: list[STEP_REF], ins: list[STEP_REF], probes: int, gen: torch.Generator) -> float | None:
    """``||dL/dI_t|| / ||dL/dI_{t+1}||`` for ``L = <u, v_{t+1}>``; None when the input current does not reach the
    membrane in the same step (a synaptic current in between)."""
    num = den = 0.0
    for t in gains.probe_steps(len(xs) - 1):
        for _ in range(probes):
            target = _value(xs[t + 1])
            loss = (target * gains.rademacher(target, gen)).sum()
            g_now, g_next = _grads(loss, [ins[t], ins[t + 1]])
            if g_now is None or g_next is None:
                return None
            num += float(g_now.double().square().sum())
            den += float(g_next.double().square().sum())
    return math.sqrt(num / den) if den > 0 else None


def _measured_layer(xs: list[STEP_REF], next_ins: list[STEP_REF], probes: int, gen: torch.Generator
                    ) -> float | None:
    num, rows = 0.0, 0
    for t in gains.probe_steps(min(len(xs), len(next_ins))):
        for _ in range(probes):
            target = _value(next_ins[t])
            loss = (target * gains.rademacher(target, gen)).sum()
            (g,) = _grads(loss, [xs[t]])
            if g is None:
                return None
            num += float(g.double().square().sum())
            rows += target.numel()
    return math.sqrt(num / rows) if rows else None


def _gradient_norms(xs: list[STEP_REF], ins: list[STEP_REF] | None, gen: torch.Generator) -> list[float] | None:
    if ins is None or len(xs) < 2:
        return None
    target = _value(xs[-1])
    grads = _grads((target * gains.rademacher(target, gen)).sum(), ins)
    if any(g is None for g in grads):
        return None
    norms = [float(g.double().norm()) for g in grads if g is not None]
    last = next((n for n in reversed(norms) if n > 0), 0.0)  # a synaptic delay leaves the last step at 0
    return [n / last for n in norms] if last > 0 else None


def _closer_dampening(rule: str, ruled: float, at_rule: cond.Verdict, peak: float, at_peak: cond.Verdict,
                      goal: float, notes: list[str]) -> tuple[cond.Verdict, cond.Verdict]:
    """``rule``'s dampening left the sharpness infeasible: keep whichever of it and the surrogate's own peak
    gets the gain closer to ``goal``, and say so. Returns the dampening and sharpness verdicts."""

    def miss(v: cond.Verdict) -> float:
        return 0.0 if v.feasible else (abs(math.log(v.achieved / goal)) if v.achieved > 0 else math.inf)

    if miss(at_peak) <= miss(at_rule):
        notes.append(f"{rule}'s dampening {ruled:.3g} cannot reach g = {goal:g} with any sharpness (best g = "
                     f"{at_rule.achieved:.3g}); the sharpness is chosen at the surrogate's own peak {peak:.3g}")
        return cond.Verdict("dampening", peak, False, goal, at_peak.achieved,
                            reason=f"{rule}'s value {ruled:.3g} leaves the sharpness infeasible"), at_peak
    notes.append(f"neither {rule}'s dampening {ruled:.3g} (best g = {at_rule.achieved:.3g}) nor the surrogate's own "
                 f"peak {peak:.3g} (best g = {at_peak.achieved:.3g}) reaches g = {goal:g}; {rule}'s is closer")
    return cond.Verdict("dampening", ruled, False, goal, at_rule.achieved,
                        reason=f"no sharpness reaches g = {goal:g}; {rule}'s value comes closest"), at_rule


def _growth(norms: list[float] | None) -> float | None:
    """Geometric-mean growth per step going back in time, over the second half of a gradient-norm curve."""
    if not norms:
        return None
    nonzero = [k for k, n in enumerate(norms) if n > 0]
    if len(nonzero) < 4:
        return None
    start, end = nonzero[len(nonzero) // 2], nonzero[-1]
    return gains.growth_per_step(torch.tensor(norms[start:end + 1], dtype=torch.float64))


# -- moments in the weights' layout ----------------------------------------------------------------------------
def _feature_moments(surrogate: Surrogate, v: Tensor, layout: str) -> Tensor:
    """Per-feature E[sigma'^2]: per element of the neuron shape ("flat") or per channel (dim 2, "channel")."""
    if layout == "channel" and v.dim() > 3:
        v = v.movedim(2, -1)
    flat = v.reshape(-1, v.shape[-1]) if layout == "channel" else v.reshape(v.shape[0] * v.shape[1], -1)
    return gains.data_moments(surrogate, flat)[1]


def _next_gain_matrix(w_next: Tensor, neuron_shape: tuple[int, ...]) -> tuple[Tensor, str] | None:
    """``W`` as ``[n_next, features]`` matched to this layer's features, and the feature layout."""
    n = math.prod(neuron_shape)
    if w_next.dim() == 2 and w_next.shape[1] == n:
        return w_next.detach(), "flat"
    if w_next.dim() >= 3 and len(neuron_shape) >= 2 and w_next.shape[1] == neuron_shape[0]:
        return w_next.detach().square().flatten(2).sum(2).sqrt(), "channel"  # row norms over the kernel
    return None


# -- the analyzer -------------------------------------------------------------------------------------------------
def analyze(model: nn.Module, sample: Any, *, run: Run | None = None, surrogate: str | Surrogate | None = None,
            probes: int = 4, seed: int = 0, target: float | dict[str, float] = 1.0) -> StabilityReport:
    """Analyze every spiking layer of ``model`` on ``sample`` before training.

    ``run(model, sample)`` runs the model on the whole sequence (default ``model(sample)``, after resetting
    neuron states). ``surrogate`` analyzes all layers with that surrogate instead of the ones they hold.
    ``target`` is the gain the recommended sharpness aims at (1: neither growth nor decay), per layer name
    when a mapping.
    The model is left exactly as it was. See :class:`StabilityReport` and :class:`LayerReport`.
    """
    with traced(model, sample, run=run, surrogate=surrogate) as trace:
        return _build(trace.records, probes, seed, target)


@dataclass
class Trace:
    """One recorded run: per neuron site its record (surrogate inputs, neuron inputs, wiring), and the inputs
    and outputs of every weight module outside the neurons."""

    records: dict[str, _Record]
    weight_io: dict[nn.Module, list[tuple[Tensor, Tensor]]]

    def ordered(self) -> list[_Record]:
        return sorted((r for r in self.records.values() if r.calls), key=lambda r: r.first_event)


@contextlib.contextmanager
def traced(model: nn.Module, sample: Any, *, run: Run | None = None, surrogate: str | Surrogate | None = None,
           grad: bool = True) -> Iterator[Trace]:
    """Run ``model`` on ``sample`` with recording surrogates and hooks installed; everything is removed on exit,
    so the model is left exactly as it was. Raises a four-part error when the run fails."""
    sites = neuron_sites(model, "analyze")
    requested = get(surrogate) if surrogate is not None else None
    records = {s.path: _Record(s, *_analysis_surrogate(s, requested)) for s in sites}
    run = run or (lambda m, x: m(x))
    swap: Transaction | None = None
    hooks: list[Any] = []
    events: list[tuple[str, Any, Any]] = []
    weight_io: dict[nn.Module, list[tuple[Tensor, Tensor]]] = {}
    try:
        # recording surrogates where the slot does not hold one of ours (framework surrogates, or SpikingJelly's
        # fused classes a live patch installed), through a transaction of our own that is rolled back on exit
        unpatched = [(r.site, r.surrogate) for r in records.values()
                     if not isinstance(r.site.driver.observed(), Surrogate)]
        swap, *_ = install(unpatched, PatchOptions(builtin=False), strict=True)
        internal = {id(m) for s in sites for m in s.module.modules()}
        owner: dict[int, _Record] = {}
        for _name, module in model.named_modules():
            if id(module) not in internal and _weight_of(module) is not None:
                hooks.append(module.register_forward_hook(_weight_recorder(events, owner, weight_io)))
        for rec in records.values():
            hooks.append(rec.site.module.register_forward_pre_hook(_input_recorder(rec, events)))
            hooks.append(rec.site.module.register_forward_hook(_output_recorder(rec, owner)))
            observed = rec.site.driver.observed()
            if isinstance(observed, Surrogate):
                hooks.append(observed.register_forward_hook(
                    lambda mod, args, out, rec=rec: rec.calls.append(args[0])))
        for site in sites:
            site.driver.reset_state()
        try:
            # a leaf sample with a gradient lets the measurement reach neurons that hold their input weights
            fed = sample.detach().requires_grad_(grad) if isinstance(sample, Tensor) and sample.is_floating_point() \
                else sample
            with torch.set_grad_enabled(grad):
                run(model, fed)
        except Exception as exc:
            shape = tuple(sample.shape) if isinstance(sample, Tensor) else type(sample).__name__
            raise ConfigError(
                f"running the model on the sample failed: {type(exc).__name__}: {exc}".split("\n")[0],
                got=raw(f"sample of shape {shape}"),
                allowed="a batch the model accepts as it is called in training",
                fix="pass a sample with the model's input shape (time first for multi-step models), or "
                    "run=lambda model, x: ... that runs it the way your training loop does") from exc
        _wire(events)
        yield Trace(records, weight_io)
    finally:
        for h in hooks:
            h.remove()
        if swap is not None:
            swap.rollback()


def _build(records: dict[str, _Record], probes: int, seed: int, target: float | dict[str, float]
           ) -> StabilityReport:
    gen = torch.Generator().manual_seed(seed)
    ordered = Trace(records, {}).ordered()
    if not ordered:
        raise ConfigError("no spiking layer called its surrogate while running the sample",
                          got=raw(f"{len(records)} neuron sites, none fired a surrogate call"),
                          allowed="a run that steps the model's neurons",
                          fix="pass run=lambda model, x: ... that runs the model over time, as in training")
    if all(r.feed is None and r.recurrent is None and not r.site.driver.internal_weights() for r in ordered):
        raise ConfigError("no weights feed any spiking layer of this model",
                          got=raw(", ".join(r.site.path for r in ordered)),
                          allowed="neurons fed by nn.Linear / nn.Conv* modules, or neurons that hold weights",
                          fix="analyze the model with its weight layers (the analyzer follows the execution order)")
    xs_all = {r.site.path: _spike_steps(r) for r in ordered}
    steps = max(len(v) for v in xs_all.values())
    ff_weights = []  # as they act on the membranes: times each neuron's input gain (SpikingJelly's 1/tau, ...)
    for r in ordered:
        w = r.site.driver.internal_weights().get("input", _weight_of(r.feed) if r.feed else None)
        if w is not None:
            dyn = r.site.driver.dynamics()
            ff_weights.append(w.detach() * (dyn.input_gain if dyn else 1.0))
    depth_gamma = cond.depth_dampening(ff_weights) if len(ff_weights) >= 2 else None
    layers = []
    for k, rec in enumerate(ordered):
        nxt = ordered[k + 1] if k + 1 < len(ordered) else None
        goal = target.get(rec.site.path, 1.0) if isinstance(target, dict) else float(target)
        layers.append(_layer(rec, nxt, xs_all, steps, probes, gen, depth_gamma, goal))
    return StabilityReport(layers, steps)


@dataclass
class _Estimates:
    theory: float | None = None
    data: float | None = None
    measured: float | None = None
    dampening: cond.Verdict | None = None
    sharpness: cond.Verdict | None = None
    sharpness_theory: cond.Verdict | None = None
    tail: cond.Verdict | None = None


def _synapse(dyn: Dynamics | None) -> bool:
    return dyn is not None and dyn.synapse


def _reset_options(dyn: Dynamics) -> dict[str, Any]:
    return {"reset_grad": dyn.reset_grad, "reset_jump": dyn.reset_jump}


def _recurrent(est: _Estimates, s: Surrogate, v: Tensor, w_rec: Tensor, w_ff: Tensor | None, dyn: Dynamics | None,
               peak: float, goal: float, notes: list[str]) -> None:
    """Recurrent layer: the gain of dv_{t+1}/dv_t; dampening from Condition III, sharpness (and tail) from the
    recorded membranes."""
    if dyn is None:
        return
    kw = _reset_options(dyn)
    flat_v = v.flatten(2).flatten(0, 1)
    wr = w_rec.detach() * dyn.input_gain
    wi = w_ff.detach().flatten(1) * dyn.input_gain if w_ff is not None and w_ff.dim() >= 2 else None
    est.theory = cond.theory_gain(s, wr, wi if wi is not None and wi.shape[0] == wr.shape[0] else None,
                                  dyn.leak, dyn.threshold, dyn.reset, **kw)
    est.data = gains.data_gain(s, flat_v, wr, dyn.leak, dyn.reset, threshold=dyn.threshold, **kw)

    def calibrate(surrogate: Surrogate, knob: str = "sharpness") -> cond.Verdict:
        return gains.calibrate(surrogate, flat_v, wr, dyn.leak, dyn.reset, knob=knob, threshold=dyn.threshold,
                               target=goal, **kw)

    damp = cond.condition_iii(wr, dyn.leak, dyn.threshold, dyn.reset)
    base = s.replace(dampening=damp.value) if damp.feasible else s
    sharp = calibrate(base)
    if not sharp.feasible and base is not s:
        damp, sharp = _closer_dampening("Condition III", damp.value, sharp, peak, calibrate(s), goal, notes)
        base = s.replace(dampening=damp.value)
    est.dampening, est.sharpness = damp, sharp
    est.sharpness_theory = cond.condition_iv(base, wr, dyn.leak, dyn.threshold, dyn.reset, **kw)
    if "tail" in type(s).param_names:
        est.tail = calibrate(base, "tail")


def _layer_to_layer(est: _Estimates, s: Surrogate, v: Tensor, w_ff: Tensor | None, w_next: Tensor,
                    dyn: Dynamics | None, depth_gamma: float | None, peak: float, goal: float,
                    notes: list[str]) -> None:
    """Feed-forward layer with a spiking layer above: the gain of dI_next/dv (``w_next`` already times the next
    layer's input gain); dampening from the depth rule, sharpness from the recorded membranes."""
    neuron_shape = tuple(v.shape[2:])
    matched = _next_gain_matrix(w_next, neuron_shape)
    if matched is None:
        notes.append(f"the next layer's weight {tuple(w_next.shape)} does not match this layer's neurons "
                     f"{neuron_shape}: estimates skipped")
        return
    wn, layout = matched[0].double(), matched[1]
    est.data = gains.layer_gain(wn, _feature_moments(s, v, layout))
    if dyn is not None and w_ff is not None and layout == "flat" and w_ff.dim() == 2:
        _, sg2, _ = cond.theory_moments(s, None, w_ff.detach() * dyn.input_gain, dyn.leak, dyn.threshold, dyn.reset)
        est.theory = gains.layer_gain(wn, sg2)

    def solve(base: Surrogate) -> cond.Verdict:
        return cond.solve_gain(lambda b: gains.layer_gain(wn, _feature_moments(base.replace(sharpness=b), v, layout)),
                               "sharpness", goal, 1e-3, 1e3)

    if depth_gamma is None:
        est.sharpness = solve(s)
        return
    est.dampening = cond.Verdict("dampening", depth_gamma, True, 1.0, 1.0, reason="feed-forward depth rule")
    est.sharpness = solve(s.replace(dampening=depth_gamma))
    if not est.sharpness.feasible:
        # the depth rule bounds the worst case (spectral norms), so the mean-square gain it allows can stay
        # below 1 for every sharpness: then try the surrogate's own peak, and keep the closer one
        est.dampening, est.sharpness = _closer_dampening("the depth rule", depth_gamma, est.sharpness, peak,
                                                         solve(s), goal, notes)


def _temporal(est: _Estimates, s: Surrogate, v: Tensor, w_ff: Tensor | None, dyn: Dynamics | None,
              goal: float) -> None:
    """Last feed-forward layer: the gain through leak and reset alone."""
    if dyn is None:
        return
    kw = _reset_options(dyn)
    flat_v = v.flatten(2).flatten(0, 1)
    est.data = gains.data_gain(s, flat_v, None, dyn.leak, dyn.reset, threshold=dyn.threshold, **kw)
    est.theory = cond.theory_gain(s, None, w_ff.detach().flatten(1) * dyn.input_gain if w_ff is not None else None,
                                  dyn.leak, dyn.threshold, dyn.reset, **kw)
    if dyn.reset_grad:  # only a differentiated reset lets the surrogate change the temporal gain
        est.sharpness = gains.calibrate(s, flat_v, None, dyn.leak, dyn.reset, threshold=dyn.threshold, target=goal,
                                        **kw)


def _layer(rec: _Record, nxt: _Record | None, xs_all: dict[str, list[STEP_REF]], steps: int, probes: int,
           gen: torch.Generator, depth_gamma: float | None, goal: float) -> LayerReport:
    site, s = rec.site, rec.surrogate
    xs = xs_all[site.path]
    v = torch.stack([_value(x).detach() for x in xs])  # [T, B, *neuron]
    neuron_shape = tuple(v.shape[2:])
    inclusive = site.driver.heaviside.inclusive
    fired = (v >= 0) if inclusive else (v > 0)
    per_neuron = fired.double().flatten(2).mean((0, 1))
    d = s.derivative(v.double())
    peak = float(torch.as_tensor(s.dampening).double().max())
    notes: list[str] = []
    if rec.source != "installed" and rec.source != "requested":
        notes.append(f"surrogate {rec.source}")
    dyn = site.driver.dynamics()
    if dyn is None:
        notes.append(f"{site.kind}: dynamics not described by its adapter; theory and data estimates need them")
    elif dyn.note:
        notes.append(dyn.note)
    internal = site.driver.internal_weights()
    w_ff = internal.get("input", _weight_of(rec.feed) if rec.feed is not None else None)
    w_rec = internal.get("recurrent", _weight_of(rec.recurrent) if rec.recurrent is not None else None)
    if w_ff is None and w_rec is None:
        notes.append("no weights feed this layer: gains are measured only")
    ins = _input_steps(rec, len(xs))
    est = _Estimates()
    w_next = (nxt.site.driver.internal_weights().get("input", _weight_of(nxt.feed) if nxt.feed is not None else None)
              if nxt is not None else None)
    if w_rec is not None:
        gain_kind = "recurrent"
        _recurrent(est, s, v, w_rec, w_ff, dyn, peak, goal, notes)
        est.measured = _measured_temporal(xs, ins, probes, gen) if ins is not None and not _synapse(dyn) else None
    elif nxt is not None and w_next is not None:
        gain_kind = "layer-to-layer"
        nxt_dyn = nxt.site.driver.dynamics()
        gain_next = nxt_dyn.input_gain if nxt_dyn else 1.0
        _layer_to_layer(est, s, v, w_ff, w_next * gain_next, dyn, depth_gamma, peak, goal, notes)
        next_ins = _input_steps(nxt, len(xs_all[nxt.site.path]))
        m = _measured_layer(xs, next_ins, probes, gen) if next_ins is not None else None
        est.measured = m * gain_next if m is not None else None
    else:
        gain_kind = "temporal"
        _temporal(est, s, v, w_ff, dyn, goal)
        est.measured = _measured_temporal(xs, ins, probes, gen) if ins is not None and not _synapse(dyn) else None
    theory, data, measured = est.theory, est.data, est.measured
    damp, sharp, sharp_theory, tail = est.dampening, est.sharpness, est.sharpness_theory, est.tail
    if sharp is not None and not sharp.feasible:
        notes.append(f"no sharpness reaches g = {goal:g}: {sharp.reason}")
    norms = _gradient_norms(xs, ins, gen)
    if measured is None and gain_kind != "layer-to-layer":
        measured = _growth(norms)
        notes.append("measured gain: the per-step growth of the BPTT gradient over the second half of the sequence "
                     "(the input passes through a synaptic current, or does not reach the membrane in the same step)"
                     if measured is not None else "measured gain unavailable: the input current has no gradient")
    report = LayerReport(
        name=site.path, framework=site.adapter, kind=site.kind, neurons=math.prod(neuron_shape) if neuron_shape
        else 1, surrogate=s, surrogate_source=rec.source, firing_rate=float(fired.double().mean()),
        dead=float((per_neuron == 0).double().mean()), saturated=float((per_neuron == 1).double().mean()),
        active=float((d >= peak / 2).double().mean()), gain_kind=gain_kind, theory_gain=theory, data_gain=data,
        measured_gain=measured, dampening=damp, sharpness=sharp, sharpness_theory=sharp_theory, tail=tail,
        diagnosis="", notes=notes, dynamics=dyn, gradient_norms=norms)
    report.diagnosis = _diagnose(report, steps)
    return report


def _diagnose(r: LayerReport, steps: int) -> str:
    if r.dead >= 0.5:
        return (f"{r.dead:.0%} of the neurons never spike on this sample: raise the input weights or lower the "
                "threshold (Condition I targets a firing rate of 1/2)")
    if r.saturated >= 0.5:
        return f"{r.saturated:.0%} of the neurons spike at every step: lower the input weights or raise the threshold"
    g = r.gain
    source = "measured" if r.measured_gain is not None else ("data-driven" if r.data_gain is not None else "theory")
    if r.gain_kind != "layer-to-layer" and r.bptt_growth is not None:
        g, source = r.bptt_growth, "BPTT growth"
    if g is None:
        return "no gain estimate (see notes)"
    if r.gain_kind == "layer-to-layer":
        if g < 0.5:
            return f"gradients shrink by {g:.3g} per layer going down ({source} g = {g:.3g})"
        if g > 2.0:
            return f"gradients grow by {g:.3g} per layer going down ({source} g = {g:.3g})"
        return f"layer-to-layer gradient flow is balanced ({source} g = {g:.3g})"
    total = g ** (steps - 1) if g > 0 else 0.0
    if total < 1e-2:
        return f"gradients will vanish over {steps} steps: {source} g = {g:.3g} (g^{steps - 1} = {total:.2g})"
    if total > 1e2:
        return f"gradients will explode over {steps} steps: {source} g = {g:.3g} (g^{steps - 1} = {total:.2g})"
    return f"gradients stay within 100x over {steps} steps: {source} g = {g:.3g}"
