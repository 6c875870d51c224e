"""Numba kernels: loss (forward pass), backpropagation and numerical gradients.

Every kernel works on the flat parameter vector ``theta`` and a ``layout`` array
(rows ``w_offset, b_offset, n_in, n_out``; see :func:`gradbench.model.layout`).
Arrays are C-contiguous float32 or float64 (complex128 for the complex step);
``X`` and ``T`` have the dtype of ``theta`` unless said otherwise.

Three layers, as in stumpy: serial workers that write only their own slice of the
result, ``prange`` drivers over threads (each thread has its own scratch, results
do not depend on the thread count), and the public wrappers in
:mod:`gradbench.gradients` that validate, allocate and call.
"""

import numpy as np
from numba import njit, prange

from .config import INLINE_JIT, JIT, PARALLEL_JIT

IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3
SOFTMAX_CE, MSE = 0, 1
FORWARD, CENTRAL, FIVE_POINT, COMPLEX_STEP = 0, 1, 2, 3

#: Largest |u| for which exp(u) is taken from its degree-5 series (exact to rounding).
SERIES_LIMIT = 1e-3

#: Step multipliers of each scheme, in the order the loss values are stored.
STEPS = {
    FORWARD: np.array([1.0]),
    CENTRAL: np.array([1.0, -1.0]),
    FIVE_POINT: np.array([1.0, -1.0, 2.0, -2.0]),
    COMPLEX_STEP: np.array([1.0]),
}


# ----------------------------------------------------------------------------- validation


@njit(**JIT)
def any_nonfinite(u, mask):
    """True when some float, read as its bits u (uint64 or uint32), is NaN or inf.

    An exponent of all ones (``mask``) marks NaN and inf. The integer OR-reduction
    vectorises, so this runs at memory speed, unlike a floating-point reduction.
    """
    bad = False
    for i in range(u.shape[0]):
        bad |= (u[i] & mask) == mask
    return bad


# ----------------------------------------------------------------------------- building blocks


@njit(**JIT)
def _layer(theta, layout, l):
    """Views (W, b) of layer l inside theta."""
    w_off, b_off, n_in, n_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
    return theta[w_off:b_off].reshape((n_in, n_out)), theta[b_off : b_off + n_out]


@njit(**INLINE_JIT)
def _act(x, act):
    """act(x) for one scalar (real or complex; relu branches on the real part)."""
    if act == SIGMOID:
        return 1.0 / (1.0 + np.exp(-x))
    if act == TANH:
        return np.tanh(x)
    if act == RELU:
        return x if x.real > 0 else 0.0 * x
    return x


@njit(**INLINE_JIT)
def _act_grad(a, act):
    """act'(z) written in terms of a = act(z) (relu'(0) = 0)."""
    if act == SIGMOID:
        return a * (1.0 - a)
    if act == TANH:
        return 1.0 - a * a
    if act == RELU:
        return 1.0 if a > 0 else 0.0
    return 1.0


@njit(**JIT)
def _bias_act(z, b, act):
    """In place: z <- act(z + b), row by row."""
    B, n = z.shape
    for i in range(B):
        for k in range(n):
            z[i, k] = _act(z[i, k] + b[k], act)


@njit(**INLINE_JIT)
def _row_loss(z, T, i, loss, out_act):
    """Loss of sample i (outputs z, targets T[i]), not yet divided by the batch size.

    T and the row index are passed rather than the view T[i]: a view of a shared array costs
    an atomic reference-count update, and threads doing that in inner loops contend for it.

    softmax_ce: logsumexp(z) * sum(t) - t . z   (stable: the max is taken out first)
    mse:        0.5 * |out_act(z) - t|^2
    Complex z (complex step) is supported; the max is taken over real parts.
    """
    K = z.shape[0]
    if loss == SOFTMAX_CE:
        m = z[0].real
        for k in range(1, K):
            if z[k].real > m:
                m = z[k].real
        s = 0.0 * z[0]
        for k in range(K):
            s += np.exp(z[k] - m)
        lse = m + np.log(s)
        r = 0.0 * z[0]
        for k in range(K):
            r -= T[i, k] * (z[k] - lse)
        return r
    r = 0.0 * z[0]
    for k in range(K):
        d = _act(z[k], out_act) - T[i, k]
        r += 0.5 * (d * d)
    return r


@njit(**JIT)
def _loss_from_output(z, T, loss, out_act):
    """Mean loss over the batch from the last layer's pre-activations z (B, K)."""
    B = z.shape[0]
    total = 0.0 * z[0, 0]
    for i in range(B):
        total += _row_loss(z[i], T, i, loss, out_act)
    return total / B


@njit(**JIT)
def _activation_offsets(layout, B):
    """Where each layer's (B, n_out) activations start in one flat buffer (L + 1 entries)."""
    L = layout.shape[0]
    offs = np.zeros(L + 1, dtype=np.int64)
    for l in range(L):
        offs[l + 1] = offs[l] + B * layout[l, 3]
    return offs


@njit(**JIT)
def _forward(theta, layout, X, act):
    """Pre-activations of the last layer (B, sizes[-1]) for inputs X."""
    L = layout.shape[0]
    a = X
    for l in range(L):
        W, b = _layer(theta, layout, l)
        z = np.dot(a, W)
        _bias_act(z, b, act if l < L - 1 else IDENTITY)
        a = z
    return a


# ----------------------------------------------------------------------------- loss and backprop


@njit(**JIT)
def loss_kernel(theta, layout, X, T, act, loss, out_act):
    """Mean loss of the network on (X, T). float32/float64, or complex128 theta and X."""
    return _loss_from_output(_forward(theta, layout, X, act), T, loss, out_act)


@njit(**JIT)
def backprop_kernel(theta, layout, X, T, act, loss, out_act, grad):
    """Analytic gradient into ``grad`` (same dtype and layout as theta); returns the loss.

    Activations of the forward pass live in one buffer, layer after layer.
    """
    L = layout.shape[0]
    B = X.shape[0]
    offs = _activation_offsets(layout, B)
    buf = np.empty(offs[L], dtype=theta.dtype)

    # forward: a_l = act(a_{l-1} @ W_l + b_l); the last layer keeps z_L
    a = X
    for l in range(L):
        W, b = _layer(theta, layout, l)
        z = buf[offs[l] : offs[l + 1]].reshape((B, layout[l, 3]))
        np.dot(a, W, z)
        _bias_act(z, b, act if l < L - 1 else IDENTITY)
        a = z

    # dL/dz_L, one sample at a time
    K = a.shape[1]
    dz = np.empty((B, K), dtype=theta.dtype)
    total = 0.0
    for i in range(B):
        z, t = a[i], T[i]
        if loss == SOFTMAX_CE:
            # loss row = lse(z) sum(t) - t . z  and  dz = softmax(z) sum(t) - t, from the
            # same exponentials (= softmax - t for one-hot t)
            m = z.max()
            s = 0.0
            for k in range(K):
                e = np.exp(z[k] - m)
                dz[i, k] = e
                s += e
            lse = m + np.log(s)
            tsum = 0.0
            r = 0.0
            for k in range(K):
                tsum += t[k]
                r -= t[k] * (z[k] - lse)
            total += r
            for k in range(K):
                dz[i, k] = (dz[i, k] / s * tsum - t[k]) / B
        else:
            total += _row_loss(z, T, i, loss, out_act)
            for k in range(K):
                y = _act(z[k], out_act)
                dz[i, k] = (y - t[k]) * _act_grad(y, out_act) / B

    # backward: dW_l = a_{l-1}^T dz_l, db_l = sum_i dz_l, dz_{l-1} = (dz_l W_l^T) * act'
    for l in range(L - 1, -1, -1):
        W, _ = _layer(theta, layout, l)
        dW, db = _layer(grad, layout, l)
        a_prev = X if l == 0 else buf[offs[l - 1] : offs[l]].reshape((B, layout[l, 2]))
        np.dot(a_prev.T, dz, dW)
        for k in range(db.shape[0]):
            db[k] = 0.0
        for i in range(B):
            for k in range(db.shape[0]):
                db[k] += dz[i, k]
        if l > 0:
            da = np.dot(dz, W.T)
            for i in range(B):
                for k in range(da.shape[1]):
                    da[i, k] *= _act_grad(a_prev[i, k], act)
            dz = da
    return total / B


# ----------------------------------------------------------------------------- finite differences


@njit(**JIT)
def _step(t, h):
    """The scheme's step for a parameter of value t: h * max(1, |t|)."""
    return h * max(1.0, abs(t.real))


@njit(**JIT)
def _combine(scheme, f, d, f0, hp):
    """The finite-difference quotient from the loss values f at the realised steps d.

    f[s] = loss(theta + d[s] e_p) for the multipliers of ``STEPS[scheme]``; d[s] is the
    step that was actually applied ((t + c h) - t in the parameter's dtype), so the
    divisor is exact. For the complex step f holds complex values and hp is the step.
    """
    if scheme == FORWARD:
        return (f[0].real - f0) / d[0]
    if scheme == CENTRAL:
        return (f[0].real - f[1].real) / (d[0] - d[1])
    if scheme == FIVE_POINT:
        hh = 0.5 * (d[0] - d[1])
        return (8.0 * (f[0].real - f[1].real) - (f[2].real - f[3].real)) / (12.0 * hh)
    return f[0].imag / hp


@njit(**JIT)
def fd_naive_worker(theta, layout, X, T, act, loss, out_act, scheme, steps, unit, h, f0,
                    start, stop, grad):
    """Naive finite differences for parameters start..stop-1: a full loss per perturbation.

    theta and X are float32/float64, or complex128 for the complex step (then unit = 1j).
    Writes grad[start:stop] only; perturbs a private copy of theta.
    """
    th = theta.copy()
    n = steps.shape[0]
    f = np.zeros(n) * unit  # float64 (complex128 for the complex step)
    d = np.empty(n)
    for p in range(start, stop):
        t = theta[p]
        hp = _step(t, h)
        for s in range(n):
            th[p] = t + steps[s] * hp * unit
            d[s] = th[p].real - t.real
            f[s] = loss_kernel(th, layout, X, T, act, loss, out_act)
        th[p] = t
        grad[p] = _combine(scheme, f, d, f0, hp)


@njit(**PARALLEL_JIT)
def fd_naive_parallel(theta, layout, X, T, act, loss, out_act, scheme, steps, unit, h, f0,
                      n_threads, grad):
    """Split the parameters into n_threads contiguous ranges, one per thread."""
    N = theta.shape[0]
    chunk = (N + n_threads - 1) // n_threads
    for t in prange(n_threads):
        start = min(N, t * chunk)
        stop = min(N, start + chunk)
        fd_naive_worker(theta, layout, X, T, act, loss, out_act, scheme, steps, unit, h, f0,
                        start, stop, grad)


# The serial drivers are functions of their own, not the parallel ones compiled without
# parallel=True: Numba's disk cache keys entries by function and signature, not by flags, so
# one function compiled both ways would load whichever variant was cached first.
@njit(**JIT)
def fd_naive_serial(theta, layout, X, T, act, loss, out_act, scheme, steps, unit, h, f0,
                    n_threads, grad):
    """All parameters in this thread (n_threads is ignored)."""
    fd_naive_worker(theta, layout, X, T, act, loss, out_act, scheme, steps, unit, h, f0,
                    0, theta.shape[0], grad)


# ----------------------------------------------------------------------------- incremental


@njit(**JIT)
def base_pass(theta, layout, X, act, loss, out_act, T):
    """Forward pass that keeps every layer: (Z, A, offs, rows).

    Z holds the pre-activations and A the activations of each layer, layer l at
    ``offs[l]:offs[l+1]`` as (B, n_out) row-major; rows[i] is the (undivided) loss of sample i.
    """
    L = layout.shape[0]
    B = X.shape[0]
    offs = _activation_offsets(layout, B)
    Z = np.empty(offs[L], dtype=theta.dtype)
    A = np.empty(offs[L], dtype=theta.dtype)
    a = X
    for l in range(L):
        W, b = _layer(theta, layout, l)
        n = layout[l, 3]
        z = Z[offs[l] : offs[l + 1]].reshape((B, n))
        np.dot(a, W, z)
        _bias_act(z, b, IDENTITY)
        anext = A[offs[l] : offs[l + 1]].reshape((B, n))
        for i in range(B):
            for k in range(n):
                anext[i, k] = _act(z[i, k], act if l < L - 1 else IDENTITY)
        a = anext
    rows = np.empty(B)  # float64, as the loss kernel accumulates
    for i in range(B):
        rows[i] = _row_loss(a[i], T, i, loss, out_act)
    return Z, A, offs, rows


@njit(**JIT)
def _batch_loss(theta_k, layout, l, Zin, T, act, loss, out_act, n_pert, B, unit):
    """Losses of n_pert perturbed networks whose layer-l pre-activations are stacked in Zin.

    Zin is (n_pert * B, n_out of layer l): block q holds perturbation q. The rest of the
    network runs on all blocks at once, one matrix product per layer.
    """
    L = layout.shape[0]
    z = Zin
    for m in range(l, L - 1):
        for r in range(z.shape[0]):
            for k in range(z.shape[1]):
                z[r, k] = _act(z[r, k], act)
        W, b = _layer(theta_k, layout, m + 1)
        z = np.dot(z, W)
        _bias_act(z, b, IDENTITY)
    out = np.zeros(n_pert) * unit
    for q in range(n_pert):
        s = 0.0 * unit
        for i in range(B):
            s += _row_loss(z[q * B + i], T, i, loss, out_act)
        out[q] = s / B
    return out


@njit(**JIT)
def fd_incremental_unit(theta, theta_k, layout, X, T, act, loss, out_act, scheme, steps, unit,
                        h, f0, Z, A, offs, rows, l, j, batch, grad):
    """Finite differences for column j of layer l: every W_l[:, j] and b_l[j].

    Only column j of z_l changes (a rank-1 update). For the last layer only the loss rows
    are recomputed; for the layer before it, a rank-1 update of the next pre-activations;
    deeper, the perturbed next pre-activations of ``batch`` perturbations are stacked and
    pushed through the remaining layers together. theta_k is theta in the arithmetic of
    the scheme (complex128 for the complex step, theta itself otherwise).
    """
    L = layout.shape[0]
    B = X.shape[0]
    n_in, n_out = layout[l, 2], layout[l, 3]
    w_off, b_off = layout[l, 0], layout[l, 1]
    zl = Z[offs[l] : offs[l + 1]].reshape((B, n_out))
    al = A[offs[l] : offs[l + 1]].reshape((B, n_out))
    a_prev = X if l == 0 else A[offs[l - 1] : offs[l]].reshape((B, n_in))
    n_steps = steps.shape[0]
    n_par = n_in + 1  # W_l[0..n_in-1, j], then b_l[j]
    n_pert = n_par * n_steps

    # realised steps and the perturbation (as a value of the scheme's arithmetic)
    pidx = np.empty(n_par, dtype=np.int64)
    hps = np.empty(n_par)
    d = np.empty((n_par, n_steps))
    dv = np.empty(n_pert, dtype=theta_k.dtype)
    tmp = np.empty(1, dtype=theta_k.dtype)
    for i in range(n_par):
        p = w_off + i * n_out + j if i < n_in else b_off + j
        pidx[i] = p
        t = theta[p]
        hps[i] = _step(t, h)
        for s in range(n_steps):
            tmp[0] = t + steps[s] * hps[i] * unit
            d[i, s] = tmp[0].real - t.real
            dv[i * n_steps + s] = tmp[0] - t

    f = np.zeros(n_pert) * unit  # loss values in float64 (complex128)
    zc = np.empty(B, dtype=theta_k.dtype)
    if l == L - 1:
        # logits: only column j of each row changes
        zrow = np.empty(n_out, dtype=theta_k.dtype)
        for q in range(n_pert):
            i = q // n_steps
            tot = 0.0 * unit
            for b in range(B):
                x = a_prev[b, i] if i < n_in else 1.0
                for k in range(n_out):
                    zrow[k] = zl[b, k]
                zrow[j] = zl[b, j] + dv[q] * x
                if zrow[j] == zl[b, j]:
                    tot += rows[b]
                else:
                    tot += _row_loss(zrow, T, b, loss, out_act)
            f[q] = tot / B
    elif l == L - 2:
        # the next layer is the output: a rank-1 update of its rows, then the loss rows
        W1, _ = _layer(theta_k, layout, l + 1)
        n_next = layout[l + 1, 3]
        znext = Z[offs[l + 1] : offs[l + 2]].reshape((B, n_next))
        zrow = np.empty(n_next, dtype=theta_k.dtype)
        # Softmax rows of the unperturbed logits: the perturbed logits are z + u with
        # u = da * W[j, :], so exp(z_k + u_k - m) = e_k * exp(u_k), and for |u| < SERIES_LIMIT
        # exp(u) is its degree-5 series (first omitted term below 1.4e-21): K exponentials per
        # row become one logarithm.
        wmax = 0.0
        for k in range(n_next):
            wmax = max(wmax, abs(W1[j, k]))
        erow = np.empty((B, n_next))
        mrow = np.empty(B)
        tsum = np.empty(B)
        if loss == SOFTMAX_CE:
            for b in range(B):
                m = znext[b, 0].real
                for k in range(1, n_next):
                    m = max(m, znext[b, k].real)
                mrow[b] = m
                tsum[b] = 0.0
                for k in range(n_next):
                    erow[b, k] = np.exp(znext[b, k].real - m)
                    tsum[b] += T[b, k]
        for q in range(n_pert):
            i = q // n_steps
            tot = 0.0 * unit
            for b in range(B):
                x = a_prev[b, i] if i < n_in else 1.0
                da = _act(zl[b, j] + dv[q] * x, act) - al[b, j]
                if da == 0.0:
                    tot += rows[b]
                    continue
                if loss == SOFTMAX_CE and abs(da) * wmax < SERIES_LIMIT:
                    s = 0.0 * unit
                    tz = 0.0 * unit
                    for k in range(n_next):
                        u = da * W1[j, k]
                        eu = 1.0 + u * (1.0 + u * (0.5 + u * (1 / 6 + u * (1 / 24 + u / 120))))
                        s += erow[b, k] * eu
                        tz += T[b, k] * (znext[b, k] + u)
                    tot += (mrow[b] + np.log(s)) * tsum[b] - tz
                    continue
                for k in range(n_next):
                    zrow[k] = znext[b, k] + da * W1[j, k]
                tot += _row_loss(zrow, T, b, loss, out_act)
            f[q] = tot / B
    else:
        W1, _ = _layer(theta_k, layout, l + 1)
        n_next = layout[l + 1, 3]
        znext = Z[offs[l + 1] : offs[l + 2]].reshape((B, n_next))
        Zbuf = np.empty(min(batch, n_pert) * B * n_next, dtype=theta_k.dtype)
        q0 = 0
        while q0 < n_pert:
            nq = min(batch, n_pert - q0)
            Zb = Zbuf[: nq * B * n_next].reshape((nq * B, n_next))
            for qq in range(nq):
                q = q0 + qq
                i = q // n_steps
                for b in range(B):
                    x = a_prev[b, i] if i < n_in else 1.0
                    zc[b] = _act(zl[b, j] + dv[q] * x, act) - al[b, j]
                    for k in range(n_next):
                        Zb[qq * B + b, k] = znext[b, k] + zc[b] * W1[j, k]
            f[q0 : q0 + nq] = _batch_loss(theta_k, layout, l + 1, Zb, T, act, loss, out_act,
                                          nq, B, unit)
            q0 += nq

    fs = np.zeros(n_steps) * unit
    for i in range(n_par):
        for s in range(n_steps):
            fs[s] = f[i * n_steps + s]
        grad[pidx[i]] = _combine(scheme, fs, d[i], f0, hps[i])


@njit(**PARALLEL_JIT)
def fd_incremental_parallel(theta, theta_k, layout, X, T, act, loss, out_act, scheme, steps,
                            unit, h, f0, Z, A, offs, rows, units, batch, n_threads, grad):
    """Deal the (layer, column) units round-robin to n_threads threads."""
    for t in prange(n_threads):
        for u in range(t, units.shape[0], n_threads):
            fd_incremental_unit(theta, theta_k, layout, X, T, act, loss, out_act, scheme, steps,
                                unit, h, f0, Z, A, offs, rows, units[u, 0], units[u, 1], batch,
                                grad)


@njit(**JIT)
def fd_incremental_serial(theta, theta_k, layout, X, T, act, loss, out_act, scheme, steps,
                          unit, h, f0, Z, A, offs, rows, units, batch, n_threads, grad):
    """Every unit in this thread (n_threads is ignored)."""
    for u in range(units.shape[0]):
        fd_incremental_unit(theta, theta_k, layout, X, T, act, loss, out_act, scheme, steps,
                            unit, h, f0, Z, A, offs, rows, units[u, 0], units[u, 1], batch, grad)
