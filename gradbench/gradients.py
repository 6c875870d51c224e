"""Public entry points: loss, backprop and numerical gradients of an MLP.

Each function validates its inputs, allocates the outputs and calls a kernel from
:mod:`gradbench.kernels`. Nothing passed in is modified.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import interrupt
from .blas import check_threads, numba_threads, single_threaded_blas
from .costmodel import naive_width
from .kernels import backprop as KB
from .kernels import codes
from .kernels import forward as KF
from .kernels import incremental as KI
from .kernels import naive as KN
from .kernels.codes import (  # noqa: F401  (ORDER and EVALS_PER_PARAM: public here too)
    EVALS_PER_PARAM,
    INCREMENTAL_BATCH,
    ORDER,
    SCHEME_CODE,
    SCHEMES,
    STEPS,
    STRATEGIES,
)
from .model import MLP, flat_params, prepare_batch


def _bundle(net: MLP) -> tuple:
    """The kernels' network bundle: (layout, act, loss, out_act)."""
    return (
        net.layout,
        codes.ACTIVATION_CODE[net.activation],
        codes.LOSS_CODE[net.loss],
        codes.ACTIVATION_CODE[net.output_activation],
    )


def loss(net: MLP, X, T, *, check_finite: bool = True) -> float:
    """Mean loss of ``net`` on the batch (X, T).

    Parameters
    ----------
    net : MLP
    X : array_like, shape (B, sizes[0])
    T : array_like, shape (B, sizes[-1]), or (B,) integer labels for softmax_ce
    check_finite : bool
        NaN or inf in X, T or the parameters raise a ValueError naming which. False, as in
        scipy.linalg, lets them through: the result is then NaN (or inf). Shapes, dtypes and
        labels are always checked. The check costs no scan of the inputs: the kernels flag
        a NaN or inf pre-activation (which any NaN or inf in X or the parameters makes) and
        the loss shows one in T; the inputs are scanned only then, to name the culprit.

    Returns
    -------
    float
    """
    theta = flat_params(net, check_finite=False)
    Xp, Tp = prepare_batch(net, X, T, check_finite=False)
    f, bad = KF.checked_loss_kernel(theta, Xp, Tp, _bundle(net))
    if check_finite and (bad or not math.isfinite(f)):
        _name_nonfinite(net, X, T)
    return float(f)


def _name_nonfinite(net: MLP, X, T) -> None:
    """Raise the ValueError of the first input holding NaN or inf, by scanning them; return
    when none does (finite inputs whose products overflowed: the result stands)."""
    flat_params(net, check_finite=True)
    prepare_batch(net, X, T, check_finite=True)


def backprop(net: MLP, X, T, *, check_finite: bool = True) -> list[np.ndarray]:
    """Analytic gradient of the loss by backpropagation.

    Parameters are as for :func:`loss`.

    Returns
    -------
    list of ndarray
        ``[dW1, db1, dW2, db2, ...]`` with the shapes and dtype of ``net.params``.
    """
    theta = flat_params(net, check_finite=False)
    Xp, Tp = prepare_batch(net, X, T, check_finite=False)
    grad = np.empty_like(theta)
    f, bad = KB.backprop_kernel(theta, Xp, Tp, _bundle(net), grad)
    if check_finite and (bad or not math.isfinite(f)):
        _name_nonfinite(net, X, T)
    return unflatten(net, grad)


def loss_flat(net: MLP, theta, X, T) -> float:
    """The loss at a given flat parameter vector, on validated inputs.

    Parameters
    ----------
    net : MLP
        Gives the architecture, activations, loss and dtype; its own parameters are not used.
    theta : ndarray, shape (net.num_params,)
        Parameters in the order of :func:`gradbench.model.flat_params`, in the network's dtype.
    X, T : ndarray
        A batch from :func:`gradbench.model.prepare_batch`.

    Returns
    -------
    float
    """
    return float(KF.loss_kernel(theta, X, T, _bundle(net)))


def backprop_flat(net: MLP, theta, X, T) -> tuple[float, np.ndarray]:
    """Validated inputs in, (loss, flat gradient) out."""
    grad = np.empty_like(theta)
    f, _ = KB.backprop_kernel(theta, X, T, _bundle(net), grad)
    return float(f), grad


def unflatten(net: MLP, flat: np.ndarray) -> list[np.ndarray]:
    """Views of a flat vector shaped like ``net.params``."""
    return [flat[a:b].reshape(shape) for a, b, shape in net.slices]


def default_step(scheme: str, dtype) -> float:
    """The scheme's step before scaling by ``max(1, |theta_i|)``, from theory.

    Round-off error ~ eps/h against truncation error ~ h**order balance at
    h ~ eps**(1/(order+1)): sqrt(eps) forward, eps**(1/3) central, eps**(1/5) five-point.
    The complex step has no cancellation, so its step can be tiny: 1e-20.
    """
    return codes.default_step(_scheme(scheme), dtype)


def step_size(scheme: str, dtype, h: float | None = None) -> float:
    """The step before scaling: ``h`` checked, or the scheme's default when it is None.

    Parameters
    ----------
    scheme : {"forward", "central", "five_point", "complex_step"}
    dtype : {"float32", "float64"}
    h : float or None

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        For a step that is not a positive finite number, or an unknown scheme.
    """
    scheme = _scheme(scheme)
    if h is None:
        return default_step(scheme, dtype)
    if isinstance(h, bool) or not isinstance(h, numbers.Real):
        raise TypeError(f"h must be a number or None (the scheme's default), got {h!r}")
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"h must be positive and finite, got {h!r}; or pass h=None")
    return float(h)


def scheme_order(scheme: str) -> int:
    """Order of accuracy p of a scheme: its truncation error is of order h**p.

    Raises
    ------
    ValueError
        For an unknown scheme.
    """
    return ORDER[_scheme(scheme)]


def step_multipliers(scheme: str) -> np.ndarray:
    """Multipliers c of the scheme's steps: the loss is evaluated at theta + c * h_i * e_i.

    Returns
    -------
    ndarray
        float64 (``[1, -1]`` for central differences), or complex128 ``[1j]`` for the
        complex step. A copy: changing it changes nothing.
    """
    return STEPS[SCHEME_CODE[_scheme(scheme)]].copy()


def _scheme(scheme) -> str:
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: choose one of {', '.join(SCHEMES)}")
    return scheme


def numerical_gradient(
    net: MLP,
    X,
    T,
    scheme: str = "central",
    h: float | None = None,
    strategy: str = "naive",
    *,
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> list[np.ndarray]:
    """Gradient of the loss by finite differences, one parameter at a time.

    Parameters
    ----------
    net, X, T
        As for :func:`loss`.
    scheme : {"forward", "central", "five_point", "complex_step"}
        Forward (N+1 loss evaluations), central (2N), five-point (4N) differences, or the
        complex step (N evaluations in complex arithmetic; float64 networks only).
    h : float or None
        Step before scaling; parameter i is moved by ``h * max(1, |theta_i|)``. ``None``
        takes :func:`default_step`. The quotient divides by the step actually applied.
    strategy : {"naive", "incremental"}
        ``"naive"`` evaluates the whole loss per perturbation (the textbook O(N^2) method);
        ``"incremental"`` reuses what a perturbation cannot change and agrees to rounding.
    threads : int or None
        Threads to spread the parameters over (default: Numba's current setting). The
        result does not depend on it. BLAS runs single-threaded inside.
    progress : callable or None
        Called as ``progress(done, total)`` after each chunk of the computation, with the
        number of parameters done so far and in all (see ``numerical_gradient_flat``).
        Exceptions it raises, KeyboardInterrupt included, stop the computation.

    Returns
    -------
    list of ndarray
        Shaped like ``net.params``, in the network's dtype.
    """
    options = fd_options(net, scheme, h, strategy, threads)
    theta = flat_params(net)
    X, T = prepare_batch(net, X, T)
    return unflatten(net, numerical_gradient_flat(net, theta, X, T, options, progress=progress))


class FDOptions(NamedTuple):
    """Finite-difference options, checked (see :func:`fd_options`)."""

    scheme: str
    h: float  #: the step before scaling
    strategy: str
    threads: int


def fd_options(net: MLP, scheme, h, strategy, threads) -> FDOptions:
    """Validate the finite-difference options of :func:`numerical_gradient`; h=None and
    threads=None become the scheme's default step and Numba's thread count."""
    scheme = _scheme(scheme)
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(
            f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}"
        )
    if scheme == "complex_step" and net.dtype != np.float64:
        raise ValueError(
            "complex_step needs a float64 network (complex64 arithmetic is too coarse); "
            "use dtype='float64' or another scheme"
        )
    return FDOptions(scheme, step_size(scheme, net.dtype, h), strategy, check_threads(threads))


#: A numerical gradient runs in chunks of parameters (naive) or of columns of one layer
#: (incremental), each one call of a kernel; Python handles Ctrl-C and reports progress between
#: them. Chunks grow until one lasts about CHUNK_SECONDS.
CHUNK_SECONDS = 0.2
#: A chunk is planned to last at most CHUNK_GROWTH times as long as the one before ...
CHUNK_GROWTH = 16
#: ... or CHUNK_FLOOR seconds, whichever is longer: the first chunks are mostly call overhead,
#: and a network whose whole gradient takes less than this is done in a call or two.
CHUNK_FLOOR = 0.01


def numerical_gradient_flat(net, theta, X, T, options: FDOptions, *,
                            progress=None) -> np.ndarray:
    """Validated inputs in, flat gradient out (for benchmarks that time the kernel alone).

    The kernels are called on chunks of the parameters (naive) or of the columns of one
    layer (incremental), so that Ctrl-C stops the computation within a fraction of a second.
    The first chunk has one item per thread; later ones are sized from the time the previous
    one took, to last about :data:`CHUNK_SECONDS`. Every parameter's quotient is computed
    alone, so the result is the same, bit for bit, however it is chunked and whatever
    ``n_threads``.

    Parameters
    ----------
    net : MLP
    theta, X, T : ndarray
        From :func:`gradbench.model.flat_params` and :func:`gradbench.model.prepare_batch`.
    options : FDOptions
        As returned by :func:`fd_options` (h is the step before scaling), or built directly
        from checked values.
    progress : callable or None
        ``progress(done, total)`` after each chunk: parameters done so far, and in all. The
        last call has ``done == total``. An exception it raises propagates at once.

    Returns
    -------
    ndarray
        The gradient, shape (net.num_params,), in the network's dtype.
    """
    scheme, h, strategy, n_threads = options
    bundle, code = _bundle(net), SCHEME_CODE[scheme]
    grad = np.empty(theta.shape[0], dtype=net.dtype)
    with single_threaded_blas(), numba_threads(n_threads):
        f0 = float(KF.loss_kernel(theta, X, T, bundle)) if scheme == "forward" else 0.0
        fd = (code, STEPS[code], h, f0)  # the scheme bundle of every kernel
        # theta in the arithmetic of the scheme
        theta_s = theta.astype(np.complex128) if scheme == "complex_step" else theta
        if strategy == "naive":
            X_s = X.astype(np.complex128) if scheme == "complex_step" else X
            driver = KN.fd_naive_parallel if n_threads > 1 else KN.fd_naive_serial
            wide = naive_width(net.sizes, theta_s.itemsize)

            def run(_, start, stop):  # parameters start..stop-1
                driver(theta_s, X_s, T, bundle, fd, (start, stop, n_threads, wide), grad)

            segments = [(theta.shape[0], 1)]
        else:
            base = KI.base_pass(theta, X, T, bundle)
            driver = KI.fd_incremental_parallel if n_threads > 1 else KI.fd_incremental_serial

            def run(l, start, stop):  # columns start..stop-1 of layer l
                job = (l, start, stop, n_threads, INCREMENTAL_BATCH)
                driver(theta_s, X, T, bundle, fd, base, job, grad)

            # a column of layer l holds n_in + 1 parameters: W_l[:, j] and b_l[j]
            segments = [(n_out, n_in + 1) for _, _, n_in, n_out in net.layout.tolist()]
        _in_chunks(run, segments, n_threads, progress)
    return grad


def _in_chunks(run, segments, n_threads: int, progress) -> None:
    """Call ``run(segment, start, stop)`` over every item of every segment, in chunks.

    ``segments[k] = (n_items, params_per_item)``. A chunk stays inside one segment and holds
    a multiple of n_threads items, or all that are left. The time per parameter of the last
    chunk sizes the next; a new segment (another layer, another regime: usually cheaper per
    parameter, as the layers go up) starts with a chunk planned at CHUNK_FLOOR seconds.
    """
    total = sum(n * per for n, per in segments)
    done = 0
    seconds_per_param = None
    for k, (n_items, per_item) in enumerate(segments):
        start, planned = 0, CHUNK_FLOOR
        while start < n_items:
            left = n_items - start
            if seconds_per_param is None:
                size = n_threads
            else:
                size = planned / max(seconds_per_param * per_item, 1e-12)
                size = left if size >= left else max(n_threads, int(size) // n_threads * n_threads)
            stop = min(n_items, start + size)
            t0 = time.perf_counter()
            run(k, start, stop)
            elapsed = time.perf_counter() - t0
            done += (stop - start) * per_item
            if progress is not None:
                progress(done, total)
            seconds_per_param = elapsed / ((stop - start) * per_item)
            planned = min(CHUNK_SECONDS, max(CHUNK_GROWTH * elapsed, CHUNK_FLOOR))
            start = stop


def warm_up(net: MLP, scheme: str | None = "central", strategy: str = "naive",
            threads: int = 1) -> float:
    """Compile (or load from the disk cache) the kernels ``net`` needs; returns the seconds.

    A tiny network of the same dtype, activation and loss has the same argument types,
    so a timed call on ``net`` that follows compiles nothing.

    Parameters
    ----------
    net : MLP
    scheme : {"forward", "central", "five_point", "complex_step"} or None
        None compiles only the loss and backprop kernels.
    strategy : {"naive", "incremental"}
    threads : int
        1 compiles the serial drivers, more the parallel ones.

    Returns
    -------
    float
        Seconds spent compiling or loading.
    """
    tiny = MLP([2, 2, 2], activation=net.activation, loss=net.loss, dtype=net.dtype,
               output_activation=net.output_activation)
    X = np.zeros((1, 2), dtype=net.dtype)
    T = np.zeros((1, 2), dtype=net.dtype)
    theta = flat_params(tiny)
    t0 = time.perf_counter()
    with interrupt.native():  # a Ctrl-C while LLVM compiles is a Ctrl-C, not a RuntimeError
        backprop_flat(tiny, theta, X, T)
        loss_flat(tiny, theta, X, T)
        loss(tiny, X, T)
        if net.loss == "softmax_ce":  # integer labels (int64, as make_batch gives): one_hot's
            loss(tiny, X, np.zeros(1, dtype=np.int64))
        if scheme is not None:
            numerical_gradient_flat(tiny, theta, X, T, FDOptions(scheme, 1e-3, strategy, threads))
    return time.perf_counter() - t0
