"""The NumPy textbook peer (provider "numpy"): gradbench.reference's backprop and its
central-difference loop, the code a course or a blog post would have you write.

Threads: NumPy's BLAS runs every matrix product; threadpoolctl limits it to the case's threads
(the loop itself is one Python thread).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import threadpoolctl

from .. import reference
from ..blas import blas_threads
from ..gradients import default_step
from ..model import MLP, flat_params, prepare_batch
from . import agreement


def configure_process(threads: int) -> dict:
    from . import limit_blas

    limit_blas(threads)
    return describe(threads)


def describe(threads: int) -> dict:
    libs = threadpoolctl.threadpool_info()
    blas = "; ".join(f"{Path(d.get('filepath', '?')).parent.name}: {d.get('internal_api')} "
                     f"{d.get('version')} at {d.get('num_threads')} threads"
                     for d in libs if d.get("user_api") == "blas")
    return {"library": f"numpy {np.__version__}",
            "thread_control": f"BLAS limited to {threads} threads with threadpoolctl ({blas})"}


def warm(net: MLP, threads: int, batch: int | None = None) -> float:
    """Nothing to compile: one call on a tiny network touches the code paths."""
    tiny = MLP([2, 2, 2], activation=net.activation, loss=net.loss, dtype=net.dtype,
               output_activation=net.output_activation)
    X, T = np.zeros((1, 2), dtype=net.dtype), np.zeros((1, 2), dtype=net.dtype)
    t0 = time.perf_counter()
    reference.backprop(tiny, tiny.params, X, T)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- backprop


def build_backprop(net: MLP, X, T, threads: int):
    Xp, Tp = prepare_batch(net, X, T)
    return lambda: reference.backprop(net, net.params, Xp, Tp)


def gradient_backprop(net: MLP, threads: int):
    def fn(X, T):
        Xp, Tp = prepare_batch(net, X, T)
        with blas_threads(threads):
            return reference.backprop(net, net.params, Xp, Tp)

    return fn


def tolerance_backprop(net, X, T, loss, ours, fn):
    return agreement.analytic(net, len(X), loss)


# ----------------------------------------------------------------------------- central


def build_central(net: MLP, X, T, threads: int):
    Xp, Tp = prepare_batch(net, X, T)
    h = default_step("central", net.dtype)
    return lambda: reference.numerical_gradient(net, net.params, Xp, Tp, h)


def gradient_central(net: MLP, threads: int):
    h = default_step("central", net.dtype)

    def fn(X, T):
        Xp, Tp = prepare_batch(net, X, T)
        with blas_threads(threads):
            return reference.numerical_gradient(net, net.params, Xp, Tp, h)

    return fn


def tolerance_central(net, X, T, loss, ours, fn):
    # the loop moves parameter i by h max(1, |theta_i|) and divides by the step applied
    theta = flat_params(net).astype(np.float64)
    steps = default_step("central", net.dtype) * np.maximum(1.0, np.abs(theta))
    return agreement.finite_difference(net, len(X), (loss, theta, ours), "central", steps,
                                       exact_divisor=True)
