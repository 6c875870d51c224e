"""Loss and backprop kernels against the plain NumPy reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import gradbench as gb
from gradbench import reference as R
from gradbench.gradients import _bundle
from gradbench.kernels import backprop as KB
from gradbench.kernels import checks as KC
from gradbench.kernels import expo as KE
from gradbench.kernels import forward as KF

from .conftest import batch_for, make_net, prepared, rounding_tol

ACTS = ["sigmoid", "relu", "tanh", "identity"]

architectures = st.lists(st.integers(1, 9), min_size=2, max_size=5)


def _close(a, b, tol):
    scale = max(1.0, float(np.max(np.abs(b))))
    assert float(np.max(np.abs(np.asarray(a, np.float64) - b))) <= tol * scale


@settings(deadline=None)
@given(
    sizes=architectures,
    activation=st.sampled_from(ACTS),
    loss=st.sampled_from(["softmax_ce", "mse"]),
    out_act=st.sampled_from(ACTS),
    dtype=st.sampled_from(["float32", "float64"]),
    B=st.integers(1, 7),
    seed=st.integers(0, 2**16),
)
def test_loss_and_backprop_match_reference(sizes, activation, loss, out_act, dtype, B, seed):
    out_act = out_act if loss == "mse" else "identity"
    net = make_net(sizes, activation, loss, dtype, seed=seed, output_activation=out_act)
    X, T = batch_for(net, B, seed=seed + 1)
    Xp, Tp = prepared(net, X, T)
    # the reference in float64: the oracle is exact to float64 rounding
    p64 = [p.astype(np.float64) for p in net.params]
    X64, T64 = Xp.astype(np.float64), Tp.astype(np.float64)
    tol = rounding_tol(net, B)

    f = gb.loss(net, X, T)
    assert isinstance(f, float)
    _close(f, R.loss(net, p64, X64, T64), tol)

    grads = gb.backprop(net, X, T)
    ref = R.backprop(net, p64, X64, T64)
    assert [g.shape for g in grads] == [p.shape for p in net.params]
    assert all(g.dtype == net.dtype for g in grads)
    for g, r in zip(grads, ref, strict=True):
        _close(g, r, tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_classic_network_matches_reference(dtype):
    net = gb.MLP([784, 50, 10], dtype=dtype, scale=0.1)
    X, T = batch_for(net, 100)
    Xp, Tp = prepared(net, X, T)
    tol = rounding_tol(net, 100)
    p64 = [p.astype(np.float64) for p in net.params]
    _close(gb.loss(net, X, T), R.loss(net, p64, Xp.astype(float), Tp.astype(float)), tol)
    for g, r in zip(gb.backprop(net, X, T), R.backprop(net, p64, Xp.astype(float),
                                                         Tp.astype(float)), strict=True):
        _close(g, r, tol)


def test_softmax_ce_is_stable_for_huge_logits():
    net = make_net([2, 3], activation="identity")
    net.params[0][...] = [[1e3, -1e3, 0], [0, 0, 0]]
    X, T = np.array([[1.0, 0.0]]), np.array([1])
    assert gb.loss(net, X, T) == pytest.approx(2000.0, rel=1e-12)
    g = gb.backprop(net, X, T)
    assert np.all(np.isfinite(g[0]))
    assert g[1].tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_labels_equal_one_hot():
    net = make_net([4, 3, 5])
    X, labels = batch_for(net, 6)
    onehot = np.eye(5)[labels]
    assert gb.loss(net, X, labels) == gb.loss(net, X, onehot)
    for a, b in zip(gb.backprop(net, X, labels), gb.backprop(net, X, onehot), strict=True):
        assert np.array_equal(a, b)


def test_relu_derivative_at_zero_is_zero():
    net = make_net([1, 1, 1], activation="relu", loss="mse")
    net.params[0][...] = 1.0  # z1 = x = 0 exactly
    g = gb.backprop(net, np.zeros((1, 1)), np.ones((1, 1)))
    assert g[0][0, 0] == 0.0 and g[1][0] == 0.0


@pytest.mark.parametrize("kernel", ["loss_kernel", "backprop_kernel"])
def test_pure_python_path_matches_jit(kernel):
    net = make_net([5, 4, 3], activation="relu", dtype="float64")
    X, T = prepared(net, *batch_for(net, 3))
    jit = getattr(KF if kernel == "loss_kernel" else KB, kernel)
    py = getattr(jit, "py_func", jit)  # with NUMBA_DISABLE_JIT=1 both are the Python body
    args = (net._flat, X, T, _bundle(net))
    if kernel == "loss_kernel":
        assert py(*args) == pytest.approx(jit(*args), rel=1e-13)
    else:
        g1, g2 = np.empty_like(net._flat), np.empty_like(net._flat)
        jit(*args, g1)
        py(*args, g2)
        np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-15)


def test_nothing_is_modified():
    net = make_net([6, 5, 4], activation="relu")
    X, T = batch_for(net, 5)
    X = np.asfortranarray(X)  # a layout the wrapper must copy, not rearrange in place
    saved = [p.copy() for p in net.params], X.copy(), T.copy()
    for f in (gb.loss, gb.backprop, gb.numerical_gradient, gb.gradient_check):
        f(net, X, T)
    gb.numerical_gradient(net, X, T, scheme="complex_step", strategy="incremental")
    assert all(np.array_equal(a, b) for a, b in zip(saved[0], net.params, strict=True))
    assert np.array_equal(saved[1], X) and np.array_equal(saved[2], T)
    assert X.flags.f_contiguous


BAD_INPUTS = [
    (lambda X, T: (X[:, :-1], T), ValueError, r"shape \(batch, 4\)"),
    (lambda X, T: (X[0], T), ValueError, r"shape \(batch, 4\)"),
    (lambda X, T: (X[:0], T[:0]), ValueError, "no samples"),
    (lambda X, T: (X, T[:-1]), ValueError, "labels have"),
    (lambda X, T: (X, T + 3), ValueError, r"labels must lie in 0..2"),
    (lambda X, T: (X, T - 1 - T.max()), ValueError, r"labels must lie in 0..2"),
    (lambda X, T: (X, T.astype(float)), TypeError, "must be integers"),
    (lambda X, T: (X, np.eye(3)[T][:, :2]), ValueError, r"T must have shape \(5, 3\)"),
    (lambda X, T: (X.astype(complex), T), TypeError, "real numbers"),
    (lambda X, T: (X.astype(str), T), TypeError, "real numbers"),
    (lambda X, T: (X > 0, T), TypeError, "real numbers"),
    (lambda X, T: (np.where(X > 1, np.nan, X), T), ValueError, "X contains NaN or inf"),
    (lambda X, T: (np.where(X > 1, np.inf, X), T), ValueError, "X contains NaN or inf"),
    (lambda X, T: (X, np.where(np.eye(3)[T] > 0, np.inf, 0)), ValueError, "T contains NaN"),
]


@pytest.mark.parametrize("make, exc, words", BAD_INPUTS)
@pytest.mark.parametrize("fn", [gb.loss, gb.backprop, gb.numerical_gradient, gb.gradient_check])
def test_bad_batches_are_refused(fn, make, exc, words):
    net = make_net([4, 3, 3])
    X, T = batch_for(net, 5, seed=2)
    X[0, 0] = 2.0  # at least one entry above 1 for the NaN/inf cases
    Xb, Tb = make(X, T)
    with pytest.raises(exc, match=words):
        fn(net, Xb, Tb)


def test_nan_params_are_refused():
    net = make_net([4, 3])
    X, T = batch_for(net, 2)
    net.params[1][0] = np.nan
    with pytest.raises(ValueError, match="net.params contain NaN"):
        gb.backprop(net, X, T)


def test_wrong_param_shapes_are_refused():
    net = make_net([4, 3])
    X, T = batch_for(net, 2)
    net.params[0] = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"W1 has shape \(3, 4\), expected \(4, 3\)"):
        gb.loss(net, X, T)
    with pytest.raises(TypeError, match="gradbench.MLP"):
        gb.loss("net", X, T)


def test_check_finite_false_skips_only_the_nan_scan():
    net = make_net([4, 3, 3])
    X, T = batch_for(net, 5)
    assert gb.loss(net, X, T, check_finite=False) == gb.loss(net, X, T)
    for a, b in zip(gb.backprop(net, X, T, check_finite=False), gb.backprop(net, X, T),
                    strict=True):
        assert np.array_equal(a, b)
    Xn = X.copy()
    Xn[1, 2] = np.nan
    assert np.isnan(gb.loss(net, Xn, T, check_finite=False))  # no scan, no error: NaN out
    with pytest.raises(ValueError, match="X contains NaN"):
        gb.loss(net, Xn, T)
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):  # shapes still checked
        gb.backprop(net, X[:, :3], T, check_finite=False)
    with pytest.raises(ValueError, match="labels must lie"):
        gb.backprop(net, X, T + 5, check_finite=False)


# ----------------------------------------------------------------------------- exp, finiteness


@njit(cache=False)
def _exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = KE._exp_real(x[i])


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (-40.0, 40.0), (-745.2, 709.8),
                                       (-800.0, 800.0)])
def test_exp_matches_numpy(low, high):
    """The sigmoid's exp against np.exp: a correctly rounded exp is within 0.5 ulp of the
    truth and a faithful one within 1; ours is the second kind (13 roundings on a value
    near 1, each at most half an ulp, damped by |r| <= 0.35 except the last two)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(low, high, 200_000), [low, high, 0.0, -0.0]])
    out = np.empty_like(x)
    _exp_all(x, out)
    with np.errstate(over="ignore"):
        ref = np.exp(x)
    normal = np.isfinite(ref) & (ref >= np.finfo(np.float64).tiny)
    ulps = np.abs(out[normal] - ref[normal]) / np.spacing(ref[normal])
    assert ulps.max() <= 1.0
    assert np.array_equal(np.isinf(out), np.isinf(ref))  # overflow where numpy's does
    sub = ~normal & np.isfinite(ref)  # underflow: subnormal or 0, within one subnormal step
    assert np.all(np.abs(out[sub] - ref[sub]) <= np.spacing(0.0) * 2)


def test_exp_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0])
    out = np.empty_like(x)
    _exp_all(x, out)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == 0.0
    assert out[3] == 1.0 and out[4] == 1.0


@pytest.mark.parametrize("where", ["X", "W1", "b1", "W2", "b2", "T"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("f", [gb.loss, gb.backprop])
def test_nonfinite_inputs_are_found_without_a_scan(where, value, f):
    """A NaN or inf anywhere is refused even where the sigmoid would hide it (inf saturates
    to 1), with the message naming where it is: the kernels flag it, the scan only names it."""
    net = make_net([4, 3, 2], activation="sigmoid", loss="mse", dtype="float64")
    X, T = batch_for(net, 5)
    T = np.asarray(np.eye(2)[T] if T.ndim == 1 else T, dtype=np.float64)
    X = np.array(X, dtype=np.float64)
    target = {"X": X, "T": T, "W1": net.params[0], "b1": net.params[1], "W2": net.params[2],
              "b2": net.params[3]}[where]
    target.reshape(-1)[1] = value
    name = {"X": "X contains", "T": "T contains"}.get(where, "net.params contain")
    with pytest.raises(ValueError, match=name):
        f(net, X, T)


def test_clean_inputs_are_not_scanned(monkeypatch):
    from gradbench import gradients, model

    net = make_net([6, 5, 3], activation="sigmoid")
    X, T = batch_for(net, 4)
    expected = gb.loss(net, X, T), gb.backprop(net, X, T)

    def no_scan(a):
        raise AssertionError("scanned")

    monkeypatch.setattr(model, "_all_finite", no_scan)
    assert gb.loss(net, X, T) == expected[0]
    for a, b in zip(gb.backprop(net, X, T), expected[1], strict=True):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(gradients, "_name_nonfinite", no_scan)
    gb.loss(net, X, T)


def test_overflow_from_finite_inputs_is_a_result_not_an_error():
    """Finite inputs whose product overflows to inf: flagged, scanned, found clean, and the
    value computed stands (the sigmoid saturates), as with check_finite=False."""
    net = make_net([2, 2, 2], activation="sigmoid", loss="mse", dtype="float64")
    net.params[0][...] = 1e300
    X = np.array([[1e300, 1e300]])
    T = np.zeros((1, 2))
    assert gb.loss(net, X, T) == gb.loss(net, X, T, check_finite=False)
    assert np.isfinite(gb.loss(net, X, T))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
@pytest.mark.parametrize("B, n_classes", [(1, 2), (7, 3), (100, 10)])
def test_one_hot_matches_numpy(dtype, B, n_classes):
    labels = np.random.default_rng(B).integers(0, n_classes, B).astype(dtype)
    out = np.zeros((B, n_classes))
    assert KC.one_hot(labels, out)
    np.testing.assert_array_equal(out, np.eye(n_classes)[labels])
    bad = labels.copy()
    bad[-1] = n_classes
    assert not KC.one_hot(bad, np.zeros((B, n_classes)))


@pytest.mark.parametrize("width", [1, 3, 16])
@pytest.mark.parametrize("scheme", ["central", "five_point", "complex_step"])
def test_naive_width_changes_nothing(monkeypatch, width, scheme):
    """However many perturbed networks share a product (the last group partial or not),
    each loss is the same computation: the gradient matches one network at a time to the
    rounding of two finite-difference results, eps |L| / h per parameter (or bit for bit)."""
    from gradbench import costmodel

    net = make_net([5, 4, 3], activation="sigmoid")
    X, T = batch_for(net, 6)
    monkeypatch.setattr(costmodel, "NAIVE_WIDTH", 1)
    one = np.concatenate([g.ravel() for g in gb.numerical_gradient(net, X, T, scheme)])
    monkeypatch.setattr(costmodel, "NAIVE_WIDTH", width)
    assert costmodel.naive_width(net.sizes, 8) == width
    wide = np.concatenate([g.ravel() for g in gb.numerical_gradient(net, X, T, scheme)])
    L = abs(gb.loss(net, X, T))
    h = gb.default_step(scheme, "float64")
    tol = 4 * np.finfo(np.float64).eps * max(L, 1.0) / h
    np.testing.assert_allclose(wide, one, rtol=0, atol=tol)
