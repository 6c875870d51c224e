"""Numerical gradients: known derivatives, the textbook loop, strategies, threads."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradbench as gb
from gradbench import reference as R
from gradbench.check import attainable_accuracy
from gradbench.gradients import (
    ORDER,
    SCHEMES,
    STRATEGIES,
    FDOptions,
    numerical_gradient_flat,
)
from gradbench.kernels import incremental as KI
from gradbench.kernels import naive as KN

from .conftest import batch_for, make_net, one_thread_for, prepared, rounding_tol
from .kernelmods import as_python

EPS64 = np.finfo(np.float64).eps


def _scalar_net(w):
    """f(w) = 0.5 * tanh(w)^2: one weight, x = 1, t = 0, output tanh, mse."""
    net = gb.MLP([1, 1], activation="identity", loss="mse", output_activation="tanh")
    net.params[0][...] = w
    return net, np.ones((1, 1)), np.zeros((1, 1))


def _exact(w):
    return np.tanh(w) / np.cosh(w) ** 2


@pytest.mark.parametrize("scheme, h", [("forward", 1e-3), ("central", 1e-2),
                                       ("five_point", 1e-1)])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_truncation_error_shrinks_with_the_order_of_the_scheme(scheme, h, strategy):
    # h chosen so truncation dominates round-off by far; halving h divides it by 2**order
    net, X, T = _scalar_net(0.7)
    errs = [abs(gb.numerical_gradient(net, X, T, scheme, hh, strategy)[0][0, 0] - _exact(0.7))
            for hh in (h, h / 2)]
    assert errs[0] / errs[1] == pytest.approx(2.0 ** ORDER[scheme], rel=0.1)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_complex_step_is_exact_to_rounding(strategy):
    for w in (0.7, -2.0, 3.5):
        net, X, T = _scalar_net(w)
        g = gb.numerical_gradient(net, X, T, "complex_step", strategy=strategy)[0][0, 0]
        # the complex arithmetic rounds relative to the values it carries (tanh(w)^2), which
        # exceed the derivative tanh(w) sech^2(w) when w is large
        scale = max(abs(_exact(w)), np.tanh(w) ** 2)
        assert abs(g - _exact(w)) <= 4 * EPS64 * scale


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_quadratic_loss(strategy):
    # f(w, b) = 0.5/B sum (w x + b - t)^2 is quadratic: central and five-point differences
    # have no truncation error, forward differences are off by exactly d/2 * f''.
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((8, 1)), rng.standard_normal((8, 1))
    net = gb.MLP([1, 1], activation="identity", loss="mse")
    net.params[0][...], net.params[1][...] = 0.3, -0.2
    r = 0.3 * x + -0.2 - t
    exact = np.array([np.mean(r * x), np.mean(r)])
    curvature = np.array([np.mean(x * x), 1.0])
    for scheme in ("central", "five_point"):
        g = np.concatenate([p.ravel() for p in gb.numerical_gradient(net, x, t, scheme,
                                                                     strategy=strategy)])
        h = gb.default_step(scheme, "float64")
        assert np.all(np.abs(g - exact) <= 10 * EPS64 / h)
    h = 1e-4
    g = np.concatenate([p.ravel() for p in gb.numerical_gradient(net, x, t, "forward", h,
                                                                 strategy)])
    np.testing.assert_allclose(g - exact, h / 2 * curvature, rtol=1e-6)


def test_kernel_matches_textbook_loop():
    for dtype in ("float64", "float32"):
        net = make_net([5, 4, 3], activation="sigmoid", dtype=dtype)
        X, T = batch_for(net, 4)
        Xp, Tp = prepared(net, X, T)
        h = gb.default_step("central", dtype)
        ref = R.numerical_gradient(net, net.params, Xp, Tp, h)
        f = abs(gb.loss(net, X, T))
        # both take the same quotient; their losses differ by rounding only
        tol = 2 * rounding_tol(net, 4) * max(1.0, f) / h
        for a, b in zip(gb.numerical_gradient(net, X, T, threads=one_thread_for(dtype)), ref,
                        strict=True):
            assert np.max(np.abs(a.astype(float) - b)) <= tol


@settings(deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    activation=st.sampled_from(["sigmoid", "relu", "tanh", "identity"]),
    loss=st.sampled_from(["softmax_ce", "mse"]),
    dtype=st.sampled_from(["float32", "float64"]),
    scheme=st.sampled_from(SCHEMES),
    B=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_incremental_agrees_with_naive(sizes, activation, loss, dtype, scheme, B, seed):
    if scheme == "complex_step":
        dtype = "float64"
    net = make_net(sizes, activation, loss, dtype, seed=seed)
    X, T = batch_for(net, B, seed=seed)
    threads = one_thread_for(dtype)
    naive = gb.numerical_gradient(net, X, T, scheme, strategy="naive", threads=threads)
    incr = gb.numerical_gradient(net, X, T, scheme, strategy="incremental", threads=threads)
    h = gb.default_step(scheme, dtype)
    f = max(1.0, abs(gb.loss(net, X, T)))
    if scheme == "complex_step":
        # no cancellation: agreement to rounding of the derivative itself
        tol = 8 * rounding_tol(net, B) * f
    else:
        # the losses of the two strategies differ by rounding; the quotient divides by h
        tol = 8 * rounding_tol(net, B) * f / h
    for a, b in zip(naive, incr, strict=True):
        assert a.dtype == b.dtype == net.dtype
        assert np.max(np.abs(a.astype(float) - b)) <= tol


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_result_does_not_depend_on_thread_count(scheme, strategy):
    net = make_net([7, 6, 5, 3], activation="tanh")
    X, T = batch_for(net, 9)
    one = gb.numerical_gradient(net, X, T, scheme, strategy=strategy, threads=1)
    two = gb.numerical_gradient(net, X, T, scheme, strategy=strategy, threads=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))


def test_incremental_batches_deep_layers():
    # deep enough that perturbations of layer 1 go through two more matrix products,
    # with more perturbations per column than one batch holds
    net = make_net([40, 6, 5, 4, 3], activation="sigmoid")
    X, T = batch_for(net, 3)
    naive = gb.numerical_gradient(net, X, T, "five_point")
    incr = gb.numerical_gradient(net, X, T, "five_point", strategy="incremental")
    for a, b in zip(naive, incr, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-9)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pure_python_drivers_match_jit(strategy):
    net = make_net([3, 3, 2], activation="relu")
    X, T = prepared(net, *batch_for(net, 2))
    jit = numerical_gradient_flat(net, net._flat, X, T, FDOptions("central", 1e-5, strategy, 2))
    # swap every kernel for its Python body, so the drivers run as plain Python
    with pytest.MonkeyPatch.context() as mp:
        as_python(mp)
        py = numerical_gradient_flat(net, net._flat, X, T, FDOptions("central", 1e-5, strategy, 2))
    np.testing.assert_allclose(py, jit, rtol=1e-9, atol=1e-12)


#: The incremental kernel's series for exp(u), as written in its _below_output_losses.
SERIES = "eu = 1.0 + u * (1.0 + u * (0.5 + u * (1 / 6 + u * (1 / 24 + u / 120))))"


def _truncated_series_kernel():
    """_below_output_losses with its exp(u) series cut to 1 + u: what the test must catch."""
    import inspect
    import textwrap

    fn = KI._below_output_losses
    src = textwrap.dedent(inspect.getsource(getattr(fn, "py_func", fn)))
    assert SERIES in src, "the series changed: update SERIES"
    src = "\n".join(ln for ln in src.replace(SERIES, "eu = 1.0 + u").splitlines()
                    if not ln.startswith("@"))
    namespace = dict(vars(KI))
    exec(compile(src, "<truncated series>", "exec"), namespace)
    return namespace["_below_output_losses"]


@pytest.mark.skipif(not hasattr(KI.fd_incremental_serial, "py_func"), reason="JIT disabled")
def test_series_path_matches_exponentials(monkeypatch):
    # the incremental kernel takes exp(u) from its series for logit updates |u| < SERIES_LIMIT;
    # with weights of scale 1 and h = 1e-3 every row takes it, with |u| up to 7.5e-4, where a
    # series cut short would be visible (1 + u: off by u^2 / 2, about 5e-6 in the gradient);
    # forward differences, so that no even term cancels. The same kernel run as Python with
    # the series switched off must agree to rounding.
    net = make_net([6, 5, 4], activation="sigmoid", scale=1.0)
    X, T = prepared(net, *batch_for(net, 5))
    h = 1e-3

    def gradient():
        options = FDOptions("forward", h, "incremental", 1)
        return numerical_gradient_flat(net, net._flat, X, T, options)

    with_series = gradient()
    as_python(monkeypatch)
    monkeypatch.setattr(KI, "SERIES_LIMIT", 0.0)
    without = gradient()
    f = max(1.0, abs(gb.loss(net, X, T)))
    tol = 8 * rounding_tol(net, 5) * f / h
    assert np.max(np.abs(with_series - without)) <= tol
    # and the test can fail: the same comparison with the series cut to 1 + u
    monkeypatch.setattr(KI, "SERIES_LIMIT", 1e-3)
    monkeypatch.setattr(KI, "_below_output_losses", _truncated_series_kernel())
    truncated = gradient()
    assert np.max(np.abs(truncated - without)) > 100 * tol


def test_default_steps_from_theory():
    e64, e32 = EPS64, float(np.finfo(np.float32).eps)
    assert gb.default_step("forward", "float64") == pytest.approx(e64 ** 0.5)
    assert gb.default_step("central", "float64") == pytest.approx(e64 ** (1 / 3))
    assert gb.default_step("five_point", "float32") == pytest.approx(e32 ** 0.2)
    assert gb.default_step("complex_step", "float64") == 1e-20
    assert attainable_accuracy("central", "float64") == pytest.approx(e64 ** (2 / 3))


def test_step_scales_with_parameter_magnitude():
    # at |w| = 1000 the step is 1000 h: forward differences' error grows with it
    net, X, T = _scalar_net(0.0)
    net.params[1][...] = 0.0
    big = gb.MLP([1, 1], activation="identity", loss="mse")
    big.params[0][...] = 1000.0
    x, t = np.ones((1, 1)), np.full((1, 1), 1000.0)
    g = gb.numerical_gradient(big, x, t, "forward", h=1e-6)[0][0, 0]
    # f = 0.5 (w - 1000)^2, f'(1000) = 0, forward difference = step / 2 = 1000 h / 2
    assert g == pytest.approx(1000 * 1e-6 / 2, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"scheme": "backward"}, ValueError, "forward, central, five_point, complex_step"),
        ({"strategy": "smart"}, ValueError, "naive, incremental"),
        ({"h": 0.0}, ValueError, "positive and finite"),
        ({"h": -1e-3}, ValueError, "positive and finite"),
        ({"h": float("inf")}, ValueError, "positive and finite"),
        ({"h": float("nan")}, ValueError, "positive and finite"),
        ({"h": "1e-3"}, TypeError, "number or None"),
        ({"threads": 0}, ValueError, "threads must lie in 1.."),
        ({"threads": 10**6}, ValueError, "threads must lie in 1.."),
        ({"threads": 1.5}, TypeError, "whole number"),
    ],
)
def test_bad_options_are_refused(kwargs, exc, words):
    net = make_net([3, 2])
    X, T = batch_for(net, 2)
    with pytest.raises(exc, match=words):
        gb.numerical_gradient(net, X, T, **kwargs)
    with pytest.raises(exc, match=words):
        gb.gradient_check(net, X, T, **kwargs)


def test_complex_step_needs_float64():
    net = make_net([3, 2], dtype="float32")
    X, T = batch_for(net, 2)
    with pytest.raises(ValueError, match="complex_step needs a float64 network"):
        gb.numerical_gradient(net, X, T, scheme="complex_step")


@pytest.mark.skipif(not hasattr(KN.fd_naive_parallel, "py_func"), reason="JIT disabled")
def test_parallel_and_serial_drivers_are_distinct_functions():
    # Numba's disk cache keys entries by function and signature, not by the parallel flag:
    # one Python function compiled both ways would load whichever variant was cached first
    for module, name in ((KN, "fd_naive"), (KI, "fd_incremental")):
        par, ser = getattr(module, f"{name}_parallel"), getattr(module, f"{name}_serial")
        assert par.py_func is not ser.py_func
        assert par.py_func.__qualname__ != ser.py_func.__qualname__
        assert par.targetoptions.get("parallel") and not ser.targetoptions.get("parallel")


#: In a fresh process and an empty cache (a driver loaded from the cache compiles no worker):
#: the job types the naive worker was compiled for, after both drivers ran.
WORKER_JOBS_SCRIPT = """
import gradbench as gb
from gradbench.kernels import naive
net = gb.MLP([4, 3, 2], activation="tanh")
X, T = gb.make_batch(net, 3)
for threads in (1, 2):
    gb.numerical_gradient(net, X, T, "central", threads=threads)
print(sorted({str(sig[5]) for sig in naive.fd_naive_worker.signatures}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(KN.fd_naive_parallel, "py_func"), reason="JIT disabled")
def test_serial_and_parallel_drivers_share_one_compiled_worker(tmp_path):
    # both pass the worker a job of one type (four int64), so it compiles once for both: a
    # literal in the parallel driver's job made a second signature, 1.5 s more compiling for
    # each dtype and scheme
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_NUM_THREADS": "2"}
    res = subprocess.run([sys.executable, "-c", WORKER_JOBS_SCRIPT], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split("\n")[-2] == "['UniTuple(int64 x 4)']", res.stdout


#: Steps where each scheme's truncation error dominates rounding by far on a small network.
TRUNCATION_STEPS = {"forward": 1e-2, "central": 1e-1, "five_point": 2e-1, "complex_step": 2e-1}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_order_is_the_measured_order_of_convergence(scheme):
    # the error against backprop on a small smooth network, at h, h/2, h/4, h/8: each halving
    # divides it by 2**p, p the order scheme_order claims (measured, not read from its table)
    net = make_net([3, 4, 2], activation="tanh", loss="softmax_ce")
    X, T = batch_for(net, 3)
    exact = np.concatenate([g.ravel() for g in gb.backprop(net, X, T)])
    hs = TRUNCATION_STEPS[scheme] * 2.0 ** -np.arange(4)
    errs = np.array([np.max(np.abs(np.concatenate([g.ravel() for g in gb.numerical_gradient(
        net, X, T, scheme, h)]) - exact)) for h in hs])
    measured = np.log2(errs[:-1] / errs[1:])
    p = gb.gradients.scheme_order(scheme)
    assert np.all(np.abs(measured - p) < 0.2) and abs(measured[-1] - p) < 0.05, measured


def test_public_helpers_of_the_schemes():
    assert gb.gradients.step_multipliers("five_point").tolist() == [1.0, -1.0, 2.0, -2.0]
    assert gb.gradients.step_multipliers("complex_step").tolist() == [1j]
    gb.gradients.step_multipliers("central")[0] = 7.0  # a copy
    assert gb.gradients.step_multipliers("central").tolist() == [1.0, -1.0]
    assert gb.gradients.step_size("central", "float32") == gb.default_step("central", "float32")
    assert gb.gradients.step_size("forward", "float64", 1e-4) == 1e-4
    for bad in (lambda: gb.gradients.scheme_order("backward"),
                lambda: gb.gradients.step_multipliers("backward"),
                lambda: gb.gradients.step_size("backward", "float64")):
        with pytest.raises(ValueError, match="unknown scheme"):
            bad()
    with pytest.raises(ValueError, match="positive and finite"):
        gb.gradients.step_size("central", "float64", -1.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_at_a_flat_parameter_vector(dtype):
    net = make_net([5, 4, 3], dtype=dtype)
    X, T = batch_for(net, 4)
    Xp, Tp = prepared(net, X, T)
    theta = net._flat.copy()
    f0 = gb.loss(net, X, T)
    assert gb.gradients.loss_flat(net, theta, Xp, Tp) == f0
    theta[3] += 0.25  # W1[0, 3]
    moved = gb.gradients.loss_flat(net, theta, Xp, Tp)
    assert moved != f0 and gb.loss(net, X, T) == f0  # the network's own parameters unused
    net.params[0][0, 3] += 0.25
    assert moved == gb.loss(net, X, T)
