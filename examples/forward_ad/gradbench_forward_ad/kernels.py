"""The forward-mode kernels: a serial JVP worker, a ``prange`` driver, and the base pass.

Three layers, as gradbench's own kernels: :func:`_jvp` computes the loss's derivative along
one parameter into scratch of its own caller's; :func:`_jvps` spreads the parameters over
threads (thread t takes parameters t, t + threads, ...: the layers' costs interleave), each
thread with its own scratch, writing only its own entries, so the result does not depend on
the thread count; :func:`jvp_gradient` validates nothing (the plugin's public function has),
computes the base pass and calls the driver. No fastmath (gradbench.config's flags): the
sums round as written. Kernels take float32 or float64 arrays, all of one dtype.
"""

from __future__ import annotations

import numba
import numpy as np
import threadpoolctl

from gradbench.config import JIT, PARALLEL_JIT
from gradbench.kernels.codes import ACTIVATION_CODE, IDENTITY, RELU, SIGMOID, TANH


def _activate(z: np.ndarray, code: int) -> tuple[np.ndarray, np.ndarray]:
    """(act(z), act'(z)) for an activation code; relu'(0) = 0."""
    if code == SIGMOID:
        a = 0.5 * (1.0 + np.tanh(0.5 * z))  # 1 / (1 + exp(-z)), without overflow
        return a, a * (1.0 - a)
    if code == TANH:
        a = np.tanh(z)
        return a, 1.0 - a * a
    if code == RELU:
        return np.maximum(z, 0), (z > 0).astype(z.dtype)
    if code == IDENTITY:
        return z, np.ones_like(z)
    raise ValueError(f"unknown activation code {code}")


def base_pass(net, theta: np.ndarray, X: np.ndarray, T: np.ndarray):
    """What every JVP reads: the activations, their derivatives and dL/dz_L.

    Returns ``(acts, dacts, offsets, G)``: ``acts`` holds a_0 = X .. a_{L-1} and ``dacts``
    act'(z_1) .. act'(z_{L-1}) (a_0's place zero), each (B, sizes[l]) block row-major at
    ``offsets[l]``; ``G`` (B, K) is the loss's derivative in the logits (or outputs).
    """
    B, L = X.shape[0], net.depth
    sizes = net.sizes[:-1]
    offsets = np.zeros(L + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([B * n for n in sizes])
    acts = np.empty(offsets[-1], dtype=net.dtype)
    dacts = np.zeros(offsets[-1], dtype=net.dtype)
    a = X
    acts[: offsets[1]] = X.ravel()
    hidden = ACTIVATION_CODE[net.activation]
    for l, (w_off, b_off, n_in, n_out) in enumerate(net.layout.tolist(), start=1):
        W = theta[w_off:b_off].reshape(n_in, n_out)
        z = a @ W + theta[b_off:b_off + n_out]
        if l < L:
            a, da = _activate(z, hidden)
            acts[offsets[l]:offsets[l + 1]] = a.ravel()
            dacts[offsets[l]:offsets[l + 1]] = da.ravel()
    if net.loss == "softmax_ce":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        G = (e / e.sum(axis=1, keepdims=True) * T.sum(axis=1, keepdims=True) - T) / B
    else:
        y, dy = _activate(z, ACTIVATION_CODE[net.output_activation])
        G = (y - T) * dy / B
    return acts, dacts, offsets, np.ascontiguousarray(G, dtype=net.dtype)


@numba.njit(**JIT)
def _jvp(p, theta, layout, acts, dacts, offsets, G, u, v, dZ, dN):
    """dL along parameter p (flat index): its tangent pushed forward to the loss.

    ``u``, ``v`` (B) and ``dZ``, ``dN`` (B * max width) are the caller's scratch.
    """
    L = layout.shape[0]
    B = G.shape[0]
    # the layer l (0-based here) that holds p, and p's row i (-1: the bias) and column j
    l = 0
    while p >= layout[l, 1] + layout[l, 3]:
        l += 1
    w_off, b_off, n_out = layout[l, 0], layout[l, 1], layout[l, 3]
    if p < b_off:
        i, j = (p - w_off) // n_out, (p - w_off) % n_out
    else:
        i, j = -1, p - b_off
    # dZ_l: column j holds a_{l-1}[:, i] (1 for the bias), every other column zero
    a = acts[offsets[l]:offsets[l + 1]]
    n_prev = layout[l, 2]
    for b in range(B):
        u[b] = 1.0 if i < 0 else a[b * n_prev + i]
    if l == L - 1:  # the logits themselves: dL = sum_b G[b, j] u[b]
        s = 0.0 * G[0, 0]
        for b in range(B):
            s += G[b, j] * u[b]
        return s
    # dA_l = act'(z_l) * dZ_l: still column j alone
    da = dacts[offsets[l + 1]:offsets[l + 2]]
    for b in range(B):
        v[b] = da[b * n_out + j] * u[b]
    # dZ_{l+1} = dA_l @ W_{l+1}: one nonzero column on the left, so an outer product
    w_next, n_next = layout[l + 1, 0], layout[l + 1, 3]
    for b in range(B):
        for m in range(n_next):
            dZ[b * n_next + m] = v[b] * theta[w_next + j * n_next + m]
    # the layers after it: dA_k = act'(z_k) * dZ_k, dZ_{k+1} = dA_k @ W_{k+1}
    for k in range(l + 1, L - 1):
        n_k, w_k1, n_k1 = layout[k, 3], layout[k + 1, 0], layout[k + 1, 3]
        da = dacts[offsets[k + 1]:offsets[k + 2]]
        for q in range(B * n_k):
            dZ[q] *= da[q]
        for b in range(B):
            for m in range(n_k1):
                dN[b * n_k1 + m] = 0.0
            for n in range(n_k):
                x = dZ[b * n_k + n]
                for m in range(n_k1):
                    dN[b * n_k1 + m] += x * theta[w_k1 + n * n_k1 + m]
        for q in range(B * n_k1):
            dZ[q] = dN[q]
    # dL = sum(G * dZ_L)
    K = G.shape[1]
    s = 0.0 * G[0, 0]
    for b in range(B):
        for m in range(K):
            s += G[b, m] * dZ[b * K + m]
    return s


@numba.njit(**PARALLEL_JIT)
def _jvps(theta, layout, acts, dacts, offsets, G, threads, grad):
    """grad[p] = dL along parameter p, for every p: thread t takes p = t, t + threads, ..."""
    B = G.shape[0]
    width = 1
    for l in range(layout.shape[0]):
        width = max(width, layout[l, 3])
    for t in numba.prange(threads):
        u = np.empty(B, dtype=grad.dtype)  # this thread's scratch
        v = np.empty(B, dtype=grad.dtype)
        dZ = np.empty(B * width, dtype=grad.dtype)
        dN = np.empty(B * width, dtype=grad.dtype)
        for p in range(t, grad.shape[0], threads):
            grad[p] = _jvp(p, theta, layout, acts, dacts, offsets, G, u, v, dZ, dN)


def jvp_gradient(net, theta: np.ndarray, X: np.ndarray, T: np.ndarray,
                 threads: int = 1) -> np.ndarray:
    """The flat gradient at ``theta`` of ``net`` on a prepared batch (``X``, ``T`` of the
    network's dtype, T one-hot or targets), by one JVP per parameter over ``threads``."""
    if int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    with threadpoolctl.threadpool_limits(int(threads), user_api="blas"):
        acts, dacts, offsets, G = base_pass(net, theta, X, T)
    grad = np.empty(net.num_params, dtype=net.dtype)
    _jvps(np.ascontiguousarray(theta, dtype=net.dtype), net.layout, acts, dacts, offsets, G,
          int(threads), grad)
    return grad
