"""Naive finite differences: a whole loss per perturbed parameter, the textbook O(N^2).

``job = (start, stop, n_threads, wide)``: parameters start..stop-1, on n_threads threads,
``wide`` perturbed networks at a time (see :func:`fd_naive_worker`).
"""

import numpy as np
from numba import njit, prange

from ..config import JIT, PARALLEL_JIT
from .codes import IDENTITY
from .forward import _act, _activation_offsets, _block, _forward_pass, _loss_from_output
from .quotient import _combine, _perturbations


@njit(**JIT)
def fd_naive_worker(theta, X, T, net, fd, job, grad):
    """Naive finite differences for parameters start..stop-1 of ``job`` (its n_threads is
    not read): a whole loss per perturbation.

    The perturbed networks are evaluated ``wide`` at a time: their first layers side by
    side in one product X @ [W1' W1'' ...], each block the first layer of one perturbed
    network (a product that wide runs nearer the BLAS's peak than X @ W1 alone), then each
    network's upper layers on their own. Nothing is reused between perturbations: every
    network's loss is computed whole, from X, with the arithmetic of
    :func:`gradbench.kernels.forward.loss_kernel`.

    theta and X are float32/float64, or complex128 for the complex step. Writes
    grad[start:stop] only; perturbs private copies of theta.
    """
    layout, act, loss, out_act = net
    scheme, steps, h, f0 = fd
    start, stop, _, G = job
    L = layout.shape[0]
    B = X.shape[0]
    w_off, b_off, n_in, n_out = layout[0, 0], layout[0, 1], layout[0, 2], layout[0, 3]
    n_steps = steps.shape[0]
    thetas = np.empty((G, theta.shape[0]), dtype=theta.dtype)  # network g's parameters
    for g in range(G):
        thetas[g] = theta
    W1 = theta[w_off:b_off].reshape((n_in, n_out))
    W_wide = np.empty((n_in, G * n_out), dtype=theta.dtype)  # block g: network g's W1
    for i in range(n_in):
        for g in range(G):
            for k in range(n_out):
                W_wide[i, g * n_out + k] = W1[i, k]
    Z_wide = np.empty((B, G * n_out), dtype=theta.dtype)
    a1 = np.empty((B, n_out), dtype=theta.dtype)
    offs = _activation_offsets(layout, B, 1)  # the layers above the first
    buf = np.empty(offs[-1], dtype=theta.dtype)
    act1 = act if L > 1 else IDENTITY

    n_p = stop - start
    moved = np.empty((n_p, n_steps), dtype=theta.dtype)
    d = np.empty((n_p, n_steps))
    hp = np.empty(n_p)
    for i in range(n_p):
        hp[i] = _perturbations(theta, steps, h, start + i, moved[i], d[i])
    f = np.zeros((n_p, n_steps), dtype=steps.dtype)  # float64 (complex128: complex step)

    total = n_p * n_steps  # perturbed networks: parameter i, step s is number i * n_steps + s
    for q0 in range(0, total, G):
        m = min(G, total - q0)
        for g in range(m):
            i, s_ = (q0 + g) // n_steps, (q0 + g) % n_steps
            p = start + i
            thetas[g, p] = moved[i, s_]
            if p < b_off and p >= w_off:
                W_wide[(p - w_off) // n_out, g * n_out + (p - w_off) % n_out] = moved[i, s_]
        np.dot(X, W_wide, Z_wide)  # (blocks past m hold the unperturbed W1: ignored)
        for g in range(m):
            i, s_ = (q0 + g) // n_steps, (q0 + g) % n_steps
            tg = thetas[g]
            for r in range(B):
                for k in range(n_out):
                    a1[r, k] = _act(Z_wide[r, g * n_out + k] + tg[b_off + k], act1)
            if L > 1:
                _forward_pass(tg, layout, a1, act, 1, offs, buf, buf)
                f[i, s_] = _loss_from_output(_block(buf, offs, L - 1, layout[L - 1, 3]), T,
                                             loss, out_act)
            else:
                f[i, s_] = _loss_from_output(a1, T, loss, out_act)
        for g in range(m):
            p = start + (q0 + g) // n_steps
            thetas[g, p] = theta[p]
            if p < b_off and p >= w_off:
                W_wide[(p - w_off) // n_out, g * n_out + (p - w_off) % n_out] = theta[p]
    for i in range(n_p):
        grad[start + i] = _combine(scheme, hp[i], f0, f[i], d[i])



@njit(**PARALLEL_JIT)
def fd_naive_parallel(theta, X, T, net, fd, job, grad):
    """Split the job's parameters into n_threads contiguous ranges, one per thread."""
    start, stop, n_threads, wide = job
    chunk = (stop - start + n_threads - 1) // n_threads
    for t in prange(n_threads):
        lo = min(stop, start + t * chunk)
        hi = min(stop, lo + chunk)
        # the job's tuple type as the serial driver's (all int64), so that the worker
        # compiles once for both
        fd_naive_worker(theta, X, T, net, fd, (lo, hi, n_threads, wide), grad)


# The serial drivers are functions of their own, not the parallel ones compiled without
# parallel=True: Numba's disk cache keys entries by function and signature, not by flags, so
# one function compiled both ways would load whichever variant was cached first.
@njit(**JIT)
def fd_naive_serial(theta, X, T, net, fd, job, grad):
    """The job's parameters in this thread (its n_threads is not read)."""
    fd_naive_worker(theta, X, T, net, fd, job, grad)
