"""The GPU kernels (gradbench.gpu) on Numba's CUDA simulator: the same kernels a GPU runs,
each thread a Python thread (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1 before anything
imports numba.cuda). Against the NumPy reference and the CPU kernels, with the tolerances of
the CPU tests: the rounding of the kernels, and for two finite-difference results the
rounding of their losses over the step. Small shapes: the simulator is slow.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradbench as gb
from gradbench import methods, reference
from gradbench.bench import sweep
from tests.conftest import batch_for, make_net, prepared, rounding_tol

pytest.importorskip("numba_cuda", reason="numba-cuda not installed: pip install "
                                         '"gradbench-fd[cuda]"')

from gradbench import gpu  # noqa: E402
from gradbench.gpu import gradients as G  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

SCHEMES = ("forward", "central", "five_point", "complex_step")


def flat(grads) -> np.ndarray:
    return np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in grads])


def test_the_simulator_runs_the_cuda_kernels():
    assert gpu.available()
    k = G.kernels("float64")
    # the simulator's kernel objects (on a GPU machine, the device's), not a CPU function
    # standing in for them
    kind = type(k.naive).__module__
    assert kind.startswith("numba.cuda.simulator") if gpu.simulated() else "simulator" not in kind
    net = make_net([3, 4, 2])
    on = gpu.Resident(net, *batch_for(net, 3))
    on.backprop()
    L = net.depth
    assert on.launches == {"forward_layer": L, "output_delta": 1, "backward_layer": L,
                           "mean_loss": 1}
    on.numerical("central", strategy="incremental")
    assert on.launches["incremental"] >= 1 and on.launches["forward_layer"] == 2 * L


NETS = [
    ([3, 4, 2], "sigmoid", "softmax_ce", "identity"),
    ([2, 3, 3, 2], "tanh", "mse", "sigmoid"),
    ([3, 2, 3], "relu", "mse", "identity"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes, activation, loss, out", NETS)
def test_loss_and_backprop_match_numpy_and_the_cpu(sizes, activation, loss, out, dtype):
    net = make_net(sizes, activation, loss, dtype, output_activation=out)
    B = 3
    X, T = batch_for(net, B)
    Xp, Tp = prepared(net, X, T)
    f_ref = reference.loss(net, net.params, Xp, Tp)
    g_ref = flat(reference.backprop(net, net.params, Xp, Tp))
    tol = rounding_tol(net, B)
    on = gpu.Resident(net, X, T)
    f = on.loss()
    assert abs(f - f_ref) <= tol * max(1.0, abs(f_ref))
    g = on.backprop().copy_to_host()
    assert g.dtype == net.dtype
    scale = max(1.0, np.abs(g_ref).max())
    assert np.max(np.abs(g - g_ref)) <= tol * scale
    assert np.max(np.abs(g - flat(gb.backprop(net, X, T)))) <= tol * scale
    assert abs(on.last_loss() - f_ref) <= tol * max(1.0, abs(f_ref))
    # the public API's shape: host arrays like net.params
    grads = gpu.backprop(net, X, T)
    assert [x.shape for x in grads] == [p.shape for p in net.params]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("strategy", ["naive", "incremental"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_numerical_gradients_match_the_cpu(scheme, strategy, dtype):
    if scheme == "complex_step" and dtype == "float32":
        pytest.skip("the complex step needs float64")
    net = make_net([2, 3, 2], "sigmoid", dtype=dtype)
    B = 2
    X, T = batch_for(net, B)
    cpu = flat(gb.numerical_gradient(net, X, T, scheme, strategy=strategy, threads=1))
    ours = gpu.numerical_gradient(net, X, T, scheme, strategy=strategy)
    assert [g.dtype for g in ours] == [net.dtype] * len(ours)
    h = gb.default_step(scheme, dtype)
    f = max(1.0, abs(gb.loss(net, X, T)))
    # as the CPU's naive against incremental: their losses differ by rounding, the quotient
    # divides it by h (the complex step has no cancellation)
    tol = 8 * rounding_tol(net, B) * f * (1 if scheme == "complex_step" else 1 / h)
    assert np.max(np.abs(flat(ours) - cpu)) <= tol
    # and the gradient itself, to the scheme's truncation and rounding
    exact = flat(gb.backprop(net, X, T))
    order = gb.gradients.scheme_order(scheme)
    assert np.max(np.abs(flat(ours) - exact)) <= tol + 10 * f * h**order


@pytest.mark.parametrize("strategy", ["naive", "incremental"])
def test_a_deep_network_above_the_perturbed_layer(strategy):
    # four layers: the incremental kernel's rank-1 update, then two layers whole above it
    net = make_net([2, 2, 3, 2, 2], "tanh", "mse", output_activation="identity")
    X, T = batch_for(net, 2)
    cpu = flat(gb.numerical_gradient(net, X, T, "central", strategy="naive", threads=1))
    ours = flat(gpu.numerical_gradient(net, X, T, "central", strategy=strategy))
    h = gb.default_step("central", "float64")
    assert np.max(np.abs(ours - cpu)) <= 8 * rounding_tol(net, 2) * max(1, gb.loss(net, X, T)) / h


def test_launches_of_a_few_networks_each_give_the_same_bits(monkeypatch):
    net = make_net([2, 3, 2], "sigmoid")
    X, T = batch_for(net, 2)
    whole = gpu.Resident(net, X, T)
    one = whole.numerical("central").copy_to_host()
    assert whole.launches["naive"] == 1
    # scratch for one block of perturbed networks: the gradient in ceil(17 / NETS) launches,
    # the last block short
    nets = G.G.NETS
    monkeypatch.setattr(G, "SCRATCH_BYTES", nets * 2 * whole.half * 8)
    parts = gpu.Resident(net, X, T)
    assert np.array_equal(parts.numerical("central").copy_to_host(), one)
    assert parts.launches["naive"] == -(-net.num_params // nets) > 1
    # and the incremental strategy, one network per block, alike
    inc = whole.numerical("central", strategy="incremental").copy_to_host()
    monkeypatch.setattr(G, "SCRATCH_BYTES", 3 * 2 * whole.half * 8)
    assert np.array_equal(gpu.Resident(net, X, T).numerical(
        "central", strategy="incremental").copy_to_host(), inc)


def test_nothing_passed_in_is_modified():
    net = make_net([2, 3, 2], "sigmoid")
    X, T = batch_for(net, 2)
    before = [p.copy() for p in net.params], X.copy(), T.copy()
    gpu.numerical_gradient(net, X, T, "central", strategy="incremental")
    gpu.backprop(net, X, T)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], net.params, strict=True))
    assert np.array_equal(before[1], X) and np.array_equal(before[2], T)


def test_bad_options_are_refused_before_anything_reaches_the_device():
    net = make_net([2, 3, 2], dtype="float32")
    X, T = batch_for(net, 2)
    with pytest.raises(ValueError, match="complex_step needs a float64 network"):
        gpu.numerical_gradient(net, X, T, "complex_step")
    with pytest.raises(ValueError, match="unknown strategy"):
        gpu.numerical_gradient(net, X, T, "central", strategy="smart")
    with pytest.raises(ValueError, match="power of two"):
        gpu.Resident(net, X, T, network_threads=3)
    with pytest.raises(ValueError, match="NaN or inf"):
        gpu.backprop(net, np.full_like(X, np.nan), T)


def test_the_device_is_described_and_calibrated():
    info = G.device_info()
    assert info["name"] and info["simulated"] is gpu.simulated()
    rates = G.calibrate(n=16, elements=64, repeats=1)
    assert rates["matmul_gflops_float64"] > 0 and rates["memory_gbs"] > 0


def test_the_simulator_is_no_gpu_to_time_and_a_missing_package_says_what_to_install(
        monkeypatch):
    m = methods.get("cuda:backprop")
    assert m.device == "cuda" and m.part == "gradbench@cuda"
    if gpu.simulated():
        assert not m.available() and "simulator" in m.unavailable_reason()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    assert m.unavailable_reason() == 'numba_cuda not installed: pip install "gradbench-fd[cuda]"'
    assert gpu.unavailable_reason() == 'numba-cuda not installed: pip install "gradbench-fd[cuda]"'


def test_gpu_cases_are_their_own_series_and_part():
    prof = sweep.profile("quick")
    assert "gradbench@cuda" in prof.providers
    cases = sweep.cases(prof, 2, "gradbench@cuda")
    assert {c.method for c in cases} == {"cuda:primal", "cuda:backprop",
                                         "cuda:numerical:central:naive",
                                         "cuda:numerical:central:incremental"}
    assert {c.threads for c in cases} == {1}  # the host's threads do not enter
    info = next(c for c in cases if c.method == "cuda:backprop").info()
    # recorded as what it computes, and where: the report's panels tell the devices apart
    assert info["method"] == "backprop" and info["device"] == "cuda"
    # a GPU that is not there takes no share of the budget
    gpu_groups = [m for _, m in prof.groups() if m.startswith("cuda:")]
    assert bool(gpu_groups) == methods.get("cuda:backprop").available()
    assert methods.counterpart("cuda:torch:central") == "cuda:numerical:central:naive"
    assert methods.base_name("cuda:numerical:central:naive") == "numerical:central:naive"
    # a method only a GPU has, as a result file names it (without its device)
    assert methods.title("torch:central") == "central (torch CUDA, batched)"
    assert methods.order("torch:central") == list(methods.REGISTRY).index("cuda:torch:central")


def test_every_kernel_compiles_for_a_real_gpu():
    """The simulator runs the kernels as Python; this compiles each of them, in each
    arithmetic, to PTX for an H100/H200 (sm_90) with NVVM, as a GPU machine would: the typing
    and lowering for the CUDA target that the simulator never does."""
    for module in ("nvidia.cuda_nvcc", "nvidia.cuda_nvrtc"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            pytest.skip(f"{module} not installed: pip install {module[7:].replace('_', '-')}"
                        "-cu12 (NVVM and NVRTC, to compile without a GPU)")
    script = Path(__file__).with_name("gpu_ptx.py")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"})
    lines = res.stdout.splitlines()
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    # 8 kernels in float32 and float64, the two numerical ones in complex128
    assert len(lines) == 18 and all(line.split()[2] == "ok" for line in lines), res.stdout
