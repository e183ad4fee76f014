"""The measurements' fast paths give what the slow ones give.

- every probe of a measurement in one batched backward pass (``probe_grads``: vmap over the backward graph) equals
  one plain ``torch.autograd.grad`` per probe, in every framework, and falls back to one pass per probe where an
  operation in the graph cannot be batched;
- values computed once per weight (``per_weight``: spectral norms, signed row sums, column mean squares) equal the
  direct formulas, follow in-place changes and are forgotten with the weight;
- the input weight times the neuron's input gain, read as inputs up to the gain (``input_weight``), gives the
  voltage range of the multiplied weight.
"""

from __future__ import annotations

import gc
import itertools

import pytest
import torch

import sg_stability as sg
from sg_stability.analysis.estimates import column_mean_squares, input_weight
from sg_stability.recording.probes import probe_grads
from sg_stability.stability import _checks
from tests.zoo import shd_networks

FRAMEWORKS = ["snntorch", "spikingjelly", "norse"]


def _per_probe(outputs, draws, tensors):
    """The reference: one plain backward pass per probe."""
    got = [torch.autograd.grad(outputs, tensors, [d[p] for d in draws], retain_graph=True, allow_unused=True)
           for p in range(draws[0].shape[0])]
    return [None if g[0] is None else torch.stack(g) for g in zip(*got, strict=True)]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_all_probes_in_one_backward_pass_equal_one_pass_per_probe(framework):
    model, x = shd_networks.tiny(framework)
    with sg.recording.traced(model, x) as trace:
        records = trace.ordered()
        inputs = [(i, None) for r in records for i in r.inputs if isinstance(i, torch.Tensor) and i.requires_grad]
        out = trace.output
        draws = [torch.randint(0, 2, (5, *out.shape), generator=torch.Generator().manual_seed(0)).float() * 2 - 1]
        got = probe_grads([out], draws, inputs)
        want = _per_probe([out], draws, [t for t, _ in inputs])
        # a step of a whole-sequence tensor is indexed after the batch dimension
        first = records[0].spike_steps()
        stepped = [r for r in first if r[1] is not None] or first
        got_step = probe_grads([out], draws, stepped[-1:])[0]
    assert len(got) == len(want) and any(g is not None for g in got)
    for g, w in zip(got, want, strict=True):
        assert (g is None) == (w is None)
        if g is not None:
            assert g.shape == (5, *w.shape[1:])
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6 * float(w.abs().max()) + 1e-12)
    assert got_step is not None and got_step.shape[0] == 5


class _NotBatchable(torch.autograd.Function):
    """Identity whose backward reads a value out of the tensor: vmap cannot batch that."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        scale = float(grad.abs().max().item() > -1.0)  # 1.0, but data-dependent Python control for vmap
        return grad * scale


def test_a_graph_that_cannot_be_batched_falls_back_to_one_pass_per_probe():
    w = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 4, requires_grad=True)
    out = _NotBatchable.apply(torch.tanh(x @ w.T))
    draws = [torch.randn(4, *out.shape, generator=torch.Generator().manual_seed(1))]
    with pytest.raises(RuntimeError):  # the batched pass really fails here, so the fallback is what is tested
        torch.autograd.grad([out], [x], draws, retain_graph=True, is_grads_batched=True)
    (got,) = probe_grads([out], draws, [(x, None)])
    # by hand: d/dx <u, tanh(x W^T)> = (u * (1 - tanh^2)) W
    y = torch.tanh(x.detach() @ w.T)
    want = torch.stack([(u * (1 - y * y)) @ w for u in draws[0]])
    torch.testing.assert_close(got, want)


def test_the_hutchinson_estimate_is_the_same_batched_or_not():
    w = torch.randn(30, 20, generator=torch.Generator().manual_seed(0))
    x = torch.randn(20, requires_grad=True)
    y = w @ x

    def one(k, u):
        return torch.autograd.grad(y, x, u, retain_graph=True)[0]

    def stacked(k, us):
        return torch.autograd.grad(y, x, us, retain_graph=True, is_grads_batched=True)[0]

    plain = sg.stability.hutchinson_rms([y], one, 64, torch.Generator().manual_seed(3))
    batched = sg.stability.hutchinson_rms([y], stacked, 64, torch.Generator().manual_seed(3), batched=True)
    assert batched == pytest.approx(plain, rel=1e-6)  # the same draws in the same order; float32 sums
    exact = float(w.double().square().sum(1).mean().sqrt())  # the RMS row norm of the Jacobian W
    assert plain == pytest.approx(exact, rel=0.1)


def test_values_remembered_per_weight_follow_in_place_changes_and_are_forgotten_with_it():
    calls = []
    w = torch.nn.Parameter(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)))
    box = [w]  # the computation's own reference, dropped before the weight is

    def row_sums():
        calls.append(1)
        return box[0].detach().sum(1).clone()

    first = _checks.per_weight("row sums", w, row_sums)
    assert torch.equal(_checks.per_weight("row sums", w, row_sums), first) and len(calls) == 1
    assert torch.equal(_checks.per_weight("row sums", w.detach(), row_sums), first) and len(calls) == 2
    with torch.no_grad():
        w.add_(1.0)  # an optimizer step: computed again
    assert torch.allclose(_checks.per_weight("row sums", w, row_sums), first + 3.0) and len(calls) == 3
    key = ("row sums", id(w))
    assert key in _checks._REMEMBERED
    box.clear()
    del w
    gc.collect()
    assert key not in _checks._REMEMBERED


def test_column_mean_squares_equal_the_direct_formula():
    gen = torch.Generator().manual_seed(0)
    dense = torch.randn(7, 9, generator=gen)
    conv = torch.randn(6, 4, 3, 3, generator=gen)
    want_dense = (dense.double() ** 2).mean(0)  # per input feature, mean over the rows
    want_conv = (conv.double() ** 2).sum((2, 3)).mean(0)  # per input channel, the kernel summed
    torch.testing.assert_close(column_mean_squares(dense, "flat", block=10), want_dense)  # several blocks
    torch.testing.assert_close(column_mean_squares(conv, "channel", block=40), want_conv)


def test_the_input_weight_read_with_inputs_up_to_the_gain_gives_the_multiplied_weights_range():
    dyn = sg.stability.Dynamics(leak=0.9, threshold=1.0, input_gain=0.25)
    w = torch.randn(8, 12, generator=torch.Generator().manual_seed(0))
    given, input_max = input_weight(w, dyn)
    assert given is w and input_max == 0.25  # no copy of the weight
    got = sg.stability.voltage_range(None, given, dyn, input_max)
    want = sg.stability.voltage_range(None, w * 0.25, dyn)
    for g, v in zip(got, want, strict=True):
        torch.testing.assert_close(g, v)


@pytest.mark.parametrize("model_name", ["norse/VGG11", "sj/sew_resnet18"])
@pytest.mark.slow
def test_a_layer_gain_measured_through_a_whole_sequence_input_equals_one_plain_pass_per_step_and_probe(model_name):
    from sg_stability.analysis.gradients import measured_layer
    from sg_stability.recording.records import value
    from tests.zoo import shipped_models

    m = shipped_models.MODELS[model_name]("small")
    with sg.recording.traced(m.model, m.sample, run=m.run) as trace:
        records = trace.ordered()
        checked = 0
        for rec, nxt in itertools.pairwise(records):
            xs = rec.spike_steps()
            next_ins = nxt.input_steps(len(nxt.spike_steps()))
            if next_ins is None or next_ins[0][1] is None:  # not one whole-sequence tensor
                continue
            got = measured_layer(xs, next_ins, 3, torch.Generator().manual_seed(5))
            gen, total, rows, reached = torch.Generator().manual_seed(5), 0.0, 0, True
            for t in sg.stability.probe_steps(min(len(xs), len(next_ins))):
                out = value(next_ins[t])
                for _ in range(3):
                    u = torch.randint(0, 2, out.shape, generator=gen).to(out.dtype) * 2 - 1
                    (g,) = torch.autograd.grad(out, xs[t][0], u, retain_graph=True, allow_unused=True)
                    reached = reached and g is not None
                    if g is not None:
                        g = g if xs[t][1] is None else g[xs[t][1]]
                        total += float(g.double().square().sum())
                    rows += out.numel()
            if not reached:  # this layer's spikes do not feed the next layer's input (a parallel branch)
                assert got is None
                continue
            assert got == pytest.approx((total / rows) ** 0.5, rel=1e-5)
            checked += 1
    assert checked >= 2, "the model must have layers fed through a whole-sequence tensor"


def test_probes_beyond_the_memory_budget_are_split_into_passes_with_the_same_result(monkeypatch):
    from sg_stability.recording import probes

    model, x = shd_networks.tiny("norse")
    with sg.recording.traced(model, x) as trace:
        inputs = [(i, None) for r in trace.ordered() for i in r.inputs if isinstance(i, torch.Tensor)
                  and i.requires_grad]
        out = trace.output
        draws = [torch.randint(0, 2, (5, *out.shape), generator=torch.Generator().manual_seed(0)).float() * 2 - 1]
        size = sum(t.numel() * t.element_size() for t, _ in inputs)
        passes = []
        real = torch.autograd.grad

        def counted(*args, **kwargs):
            passes.append(kwargs.get("is_grads_batched", False))
            return real(*args, **kwargs)

        monkeypatch.setattr(probes, "PROBE_BYTES", 2 * size)  # two probes per pass: 2 + 2 + 1
        monkeypatch.setattr(torch.autograd, "grad", counted)
        got = probe_grads([out], draws, inputs)
        monkeypatch.undo()
        want = _per_probe([out], draws, [t for t, _ in inputs])
    assert passes == [True, True, True]
    for g, w in zip(got, want, strict=True):
        assert (g is None) == (w is None)
        if g is not None:
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6 * float(w.abs().max()) + 1e-12)
