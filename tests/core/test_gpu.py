"""GPU checks (marker ``gpu``; skipped cleanly without CUDA by tests/conftest.py).

- SpikingJelly 0.0.0.0.14 with CuPy: every family's generated kernel, in float32 and float16 (half2),
  gives the same spikes and gradients as the torch backend with the same surrogate.
- SpikingJelly 2.0 on CUDA: an exact built-in keeps the fused path and matches the reference path.
- Our surrogates on CUDA tensors equal the CPU results; an exact QIF network and a QIF neuron run there too.
"""

from __future__ import annotations

import pytest
import torch

import sg_stability as sg

pytestmark = pytest.mark.gpu

FAMILIES = ["rectangular", "triangular", "exponential", "gaussian", "sigmoid", "fast_sigmoid", "q_pseudospike", "atan"]


@pytest.mark.parametrize("family", FAMILIES)
def test_surrogate_on_cuda_equals_cpu(family):
    s = sg.surrogates.get(family, dampening=0.6, sharpness=1.7)
    x = torch.linspace(-4, 4, 1001)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        # fresh leaves each time: x.to(float32) is x itself, and a grad flag set on it would make the next
        # dtype's copy a non-leaf (whose .grad is a warning, an error in this suite)
        cpu = x.to(dtype).detach().clone().requires_grad_(True)
        gpu = x.to("cuda", dtype).detach().clone().requires_grad_(True)
        s(cpu).sum().backward()
        s.cuda()(gpu).sum().backward()
        assert torch.equal(s(cpu.detach()), s(gpu.detach()).cpu())
        assert torch.allclose(cpu.grad.float(), gpu.grad.cpu().float(), rtol=1e-3, atol=1e-5)


def _legacy_lif_pair(family, backend, dtype):
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = torch.nn.Sequential(layer.Linear(16, 32), neuron.LIFNode(tau=2.0, backend=backend, step_mode="m"),
                              layer.Linear(32, 8), neuron.LIFNode(tau=2.0, backend=backend, step_mode="m"))
    functional.set_step_mode(net, "m")
    net = net.to("cuda", dtype)
    sg.patch(net, family, dampening=0.6, sharpness=1.7)
    x = (torch.rand(8, 4, 16, device="cuda") * 3).to(dtype)
    out = net(x)
    out.float().sum().backward()
    return out.detach().float().cpu(), [p.grad.float().cpu() for p in net.parameters()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float", "half2"])
@pytest.mark.parametrize("family", FAMILIES)
def test_cupy_kernels_match_the_torch_backend(family, dtype):
    pytest.importorskip("cupy")
    from spikingjelly.activation_based import neuron

    if "backend" not in neuron.LIFNode.__init__.__code__.co_varnames:
        pytest.skip("needs SpikingJelly 0.0.0.0.14 (backend='cupy'); SpikingJelly 2.0 removed CuPy")
    out_c, grads_c = _legacy_lif_pair(family, "cupy", dtype)
    out_t, grads_t = _legacy_lif_pair(family, "torch", dtype)
    assert torch.equal(out_c, out_t)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    for gc, gt in zip(grads_c, grads_t, strict=True):
        assert torch.allclose(gc, gt, rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("family", ["atan", "sigmoid", "gaussian", "triangular", "exponential"])
def test_spikingjelly2_fused_builtin_matches_reference_on_cuda(family):
    pytest.importorskip("spikingjelly._ops")
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = torch.nn.Sequential(layer.Linear(16, 32), neuron.LIFNode(tau=2.0, step_mode="m"),
                              layer.Linear(32, 8), neuron.LIFNode(tau=2.0, step_mode="m")).cuda()
    functional.set_step_mode(net, "m")
    x = torch.rand(8, 4, 16, device="cuda") * 3
    results = []
    for builtin in (True, False):
        with sg.patch(net, family, builtin=builtin):
            net.zero_grad()
            functional.reset_net(net)
            out = net(x)
            out.sum().backward()
            results.append((out.detach().cpu(), [p.grad.cpu() for p in net.parameters()]))
    (out_f, grads_f), (out_r, grads_r) = results
    assert torch.equal(out_f, out_r)
    for a, b in zip(grads_f, grads_r, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse"])
def test_analyze_and_stabilize_on_cuda_match_the_cpu(framework):
    """The measurements' random probes are drawn on the CPU and moved to the model's device, so a model on CUDA
    gets the CPU's recommendation and (up to rounding) its gains."""
    from tests.zoo import shd_networks

    model, x = shd_networks.tiny(framework)
    cpu = sg.analyze(model, x)
    gpu_model, gpu_x = model.cuda(), x.cuda()
    gpu = sg.analyze(gpu_model, gpu_x)
    assert gpu.recommendation.how == cpu.recommendation.how
    for a, b in zip(cpu.layers, gpu.layers, strict=True):
        for got, want in ((b.measured_gain, a.measured_gain), (b.data_gain, a.data_gain)):
            assert (got is None) == (want is None)
            if got is not None:
                assert got == pytest.approx(want, rel=1e-3)
    with sg.stabilize(gpu_model, gpu_x, progress=False) as handle:
        assert handle.notes[-1].startswith(("installed", "kept"))


def test_an_exact_network_on_cuda_gives_the_cpu_spike_times_and_gradients():
    import sg_stability.exact as ex

    runs = []
    for device in ("cpu", "cuda"):
        net = ex.Network([5, 7, 3], recurrent=[True, False], duration=3.0, init_mean=6.0, init_std=3.0, seed=0)
        net = net.to(device)
        x = (torch.rand(10, 4, 5, generator=torch.Generator().manual_seed(0)) < 0.3).float()
        run = net(ex.SpikeTrains.from_steps(x, dt=0.3))
        ex.first_spike_loss(run, torch.tensor([0, 1, 2, 0], device=device)).backward()
        runs.append((run.times.detach().cpu(), [p.grad.cpu() for p in net.parameters()]))
    (times_cpu, grads_cpu), (times_gpu, grads_gpu) = runs
    torch.testing.assert_close(times_gpu, times_cpu)
    for a, b in zip(grads_gpu, grads_cpu, strict=True):
        torch.testing.assert_close(a, b)


def test_a_qif_neuron_on_cuda_is_analyzed_where_it_is():
    from torch import nn

    from sg_stability.neurons import QIF

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), QIF(rheobase=0.05, step_mode="multi", hidden=True)).cuda()
    with torch.no_grad():
        model[0].weight.mul_(4.0)

    def run(m, x):
        m[1].reset()
        return m(x)

    layer = sg.analyze(model, torch.rand(30, 4, 8, device="cuda"), run=run).layers[0]
    assert layer.data_gain == pytest.approx(layer.measured_gain, rel=0.15)
