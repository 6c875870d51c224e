"""The numdifftools peer (provider "numdifftools"): ``numdifftools.Gradient`` of the NumPy
textbook loss (gradbench.reference) as a function of the flat parameters, with its defaults.

Its defaults: central differences ``(f(x + h e_i) - f(x - h e_i)) / (2h)`` at 15 steps per
parameter (MaxStepGenerator: from 2 max(log(e + |x_i|), 1) down by factors of 2), combined by
Richardson extrapolation (two terms), the best estimate kept per parameter: 30 N + 1 loss
evaluations (gradbench.methods.NUMDIFFTOOLS_STEPS; the cost model uses that count). It works
in float64 only.

Its bound against our backprop: Richardson extrapolation followed by Wynn's epsilon
algorithm (dea3) is nonlinear, so no bound follows from the scheme alone. The truncation part
is numdifftools' own error estimate of each entry (from the spread of successive
extrapolations, with its safety factor); the rounding part is that of the central differences
it combines (gradbench.peers.agreement), at the smallest step they can use (its final step
over the step ratio to the power of the Richardson terms), times the sum of the magnitudes
of the Richardson weights, which sum to 1.

Threads: NumPy's BLAS runs the loss's matrix products; threadpoolctl limits it to the case's
threads.
"""

from __future__ import annotations

import time

import numdifftools as nd
import numpy as np

from .. import reference
from ..blas import blas_threads
from ..gradients import unflatten
from ..model import MLP, flat_params, prepare_batch
from . import agreement


def configure_process(threads: int) -> dict:
    from . import limit_blas

    limit_blas(threads)
    return describe(threads)


def describe(threads: int) -> dict:
    return {"library": f"numdifftools {nd.__version__} (numpy {np.__version__})",
            "thread_control": f"BLAS limited to {threads} threads with threadpoolctl"}


def _float64(net):
    if net.dtype != np.float64:
        raise ValueError("numdifftools:gradient needs a float64 network (numdifftools works "
                         "in float64)")


def warm(net: MLP, threads: int, batch: int | None = None) -> float:
    t0 = time.perf_counter()
    nd.Gradient(lambda x: float(x @ x))(np.ones(2))
    return time.perf_counter() - t0


class _Gradient:
    """numdifftools.Gradient of the textbook loss at the network's parameters; after a call,
    ``final_step`` and ``error_estimate`` (per parameter) and ``rule`` (the Richardson
    weights) of that call."""

    def __init__(self, net: MLP, Xp, Tp):
        def f(theta):
            return reference.loss(net, unflatten(net, theta), Xp, Tp)

        self.net = net
        self.estimator = nd.Gradient(f, full_output=True)
        self.final_step = self.error_estimate = self.rule = None

    def __call__(self):
        theta = flat_params(self.net).copy()
        result = self.estimator(theta)  # an EstimateResult, with full_output=True
        value = result.estimate
        self.final_step = np.asarray(result.final_step, dtype=np.float64).reshape(-1)
        self.error_estimate = np.asarray(result.error_estimate, dtype=np.float64).reshape(-1)
        self.rule = np.asarray(self.estimator.richardson.rule(), dtype=np.float64)
        self.ratio = float(self.estimator.richardson.step_ratio)
        self.terms = int(self.estimator.richardson.num_terms)
        return unflatten(self.net, np.asarray(value, dtype=np.float64).reshape(-1))


def build_gradient(net: MLP, X, T, threads: int):
    _float64(net)
    return _Gradient(net, *prepare_batch(net, X, T))


def gradient_gradient(net: MLP, threads: int):
    _float64(net)

    def fn(X, T):
        with blas_threads(threads):
            return _Gradient(net, *prepare_batch(net, X, T))()

    return fn


def tolerance_gradient(net, X, T, loss, ours, fn):
    """``fn`` is the _Gradient whose result is checked (it has been called)."""
    theta = flat_params(net).astype(np.float64)
    smallest = fn.final_step / fn.ratio ** fn.terms
    rounding = agreement.finite_difference(net, len(X), (loss, theta, ours), "central",
                                           smallest, exact_divisor=False, truncation=False)
    return fn.error_estimate + float(np.abs(fn.rule).sum()) * rounding
