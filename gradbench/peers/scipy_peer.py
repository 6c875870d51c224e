"""The scipy peer (provider "scipy"): ``scipy.optimize.approx_fprime`` of the NumPy textbook
loss (gradbench.reference) as a function of the flat parameters.

approx_fprime takes **forward differences**: ``approx_derivative(f, x, method='2-point',
abs_step=epsilon, f0=f(x))``, ``(f(x + h e_i) - f(x)) / h`` with the absolute step
``epsilon = sqrt(float64 eps) = 1.49e-8`` for every parameter, dividing by the step actually
applied; N + 1 loss evaluations. It works in float64 only.

Threads: NumPy's BLAS runs the loss's matrix products; threadpoolctl limits it to the case's
threads.
"""

from __future__ import annotations

import time

import numpy as np
import scipy
from scipy.optimize import approx_fprime

from .. import reference
from ..blas import blas_threads
from ..gradients import unflatten
from ..model import MLP, flat_params, prepare_batch
from . import agreement

#: approx_fprime's default step.
EPSILON = float(np.sqrt(np.finfo(float).eps))

def configure_process(threads: int) -> dict:
    from . import limit_blas

    limit_blas(threads)
    return describe(threads)


def describe(threads: int) -> dict:
    return {"library": f"scipy {scipy.__version__} (numpy {np.__version__})",
            "thread_control": f"BLAS limited to {threads} threads with threadpoolctl"}


def _float64(net):
    if net.dtype != np.float64:
        raise ValueError("scipy:approx_fprime needs a float64 network: it works in float64 "
                         "with a step of 1.5e-8")


def warm(net: MLP, threads: int, batch: int | None = None) -> float:
    t0 = time.perf_counter()
    approx_fprime(np.zeros(2), lambda x: float(x @ x))
    return time.perf_counter() - t0


def _gradient(net, Xp, Tp):
    def f(theta):  # the textbook loss at flat parameters theta
        return reference.loss(net, unflatten(net, theta), Xp, Tp)

    return unflatten(net, approx_fprime(flat_params(net).copy(), f))


def build_approx_fprime(net: MLP, X, T, threads: int):
    _float64(net)
    Xp, Tp = prepare_batch(net, X, T)
    return lambda: _gradient(net, Xp, Tp)


def gradient_approx_fprime(net: MLP, threads: int):
    _float64(net)

    def fn(X, T):
        with blas_threads(threads):
            return _gradient(net, *prepare_batch(net, X, T))

    return fn


def tolerance_approx_fprime(net, X, T, loss, ours, fn):
    theta = flat_params(net).astype(np.float64)
    return agreement.finite_difference(net, len(X), (loss, theta, ours), "forward", EPSILON,
                                       exact_divisor=True)
