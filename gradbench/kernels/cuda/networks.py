"""The numerical gradients as kernels of one block per perturbed network (or a few).

A block evaluates the loss of ``theta + d e_p`` for each step d of the scheme, its threads
sharing the rows and units of each layer, and writes the quotient for parameter p.

- **naive**: :data:`NETS` perturbed networks per block, every layer of each computed whole,
  the perturbed weight read in place of theta's inside the product; they share the loads of
  the weights and the batch, nothing computed.
- **incremental**: one network per block, from the base pass (every layer's z and a,
  computed once): a weight W_l[k, j] moves column j of z_l by d a_{l-1}[:, k] (a bias: by
  d), so a_l changes in column j alone and z_{l+1} by a rank-1 update; only the layers above
  are computed whole.

Each block has its own scratch, two buffers of ``half`` = rows x widest layer elements per
perturbed network, in one global array; a block's loss is reduced in shared memory in a
fixed order, so results do not depend on how the parameters are split into launches.
"""

from __future__ import annotations

from types import SimpleNamespace

import numba
from numba import cuda

from ..codes import CENTRAL, FIVE_POINT, FORWARD, MAX_STEPS
from .layers import a_prev
from .maths import MAX_BLOCK, block_sum

#: Perturbed networks per block of the naive kernel: each weight read once for all of them.
NETS = 8
#: The losses (and steps) a naive block keeps: a local array's size must be a constant.
NETS_STEPS = NETS * MAX_STEPS


def build(sm: SimpleNamespace) -> SimpleNamespace:
    """``naive`` and ``incremental`` over the scalar maths ``sm``
    (:func:`gradbench.kernels.cuda.maths.build`)."""
    act, row_loss, re, im, DT, ACC = sm.act, sm.row_loss, sm.re, sm.im, sm.DT, sm.ACC

    @cuda.jit(device=True)
    def layer(theta, net, l, buf, src, dst, rows):
        """Layer l of one network (unperturbed there) over the block's threads:
        buf[src:] is a_{l-1} (rows, n_in), buf[dst:] gets a_l."""
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        layout, act_code = net[0], net[1]
        w_off, b_off, n_in, n_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        last = l == layout.shape[0] - 1
        for e in range(tid, rows * n_out, nt):
            i = e // n_out
            j = e - i * n_out
            acc = 0.0 * theta[b_off]
            for k in range(n_in):
                acc += buf[src + i * n_in + k] * theta[w_off + k * n_out + j]
            z = acc + theta[b_off + j]
            buf[dst + e] = z if last else act(z, act_code)

    @cuda.jit(device=True)
    def forward_from(theta, net, first, buf, src, dst, rows):
        """Layers ``first`` to the top from a_{first-1} at buf[src:], alternating between
        buf[dst:] (layer ``first``) and buf[src:]; returns where the output layer is."""
        layer(theta, net, first, buf, src, dst, rows)
        cuda.syncthreads()
        cur, other = dst, src
        for l in range(first + 1, net[0].shape[0]):
            layer(theta, net, l, buf, cur, other, rows)
            cuda.syncthreads()
            cur, other = other, cur
        return cur

    @cuda.jit(device=True)
    def network_loss(T, net, buf, out, red):
        """The mean loss of one network whose outputs are at buf[out:], over the block."""
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        layout, loss, out_act = net[0], net[2], net[3]
        K = layout[layout.shape[0] - 1, 3]
        rows = T.shape[0]
        part = 0.0 * buf[out]
        for i in range(tid, rows, nt):
            part += row_loss(buf, out + i * K, T, i, K, loss, out_act)
        return block_sum(part, red) / rows

    @cuda.jit(device=True)
    def combine(fd, hp, f, d, o):
        """The quotient from the losses f[o:] at the realised steps d[o:] (as the CPU's)."""
        scheme, f0 = fd[0], fd[3]
        if scheme == FORWARD:
            return (re(f[o]) - f0) / d[o]
        if scheme == CENTRAL:
            return (re(f[o]) - re(f[o + 1])) / (d[o] - d[o + 1])
        if scheme == FIVE_POINT:
            hh = 0.5 * (d[o] - d[o + 1])
            return (8.0 * (re(f[o]) - re(f[o + 1])) - (re(f[o + 2]) - re(f[o + 3]))) / (12.0 * hh)
        return im(f[o]) / hp

    @cuda.jit(device=True)
    def move(theta, fd, p, s):
        """(theta[p] + steps[s] h_p in theta's dtype, the step applied, h_p)."""
        steps, h = fd[1], fd[2]
        t = theta[p]
        hp = h * max(1.0, abs(re(t)))
        moved = DT(t + steps[s] * hp)
        return moved, re(moved) - re(t), hp

    @cuda.jit(device=True)
    def layer_many(theta, net, l, src, dst, nets, rows):
        """Layer l of several perturbed networks at once, over the block's threads.

        ``nets = (ps, moved, nq)``: network m < nq has parameter ps[m] at moved[m].
        ``src = (a, off, stride)``: network m's a_{l-1} is at a[off + m stride:] (stride 0:
        one input for all, the batch); ``dst = (buf, off, stride)``: it gets a_l at
        buf[off + m stride:]. Each weight (and a shared input) is read once for all of
        them: the loads, not the arithmetic, bound one network's product on a GPU."""
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        layout, act_code = net[0], net[1]
        a, a_off, a_stride = src
        buf, z_off, z_stride = dst
        ps, moved, nq = nets
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
                    acc[m] += a[a_off + m * a_stride + i * n_in + k] * wm
            for m in range(nq):
                b = moved[m] if b_off + j == ps[m] else theta[b_off + j]
                z = acc[m] + b
                buf[z_off + m * z_stride + e] = z if last else act(z, act_code)

    @cuda.jit
    def naive(theta, X, T, net, fd, job, grad):
        """NETS parameters per block, from start + b NETS on (below stop), ``job = (start,
        stop, buf, half)``: the loss of each whole perturbed network at each step of the
        scheme, then its quotient into grad. Network m of block b has the scratch
        buf[2 half (b NETS + m):][:2 half]."""
        start, stop, buf, half = job
        steps = fd[1]
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
        L = net[0].shape[0]
        rows = T.shape[0]
        stride = 2 * half
        own = cuda.blockIdx.x * NETS * stride
        nets = (ps, moved, nq)
        for s in range(steps.shape[0]):
            for m in range(nq):
                ps[m] = first + m
                mv, dm, hm = move(theta, fd, first + m, s)
                moved[m] = mv
                d[m * MAX_STEPS + s] = dm
                hp[m] = hm
            layer_many(theta, net, 0, (X, 0, 0), (buf, own, stride), nets, rows)
            cuda.syncthreads()
            cur, other = own, own + half
            for l in range(1, L):
                layer_many(theta, net, l, (buf, cur, stride), (buf, other, stride), nets, rows)
                cuda.syncthreads()
                cur, other = other, cur
            for m in range(nq):
                f[m * MAX_STEPS + s] = network_loss(T, net, buf, cur + m * stride, red)
        if cuda.threadIdx.x == 0:
            for m in range(nq):
                grad[first + m] = combine(fd, hp[m], f, d, m * MAX_STEPS)

    @cuda.jit
    def incremental(theta, X, T, net, fd, base, job, grad):
        """One block per parameter p in start..stop-1, ``job = (start, stop, buf, half)``,
        from the base pass ``base = (Z, A, offs, rows)``: column j of z_l moved, a rank-1
        update of z_{l+1}, the layers above whole."""
        start, stop, buf, half = job
        Z, A, offs, rows = base
        layout, act_code = net[0], net[1]
        steps = fd[1]
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        red = cuda.shared.array(MAX_BLOCK, ACC)
        f = cuda.local.array(MAX_STEPS, ACC)
        d = cuda.local.array(MAX_STEPS, numba.float64)
        p = start + cuda.blockIdx.x
        if p >= stop:
            return
        L = layout.shape[0]
        K = layout[L - 1, 3]
        own = 2 * cuda.blockIdx.x * half
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
            moved, d[s], hp = move(theta, fd, p, s)
            dv = moved - theta[p]
            if l == L - 1:  # the output layer: its column j, then the loss
                for e in range(tid, rows * K, nt):
                    i = e // K
                    v = Z[offs[l] + e] + 0.0 * dv
                    if e - i * K == j:
                        v += dv * (a_prev(X, base, l, i, k, n_in) if weight else 1.0)
                    buf[own + e] = v
                cuda.syncthreads()
                out = own
            else:
                # the change of column j of a_l, row by row, then z_{l+1} + change (x) W_{l+1}[j]
                for i in range(tid, rows, nt):
                    zc = Z[offs[l] + i * n_l + j] + dv * (
                        a_prev(X, base, l, i, k, n_in) if weight else 1.0)
                    buf[own + half + i] = act(zc, act_code) - A[offs[l] + i * n_l + j]
                cuda.syncthreads()
                w2, n2 = layout[l + 1, 0], layout[l + 1, 3]
                top = l + 1 == L - 1
                for e in range(tid, rows * n2, nt):
                    i = e // n2
                    v = Z[offs[l + 1] + e] + buf[own + half + i] * theta[w2 + j * n2 + e - i * n2]
                    buf[own + e] = v if top else act(v, act_code)
                cuda.syncthreads()
                out = own
                if not top:
                    out = forward_from(theta, net, l + 2, buf, own, own + half, rows)
            f[s] = network_loss(T, net, buf, out, red)
        if tid == 0:
            grad[p] = combine(fd, hp, f, d, 0)

    return SimpleNamespace(naive=naive, incremental=incremental)
