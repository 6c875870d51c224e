"""Gradient checks: how far numerical and analytic gradients agree, tensor by tensor.

The pass threshold follows from the dtype and the scheme. At its default step a scheme of
order p attains a relative accuracy of about ``acc = eps ** (p / (p + 1))`` (the complex step,
free of cancellation: ``eps``). A wrong gradient is off by a relative error of order 1. The
threshold sits halfway between the two on a log scale, ``sqrt(acc)``: float64 central
differences pass below 6.1e-6, float32 ones below 4.9e-3.

Relative error means nothing for entries whose gradient is at the level of the finite
difference's own absolute error, ``acc * S`` with ``S = max(1, |loss|)``: the default step
balances round-off against truncation on the assumption that the loss's higher derivatives
are of the size of the loss; we allow them ten times that. The relative error is therefore
``|a - n| / max(|a|, |n|, floor)`` with ``floor = 10 * acc * S / sqrt(acc)``, so that an entry
passes when ``|a - n| <= sqrt(acc) * max(|a|, |n|)`` or ``|a - n| <= 10 * acc * S``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .blas import thread_limits
from .gradients import (
    SCHEMES,
    FDOptions,
    backprop_flat,
    default_step,
    fd_options,
    loss_flat,
    numerical_gradient_flat,
    scheme_order,
    step_multipliers,
    step_size,
    warm_up,
)
from .model import MLP, flat_params, prepare_batch

__all__ = [
    "DirectionalCheck",
    "attainable_accuracy",
    "directional_check",
    "gradient_check",
    "step_curve",
    "threshold",
    "warm_up",  # lives in gradbench.gradients; imported from here by older callers
]


def attainable_accuracy(scheme: str, dtype) -> float:
    """Relative accuracy a scheme attains at its default step, in the given dtype."""
    p = scheme_order(scheme)
    eps = float(np.finfo(np.dtype(dtype)).eps)
    if scheme == "complex_step":
        return eps
    return eps ** (p / (p + 1))


def threshold(scheme: str, dtype) -> float:
    """Largest relative error that passes: sqrt of the attainable accuracy."""
    return float(np.sqrt(attainable_accuracy(scheme, dtype)))


#: How much larger than the loss the higher derivatives may be (see the module docstring).
DERIVATIVE_ALLOWANCE = 10.0


def _floor(acc: float, thr: float, f: float) -> float:
    """Denominator floor of the relative error: absolute tolerance / relative threshold."""
    return DERIVATIVE_ALLOWANCE * acc * max(1.0, abs(f)) / thr


def gradient_check(
    net: MLP,
    X,
    T,
    scheme: str = "central",
    h: float | None = None,
    *,
    strategy: str = "naive",
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> pd.DataFrame:
    """Compare the numerical gradient with backpropagation, one row per tensor.

    ``progress``, if given, is called as ``progress(done, total)`` (parameters) while the
    numerical gradient runs; see :func:`gradbench.gradients.numerical_gradient`. BLAS and
    Numba run on ``threads`` (default: Numba's setting) throughout, backprop included.

    Returns
    -------
    pandas.DataFrame
        Columns: tensor, shape, size, max_rel_err, median_rel_err, max_abs_err, worst_index,
        worst_analytic, worst_numerical, n_over, threshold, scheme, h, dtype, passed,
        near_kink (relu networks: pre-activations of the layer within reach of the step;
        <NA> otherwise). ``df.attrs`` holds ``analytic_seconds``, ``numerical_seconds``,
        ``ratio`` (numerical / analytic), ``loss`` and ``passed`` (all tensors). The analytic
        time is the median over repeated calls; the numerical gradient is timed once.
    """
    options = fd_options(net, scheme, h, strategy, threads)
    scheme, hval, _, n_threads = options
    theta = flat_params(net)
    Xp, Tp = prepare_batch(net, X, T)

    with thread_limits(n_threads):
        compile_seconds = warm_up(net, scheme, strategy, n_threads)
        f, ga = backprop_flat(net, theta, Xp, Tp)
        analytic_seconds = _median_call_seconds(lambda: backprop_flat(net, theta, Xp, Tp))
        t1 = time.perf_counter()
        gn = numerical_gradient_flat(net, theta, Xp, Tp, options, progress=progress)
        numerical_seconds = time.perf_counter() - t1

    acc = attainable_accuracy(scheme, net.dtype)
    thr = threshold(scheme, net.dtype)
    floor = _floor(acc, thr, f)
    kinks = _near_kink(net, theta, Xp, hval, scheme) if net.activation == "relu" else None

    rows = []
    for t, (lo, hi, shape) in enumerate(net.slices):
        l, name = t // 2, f"{'Wb'[t % 2]}{t // 2 + 1}"
        size = hi - lo
        a = ga[lo:hi].astype(np.float64)
        n = gn[lo:hi].astype(np.float64)
        err = np.abs(a - n)
        rel = err / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
        worst = int(np.argmax(rel))
        over = int(np.count_nonzero(rel > thr))
        rows.append(
            {
                "tensor": name,
                "shape": shape,
                "size": size,
                "max_rel_err": float(rel[worst]),
                "median_rel_err": float(np.median(rel)),
                "max_abs_err": float(err.max()),
                "worst_index": tuple(int(i) for i in np.unravel_index(worst, shape)),
                "worst_analytic": float(a[worst]),
                "worst_numerical": float(n[worst]),
                "n_over": over,
                "threshold": thr,
                "scheme": scheme,
                "h": hval,
                "dtype": net.dtype.name,
                "passed": over == 0,
                "near_kink": pd.NA if kinks is None else int(kinks[l]),
            }
        )
    df = pd.DataFrame(rows)
    df["near_kink"] = df["near_kink"].astype("Int64")
    df.attrs.update(
        analytic_seconds=analytic_seconds,
        numerical_seconds=numerical_seconds,
        ratio=numerical_seconds / analytic_seconds,
        compile_seconds=compile_seconds,
        loss=f,
        passed=bool(df["passed"].all()),
        attainable_accuracy=acc,
        strategy=strategy,
        threads=n_threads,
    )
    return df


def _median_call_seconds(fn, budget: float = 0.2, rounds: int = 7) -> float:
    """Median seconds per call over ``rounds`` loops that together last about ``budget``.

    One call of a sub-millisecond function is dominated by timer resolution and cold caches;
    the numerical gradient, seconds long, is timed once.
    """
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(budget / rounds / once))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return float(np.median(times))


def _near_kink(net: MLP, theta, X, h: float, scheme: str) -> list[int]:
    """Per layer l: hidden pre-activations a step of a layer-l parameter could push across
    relu's kink (the output layer has none).

    A step of size ``s = c * h * max(1, |theta|_layer)`` (c: the scheme's largest multiplier)
    moves ``z_l[b, :]`` by at most ``s * max(1, max_i |a_{l-1}[b, i]|)``. Activations are
    1-Lipschitz, so the change then reaches ``z_{l+1}[b, :]`` through one unit, scaled by at
    most ``max |W_{l+1}|``, and every later layer scaled by the largest column abs-sum of its
    weights. The count for layer l sums the pre-activations within those bounds in layers
    l, l+1, ... (a bound, so it may count some that a step does not actually cross).
    """
    from .reference import forward

    params = []
    for w_off, b_off, n_in, n_out in net.layout:
        params += [theta[w_off:b_off].reshape(n_in, n_out), theta[b_off : b_off + n_out]]
    zs, acts = forward(params, X, net.activation)
    c = float(np.abs(step_multipliers(scheme)).max())
    hidden = net.depth - 1
    counts = []
    for l in range(net.depth):
        W, b = params[2 * l], params[2 * l + 1]
        s = c * h * max(1.0, float(np.abs(W).max()), float(np.abs(b).max(initial=0.0)))
        reach = s * np.maximum(1.0, np.abs(acts[l]).max(axis=1))  # per sample
        n = 0
        for m in range(l, hidden):
            if m > l:
                Wm = np.abs(params[2 * m])
                reach = reach * (Wm.max() if m == l + 1 else Wm.sum(axis=0).max())
            n += int(np.count_nonzero(np.abs(zs[m]) <= reach[:, None]))
        counts.append(n)
    return counts


@dataclass(frozen=True)
class DirectionalCheck:
    """Outcome of :func:`directional_check`."""

    analytic: float  # v . grad, from backprop
    numerical: float  # (f(theta + h v) - f(theta - h v)) / (2 h)
    rel_err: float
    threshold: float
    h: float
    passed: bool


def directional_check(
    net: MLP, X, T, h: float | None = None, seed: int | None = 0
) -> DirectionalCheck:
    """Check backprop along one random unit direction: two loss evaluations whatever N.

    Compares ``v . grad`` with the central difference of the loss along v, as torch's fast
    gradcheck and jax's ``check_grads`` do. The step is ``h * max(1, |theta|_inf)``.
    """
    hval = step_size("central", net.dtype, h)
    theta = flat_params(net)
    Xp, Tp = prepare_batch(net, X, T)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(theta.shape[0])
    v /= np.linalg.norm(v)

    f, g = backprop_flat(net, theta, Xp, Tp)
    hp = hval * max(1.0, float(np.abs(theta).max()))
    tp = (theta + hp * v).astype(net.dtype)
    tm = (theta - hp * v).astype(net.dtype)
    fp = loss_flat(net, tp, Xp, Tp)
    fm = loss_flat(net, tm, Xp, Tp)
    # divide by the displacement actually applied along v
    step = float(np.dot(tp.astype(np.float64) - tm.astype(np.float64), v))
    numerical = (fp - fm) / step
    analytic = float(np.dot(g.astype(np.float64), v))
    thr = threshold("central", net.dtype)
    floor = _floor(attainable_accuracy("central", net.dtype), thr, f)
    rel = abs(analytic - numerical) / max(abs(analytic), abs(numerical), floor)
    return DirectionalCheck(analytic, numerical, rel, thr, hval, bool(rel <= thr))


#: Steps of the error-against-step curve: 1e-20 to 1 in steps of a quarter decade.
CURVE_STEPS = tuple(10.0 ** (e / 4) for e in range(-80, 1))


def step_curve(
    sizes=(16, 8, 4),
    batch: int = 8,
    *,
    steps=CURVE_STEPS,
    schemes=SCHEMES,
    dtypes=("float32", "float64"),
    seed: int = 0,
) -> pd.DataFrame:
    """Error of each scheme's numerical gradient against its step h: the V curve of
    truncation (large h) against round-off (small h), for each dtype.

    One sigmoid network with softmax cross-entropy, its parameters rounded to float32 for
    every dtype so that all curves differentiate the same function. The error is normwise,
    ``max |numerical - exact| / max |exact|``, where ``exact`` is backprop in float64 (for
    float32 too: the float32 backprop carries round-off of its own). Complex step is float64
    only.

    Returns
    -------
    pandas.DataFrame
        Columns: scheme, dtype, h, error, default_h (the scheme's default step, the same in
        every row of a curve; one row of each curve has it as its h).
    """
    from .datasets import make_batch

    base = MLP(list(sizes), activation="sigmoid", loss="softmax_ce", dtype="float32",
               seed=seed, scale=0.5)

    def network(dtype):  # base's parameters, in dtype
        net = MLP(list(sizes), activation="sigmoid", loss="softmax_ce", dtype=dtype)
        for p, q in zip(net.params, base.params, strict=True):
            p[...] = q
        return net

    X, T = make_batch(base, batch, seed=seed)
    net64 = network("float64")
    X64, T64 = prepare_batch(net64, X.astype(np.float64), T)
    exact = backprop_flat(net64, flat_params(net64), X64, T64)[1]
    scale = float(np.abs(exact).max())
    rows = []
    for dtype in dtypes:
        net = network(dtype)
        theta = flat_params(net)
        Xd, Td = prepare_batch(net, X.astype(dtype), T)
        for scheme in schemes:
            if scheme == "complex_step" and dtype != "float64":
                continue
            default = default_step(scheme, dtype)
            for h in sorted({*steps, default}):  # the default step itself is on the curve
                g = numerical_gradient_flat(net, theta, Xd, Td,
                                            FDOptions(scheme, float(h), "naive", 1))
                err = float(np.abs(g.astype(np.float64) - exact).max()) / scale
                rows.append({"scheme": scheme, "dtype": dtype, "h": float(h), "error": err,
                             "default_h": default})
    return pd.DataFrame(rows)
