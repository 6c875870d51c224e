import numpy as np
import pytest

import gradbench as gb
from gradbench.model import flat_params, layout


def test_params_shapes_and_count():
    net = gb.MLP([784, 50, 10])
    assert [p.shape for p in net.params] == [(784, 50), (50,), (50, 10), (10,)]
    assert net.num_params == 784 * 50 + 50 + 50 * 10 + 10 == 39760
    assert all(p.dtype == np.float64 for p in net.params)
    assert net.tensor_names == ["W1", "b1", "W2", "b2"]


def test_params_are_writable_views():
    net = gb.MLP([3, 2])
    X, T = np.ones((1, 3)), np.array([0])
    before = gb.loss(net, X, T)
    net.params[0][...] = 1.0
    assert gb.loss(net, X, T) != before
    assert flat_params(net)[:6].tolist() == [1.0] * 6


def test_replaced_param_arrays_are_used():
    net = gb.MLP([3, 2])
    X, T = np.ones((1, 3)), np.array([1])
    ref = gb.MLP([3, 2])
    ref.params[0][...] = 0.5
    net.params[0] = np.full((3, 2), 0.5)
    assert gb.loss(net, X, T) == gb.loss(ref, X, T)


@pytest.mark.parametrize("init, std", [("he", lambda i, o: np.sqrt(2 / i)),
                                       ("xavier", lambda i, o: np.sqrt(2 / (i + o))),
                                       ("lecun", lambda i, o: np.sqrt(1 / i)),
                                       ("normal", lambda i, o: 0.01)])
def test_init_std(init, std):
    net = gb.MLP([400, 300], init=init, seed=3)
    W, b = net.params
    assert abs(W.std() / std(400, 300) - 1) < 0.02  # 120,000 draws: 1/sqrt(n) ~ 0.003
    assert not b.any()


def test_seed_reproducible_and_dtype():
    a = gb.MLP([5, 4, 3], seed=7, dtype="float32")
    b = gb.MLP([5, 4, 3], seed=7, dtype=np.float32)
    c = gb.MLP([5, 4, 3], seed=8, dtype="float32")
    assert all(np.array_equal(x, y) for x, y in zip(a.params, b.params, strict=True))
    assert not np.array_equal(a.params[0], c.params[0])
    assert a.params[0].dtype == np.float32


def test_layout_offsets():
    lay = layout([3, 4, 2])
    assert lay.tolist() == [[0, 12, 3, 4], [16, 24, 4, 2]]


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"sizes": [5]}, ValueError, "at least two"),
        ({"sizes": []}, ValueError, "at least two"),
        ({"sizes": [5, 0]}, ValueError, "at least 1"),
        ({"sizes": [5, -3]}, ValueError, "at least 1"),
        ({"sizes": [5, 2.5]}, TypeError, "whole numbers"),
        ({"sizes": [5, True]}, TypeError, "whole numbers"),
        ({"sizes": "784,10"}, TypeError, "list of layer widths"),
        ({"sizes": 10}, TypeError, "list of layer widths"),
        ({"sizes": [3, 2], "activation": "gelu"}, ValueError, "sigmoid, relu, tanh, identity"),
        ({"sizes": [3, 2], "loss": "hinge"}, ValueError, "softmax_ce, mse"),
        ({"sizes": [3, 2], "init": "orthogonal"}, ValueError, "normal, he, xavier, lecun"),
        ({"sizes": [3, 2], "dtype": "float16"}, ValueError, "float32, float64"),
        ({"sizes": [3, 2], "dtype": "banana"}, ValueError, "float32, float64"),
        ({"sizes": [3, 2], "scale": 0}, ValueError, "positive"),
        ({"sizes": [3, 2], "scale": float("nan")}, ValueError, "positive"),
        ({"sizes": [3, 2], "output_activation": "sigmoid"}, ValueError, "only to loss='mse'"),
    ],
)
def test_bad_network_specs(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        gb.MLP(**kwargs)


def test_output_activation_with_mse():
    net = gb.MLP([3, 2], loss="mse", output_activation="sigmoid")
    assert "output_activation='sigmoid'" in repr(net)


def test_sizes_too_large_for_memory_are_refused_before_allocating():
    from gradbench.model import available_memory

    free = available_memory()
    assert free is not None and free > 0
    side = int((free / 8) ** 0.5) * 2  # a square layer of 4x the memory available
    with pytest.raises(ValueError, match=r"would need [0-9,.]+ GiB of memory and .* available"):
        gb.MLP([side, side], dtype="float64")


# ----------------------------------------------------------------------------- OpenBLAS kernels


def test_openblas_coretype_rule():
    from gradbench._cpu import AVX512, openblas_coretype

    assert openblas_coretype("AuthenticAMD", AVX512 | {"avx2"}) == "SKYLAKEX"
    assert openblas_coretype("AuthenticAMD", {"avx2", "fma"}) is None  # Zen 2/3: AVX2 is right
    assert openblas_coretype("GenuineIntel", AVX512) is None  # OpenBLAS knows Intel's
    assert openblas_coretype("AuthenticAMD", AVX512 - {"avx512vl"}) is None


def test_openblas_coretype_respects_the_user_and_numpy(monkeypatch):
    import sys

    from gradbench import _cpu

    monkeypatch.setattr(_cpu, "_cpuinfo", lambda: ("AuthenticAMD", set(_cpu.AVX512)))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    assert _cpu.choose_openblas_coretype() is None  # numpy is loaded: too late to choose
    monkeypatch.delitem(sys.modules, "numpy")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert _cpu.choose_openblas_coretype() is None  # the user's choice stands
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    monkeypatch.setenv("GRADBENCH_OPENBLAS_CORETYPE", _cpu.OFF)
    assert _cpu.choose_openblas_coretype() is None
    monkeypatch.delenv("GRADBENCH_OPENBLAS_CORETYPE")
    assert _cpu.choose_openblas_coretype() == "SKYLAKEX"
    assert __import__("os").environ["OPENBLAS_CORETYPE"] == "SKYLAKEX"
