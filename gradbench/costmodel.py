"""Predicted work of each method: flops, bytes moved and loss evaluations; and from them the
one time prediction (:func:`predict_seconds`) that the sweep, ``gradbench check`` and
``gradbench train`` make.

Conventions: a multiply-add is 2 flops; an element-wise operation (bias add, activation,
a term of the loss) counts as one flop whatever it costs in cycles, so exp-heavy work is
under-counted on purpose and the prediction stays a lower bound. Complex arithmetic costs
4 real flops per multiply-add pair. Bytes count what a loss evaluation must at least read
and write once: inputs, parameters and activations, in the network's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels.codes import EVALS_PER_PARAM, STRATEGIES

METHODS = ("primal", "backprop", "numerical")


@dataclass(frozen=True)
class Cost:
    """Predicted work of one gradient (or one loss for "primal")."""

    flops: float
    bytes: float
    loss_evals: int


def _dims(sizes):
    return list(zip(sizes[:-1], sizes[1:], strict=True))


def forward_flops(sizes, batch: int) -> float:
    """One loss evaluation: matrix products, bias, activations, loss terms."""
    f = 0.0
    for n_in, n_out in _dims(sizes):
        f += 2.0 * batch * n_in * n_out + 2.0 * batch * n_out
    return f + 3.0 * batch * sizes[-1]


def forward_bytes(sizes, batch: int, itemsize: int) -> float:
    n_params = sum(n_in * n_out + n_out for n_in, n_out in _dims(sizes))
    acts = batch * sum(sizes)
    return float(itemsize * (n_params + acts + batch * sizes[-1]))


def num_params(sizes) -> int:
    return int(sum(n_in * n_out + n_out for n_in, n_out in _dims(sizes)))


def evals_per_param(scheme: str) -> int:
    """Perturbed loss evaluations per parameter (:data:`kernels.codes.EVALS_PER_PARAM`)."""
    return EVALS_PER_PARAM[scheme]


def _incremental_flops(sizes, batch: int, per_param: int) -> float:
    """Per perturbed parameter of layer l: the changed column of z_l; then either the loss
    rows (last layer), or a rank-1 update of z_{l+1} and the rest of the forward pass."""
    dims = _dims(sizes)
    L = len(dims)
    K = sizes[-1]
    total = forward_flops(sizes, batch)  # base pass
    for l, (n_in, n_out) in enumerate(dims):
        n_par = n_in * n_out + n_out
        per = 2.0 * batch  # column update
        if l == L - 1:
            per += 3.0 * batch * K
        else:
            per += batch + 2.0 * batch * dims[l + 1][1]  # activation + rank-1 update
            for m in range(l + 2, L):
                per += 2.0 * batch * dims[m][0] * dims[m][1] + 2.0 * batch * dims[m][1]
            per += 3.0 * batch * K
        total += n_par * per_param * per
    return total


def predict(method: str, sizes, batch: int, dtype="float64", scheme: str = "central",
            strategy: str = "naive") -> Cost:
    """Predicted flops, bytes and loss evaluations of one call of ``method``.

    method is "primal" (one loss), "backprop", or "numerical" (with scheme and strategy).
    """
    sizes = [int(s) for s in sizes]
    itemsize = np.dtype(dtype).itemsize
    fwd = forward_flops(sizes, batch)
    fbytes = forward_bytes(sizes, batch, itemsize)
    N = num_params(sizes)
    if method == "primal":
        return Cost(fwd, fbytes, 1)
    if method == "backprop":
        back = 0.0
        for l, (n_in, n_out) in enumerate(_dims(sizes)):
            back += 2.0 * batch * n_in * n_out + batch * n_out  # dW, db
            if l > 0:
                back += 2.0 * batch * n_in * n_out + 2.0 * batch * n_in  # da, act'
        return Cost(fwd + back, 2.0 * fbytes + itemsize * N, 1)
    if method != "numerical":
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    k = evals_per_param(scheme)
    evals = k * N + (1 if scheme == "forward" else 0)
    complex_factor = 4.0 if scheme == "complex_step" else 1.0
    if strategy == "naive":
        return Cost(complex_factor * evals * fwd, evals * fbytes, evals)
    if strategy == "incremental":
        flops = complex_factor * _incremental_flops(sizes, batch, k)
        return Cost(flops, fbytes + evals * itemsize * batch * (sizes[-1] + 2), evals)
    raise ValueError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")


def seconds_per_flop(loss_seconds: float, sizes, batch: int, dtype="float64") -> float:
    """The machine's rate as one measured loss evaluation (a primal call) of this network and
    batch gives it: its seconds over its predicted flops."""
    return loss_seconds / predict("primal", sizes, batch, dtype).flops


def predict_seconds(flops: float, seconds_per_flop: float, threads: int = 1,
                    threaded: bool = False) -> float:
    """Predicted seconds of one call of a method: its predicted ``flops`` at the rate measured
    for loss evaluations (:func:`seconds_per_flop`, at the threads the call will run on).

    A method that spreads its work over the threads itself (``threaded``: gradbench's
    numerical gradients, each thread perturbing its own parameters) divides that by
    ``threads``; the others get their threads from BLAS, already inside the measured rate.
    The one time prediction: the sweep's budget, ``gradbench check``'s progress bar and
    ``gradbench train``'s estimate all make it here.
    """
    seconds = flops * seconds_per_flop
    return seconds / threads if threaded else seconds


#: The naive strategy evaluates up to NAIVE_WIDTH perturbed networks at once, their first
#: layers side by side in one product, as long as that product's weights take at most
#: NAIVE_WIDE_BYTES (per thread).
NAIVE_WIDTH = 16
NAIVE_WIDE_BYTES = 8 << 20


def naive_width(sizes, itemsize: int) -> int:
    """Perturbed networks the naive strategy evaluates in one product: 1 to NAIVE_WIDTH."""
    block = int(sizes[0]) * int(sizes[1]) * itemsize
    return int(max(1, min(NAIVE_WIDTH, NAIVE_WIDE_BYTES // block)))


def memory_bytes(sizes, batch: int, dtype="float64", threads: int = 1) -> int:
    """Bytes a gradient check of this network needs at most: the parameters, both gradients
    and a private copy of the parameters per thread (complex for the complex step, so twice
    the itemsize), and the batch with every layer's activations, twice (pre-activations and
    activations), per thread; per thread too, the naive strategy's perturbed networks (their
    parameters, their first layers side by side and that product's output). An upper bound,
    for refusing sizes that cannot fit."""
    itemsize = np.dtype(dtype).itemsize
    n = num_params(sizes)
    acts = batch * (int(sizes[0]) + 2 * sum(int(s) for s in sizes[1:]))
    wide = naive_width(sizes, 2 * itemsize)
    first = int(sizes[0]) * int(sizes[1])
    naive = wide * (n + first + batch * int(sizes[1]))
    return int(itemsize * (n * (3 + 2 * threads) + acts * (2 + threads) + 2 * naive * threads))
