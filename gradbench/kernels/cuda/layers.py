"""The loss and backprop as kernels of one thread per output element.

A forward pass is one :func:`forward_layer` launch per layer, backprop then one
``output_delta`` and one ``backward_layer`` per layer, the mean loss one block of
``mean_loss``: L + 1 launches for the loss, 2 L + 2 for backprop. A pass keeps its arrays in
the bundle ``base = (Z, A, offs, rows)``: layer l's z and a at ``offs[l]`` (rows x n_out,
row-major) in Z and A (on the output layer A holds z: no activation there; the loss alone
may pass one array as both).
"""

from __future__ import annotations

from types import SimpleNamespace

from numba import cuda

from ..codes import SOFTMAX_CE
from .maths import MAX_BLOCK, block_sum


@cuda.jit(device=True)
def a_prev(X, base, l, i, k, n_in):
    """a_{l-1}[i, k]: the batch for the first layer, else the pass's activations."""
    if l == 0:
        return X[i * n_in + k]
    A, offs = base[1], base[2]
    return A[offs[l - 1] + i * n_in + k]


def build(sm: SimpleNamespace) -> SimpleNamespace:
    """``forward_layer``, ``output_delta``, ``backward_layer`` and ``mean_loss`` over the
    scalar maths ``sm`` (:func:`gradbench.kernels.cuda.maths.build`)."""
    act, act_grad, row_loss = sm.act, sm.act_grad, sm.row_loss
    exp, log, ACC = sm.exp, sm.log, sm.ACC

    @cuda.jit
    def forward_layer(theta, X, net, base, l):
        """Layer l of a pass: z_l = a_{l-1} @ W_l + b_l into Z, a_l = act(z_l) into A (z on
        the output layer); one thread per element."""
        e = cuda.grid(1)
        layout, act_code = net[0], net[1]
        Z, A, offs, rows = base
        w_off, b_off, n_in, n_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        if e >= rows * n_out:
            return
        i = e // n_out
        j = e - i * n_out
        acc = 0.0 * theta[b_off]
        for k in range(n_in):
            acc += a_prev(X, base, l, i, k, n_in) * theta[w_off + k * n_out + j]
        z = acc + theta[b_off + j]
        Z[offs[l] + e] = z
        A[offs[l] + e] = z if l == layout.shape[0] - 1 else act(z, act_code)

    @cuda.jit
    def output_delta(T, net, base, dz, rowloss):
        """dz = dL/dz_L of the mean loss and each row's loss (undivided); one thread per
        row. softmax_ce: dz = (softmax(z) sum(t) - t) / rows; mse: (y - t) out_act'(z) / rows."""
        i = cuda.grid(1)
        layout, loss, out_act = net[0], net[2], net[3]
        Z, offs, rows = base[0], base[2], base[3]
        L = layout.shape[0]
        K = layout[L - 1, 3]
        if i >= rows:
            return
        off = offs[L - 1] + i * K
        if loss == SOFTMAX_CE:
            m = Z[off]
            for k in range(1, K):
                m = max(m, Z[off + k])
            s = 0.0 * m
            tsum = 0.0 * m
            for k in range(K):
                s += exp(Z[off + k] - m)
                tsum += T[i, k]
            lse = m + log(s)
            r = 0.0 * m
            for k in range(K):
                r -= T[i, k] * (Z[off + k] - lse)
                dz[i * K + k] = (exp(Z[off + k] - m) * (tsum / s) - T[i, k]) / rows
            rowloss[i] = r
            return
        rowloss[i] = row_loss(Z, off, T, i, K, loss, out_act)
        for k in range(K):
            y = act(Z[off + k], out_act)
            dz[i * K + k] = (y - T[i, k]) * act_grad(y, out_act) / rows

    @cuda.jit
    def backward_layer(theta, X, net, base, l, dz, dz_prev, grad):
        """Layer l of the backward pass, one thread per element of its three results:
        dW_l = a_{l-1}^T dz_l, db_l = the rows' sum of dz_l, and (l > 0)
        dz_{l-1} = (dz_l W_l^T) * act'(a_{l-1})."""
        e = cuda.grid(1)
        layout, act_code = net[0], net[1]
        A, offs, rows = base[1], base[2], base[3]
        w_off, b_off, n_in, n_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        nw = n_in * n_out
        if e < nw:
            k = e // n_out
            j = e - k * n_out
            acc = 0.0 * theta[0]
            for i in range(rows):
                acc += a_prev(X, base, l, i, k, n_in) * dz[i * n_out + j]
            grad[w_off + e] = acc
        elif e < nw + n_out:
            j = e - nw
            acc = 0.0 * theta[0]
            for i in range(rows):
                acc += dz[i * n_out + j]
            grad[b_off + j] = acc
        elif l > 0 and e < nw + n_out + rows * n_in:
            q = e - nw - n_out
            i = q // n_in
            k = q - i * n_in
            acc = 0.0 * theta[0]
            for j in range(n_out):
                acc += dz[i * n_out + j] * theta[w_off + k * n_out + j]
            dz_prev[q] = acc * act_grad(A[offs[l - 1] + q], act_code)

    @cuda.jit
    def mean_loss(T, net, base, from_rows, rowloss, out):
        """out[0] = the mean loss: from the rows' losses when ``from_rows`` (backprop wrote
        them), else from the output layer in A. One block."""
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        red = cuda.shared.array(MAX_BLOCK, ACC)
        layout, loss, out_act = net[0], net[2], net[3]
        A, offs, rows = base[1], base[2], base[3]
        L = layout.shape[0]
        K = layout[L - 1, 3]
        part = 0.0 * A[0]
        for i in range(tid, rows, nt):
            if from_rows:
                part += rowloss[i]
            else:
                part += row_loss(A, offs[L - 1] + i * K, T, i, K, loss, out_act)
        total = block_sum(part, red)
        if tid == 0:
            out[0] = total / rows

    return SimpleNamespace(forward_layer=forward_layer, output_delta=output_delta,
                           backward_layer=backward_layer, mean_loss=mean_loss)
