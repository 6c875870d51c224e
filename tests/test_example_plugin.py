"""The example plugin examples/forward_ad (forward-mode AD, one JVP per parameter): its
gradient is backprop's to rounding, against a plain NumPy version of the same algorithm too;
it modifies nothing; installed for real, ``gradbench methods`` lists it."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradbench as gb
from gradbench.datasets import make_batch
from gradbench.model import flat_params, prepare_batch

from .conftest import make_net

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "forward_ad"
sys.path.insert(0, str(EXAMPLE))  # the plugin by path, not installed
import gradbench_forward_ad as plugin  # noqa: E402
from gradbench_forward_ad import kernels  # noqa: E402

NETS = [  # sizes, activation, loss, output_activation
    ([5, 4, 3], "sigmoid", "softmax_ce", "identity"),
    ([6, 5, 4, 3], "tanh", "softmax_ce", "identity"),
    ([4, 6, 5, 3, 2], "relu", "softmax_ce", "identity"),
    ([5, 4, 3], "tanh", "mse", "identity"),
    ([6, 5, 4, 3], "relu", "mse", "sigmoid"),
    ([4, 6, 5, 3, 2], "sigmoid", "mse", "tanh"),
]


def reference_jvp_gradient(net, X, T):
    """Plain NumPy, the same algorithm written densely: for each parameter its one-hot
    tangent dW (or db) pushed through dZ_l = a_{l-1} @ dW_l + db_l, dA = act'(z) * dZ,
    dZ_{l+1} = dA @ W_{l+1} + (its own tangent), to dL = sum(G * dZ_L)."""
    X, T = prepare_batch(net, X, T)
    Ws, bs = net.params[0::2], net.params[1::2]
    act = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh,
           "relu": lambda z: np.maximum(z, 0), "identity": lambda z: z}
    dact = {"sigmoid": lambda z: act["sigmoid"](z) * (1 - act["sigmoid"](z)),
            "tanh": lambda z: 1 - np.tanh(z) ** 2, "relu": lambda z: (z > 0) * 1.0,
            "identity": lambda z: np.ones_like(z)}
    a, As, Zs = X, [X], []
    for l, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        z = a @ W + b
        Zs.append(z)
        a = act[net.activation](z) if l < net.depth - 1 else z
        As.append(a)
    z, B = Zs[-1], len(X)
    if net.loss == "softmax_ce":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        G = (e / e.sum(axis=1, keepdims=True) * T.sum(axis=1, keepdims=True) - T) / B
    else:
        G = ((act[net.output_activation](z) - T) * dact[net.output_activation](z) / B)
    out = []
    for t, p in enumerate(net.params):
        g = np.zeros(p.shape, dtype=net.dtype)
        for idx in np.ndindex(p.shape):
            tangents = [np.zeros_like(q) for q in net.params]
            tangents[t][idx] = 1
            dZ = np.zeros_like(Zs[0])
            for l in range(net.depth):
                dZ = (As[l] @ tangents[2 * l] + tangents[2 * l + 1]
                      + (dact[net.activation](Zs[l - 1]) * dZ @ Ws[l] if l else 0))
            g[idx] = np.sum(G * dZ)
        out.append(g)
    return out


def bound(net, X, T):
    """The plugin's own tolerance, as a run checks it against gradbench's backprop."""
    (m,) = plugin.methods()
    return m.tolerance(net, X, T, gb.loss(net, X, T), None, None)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes, activation, loss, out", NETS)
@pytest.mark.parametrize("labels", [True, False])
def test_the_plugin_is_backprop_to_rounding(sizes, activation, loss, out, dtype, labels):
    if labels and loss != "softmax_ce":
        pytest.skip("labels are softmax_ce's")
    net = make_net(sizes, activation=activation, loss=loss, dtype=dtype,
                   output_activation=out)
    X, T = make_batch(net, 7, seed=1)
    if loss == "softmax_ce":
        T = np.asarray(T) if T.ndim == 1 else np.argmax(T, axis=1)
        if not labels:
            T = np.eye(sizes[-1])[T]  # one-hot
    tol = bound(net, X, T)
    ours = gb.backprop(net, X, T)
    for threads in (1, 3):
        (m,) = plugin.methods()
        got = m.gradient(net, threads)(X, T)
        assert [g.shape for g in got] == [p.shape for p in net.params]
        assert all(g.dtype == net.dtype for g in got)
        for g, r in zip(got, ours, strict=True):
            assert np.abs(g.astype(np.float64) - r).max() <= tol
    if dtype == "float64":  # the same algorithm in plain NumPy
        for g, r in zip(got, reference_jvp_gradient(net, X, T), strict=True):
            assert np.abs(g - r).max() <= tol


def test_the_result_does_not_depend_on_the_threads():
    net = make_net([6, 5, 4, 3], activation="tanh")
    X, T = make_batch(net, 5, seed=2)
    one = plugin.gradient(net, X, T, threads=1)
    for threads in (2, 4, 7):
        for a, b in zip(one, plugin.gradient(net, X, T, threads=threads), strict=True):
            assert np.array_equal(a, b)


def test_the_driver_in_pure_python_agrees_with_the_compiled_one():
    net = make_net([3, 4, 3, 2], activation="sigmoid", loss="mse")
    X, T = prepare_batch(net, *make_batch(net, 3, seed=3))
    theta = flat_params(net)
    acts, dacts, offsets, G = kernels.base_pass(net, theta, X, T)
    compiled = kernels.jvp_gradient(net, theta, X, T, 2)
    python = np.empty_like(compiled)
    kernels._jvps.py_func(theta, net.layout, acts, dacts, offsets, G, 2, python)
    np.testing.assert_allclose(python, compiled, rtol=0, atol=bound(net, X, T))


@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
def test_nothing_passed_in_is_modified(loss):
    net = make_net([5, 4, 3, 2], activation="relu", loss=loss)
    X, T = make_batch(net, 6, seed=4)
    if loss == "softmax_ce":
        T = np.asarray(T) if T.ndim == 1 else np.argmax(T, axis=1)
    before = [p.copy() for p in net.params], X.copy(), T.copy()
    (m,) = plugin.methods()
    m.build(net, X, T, 2)()
    m.gradient(net, 2)(X, T)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], net.params, strict=True))
    assert np.array_equal(before[1], X) and np.array_equal(before[2], T)


def test_the_record_speaks_the_protocol():
    from gradbench import methods

    assert plugin.GRADBENCH_PROTOCOL == methods.PROTOCOL_VERSION
    # against the built-in methods (an earlier test may have loaded the plugin itself)
    builtin = {n: r for n, r in methods.REGISTRY.items() if r.plugin is None}
    (m,) = methods.plugin_methods(plugin, "forward_ad", builtin)
    assert (m.name, m.provider, m.kind, m.threaded) == ("forward_ad:jvp", "forward_ad",
                                                        "analytic", True)
    assert m.dtypes == ("float32", "float64") and m.available()
    assert m.warm(make_net([3, 2]), 2) >= 0


def _can_build_wheels() -> bool:
    # pip builds with the environment's setuptools (--no-build-isolation, no network):
    # bdist_wheel is setuptools' own from 70.1, the wheel package's before it
    return (importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
            or importlib.util.find_spec("wheel") is not None)


@pytest.mark.slow
@pytest.mark.skipif(not _can_build_wheels(), reason="no bdist_wheel here: install wheel, or "
                    "setuptools>=70.1, to build examples/forward_ad without the network")
def test_installed_for_real_gradbench_methods_lists_it(tmp_path):
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                          "--no-build-isolation", "--no-index", "--target", str(site),
                          str(EXAMPLE)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("GRADBENCH_PLUGINS", None)
    res = subprocess.run([sys.executable, "-m", "gradbench", "methods"], env=env,
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("forward_ad:jvp "))
    assert "gradbench-forward-ad 0.1.0" in line and line.endswith("yes"), line
