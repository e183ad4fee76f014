"""Gains measured by autograd on the recorded graph, with Rademacher probes (``stability.hutchinson_rms``).

- temporal: ``||dL/dI_t|| / ||dL/dI_{t+1}||`` for ``L = <u, v_{t+1}>`` (I: the neuron's input current);
- layer to layer: the RMS row norm of ``dI_next/dv`` at the same step (Hutchinson);
- BPTT: ``||dL/dI_t||`` for every t, for ``L = <u, v_T>`` injected at the last step, and its late growth
  (``stability.late_growth``: the one growth formula users are shown);
- across layers: the root-mean-square ``dL/dI`` of every layer's input current over the whole run, for
  ``L = <u, output>`` on the model's own output, and their spread (largest over smallest).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import stability as st
from ..recording.probes import grads, probe_grads
from ..recording.records import Record, StepRef, value


def output_tensors(output: object) -> list[Tensor]:
    """The floating-point tensors with a gradient in what a run returned (a tensor, or tuples, lists and dicts of
    them: ``(spikes, membrane)``, ``(output, state)``, ...)."""
    if isinstance(output, Tensor):
        return [output] if output.is_floating_point() and output.requires_grad else []
    items = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) else ()
    return [t for item in items for t in output_tensors(item)]


def layer_gradients(output: object, records: list[Record], gen: torch.Generator, probes: int = 4
                    ) -> dict[str, float]:
    """Per layer, the root-mean-square of ``dL/dI`` over every input current the layer received, for
    ``L = <u, output>`` with Rademacher ``u`` on the run's output, averaged over ``probes`` draws of ``u``
    (Hutchinson: the mean square is then that of the Jacobian's rows). A layer whose input the loss does not
    reach (its spikes are not used by the output) gets 0."""
    outs = output_tensors(output)
    refs = [(rec.path, i) for rec in records for i in rec.inputs if isinstance(i, Tensor) and i.requires_grad]
    if not outs or not refs:
        return {}
    total: dict[str, list[float]] = {rec.path: [0.0, 0.0] for rec in records}
    drawn = [[st.rademacher(o, gen) for o in outs] for _ in range(probes)]
    got = probe_grads(outs, [torch.stack(d) for d in zip(*drawn, strict=True)], [(i, None) for _, i in refs])
    for (path, i), g in zip(refs, got, strict=True):
        total[path][0] += float(g.double().square().sum()) if g is not None else 0.0
        total[path][1] += i.numel() * probes
    return {path: math.sqrt(sq / n) for path, (sq, n) in total.items() if n > 0}


def spread(gradients: dict[str, float]) -> float | None:
    """Largest over smallest non-zero layer gradient (1: every layer receives the same gradient); None with
    fewer than two layers that receive one."""
    used = [g for g in gradients.values() if g > 0 and math.isfinite(g)]
    return max(used) / min(used) if len(used) >= 2 else None


def measured_temporal(xs: list[StepRef], ins: list[StepRef], probes: int, gen: torch.Generator) -> float | None:
    """``||dL/dI_t|| / ||dL/dI_{t+1}||`` for ``L = <u, v_{t+1}>``; None when the input current does not reach the
    membrane in the same step (a synaptic current in between)."""
    num = den = 0.0
    for t in st.probe_steps(len(xs) - 1):
        target = value(xs[t + 1])
        drawn = torch.stack([st.rademacher(target, gen) for _ in range(probes)])
        g_now, g_next = probe_grads([target], [drawn], [ins[t], ins[t + 1]])
        if g_now is None or g_next is None:
            return None
        num += float(g_now.double().square().sum())
        den += float(g_next.double().square().sum())
    return math.sqrt(num / den) if den > 0 else None


def measured_layer(xs: list[StepRef], next_ins: list[StepRef], probes: int, gen: torch.Generator) -> float | None:
    """RMS row norm of ``d I_next / d v`` at the same step, over steps in the second half of the sequence."""
    steps = st.probe_steps(min(len(xs), len(next_ins)))
    outputs = [value(next_ins[t]) for t in steps]
    base = next_ins[steps[0]][0] if steps else None
    if base is not None and all(next_ins[t][0] is base and next_ins[t][1] is not None for t in steps):
        return _whole_sequence_layer(xs, base, steps, probes, gen)

    def vjp(k: int, drawn: Tensor) -> Tensor | None:
        return probe_grads([outputs[k]], [drawn], [xs[steps[k]]])[0]

    return st.hutchinson_rms(outputs, vjp, probes, gen, batched=True)


def _whole_sequence_layer(xs: list[StepRef], base: Tensor, steps: list[int], probes: int, gen: torch.Generator
                          ) -> float | None:
    """:func:`measured_layer` where the next layer's input is one tensor for the whole sequence (SpikingJelly's
    multi-step modules, Norse's ``Lift``): its backward covers every step whichever step is probed, so every
    (step, probe) pair goes into one batched pass. Each pair's gradient at its own step is the one a pass per
    step gives (a step's input current reaches that step's membrane only through that step's spikes); the draws
    are those of :func:`~sg_stability.stability.hutchinson_rms`, in its order."""
    drawn = torch.zeros(len(steps) * probes, *base.shape, dtype=base.dtype, device=base.device)
    for k, t in enumerate(steps):
        for p in range(probes):
            drawn[k * probes + p, t] = st.rademacher(base[t], gen)
    got = probe_grads([base], [drawn], [xs[t] for t in steps])
    total = 0.0
    for k, g in enumerate(got):
        if g is None:
            return None
        total += float(g[k * probes:(k + 1) * probes].double().square().sum())
    return math.sqrt(total / (base[0].numel() * len(steps) * probes))


def gradient_norms(xs: list[StepRef], ins: list[StepRef] | None, gen: torch.Generator) -> list[float] | None:
    """``||dL/dI_t||`` for every step t, relative to the last non-zero one, for ``L = <u, v_T>``."""
    if ins is None or len(xs) < 2:
        return None
    target = value(xs[-1])
    got = grads((target * st.rademacher(target, gen)).sum(), ins)
    if any(g is None for g in got):
        return None
    norms = [float(g.double().norm()) for g in got if g is not None]
    last = next((n for n in reversed(norms) if n > 0), 0.0)  # a synaptic delay leaves the last step at 0
    return [n / last for n in norms] if last > 0 else None
