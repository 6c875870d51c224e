"""Incremental finite differences: the naive quotients, reusing what a perturbation cannot
change.

A unit is column j of layer l: the parameters W_l[i, j] (i < n_in) and b_l[j] (i = n_in).
Moving parameter i of the unit by dv changes only column j of z_l, row b by dv * x_b, with
x_b = a_prev[b, i] for a weight and 1 for the bias. What the change costs depends on how far
it is from the output, one function per regime:

    output layer          the logits' column j moves: recompute the changed loss rows;
    layer below output    a_l[:, j] moves by da: z_next moves by da * W_next[j, :], a rank-1
                          update of the logits;
    deeper layers         z_next as above, for many perturbations at once, stacked and pushed
                          through the remaining layers with one matrix product per layer.

Each regime fills f[i, s], the mean loss with parameter i moved by its step s.

Bundles (see :mod:`gradbench.kernels`): ``net``, ``fd``, ``base = (Z, A, offs, rows)`` from
:func:`base_pass`; ``job = (l, start, stop, n_threads, batch)``: columns start..stop-1 of
layer l on n_threads threads, ``batch`` perturbations stacked at a time in the deeper layers;
``col = (l, j, batch)``: one column.
"""

import numpy as np
from numba import njit, prange

from ..config import JIT, PARALLEL_JIT
from .codes import SOFTMAX_CE
from .forward import _act, _activation_offsets, _block, _forward_pass, _layer, _row_loss
from .quotient import _combine, _perturbations

#: Largest |u| for which exp(u) is taken from its degree-5 series (exact to rounding).
SERIES_LIMIT = 1e-3


@njit(**JIT)
def base_pass(theta, X, T, net):
    """Forward pass that keeps every layer: the base bundle (Z, A, offs, rows).

    Z holds the pre-activations and A the activations of each layer, layer l at
    ``offs[l]:offs[l+1]`` as (B, n_out) row-major; rows[i] is the (undivided) loss of sample i.
    """
    layout, act, loss, out_act = net
    L = layout.shape[0]
    B = X.shape[0]
    offs = _activation_offsets(layout, B, 0)
    Z = np.empty(offs[-1], dtype=theta.dtype)
    A = np.empty(offs[-1], dtype=theta.dtype)
    _forward_pass(theta, layout, X, act, 0, offs, Z, A)
    z_out = _block(A, offs, L - 1, layout[L - 1, 3])
    rows = np.empty(B)  # float64, as the loss kernel accumulates
    for i in range(B):
        rows[i] = _row_loss(z_out[i], T, loss, out_act, i)
    return Z, A, offs, rows


@njit(**JIT)
def _output_layer_losses(a_prev, T, net, z, rows, j, dv, f):
    """Regime "output layer": unit j of the output layer, whose pre-activations are the
    logits z (B, K); a_prev is the layer's input and rows the base loss rows.

    dv[i, s] is how far step s moves parameter i (in the arithmetic of the scheme); a row
    whose logit does not move keeps its base loss.
    """
    _, _, loss, out_act = net
    B, K = z.shape
    n_in = a_prev.shape[1]
    n_par, n_steps = dv.shape
    z_row = np.empty(K, dtype=dv.dtype)
    for i in range(n_par):
        for s in range(n_steps):
            total = 0.0 * f[i, s]  # 0 in the arithmetic of f (real or complex)
            for b in range(B):
                x = a_prev[b, i] if i < n_in else 1.0
                for k in range(K):
                    z_row[k] = z[b, k]
                z_row[j] = z[b, j] + dv[i, s] * x  # dz[b, j] = dv * x_b
                if z_row[j] == z[b, j]:
                    total += rows[b]
                else:
                    total += _row_loss(z_row, T, loss, out_act, b)
            f[i, s] = total / B


@njit(**JIT)
def _softmax_rows(z, T):
    """Per row b of the logits z: the max m[b], e[b, k] = exp(z[b, k] - m[b]) and sum(T[b])."""
    B, K = z.shape
    e = np.empty((B, K))
    m = np.empty(B)
    tsum = np.empty(B)
    for b in range(B):
        mb = z[b, 0].real
        for k in range(1, K):
            mb = max(mb, z[b, k].real)
        m[b] = mb
        tsum[b] = 0.0
        for k in range(K):
            e[b, k] = np.exp(z[b, k].real - mb)
            tsum[b] += T[b, k]
    return e, m, tsum


@njit(**JIT)
def _below_output_losses(W_next, a_prev, T, net, views, j, dv, f):
    """Regime "layer below the output": unit j of the last hidden layer.

    a_prev is the layer's input; ``views = (z, a, z_next, rows)``: the layer's base
    pre-activations and activations, the base logits and the base loss rows; W_next is the
    output layer's weights (in the arithmetic of the scheme). Moving z[b, j] moves a[b, j] by
    da, and the logits by the rank-1 update da * W_next[j, :].

    Softmax rows of the unperturbed logits are computed once: the perturbed logits are
    z_next + u with u = da * W_next[j, :], so exp(z_next_k + u_k - m) = e_k * exp(u_k), and for
    |u| < SERIES_LIMIT exp(u) is its degree-5 series (first omitted term below 1.4e-21): K
    exponentials per row become one logarithm.
    """
    _, act, loss, out_act = net
    z, a, z_next, rows = views
    B, K = z_next.shape
    n_in = a_prev.shape[1]
    n_par, n_steps = dv.shape
    z_row = np.empty(K, dtype=W_next.dtype)
    w_max = 0.0
    for k in range(K):
        w_max = max(w_max, abs(W_next[j, k]))
    e, m, tsum = _softmax_rows(z_next, T)  # used by softmax_ce's series path
    das = np.empty(B, dtype=f.dtype)  # float64, or complex128 for the complex step
    for i in range(n_par):
        for s in range(n_steps):
            total = 0.0 * f[i, s]  # 0 in the arithmetic of f (real or complex)
            # dz[b, j] = dv * x_b, then da[b, j] = act(z + dz) - a (a loop of its own: it
            # vectorises)
            for b in range(B):
                x = a_prev[b, i] if i < n_in else 1.0
                das[b] = _act(z[b, j] + dv[i, s] * x, act) - a[b, j]
            for b in range(B):
                da = das[b]
                if da == 0.0:
                    total += rows[b]
                    continue
                if loss == SOFTMAX_CE and abs(da) * w_max < SERIES_LIMIT:
                    # dz_next[b, k] = u = da * W_next[j, k]; the loss row from the series
                    sum_exp = 0.0 * f[i, s]
                    tz = 0.0 * f[i, s]
                    for k in range(K):
                        u = da * W_next[j, k]
                        eu = 1.0 + u * (1.0 + u * (0.5 + u * (1 / 6 + u * (1 / 24 + u / 120))))
                        sum_exp += e[b, k] * eu
                        tz += T[b, k] * (z_next[b, k] + u)
                    total += (m[b] + np.log(sum_exp)) * tsum[b] - tz
                    continue
                # dz_next[b, :] = da * W_next[j, :]; the loss row from the moved logits
                for k in range(K):
                    z_row[k] = z_next[b, k] + da * W_next[j, k]
                total += _row_loss(z_row, T, loss, out_act, b)
            f[i, s] = total / B


@njit(**JIT)
def _stacked_losses(theta, T, net, l, Z_stack, f):
    """Mean losses of n perturbed networks whose layer-l pre-activations are stacked in
    Z_stack (n * B, n_out of layer l), block q (rows q*B .. q*B+B-1) holding network q; into
    f[:n]. Z_stack is overwritten.

    The rest of the network runs on all blocks at once, one matrix product per layer.
    """
    layout, act, loss, out_act = net
    L = layout.shape[0]
    B = T.shape[0]
    n = Z_stack.shape[0] // B
    # a_l = act(z_l), in place
    for r in range(Z_stack.shape[0]):
        for k in range(Z_stack.shape[1]):
            Z_stack[r, k] = _act(Z_stack[r, k], act)
    # layers l+1 .. L-1 on the stacked activations
    offs = _activation_offsets(layout, n * B, l + 1)
    buf = np.empty(offs[-1], dtype=Z_stack.dtype)
    _forward_pass(theta, layout, Z_stack, act, l + 1, offs, buf, buf)
    z_out = _block(buf, offs, L - 1, layout[L - 1, 3])
    for q in range(n):
        total = 0.0 * f[q]
        for b in range(B):
            total += _row_loss(z_out[q * B + b], T, loss, out_act, b)
        f[q] = total / B


@njit(**JIT)
def _deep_layer_losses(theta, a_prev, T, net, views, col, dv, f):
    """Regime "deeper layers": unit j of layer l, two or more layers below the output
    (``col = (l, j, batch)``).

    a_prev is the layer's input; ``views = (z, a, z_next)``: the layer's base pre-activations
    and activations and the next layer's base pre-activations; theta is in the arithmetic of
    the scheme. The perturbed z_next of ``batch`` perturbations at a time are stacked and
    pushed through the remaining layers together.
    """
    layout, act, _, _ = net
    z, a, z_next = views
    l, j, batch = col
    B, n_next = z_next.shape
    n_in = a_prev.shape[1]
    n_par, n_steps = dv.shape
    n_pert = n_par * n_steps
    W_next, _ = _layer(theta, layout, l + 1)
    dv_flat = dv.reshape(n_pert)  # perturbation q is (i, s) = divmod(q, n_steps)
    f_flat = f.reshape(n_pert)
    da = np.empty(B, dtype=theta.dtype)
    stack = np.empty(min(batch, n_pert) * B * n_next, dtype=theta.dtype)
    q0 = 0
    while q0 < n_pert:
        nq = min(batch, n_pert - q0)
        Z_stack = stack[: nq * B * n_next].reshape((nq * B, n_next))
        for qq in range(nq):
            q = q0 + qq
            i = q // n_steps
            # dz[b, j] = dv * x_b, then da[b] = act(z + dz) - a (a loop of its own: it
            # vectorises)
            for b in range(B):
                x = a_prev[b, i] if i < n_in else 1.0
                da[b] = _act(z[b, j] + dv_flat[q] * x, act) - a[b, j]
            for b in range(B):
                # z_next + dz_next, with dz_next[b, :] = da[b] * W_next[j, :]
                for k in range(n_next):
                    Z_stack[qq * B + b, k] = z_next[b, k] + da[b] * W_next[j, k]
        _stacked_losses(theta, T, net, l + 1, Z_stack, f_flat[q0 : q0 + nq])
        q0 += nq


@njit(**JIT)
def fd_incremental_unit(theta, X, T, net, fd, base, col, grad):
    """Finite differences for column j of layer l (``col = (l, j, batch)``): every W_l[:, j]
    and b_l[j].

    theta is in the arithmetic of the scheme (complex128 for the complex step); X and the
    base bundle come from :func:`base_pass` on the real parameters. Picks the regime from l.
    """
    layout = net[0]
    scheme, steps, h, f0 = fd
    Z, A, offs, rows = base
    l, j, _ = col
    L = layout.shape[0]
    n_in, n_out = layout[l, 2], layout[l, 3]
    w_off, b_off = layout[l, 0], layout[l, 1]
    n_steps = steps.shape[0]
    n_par = n_in + 1  # W_l[0..n_in-1, j], then b_l[j]

    # the realised steps d and the perturbations dv (as values of the scheme's arithmetic)
    index = np.empty(n_par, dtype=np.int64)
    hp = np.empty(n_par)
    d = np.empty((n_par, n_steps))
    dv = np.empty((n_par, n_steps), dtype=theta.dtype)
    moved = np.empty(n_steps, dtype=theta.dtype)
    for i in range(n_par):
        p = w_off + i * n_out + j if i < n_in else b_off + j
        index[i] = p
        hp[i] = _perturbations(theta, steps, h, p, moved, d[i])
        for s in range(n_steps):
            dv[i, s] = moved[s] - theta[p]

    z = _block(Z, offs, l, n_out)
    a = _block(A, offs, l, n_out)
    a_prev = X if l == 0 else _block(A, offs, l - 1, n_in)
    f = np.zeros((n_par, n_steps), dtype=steps.dtype)  # float64 (complex128)
    if l == L - 1:
        _output_layer_losses(a_prev, T, net, z, rows, j, dv, f)
    else:
        n_next = layout[l + 1, 3]
        z_next = _block(Z, offs, l + 1, n_next)
        if l == L - 2:
            W_next, _ = _layer(theta, layout, l + 1)
            _below_output_losses(W_next, a_prev, T, net, (z, a, z_next, rows), j, dv, f)
        else:
            _deep_layer_losses(theta, a_prev, T, net, (z, a, z_next), col, dv, f)

    for i in range(n_par):
        grad[index[i]] = _combine(scheme, hp[i], f0, f[i], d[i])


@njit(**PARALLEL_JIT)
def fd_incremental_parallel(theta, X, T, net, fd, base, job, grad):
    """Deal the job's columns start..stop-1 of layer l round-robin to n_threads threads."""
    l, start, stop, n_threads, batch = job
    for t in prange(n_threads):
        for j in range(start + t, stop, n_threads):
            fd_incremental_unit(theta, X, T, net, fd, base, (l, j, batch), grad)


@njit(**JIT)
def fd_incremental_serial(theta, X, T, net, fd, base, job, grad):
    """The job's columns start..stop-1 of layer l in this thread (its n_threads is not
    read)."""
    l, start, stop, _, batch = job
    for j in range(start, stop):
        fd_incremental_unit(theta, X, T, net, fd, base, (l, j, batch), grad)
