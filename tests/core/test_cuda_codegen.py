"""The CUDA source our surrogates generate for SpikingJelly's CuPy kernels, checked without a GPU.

- Values: every family's snippet (float, half2, and the legacy fp32/fp16 form) is compiled by nvcc into a
  host program, run on the CPU (cuda_fp16's conversions are host functions too) and compared with the
  torch derivative.
- Device code: the snippets compile for sm_90 (-ptx) inside kernels, and, where SpikingJelly 0.0.0.0.14 is
  installed (.venv-sj014), inside SpikingJelly's own generated BPTT kernels.
Skipped where nvcc is absent: then only a GPU machine checks CuPy code (tests/test_gpu.py).
"""

from __future__ import annotations

import concurrent.futures
import shutil
import subprocess
import types

import pytest
import torch

import sg_stability as sg
from tests.zoo import reference_shapes

NVCC = shutil.which("nvcc")
pytestmark = [pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not installed here"),
              pytest.mark.slow]  # nvcc runs in subprocesses

FAMILIES = {
    "rectangular": {}, "triangular": {}, "exponential": {}, "gaussian": {}, "sigmoid": {},
    "fast_sigmoid": {}, "q_pseudospike": {"tail": 1.3}, "atan": {},
}
GAMMA, BETA = 0.7, 1.9
XS = [-40.0, -3.1, -1.2, -0.61, -0.3, -0.05, 0.0, 0.04, 0.2, 0.33, 0.9, 1.7, 5.5, 1e4]


def reference(family: str, v: torch.Tensor) -> torch.Tensor:
    """The derivative from its definition (tests/zoo/reference_shapes.py), not from the package's code."""
    return reference_shapes.derivative(family, v, GAMMA, BETA, **FAMILIES[family])


def surrogate(family: str) -> sg.surrogates.Surrogate:
    return sg.surrogates.get(family, dampening=GAMMA, sharpness=BETA, **FAMILIES[family])


def nvcc(args: list[str], tmp_path, name: str, source: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.cu"
    path.write_text(source)
    return subprocess.run([NVCC, *args, str(path), "-o", str(tmp_path / name)], capture_output=True, text=True,
                          check=False)


@pytest.fixture(scope="module")
def host_results(tmp_path_factory):
    """Run every snippet on the CPU: {(family, form): [values...]} with form in float/half2/fp32/fp16."""
    tmp = tmp_path_factory.mktemp("cuda_host")
    funcs, calls = [], []
    for family in FAMILIES:
        s = surrogate(family)
        f = family
        funcs.append(f"static float {f}_float(float over_th) {{ {s.cuda_codes(y='float r', x='over_th', dtype='float')}"
                     " return r; }")
        funcs.append(f"static float2 {f}_half2(float a, float b) {{ const half2 over_th = __floats2half2_rn(a, b); "
                     f"{s.cuda_codes(y='half2 r', x='over_th', dtype='half2')} return __half22float2(r); }}")
        funcs.append(f"static float {f}_fp32(float over_th) {{ {s.cuda_code(x='over_th', y='g', dtype='fp32')}"
                     " return g; }")
        funcs.append(f"static float2 {f}_fp16(float a, float b) {{ const half2 over_th = __floats2half2_rn(a, b); "
                     f"{s.cuda_code(x='over_th', y='g', dtype='fp16')} return __half22float2(g); }}")
        calls.append(f'  printf("{f} float %.9e\\n", {f}_float(x)); printf("{f} fp32 %.9e\\n", {f}_fp32(x));'
                     f' {{ float2 h = {f}_half2(x, -x); printf("{f} half2 %.9e %.9e\\n", h.x, h.y); }}'
                     f' {{ float2 h = {f}_fp16(x, -x); printf("{f} fp16 %.9e %.9e\\n", h.x, h.y); }}')
    xs = ", ".join(f"{x!r}f" for x in XS)
    source = ("#include <cuda_fp16.h>\n#include <cstdio>\n#include <cmath>\n" + "\n".join(funcs)
              + f"\nint main() {{ const float xs[] = {{{xs}}};\n for (float x : xs) {{\n" + "\n".join(calls)
              + "\n }\n return 0; }\n")
    build = nvcc(["-std=c++17"], tmp, "host", source)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(tmp / "host")], capture_output=True, text=True, check=True)
    results: dict[tuple[str, str], list[float]] = {}
    for line in run.stdout.splitlines():
        family, form, *values = line.split()
        results.setdefault((family, form), []).extend(float(v) for v in values)
    return results


@pytest.mark.parametrize("family", FAMILIES)
def test_float_snippets_compute_the_derivative(host_results, family):
    want = reference(family, torch.tensor(XS, dtype=torch.float64))
    for form in ("float", "fp32"):
        got = torch.tensor(host_results[(family, form)], dtype=torch.float64)
        assert torch.allclose(got, want, rtol=2e-6, atol=1e-8), form


@pytest.mark.parametrize("family", FAMILIES)
def test_half2_snippets_compute_the_derivative_in_both_lanes(host_results, family):
    x = torch.tensor([v for x in XS for v in (x, -x)])  # lane .x gets x, lane .y gets -x
    x_half = x.half().double()  # the kernel sees fp16 inputs
    want = reference(family, x_half).half().double()
    for form in ("half2", "fp16"):
        got = torch.tensor(host_results[(family, form)], dtype=torch.float64)
        assert torch.allclose(got, want, rtol=1e-3, atol=1e-7), form


def test_snippets_compile_as_device_code(tmp_path):
    kernels = []
    for family in FAMILIES:
        s = surrogate(family)
        for dtype in ("float", "half2"):
            kernels.append(
                f'extern "C" __global__ void k_{family}_{dtype}(const {dtype}* x, {dtype}* out, int n) {{\n'
                f"  const int i = blockIdx.x * blockDim.x + threadIdx.x; if (i >= n) return;\n"
                f"  for (int t = 0; t < 2; t++) {{ const {dtype} over_th = x[i];\n"
                f"    {s.cuda_codes(y=f'const {dtype} grad_s_to_h', x='over_th', dtype=dtype)}\n"
                f"    out[i] = grad_s_to_h; }}\n}}")
    build = nvcc(["-arch=sm_90", "-ptx"], tmp_path, "device", "#include <cuda_fp16.h>\n" + "\n".join(kernels))
    assert build.returncode == 0, build.stderr[-3000:]


def test_tensor_parameters_are_refused_with_the_fix():
    s = sg.surrogates.ATan(dampening=torch.full((3,), 0.5))
    with pytest.raises(sg.ConfigError) as e:
        s.cuda_codes(y="const float g", x="over_th", dtype="float")
    assert "backend='torch'" in str(e.value) and "dampening is a tensor" in str(e.value)


# -- inside SpikingJelly 0.0.0.0.14's own kernels ------------------------------------------------------------

def _legacy_kernel_modules():
    sj = pytest.importorskip("spikingjelly.activation_based")
    try:
        from spikingjelly.activation_based import neuron_kernel
        from spikingjelly.activation_based.auto_cuda import neuron_kernel as auto
    except ImportError:
        pytest.skip("needs SpikingJelly 0.0.0.0.14's CuPy kernel generators (./dev test runs it in .venv-sj014)")
    return sj, auto, neuron_kernel


def _compile_all(sources: dict[str, str], tmp_path) -> dict[str, str]:
    def one(item):
        name, src = item
        out = nvcc(["-arch=sm_90", "-ptx"], tmp_path, name, src)
        return name, "" if out.returncode == 0 else out.stderr[-1500:]

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return {name: err for name, err in pool.map(one, sources.items()) if err}


def test_every_family_compiles_inside_spikingjelly_auto_cuda_kernels(tmp_path):
    _, auto, _ = _legacy_kernel_modules()
    sources = {}
    for family in FAMILIES:
        for dtype in ("float", "half2"):
            for hard_reset, detach in ((True, False), (False, True)):
                kernel = auto.LIFNodeBPTTKernel(decay_input=True, surrogate_function=surrogate(family).cuda_codes,
                                                hard_reset=hard_reset, detach_reset=detach, dtype=dtype)
                sources[f"lif_{family}_{dtype}_{int(hard_reset)}{int(detach)}"] = kernel.full_codes
    failures = _compile_all(sources, tmp_path)
    assert not failures, failures


def test_legacy_cuda_code_compiles_inside_the_qif_eif_izhikevich_kernels(tmp_path, monkeypatch):
    _, _, neuron_kernel = _legacy_kernel_modules()
    built: list[str] = []

    class FakeCupy(types.SimpleNamespace):
        @staticmethod
        def RawKernel(code, name, **kwargs):
            built.append(code)
            return object()

    monkeypatch.setattr(neuron_kernel, "cupy", FakeCupy(), raising=False)
    captured = {}
    # the dtypes SpikingJelly itself supports per kernel (its Izhikevich kernel raises TypeError for fp16)
    kernels = {"MultiStepQIFNodePTT": ("fp32", "fp16"), "MultiStepEIFNodePTT": ("fp32", "fp16"),
               "MultiStepIzhikevichNodePTT": ("fp32",)}
    for cls, dtypes in kernels.items():
        for family in ("atan", "q_pseudospike", "rectangular"):
            for dtype in dtypes:
                getattr(neuron_kernel, cls).create_bptt_kernel(surrogate(family).cuda_code, True, False, dtype)
                captured[f"{cls}_{family}_{dtype}"] = built.pop()
    assert len(captured) == 15
    failures = _compile_all(captured, tmp_path)
    assert not failures, failures

