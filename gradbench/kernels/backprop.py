"""Backpropagation: the analytic gradient from one forward pass that keeps every layer."""

import numpy as np
from numba import njit

from ..config import JIT
from .codes import SOFTMAX_CE
from .expo import _exp
from .forward import _act, _act_grad, _activation_offsets, _block, _forward_pass, _layer, _row_loss


@njit(**JIT)
def _output_delta(z, T, loss, out_act, dz):
    """dz = dL/dz_L of the mean loss, from the logits/outputs z (B, K); returns the summed
    (undivided) loss.

    softmax_ce: loss row = lse(z) sum(t) - t . z, dz = (softmax(z) sum(t) - t) / B, from the
    same exponentials (= (softmax - t) / B for one-hot t).
    mse: dz = (y - t) * out_act'(z) / B with y = out_act(z).
    """
    B, K = z.shape
    total = 0.0
    if loss == SOFTMAX_CE:
        # in passes over the whole (B, K) block, each a loop that vectorises: row maxima,
        # the exponentials (into dz), row sums and log-sum-exps, then the loss and dz
        m = np.empty(B)
        for i in range(B):
            mi = z[i, 0]
            for k in range(1, K):
                mi = max(mi, z[i, k])
            m[i] = mi
        for i in range(B):
            for k in range(K):
                dz[i, k] = _exp(z[i, k] - m[i])
        for i in range(B):
            s = 0.0
            tsum = 0.0
            for k in range(K):
                s += dz[i, k]
                tsum += T[i, k]
            lse = m[i] + np.log(s)
            r = 0.0
            for k in range(K):
                r -= T[i, k] * (z[i, k] - lse)
            total += r
            scale = tsum / s
            for k in range(K):
                dz[i, k] = (dz[i, k] * scale - T[i, k]) / B
        return total
    for i in range(B):
        zi, t = z[i], T[i]
        total += _row_loss(zi, T, loss, out_act, i)
        for k in range(K):
            y = _act(zi[k], out_act)
            dz[i, k] = (y - t[k]) * _act_grad(y, out_act) / B
    return total


@njit(**JIT)
def backprop_kernel(theta, X, T, net, grad):
    """Analytic gradient into ``grad`` (same dtype and layout as theta); returns the loss and
    whether a pre-activation was NaN or inf (see :func:`_forward_pass`).

    The forward pass keeps the activations of every layer in one buffer (the output layer's
    are its logits z_L); the backward pass walks the layers from the top.
    """
    layout, act, loss, out_act = net
    L = layout.shape[0]
    B = X.shape[0]
    offs = _activation_offsets(layout, B, 0)
    A = np.empty(offs[-1], dtype=theta.dtype)
    bad = _forward_pass(theta, layout, X, act, 0, offs, A, A)

    # dz_L = dL/dz_L
    dz = np.empty((B, layout[L - 1, 3]), dtype=theta.dtype)
    total = _output_delta(_block(A, offs, L - 1, layout[L - 1, 3]), T, loss, out_act, dz)

    for l in range(L - 1, -1, -1):
        W, _ = _layer(theta, layout, l)
        dW, db = _layer(grad, layout, l)
        a_prev = X if l == 0 else _block(A, offs, l - 1, layout[l, 2])
        # dW_l = a_prev^T dz_l
        np.dot(a_prev.T, dz, dW)
        # db_l = sum over the batch of dz_l
        for k in range(db.shape[0]):
            db[k] = 0.0
        for i in range(B):
            for k in range(db.shape[0]):
                db[k] += dz[i, k]
        if l > 0:
            # da_prev = dz_l W_l^T, then dz_prev = da_prev * act'(z_prev), act' read from a_prev
            da = np.dot(dz, W.T)
            for i in range(B):
                for k in range(da.shape[1]):
                    da[i, k] *= _act_grad(a_prev[i, k], act)
            dz = da
    return total / B, bad
