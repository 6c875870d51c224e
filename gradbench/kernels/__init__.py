"""Numba kernels: loss (forward pass), backpropagation and numerical gradients.

Every kernel works on the flat parameter vector ``theta`` and a ``layout`` array
(rows ``w_offset, b_offset, n_in, n_out``; see :func:`gradbench.model.layout`).
Arrays are C-contiguous float32 or float64 (complex128 for the complex step);
``X`` and ``T`` have the dtype of ``theta`` unless said otherwise. Layer l of the code is
layer l + 1 of the math: ``z_l = a_prev @ W_l + b_l``, ``a_l = act(z_l)``, with
``a_prev = X`` for l = 0 and no activation on the output layer.

Arguments come in one order everywhere, each kernel taking the ones it needs:

1. the network and the batch: ``theta, layout, X, T, act, loss, out_act``;
2. the finite-difference scheme: ``scheme, steps, h, f0``;
3. the incremental strategy's base pass: ``Z, A, offs, rows``, then ``batch``;
4. which parameters: ``l`` (a layer), ``start, stop`` (a range of parameters, or of
   columns of layer l), ``j`` (one column), ``i`` or ``p`` (one parameter or sample),
   then how far they move (``dv``);
5. ``n_threads``;
6. outputs and caller-given buffers, last.

Helpers for one layer take its parts in the same places: weights (``W_next``) where theta
goes, the layer's input ``a_prev`` (or outputs ``z``) where X goes, the base pass's views
``z, a, z_next`` with the base pass.

Three layers, as in stumpy: serial workers that write only their own slice of the
result, ``prange`` drivers over threads (each thread has its own scratch, results
do not depend on the thread count), and the public wrappers in
:mod:`gradbench.gradients` that validate, allocate and call.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from ..config import INLINE_JIT, JIT, PARALLEL_JIT
from .codes import (CENTRAL, COMPLEX_STEP, FIVE_POINT, FORWARD, IDENTITY, MSE, RELU,
                    SIGMOID, SOFTMAX_CE, STEPS, TANH)

#: Largest |u| for which exp(u) is taken from its degree-5 series (exact to rounding).
SERIES_LIMIT = 1e-3

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


@njit(**JIT)
def one_hot(labels, out):
    """out[i, labels[i]] = 1 for integer labels in 0..K-1 (out zeroed, (B, K)); False, with
    out partly filled, when a label lies outside that range."""
    K = out.shape[1]
    for i in range(labels.shape[0]):
        c = labels[i]
        if c < 0 or c >= K:
            return False
        out[i, c] = 1
    return True


# ----------------------------------------------------------------------------- exp
#
# The sigmoid's exponentials are a fifth of a loss evaluation on the classic network when they
# are libm calls, one at a time; written out as arithmetic they vectorise with the loop around
# them (measured on 100 x 50 sigmoids: 17 us as calls, 6.7 us as arithmetic). The method is
# the textbook one: x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite, ln2 in two parts so that
# n * LN2_HI is exact), e^r from its Taylor series to degree 13 (truncation below 4e-18
# relative), times 2^n built from its bits. Accurate to a few units in the last place over the
# whole range, overflow to inf, underflow to 0, NaN propagated.

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 rounded to 32 bits: n * LN2_HI is exact
LN2_LO = 1.90821492927058770002e-10  # ln 2 - LN2_HI
#: Beyond these, exp(x) is inf or 0 in float64; clamping keeps 2^n's halves in the normal range.
EXP_LOW, EXP_HIGH = -746.0, 710.0


def _pow2(n):
    """2.0 ** n, for an int64 n in -1022..1023 (compiled: from its bits)."""
    return np.ldexp(1.0, n)


@overload(_pow2, jit_options=JIT)
def _pow2_overload(n):
    return lambda n: _pow2_bits(n)


@intrinsic
def _pow2_bits(typingctx, n):
    """2.0 ** n from its bits, for an int64 n in -1022..1023."""

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        bits = builder.shl(builder.add(args[0], ir.Constant(i64, 1023)), ir.Constant(i64, 52))
        return builder.bitcast(bits, ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(**INLINE_JIT)
def _exp_real(x):
    """exp(x) for a real x, in float64 arithmetic, as branch-free arithmetic that vectorises."""
    y = min(max(np.float64(x), EXP_LOW), EXP_HIGH)
    n = np.floor(y * LOG2E + 0.5)
    r = (y - n * LN2_HI) - n * LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    k = np.int64(n)
    half = k >> 1
    e = p * _pow2(half) * _pow2(k - half)  # 2^n in two normal factors: one rounding at most
    return e if y == y else np.float64(x)  # NaN in, NaN out


def _exp(x):
    """exp(x): the arithmetic above for real x, np.exp for complex (the complex step)."""
    return np.exp(x)


def _exp_complex(x):
    return np.exp(x)


def _exp_real_impl(x):
    return _exp_real(x)


@overload(_exp, jit_options=JIT)
def _exp_overload(x):
    return _exp_complex if isinstance(x, types.Complex) else _exp_real_impl


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
        return 1.0 / (1.0 + _exp(-x))
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


@njit(**INLINE_JIT)
def _row_loss(z, T, loss, out_act, i):
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


# ----------------------------------------------------------------------------- loss and backprop


@njit(**JIT)
def _loss(theta, layout, X, T, act, loss, out_act, offs, buf):
    """Mean loss, the forward pass written into the caller's buffer (see _forward_pass)."""
    L = layout.shape[0]
    _forward_pass(theta, layout, X, act, 0, offs, buf, buf)
    return _loss_from_output(_block(buf, offs, L - 1, layout[L - 1, 3]), T, loss, out_act)


@njit(**JIT)
def loss_kernel(theta, layout, X, T, act, loss, out_act):
    """Mean loss of the network on (X, T). float32/float64, or complex128 theta and X."""
    offs = _activation_offsets(layout, X.shape[0], 0)
    buf = np.empty(offs[-1], dtype=theta.dtype)
    return _loss(theta, layout, X, T, act, loss, out_act, offs, buf)


@njit(**JIT)
def checked_loss_kernel(theta, layout, X, T, act, loss, out_act):
    """(mean loss, whether a pre-activation was NaN or inf): see :func:`_forward_pass`."""
    L = layout.shape[0]
    offs = _activation_offsets(layout, X.shape[0], 0)
    buf = np.empty(offs[-1], dtype=theta.dtype)
    bad = _forward_pass(theta, layout, X, act, 0, offs, buf, buf)
    f = _loss_from_output(_block(buf, offs, L - 1, layout[L - 1, 3]), T, loss, out_act)
    return f, bad


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
def backprop_kernel(theta, layout, X, T, act, loss, out_act, grad):
    """Analytic gradient into ``grad`` (same dtype and layout as theta); returns the loss and
    whether a pre-activation was NaN or inf (see :func:`_forward_pass`).

    The forward pass keeps the activations of every layer in one buffer (the output layer's
    are its logits z_L); the backward pass walks the layers from the top.
    """
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


# ----------------------------------------------------------------------------- finite differences


@njit(**JIT)
def _step(t, h):
    """The scheme's step for a parameter of value t: h * max(1, |t|)."""
    return h * max(1.0, abs(t.real))


@njit(**JIT)
def _perturbations(theta, steps, h, p, moved, d):
    """Parameter p moved by each of the scheme's steps; returns its step h_p.

    moved[s] = theta[p] + steps[s] * h_p, rounded to the dtype of ``moved`` (theta's: the value
    the perturbed network really holds); d[s] = moved[s] - theta[p] (real parts), the step
    actually applied, exact.
    """
    t = theta[p]
    hp = _step(t, h)
    for s in range(steps.shape[0]):
        moved[s] = t + steps[s] * hp
        d[s] = moved[s].real - t.real
    return hp


@njit(**JIT)
def _combine(scheme, hp, f0, f, d):
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


# ----------------------------------------------------------------------------- naive


@njit(**JIT)
def fd_naive_worker(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0, batch,
                    start, stop, grad):
    """Naive finite differences for parameters start..stop-1: a whole loss per perturbation.

    The perturbed networks are evaluated ``batch`` at a time: their first layers side by
    side in one product X @ [W1' W1'' ...], each block the first layer of one perturbed
    network (a product that wide runs nearer the BLAS's peak than X @ W1 alone), then each
    network's upper layers on their own. Nothing is reused between perturbations: every
    network's loss is computed whole, from X, with the arithmetic of :func:`_loss`.

    theta and X are float32/float64, or complex128 for the complex step. Writes
    grad[start:stop] only; perturbs private copies of theta.
    """
    L = layout.shape[0]
    B = X.shape[0]
    w_off, b_off, n_in, n_out = layout[0, 0], layout[0, 1], layout[0, 2], layout[0, 3]
    n_steps = steps.shape[0]
    G = batch
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
def fd_naive_parallel(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0, batch,
                      start, stop, n_threads, grad):
    """Split parameters start..stop-1 into n_threads contiguous ranges, one per thread."""
    chunk = (stop - start + n_threads - 1) // n_threads
    for t in prange(n_threads):
        lo = min(stop, start + t * chunk)
        hi = min(stop, lo + chunk)
        fd_naive_worker(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0, batch,
                        lo, hi, grad)


# The serial drivers are functions of their own, not the parallel ones compiled without
# parallel=True: Numba's disk cache keys entries by function and signature, not by flags, so
# one function compiled both ways would load whichever variant was cached first.
@njit(**JIT)
def fd_naive_serial(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0, batch,
                    start, stop, n_threads, grad):
    """Parameters start..stop-1 in this thread (n_threads is ignored)."""
    fd_naive_worker(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0, batch,
                    start, stop, grad)


# ----------------------------------------------------------------------------- incremental
#
# A unit is column j of layer l: the parameters W_l[i, j] (i < n_in) and b_l[j] (i = n_in).
# Moving parameter i of the unit by dv changes only column j of z_l, row b by dv * x_b, with
# x_b = a_prev[b, i] for a weight and 1 for the bias. What the change costs depends on how far
# it is from the output, one function per regime:
#
#   output layer          the logits' column j moves: recompute the changed loss rows;
#   layer below output    a_l[:, j] moves by da: z_next moves by da * W_next[j, :], a rank-1
#                         update of the logits;
#   deeper layers         z_next as above, for many perturbations at once, stacked and pushed
#                         through the remaining layers with one matrix product per layer.
#
# Each regime fills f[i, s], the mean loss with parameter i moved by its step s.


@njit(**JIT)
def base_pass(theta, layout, X, T, act, loss, out_act):
    """Forward pass that keeps every layer: (Z, A, offs, rows).

    Z holds the pre-activations and A the activations of each layer, layer l at
    ``offs[l]:offs[l+1]`` as (B, n_out) row-major; rows[i] is the (undivided) loss of sample i.
    """
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
def _output_layer_losses(a_prev, T, loss, out_act, z, rows, j, dv, f):
    """Regime "output layer": unit j of the output layer, whose pre-activations are the
    logits z (B, K); a_prev is the layer's input and rows the base loss rows.

    dv[i, s] is how far step s moves parameter i (in the arithmetic of the scheme); a row
    whose logit does not move keeps its base loss.
    """
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
def _below_output_losses(W_next, a_prev, T, act, loss, out_act, z, a, z_next, rows, j, dv, f):
    """Regime "layer below the output": unit j of the last hidden layer.

    a_prev is the layer's input, z and a its base pre-activations and activations, z_next
    the base logits and W_next the output layer's weights (in the arithmetic of the scheme).
    Moving z[b, j] moves a[b, j] by da, and the logits by the rank-1 update da * W_next[j, :].

    Softmax rows of the unperturbed logits are computed once: the perturbed logits are
    z_next + u with u = da * W_next[j, :], so exp(z_next_k + u_k - m) = e_k * exp(u_k), and for
    |u| < SERIES_LIMIT exp(u) is its degree-5 series (first omitted term below 1.4e-21): K
    exponentials per row become one logarithm.
    """
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
def _stacked_losses(theta, layout, T, act, loss, out_act, l, Z_stack, f):
    """Mean losses of n perturbed networks whose layer-l pre-activations are stacked in
    Z_stack (n * B, n_out of layer l), block q (rows q*B .. q*B+B-1) holding network q; into
    f[:n]. Z_stack is overwritten.

    The rest of the network runs on all blocks at once, one matrix product per layer.
    """
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
def _deep_layer_losses(theta, layout, a_prev, T, act, loss, out_act, z, a, z_next, batch, l, j,
                       dv, f):
    """Regime "deeper layers": unit j of layer l, two or more layers below the output.

    a_prev is the layer's input, z and a its base pre-activations and activations, z_next
    the next layer's base pre-activations; theta is in the arithmetic of the scheme. The
    perturbed z_next of ``batch`` perturbations at a time are stacked and pushed through the
    remaining layers together.
    """
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
        _stacked_losses(theta, layout, T, act, loss, out_act, l + 1, Z_stack,
                        f_flat[q0 : q0 + nq])
        q0 += nq


@njit(**JIT)
def fd_incremental_unit(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0,
                        Z, A, offs, rows, batch, l, j, grad):
    """Finite differences for column j of layer l: every W_l[:, j] and b_l[j].

    theta is in the arithmetic of the scheme (complex128 for the complex step); X, Z, A and
    rows come from :func:`base_pass` on the real parameters. Picks the regime from l.
    """
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
        _output_layer_losses(a_prev, T, loss, out_act, z, rows, j, dv, f)
    else:
        n_next = layout[l + 1, 3]
        z_next = _block(Z, offs, l + 1, n_next)
        if l == L - 2:
            W_next, _ = _layer(theta, layout, l + 1)
            _below_output_losses(W_next, a_prev, T, act, loss, out_act, z, a, z_next, rows, j,
                                 dv, f)
        else:
            _deep_layer_losses(theta, layout, a_prev, T, act, loss, out_act, z, a, z_next,
                               batch, l, j, dv, f)

    for i in range(n_par):
        grad[index[i]] = _combine(scheme, hp[i], f0, f[i], d[i])


@njit(**PARALLEL_JIT)
def fd_incremental_parallel(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0,
                            Z, A, offs, rows, batch, l, start, stop, n_threads, grad):
    """Deal columns start..stop-1 of layer l round-robin to n_threads threads."""
    for t in prange(n_threads):
        for j in range(start + t, stop, n_threads):
            fd_incremental_unit(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0,
                                Z, A, offs, rows, batch, l, j, grad)


@njit(**JIT)
def fd_incremental_serial(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0,
                          Z, A, offs, rows, batch, l, start, stop, n_threads, grad):
    """Columns start..stop-1 of layer l in this thread (n_threads is ignored)."""
    for j in range(start, stop):
        fd_incremental_unit(theta, layout, X, T, act, loss, out_act, scheme, steps, h, f0,
                            Z, A, offs, rows, batch, l, j, grad)
