"""The gradient check and the directional check."""

import ast
import pathlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradbench as gb
from gradbench import check as C
from gradbench.gradients import SCHEMES
from gradbench.kernels import forward as KF

from .conftest import batch_for, make_net, one_thread_for

COLUMNS = ["tensor", "shape", "size", "max_rel_err", "median_rel_err", "max_abs_err",
           "worst_index", "worst_analytic", "worst_numerical", "n_over", "threshold", "scheme",
           "h", "dtype", "passed", "near_kink"]


def test_table_has_one_row_per_tensor(classic_small):
    net, X, T = classic_small
    df = gb.gradient_check(net, X, T)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == COLUMNS
    assert df["tensor"].tolist() == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert df["shape"].tolist() == [p.shape for p in net.params]
    assert df["size"].sum() == net.num_params
    assert df["passed"].all() and df.attrs["passed"]
    assert df["near_kink"].isna().all()  # no relu, no kinks
    for key in ("analytic_seconds", "numerical_seconds", "ratio", "compile_seconds", "loss"):
        assert df.attrs[key] >= 0
    assert df.attrs["loss"] == pytest.approx(gb.loss(net, X, T), rel=1e-12)


class _Clock:
    """A stand-in for the time module: the code under test "runs" by advancing it."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_times_and_their_ratio_on_a_known_clock(monkeypatch, classic_small):
    # backprop "takes" 1 ms a call and the numerical gradient 2.5 s: the check must report
    # exactly these (the median of repeated backprop calls, the gradient timed once) and
    # their ratio, 2500
    net, X, T = classic_small
    clock = _Clock()
    monkeypatch.setattr(C, "time", clock)
    real_backprop, real_numerical = C.backprop_flat, C.numerical_gradient_flat

    def backprop(*args, **kwargs):
        clock.now += 1e-3
        return real_backprop(*args, **kwargs)

    def numerical(*args, **kwargs):
        clock.now += 2.5
        return real_numerical(*args, **kwargs)

    monkeypatch.setattr(C, "backprop_flat", backprop)
    monkeypatch.setattr(C, "numerical_gradient_flat", numerical)
    a = gb.gradient_check(net, X, T).attrs
    assert a["analytic_seconds"] == pytest.approx(1e-3, rel=1e-9)
    assert a["numerical_seconds"] == pytest.approx(2.5, rel=1e-9)
    assert a["ratio"] == pytest.approx(2500, rel=1e-9)


def _one_call(fn, *args, **kwargs) -> float:
    fn()
    return 1.0


@settings(deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    activation=st.sampled_from(["sigmoid", "tanh", "identity", "relu"]),
    loss=st.sampled_from(["softmax_ce", "mse"]),
    dtype=st.sampled_from(["float32", "float64"]),
    scheme=st.sampled_from(SCHEMES),
    seed=st.integers(0, 1000),
)
def test_correct_gradients_pass(sizes, activation, loss, dtype, scheme, seed):
    if scheme == "complex_step":
        dtype = "float64"
    net = make_net(sizes, activation, loss, dtype, seed=seed)
    X, T = batch_for(net, 3, seed=seed)
    with pytest.MonkeyPatch.context() as m:
        # correctness only: one backprop call instead of 0.2 s of timing loops per example
        m.setattr(C, "_median_call_seconds", _one_call)
        df = gb.gradient_check(net, X, T, scheme=scheme, threads=one_thread_for(dtype))
    if activation == "relu":
        # a step that crosses relu's kink is a true disagreement; only rows whose layer has
        # no pre-activation within reach of the step must pass
        assert df.loc[df["near_kink"] == 0, "passed"].all()
    else:
        assert df["passed"].all(), df.to_string()


def test_threshold_from_dtype_and_scheme():
    e64 = np.finfo(np.float64).eps
    assert C.threshold("central", "float64") == pytest.approx(e64 ** (1 / 3))
    assert C.threshold("complex_step", "float64") == pytest.approx(e64 ** 0.5)
    assert C.threshold("forward", "float32") > C.threshold("central", "float32") > \
        C.threshold("five_point", "float32") > C.threshold("central", "float64")


def test_a_wrong_gradient_fails_on_its_tensor(monkeypatch, classic_small):
    net, X, T = classic_small
    real = C.backprop_flat

    def broken(net, theta, X, T):
        f, grad = real(net, theta, X, T)
        grad[net.layout[1, 1] + 2] *= 1.01  # b2[2] off by 1 %
        return f, grad

    monkeypatch.setattr(C, "backprop_flat", broken)
    df = gb.gradient_check(net, X, T).set_index("tensor")
    assert not df.loc["b2", "passed"]
    assert df.loc["b2", "n_over"] == 1
    assert df.loc["b2", "worst_index"] == (2,)
    assert df.loc["b2", "max_rel_err"] == pytest.approx(0.01 / 1.01, rel=1e-3)
    assert df.drop(index="b2")["passed"].all()
    assert not df.attrs["passed"]


def test_relu_kinks_are_counted():
    net = make_net([3, 4, 2], activation="relu")
    X, T = batch_for(net, 5)
    X[0] = 0.0  # z1 of sample 0 is b1 = 0: on the kink
    df = gb.gradient_check(net, X, T)
    assert df["near_kink"].tolist() == [df["near_kink"][0]] * 2 + [0, 0]
    assert df["near_kink"][0] >= 4


def test_directional_check_passes_and_catches_a_bug(monkeypatch, classic_small):
    net, X, T = classic_small
    res = gb.directional_check(net, X, T, seed=1)
    assert res.passed and res.rel_err <= res.threshold
    assert res.analytic == pytest.approx(res.numerical, rel=1e-6)
    real = C.backprop_flat

    def broken(net, theta, X, T):
        f, grad = real(net, theta, X, T)
        return f, grad * 1.001

    monkeypatch.setattr(C, "backprop_flat", broken)
    assert not gb.directional_check(net, X, T, seed=1).passed


def test_check_uses_public_entry_points_only():
    tree = ast.parse(pathlib.Path(C.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module != "kernels" and not any(a.name == "kernels" for a in node.names)
            assert not [a.name for a in node.names if a.name.startswith("_")], node.module
        assert not (isinstance(node, ast.Name) and node.id == "K")


#: In a fresh process: the numbers of compiled signatures of every kernel, after warm_up and
#: after the calls it warms up for (another network, same dtype, activation and loss).
WARM_UP_SCRIPT = """
import numpy as np
import gradbench as gb
from gradbench.check import warm_up  # the old import path
from gradbench.datasets import make_batch
from tests.kernelmods import kernel_modules

def compiled():
    return {(m.__name__, n): len(f.signatures) for m in kernel_modules()
            for n, f in vars(m).items() if hasattr(f, "signatures")}

def calls(net):
    X, T = make_batch(net, 3, seed=1)
    gb.loss(net, X, T)
    gb.backprop(net, X, T)
    gb.numerical_gradient(net, X, T, "five_point", strategy="incremental", threads=1)

kw = dict(activation="tanh", loss="softmax_ce")
before = compiled()
warm_up(gb.MLP([3, 2], dtype="float32", **kw), "five_point", "incremental", threads=1)
warmed = compiled()
calls(gb.MLP([6, 5, 4], dtype="float32", **kw))
after = compiled()
calls(gb.MLP([6, 5, 4], dtype="float64", **kw))  # not warmed up: compiles (the control)
print(warmed != before, after == warmed, compiled() != after)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(KF.loss_kernel, "signatures"), reason="JIT disabled")
def test_warm_up_compiles_everything_the_calls_then_need():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", WARM_UP_SCRIPT], capture_output=True,
                         text=True, timeout=600, cwd=pathlib.Path(__file__).parents[1])
    assert res.returncode == 0, res.stderr[-3000:]
    # warm_up compiled (or loaded) something; the calls that followed compiled nothing; a
    # dtype it did not warm up compiled more (so the count would have caught it)
    assert res.stdout.split() == ["True", "True", "True"], res.stdout


def test_threads_are_blas_and_numba_threads_of_the_check(monkeypatch, capsys):
    # --threads 1: backprop's BLAS (by default on every core) runs on one thread, as the
    # numerical kernels' does, and so does the loss that predicts the numerical time
    from gradbench.cli import main

    from .conftest import ThreadWatch

    watch = ThreadWatch()
    monkeypatch.setattr(C, "backprop_flat", watch.wrap(C.backprop_flat, "backprop"))
    monkeypatch.setattr(gb, "loss", watch.wrap(gb.loss, "loss"))
    rc = main(["check", "--sizes", "6,5,3", "--batch", "4", "--threads", "1"])
    assert rc == 0, capsys.readouterr()
    assert watch.names() == {"loss", "backprop"}
    assert watch.threads() == {(1, 1)}
