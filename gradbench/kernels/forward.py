"""The forward pass and the loss: the building blocks every other kernel uses.

``net = (layout, act, loss, out_act)`` is the network bundle (see :mod:`gradbench.kernels`).
"""

import numpy as np
from numba import njit

from ..config import INLINE_JIT, JIT
from . import scalar
from .codes import IDENTITY
from .expo import _exp


@njit(**INLINE_JIT)
def _re(x):
    """The real part of a real or complex number."""
    return x.real


# the activation, its derivative and a sample's loss, from the source the GPU compiles too
_scalars = scalar.build(njit(**INLINE_JIT), _exp, np.exp, np.log, np.tanh, _re)
_act = _scalars.act
_act_grad = _scalars.act_grad
_row_loss_at = _scalars.row_loss


@njit(**INLINE_JIT)
def _row_loss(z, T, loss, out_act, i):
    """Loss of sample i from its outputs z (K,) and targets T[i], not yet divided by the
    batch size (see :func:`gradbench.kernels.scalar.build`)."""
    return _row_loss_at(z, 0, T, i, z.shape[0], loss, out_act)


@njit(**JIT)
def _layer(theta, layout, l):
    """Views (W, b) of layer l inside theta."""
    w_off, b_off, n_in, n_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
    return theta[w_off:b_off].reshape((n_in, n_out)), theta[b_off : b_off + n_out]


@njit(**JIT)
def _loss_from_output(z, T, loss, out_act):
    """Mean loss over the batch from the last layer's pre-activations z (B, K)."""
    B = z.shape[0]
    total = 0.0 * z[0, 0]
    for i in range(B):
        total += _row_loss(z[i], T, loss, out_act, i)
    return total / B


@njit(**JIT)
def _activation_offsets(layout, B, first):
    """Where the (B, n_out) block of each layer from ``first`` on starts in one flat buffer.

    L + 1 entries: layer l lives at ``offs[l]:offs[l + 1]``; layers before ``first`` take
    no room.
    """
    L = layout.shape[0]
    offs = np.zeros(L + 1, dtype=np.int64)
    for l in range(L):
        offs[l + 1] = offs[l] + (B * layout[l, 3] if l >= first else 0)
    return offs


@njit(**JIT)
def _block(buf, offs, l, n):
    """Layer l's (rows, n) block of a buffer laid out by :func:`_activation_offsets`."""
    return buf[offs[l] : offs[l + 1]].reshape(((offs[l + 1] - offs[l]) // n, n))


@njit(**JIT)
def _forward_pass(theta, layout, X, act, first, offs, Z, A):
    """The forward pass from layer ``first`` on, every layer kept.

    X is the input of layer ``first`` (the batch for first = 0), (rows, n_in). Writes
    z_l = a_prev @ W_l + b_l into Z and a_l = act(z_l) into A (identity on the output
    layer), layer l at ``offs[l]:offs[l+1]`` as (rows, n_out) row-major. Z and A may be one
    buffer: the activations then overwrite the pre-activations, all that loss and backprop
    need (the output layer's a_L is z_L).

    Returns True when some pre-activation is NaN or inf. A NaN or inf anywhere in X or in the
    parameters of these layers makes one (it enters a product or a sum, and x * 0 is NaN for
    an infinite x), so the callers' validation can skip scanning its inputs unless this, or
    a non-finite loss, says there is something to find (a finite input whose products
    overflow is the one other cause). The test, (z - z) != (z - z), vectorises with the loop.
    """
    L = layout.shape[0]
    bad = False
    a_prev = X
    for l in range(first, L):
        W, b = _layer(theta, layout, l)
        n_out = layout[l, 3]
        act_l = act if l < L - 1 else IDENTITY
        z = _block(Z, offs, l, n_out)
        a = _block(A, offs, l, n_out)
        np.dot(a_prev, W, z)  # z = a_prev @ W
        if Z.ctypes.data == A.ctypes.data:
            # one buffer: written through one array, so that the loop vectorises (through
            # two, LLVM's overlap check sends it to the scalar loop)
            for i in range(a.shape[0]):
                for k in range(n_out):
                    zik = a[i, k] + b[k]
                    d = zik - zik
                    bad |= d != d
                    a[i, k] = _act(zik, act_l)  # a = act(z + b)
        else:
            for i in range(z.shape[0]):
                for k in range(n_out):
                    zik = z[i, k] + b[k]  # z += b
                    d = zik - zik
                    bad |= d != d
                    z[i, k] = zik
                    a[i, k] = _act(zik, act_l)  # a = act(z)
        a_prev = a
    return bad


@njit(**JIT)
def _loss(theta, X, T, net, offs, buf):
    """Mean loss, the forward pass written into the caller's buffer (see _forward_pass)."""
    layout, act, loss, out_act = net
    L = layout.shape[0]
    _forward_pass(theta, layout, X, act, 0, offs, buf, buf)
    return _loss_from_output(_block(buf, offs, L - 1, layout[L - 1, 3]), T, loss, out_act)


@njit(**JIT)
def loss_kernel(theta, X, T, net):
    """Mean loss of the network on (X, T). float32/float64, or complex128 theta and X."""
    offs = _activation_offsets(net[0], X.shape[0], 0)
    buf = np.empty(offs[-1], dtype=theta.dtype)
    return _loss(theta, X, T, net, offs, buf)


@njit(**JIT)
def checked_loss_kernel(theta, X, T, net):
    """(mean loss, whether a pre-activation was NaN or inf): see :func:`_forward_pass`."""
    layout, act, loss, out_act = net
    L = layout.shape[0]
    offs = _activation_offsets(layout, X.shape[0], 0)
    buf = np.empty(offs[-1], dtype=theta.dtype)
    bad = _forward_pass(theta, layout, X, act, 0, offs, buf, buf)
    f = _loss_from_output(_block(buf, offs, L - 1, layout[L - 1, 3]), T, loss, out_act)
    return f, bad
