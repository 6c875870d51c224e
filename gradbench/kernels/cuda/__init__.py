"""numba.cuda kernels: the loss, backpropagation and numerical gradients on a GPU.

The math is the CPU kernels' (:mod:`gradbench.kernels`, DESIGN.md), on the same flat
parameter vector ``theta`` and ``layout`` (rows ``w_offset, b_offset, n_in, n_out``). Every
array is one-dimensional and C-contiguous on the device except ``T`` (rows, classes); the
batch ``X`` is flattened row-major. The only module of gradbench that imports numba.cuda.

Two kinds of kernels:

- **one thread per output element**, many blocks: a layer's forward pass, backprop's layers,
  the output delta. Loss and backprop are a handful of these launches (L + 1 and 2 L + 2 for L
  layers): a small network is bound by launch latency, not arithmetic.
- **blocks of perturbed networks**: the numerical gradients. A block evaluates the loss of
  ``theta + d e_p`` for each step d of the scheme, its threads sharing the rows and units of
  each layer, and writes the quotient for parameter p. *Naive*: :data:`NETS` perturbed
  networks per block, every layer of each computed whole, the perturbed weight read in place
  of theta's inside the product; they share the loads of the weights and the batch, nothing
  computed. *Incremental*: one network per block, from the base pass (every layer's z and a,
  computed once): a weight W_l[k, j] moves column j of z_l by d a_{l-1}[:, k] (a bias: by
  d), so a_l changes in column j alone and z_{l+1} by a rank-1 update; only the layers above
  are computed whole.

Each block has its own scratch (two buffers of rows x widest layer, in the arithmetic's
dtype) in one global array; a block's loss is reduced in shared memory in a fixed order, so
results do not depend on how the parameters are split into launches.

The kernels are built per arithmetic (:func:`build`): float32 and float64 for real networks,
complex128 for the complex step, whose exponentials, logarithms and tanh are written out from
real functions (CUDA has no complex libm).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numba
from numba import cuda

from ..codes import CENTRAL, FIVE_POINT, FORWARD, MAX_STEPS, RELU, SIGMOID, SOFTMAX_CE, TANH

#: Most threads a block of the per-network kernels may have (its shared reduction array).
MAX_BLOCK = 256
#: Perturbed networks per block of the naive kernel: each weight read once for all of them.
NETS = 8
#: The losses (and steps) a naive block keeps: a local array's size must be a constant.
NETS_STEPS = NETS * MAX_STEPS
#: Side of the calibration's matrix-product tiles.
TILE = 16


# ----------------------------------------------------------------------------- scalar maths


@cuda.jit(device=True)
def _re_real(x):
    return x


@cuda.jit(device=True)
def _re_complex(x):
    return x.real


@cuda.jit(device=True)
def _im_real(x):
    return 0.0


@cuda.jit(device=True)
def _im_complex(x):
    return x.imag


@cuda.jit(device=True)
def _exp_real(x):
    return math.exp(x)


@cuda.jit(device=True)
def _log_real(x):
    return math.log(x)


@cuda.jit(device=True)
def _tanh_real(x):
    return math.tanh(x)


@cuda.jit(device=True)
def _exp_complex(x):
    e = math.exp(x.real)
    return complex(e * math.cos(x.imag), e * math.sin(x.imag))


@cuda.jit(device=True)
def _log_complex(x):
    return complex(math.log(math.hypot(x.real, x.imag)), math.atan2(x.imag, x.real))


@cuda.jit(device=True)
def _tanh_complex(x):
    # tanh(a + ib) = (sinh 2a + i sin 2b) / (cosh 2a + cos 2b); beyond |a| = 20, tanh a is
    # +-1 to the last bit and the imaginary part 2 sin(2b) e^(-2|a|) (no overflow)
    a, b = x.real, x.imag
    if abs(a) > 20.0:
        return complex(math.copysign(1.0, a), 2.0 * math.sin(2.0 * b) * math.exp(-2.0 * abs(a)))
    den = math.cosh(2.0 * a) + math.cos(2.0 * b)
    return complex(math.sinh(2.0 * a) / den, math.sin(2.0 * b) / den)


_MATHS = {
    "real": (_re_real, _im_real, _exp_real, _log_real, _tanh_real),
    "complex": (_re_complex, _im_complex, _exp_complex, _log_complex, _tanh_complex),
}


def build(dtype: str) -> SimpleNamespace:
    """The kernels for one arithmetic: "float32", "float64" or "complex128" (the complex
    step: theta complex, the batch and the base pass real)."""
    re, im, exp, log, tanh = _MATHS["complex" if dtype == "complex128" else "real"]
    DT = getattr(numba, dtype)
    # losses are summed in float64 (complex128), whatever the network's dtype, as on the CPU
    ACC = numba.complex128 if dtype == "complex128" else numba.float64

    # ------------------------------------------------------------------------- per element

    @cuda.jit(device=True)
    def act(x, code):
        if code == SIGMOID:
            return 1.0 / (1.0 + exp(-x))
        if code == TANH:
            return tanh(x)
        if code == RELU:
            return x if re(x) > 0 else 0.0 * x
        return x

    @cuda.jit(device=True)
    def act_grad(a, code):
        """act'(z) from a = act(z); relu'(0) = 0."""
        if code == SIGMOID:
            return a * (1.0 - a)
        if code == TANH:
            return 1.0 - a * a
        if code == RELU:
            return 1.0 if a > 0 else 0.0
        return 1.0

    @cuda.jit(device=True)
    def row_loss(z, off, T, i, K, loss, out_act):
        """Loss of sample i, its outputs at z[off:off + K], not yet divided by the rows:
        softmax_ce lse(z) sum(t) - t . z (the max of the real parts taken out first); mse
        0.5 |out_act(z) - t|^2."""
        r = 0.0 * z[off]
        if loss == SOFTMAX_CE:
            m = re(z[off])
            for k in range(1, K):
                m = max(m, re(z[off + k]))
            s = 0.0 * z[off]
            for k in range(K):
                s += exp(z[off + k] - m)
            lse = m + log(s)
            for k in range(K):
                r -= T[i, k] * (z[off + k] - lse)
            return r
        for k in range(K):
            d = act(z[off + k], out_act) - T[i, k]
            r += 0.5 * (d * d)
        return r

    @cuda.jit(device=True)
    def a_prev(X, A, offs, l, i, k, n_in):
        """a_{l-1}[i, k]: the batch for the first layer, else the kept activations."""
        if l == 0:
            return X[i * n_in + k]
        return A[offs[l - 1] + i * n_in + k]

    # ------------------------------------------------------------------------- one per element

    @cuda.jit
    def forward_layer(theta, layout, l, X, Z, A, offs, act_code):
        """z_l = a_{l-1} @ W_l + b_l into Z, a_l = act(z_l) into A (z on the output layer),
        layer l at offs[l]; one thread per element. Z and A may be one array."""
        e = cuda.grid(1)
        w_off, b_off, n_in, n_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        rows = X.shape[0] // layout[0, 2]
        if e >= rows * n_out:
            return
        i = e // n_out
        j = e - i * n_out
        acc = 0.0 * theta[b_off]
        for k in range(n_in):
            acc += a_prev(X, A, offs, l, i, k, n_in) * theta[w_off + k * n_out + j]
        z = acc + theta[b_off + j]
        Z[offs[l] + e] = z
        A[offs[l] + e] = z if l == layout.shape[0] - 1 else act(z, act_code)

    @cuda.jit
    def output_delta(Z, offs, layout, T, loss, out_act, dz, rowloss):
        """dz = dL/dz_L of the mean loss and each row's loss (undivided); one thread per
        row. softmax_ce: dz = (softmax(z) sum(t) - t) / rows; mse: (y - t) out_act'(z) / rows."""
        i = cuda.grid(1)
        L = layout.shape[0]
        K = layout[L - 1, 3]
        rows = T.shape[0]
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
    def backward_layer(theta, layout, l, X, A, offs, act_code, dz, dz_prev, grad):
        """Layer l of the backward pass, one thread per element of its three results:
        dW_l = a_{l-1}^T dz_l, db_l = the rows' sum of dz_l, and (l > 0)
        dz_{l-1} = (dz_l W_l^T) * act'(a_{l-1})."""
        e = cuda.grid(1)
        w_off, b_off, n_in, n_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        rows = X.shape[0] // layout[0, 2]
        nw = n_in * n_out
        if e < nw:
            k = e // n_out
            j = e - k * n_out
            acc = 0.0 * theta[0]
            for i in range(rows):
                acc += a_prev(X, A, offs, l, i, k, n_in) * dz[i * n_out + j]
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

    @cuda.jit(device=True)
    def block_sum(x, red, tid, nt):
        """The sum of every thread's x over the block, in a fixed order (nt a power of 2)."""
        red[tid] = x
        cuda.syncthreads()
        s = nt // 2
        while s > 0:
            if tid < s:
                red[tid] += red[tid + s]
            cuda.syncthreads()
            s //= 2
        total = red[0]
        cuda.syncthreads()
        return total

    @cuda.jit
    def mean_loss(Z, offs, layout, T, loss, out_act, rowloss, from_rows, out):
        """out[0] = the mean loss: from the rows' losses when ``from_rows`` (backprop wrote
        them), else from the output layer in Z. One block."""
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        red = cuda.shared.array(MAX_BLOCK, ACC)
        L = layout.shape[0]
        K = layout[L - 1, 3]
        rows = T.shape[0]
        part = 0.0 * Z[0]
        for i in range(tid, rows, nt):
            if from_rows:
                part += rowloss[i]
            else:
                part += row_loss(Z, offs[L - 1] + i * K, T, i, K, loss, out_act)
        total = block_sum(part, red, tid, nt)
        if tid == 0:
            out[0] = total / rows

    # ------------------------------------------------------------------------- one per network

    @cuda.jit(device=True)
    def layer(theta, layout, l, src, src_off, buf, dst, rows, act_code, p, moved, tid, nt):
        """Layer l of one perturbed network (parameter p holds ``moved``) over the block's
        threads: src[src_off:] is a_{l-1} (rows, n_in), buf[dst:] gets a_l."""
        w_off, b_off, n_in, n_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        last = l == layout.shape[0] - 1
        for e in range(tid, rows * n_out, nt):
            i = e // n_out
            j = e - i * n_out
            acc = 0.0 * moved
            for k in range(n_in):
                q = w_off + k * n_out + j
                w = moved if q == p else theta[q]
                acc += src[src_off + i * n_in + k] * w
            b = moved if b_off + j == p else theta[b_off + j]
            z = acc + b
            buf[dst + e] = z if last else act(z, act_code)

    @cuda.jit(device=True)
    def forward_from(theta, layout, first, src, src_off, buf, out_a, out_b, rows, act_code,
                     p, moved, tid, nt):
        """Layers ``first`` to the top, alternating between buf[out_a:] and buf[out_b:]
        (layer ``first`` into out_a); returns where the output layer is."""
        layer(theta, layout, first, src, src_off, buf, out_a, rows, act_code, p, moved, tid, nt)
        cuda.syncthreads()
        cur, other = out_a, out_b
        for l in range(first + 1, layout.shape[0]):
            layer(theta, layout, l, buf, cur, buf, other, rows, act_code, p, moved, tid, nt)
            cuda.syncthreads()
            cur, other = other, cur
        return cur

    @cuda.jit(device=True)
    def network_loss(buf, out, T, rows, K, loss, out_act, red, tid, nt):
        part = 0.0 * buf[out]
        for i in range(tid, rows, nt):
            part += row_loss(buf, out + i * K, T, i, K, loss, out_act)
        return block_sum(part, red, tid, nt) / rows

    @cuda.jit(device=True)
    def combine(scheme, hp, f0, f, d, o):
        """The quotient from the losses f[o:] at the realised steps d[o:] (as the CPU's)."""
        if scheme == FORWARD:
            return (re(f[o]) - f0) / d[o]
        if scheme == CENTRAL:
            return (re(f[o]) - re(f[o + 1])) / (d[o] - d[o + 1])
        if scheme == FIVE_POINT:
            hh = 0.5 * (d[o] - d[o + 1])
            return (8.0 * (re(f[o]) - re(f[o + 1])) - (re(f[o + 2]) - re(f[o + 3]))) / (12.0 * hh)
        return im(f[o]) / hp

    @cuda.jit(device=True)
    def move(theta, steps, h, p, s):
        """(theta[p] + steps[s] h_p in theta's dtype, the step applied, h_p)."""
        t = theta[p]
        hp = h * max(1.0, abs(re(t)))
        moved = DT(t + steps[s] * hp)
        return moved, re(moved) - re(t), hp

    @cuda.jit(device=True)
    def layer_many(theta, layout, l, src, src_off, src_stride, buf, dst, dst_stride, rows,
                   act_code, ps, moved, nq, tid, nt):
        """Layer l of ``nq`` perturbed networks at once, over the block's threads: network m
        has parameter ps[m] at moved[m], its a_{l-1} at src[src_off + m src_stride:] (stride
        0: one input for all, the batch) and gets a_l at buf[dst + m dst_stride:]. Each
        weight (and a shared input) is read once for all of them: the loads, not the
        arithmetic, bound one network's product on a GPU."""
        w_off, b_off, n_in, n_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        last = l == layout.shape[0] - 1
        acc = cuda.local.array(NETS, DT)
        for e in range(tid, rows * n_out, nt):
            i = e // n_out
            j = e - i * n_out
            for m in range(nq):
                acc[m] = 0.0
            for k in range(n_in):
                q = w_off + k * n_out + j
                w = theta[q]
                for m in range(nq):
                    wm = moved[m] if q == ps[m] else w
                    acc[m] += src[src_off + m * src_stride + i * n_in + k] * wm
            for m in range(nq):
                b = moved[m] if b_off + j == ps[m] else theta[b_off + j]
                z = acc[m] + b
                buf[dst + m * dst_stride + e] = z if last else act(z, act_code)

    @cuda.jit
    def naive(theta, layout, X, T, act_code, loss, out_act, scheme, steps, h, f0, start,
              stop, buf, half, grad):
        """NETS parameters per block, start + b NETS onwards (below stop): the loss of each
        whole perturbed network at each step of the scheme, then its quotient into grad.
        Network m of block b has the scratch buf[2 half (b NETS + m):][:2 half]."""
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        red = cuda.shared.array(MAX_BLOCK, ACC)
        f = cuda.local.array(NETS_STEPS, ACC)
        d = cuda.local.array(NETS_STEPS, numba.float64)
        hp = cuda.local.array(NETS, numba.float64)
        ps = cuda.local.array(NETS, numba.int64)
        moved = cuda.local.array(NETS, DT)
        first = start + cuda.blockIdx.x * NETS
        nq = min(NETS, stop - first)
        if nq <= 0:
            return
        L = layout.shape[0]
        K = layout[L - 1, 3]
        rows = T.shape[0]
        stride = 2 * half
        base = cuda.blockIdx.x * NETS * stride
        for s in range(steps.shape[0]):
            for m in range(nq):
                ps[m] = first + m
                mv, dm, hm = move(theta, steps, h, first + m, s)
                moved[m] = mv
                d[m * MAX_STEPS + s] = dm
                hp[m] = hm
            layer_many(theta, layout, 0, X, 0, 0, buf, base, stride, rows, act_code, ps,
                       moved, nq, tid, nt)
            cuda.syncthreads()
            cur, other = base, base + half
            for l in range(1, L):
                layer_many(theta, layout, l, buf, cur, stride, buf, other, stride, rows,
                           act_code, ps, moved, nq, tid, nt)
                cuda.syncthreads()
                cur, other = other, cur
            for m in range(nq):
                f[m * MAX_STEPS + s] = network_loss(buf, cur + m * stride, T, rows, K, loss,
                                                    out_act, red, tid, nt)
        if tid == 0:
            for m in range(nq):
                grad[first + m] = combine(scheme, hp[m], f0, f, d, m * MAX_STEPS)

    @cuda.jit
    def incremental(theta, layout, X, T, act_code, loss, out_act, scheme, steps, h, f0, Z, A,
                    offs, start, stop, buf, half, grad):
        """One block per parameter p in start..stop-1, from the base pass (Z, A at offs):
        column j of z_l moved, a rank-1 update of z_{l+1}, the layers above whole."""
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        red = cuda.shared.array(MAX_BLOCK, ACC)
        f = cuda.local.array(MAX_STEPS, ACC)
        d = cuda.local.array(MAX_STEPS, numba.float64)
        p = start + cuda.blockIdx.x
        if p >= stop:
            return
        L = layout.shape[0]
        K = layout[L - 1, 3]
        rows = T.shape[0]
        base = 2 * cuda.blockIdx.x * half
        # the layer of p, and its column j (and row k: a weight)
        l = 0
        while p >= layout[l, 1] + layout[l, 3]:
            l += 1
        w_off, b_off, n_in, n_l = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        weight = p < b_off
        k = (p - w_off) // n_l if weight else 0
        j = (p - w_off) - k * n_l if weight else p - b_off
        hp = 0.0
        for s in range(steps.shape[0]):
            moved, d[s], hp = move(theta, steps, h, p, s)
            dv = moved - theta[p]
            if l == L - 1:  # the output layer: its column j, then the loss
                for e in range(tid, rows * K, nt):
                    i = e // K
                    v = Z[offs[l] + e] + 0.0 * dv
                    if e - i * K == j:
                        v += dv * (a_prev(X, A, offs, l, i, k, n_in) if weight else 1.0)
                    buf[base + e] = v
                cuda.syncthreads()
                out = base
            else:
                # the change of column j of a_l, row by row, then z_{l+1} + change (x) W_{l+1}[j]
                for i in range(tid, rows, nt):
                    zc = Z[offs[l] + i * n_l + j] + dv * (
                        a_prev(X, A, offs, l, i, k, n_in) if weight else 1.0)
                    buf[base + half + i] = act(zc, act_code) - A[offs[l] + i * n_l + j]
                cuda.syncthreads()
                w2, n2 = layout[l + 1, 0], layout[l + 1, 3]
                top = l + 1 == L - 1
                for e in range(tid, rows * n2, nt):
                    i = e // n2
                    v = Z[offs[l + 1] + e] + buf[base + half + i] * theta[w2 + j * n2 + e - i * n2]
                    buf[base + e] = v if top else act(v, act_code)
                cuda.syncthreads()
                out = base
                if not top:
                    out = forward_from(theta, layout, l + 2, buf, base, buf, base + half, base,
                                       rows, act_code, -1, moved, tid, nt)
            f[s] = network_loss(buf, out, T, rows, K, loss, out_act, red, tid, nt)
        if tid == 0:
            grad[p] = combine(scheme, hp, f0, f, d, 0)

    # ------------------------------------------------------------------------- calibration

    @cuda.jit
    def matmul(a, b, c):
        """c = a @ b (square, n a multiple of TILE), shared-memory tiles of TILE x TILE: the
        calibration's matrix-product rate."""
        sa = cuda.shared.array((TILE, TILE), DT)
        sb = cuda.shared.array((TILE, TILE), DT)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        n = a.shape[0]
        acc = 0.0 * a[0, 0]
        for t in range(n // TILE):
            sa[ty, tx] = a[row, t * TILE + tx]
            sb[ty, tx] = b[t * TILE + ty, col]
            cuda.syncthreads()
            for k in range(TILE):
                acc += sa[ty, k] * sb[k, tx]
            cuda.syncthreads()
        c[row, col] = acc

    @cuda.jit
    def stream(src, dst):
        """dst = 2 src: the calibration's memory bandwidth (two passes over the bytes)."""
        i = cuda.grid(1)
        if i < src.shape[0]:
            dst[i] = 2.0 * src[i]

    return SimpleNamespace(forward_layer=forward_layer, output_delta=output_delta,
                           backward_layer=backward_layer, mean_loss=mean_loss, naive=naive,
                           incremental=incremental, matmul=matmul, stream=stream)
