"""The scalar math of every kernel, written once for the CPU and the GPU.

:func:`build` compiles the activation, its derivative and a sample's loss with the target's
compiler (``numba.njit`` for the CPU kernels, ``numba.cuda.jit(device=True)`` for the GPU's)
over the target's elementary functions, which differ: the CPU's sigmoid takes its
exponentials from vectorising arithmetic (:mod:`gradbench.kernels.expo`), the GPU's from
CUDA's libdevice, and CUDA has no complex libm, so the GPU's complex step brings its own.
This module imports no Numba: the compilers come in as arguments.
"""

from __future__ import annotations

from types import SimpleNamespace

from .codes import RELU, SIGMOID, SOFTMAX_CE, TANH


def build(jit, exp_act, exp, log, tanh, re) -> SimpleNamespace:
    """``act``, ``act_grad`` and ``row_loss`` compiled by ``jit``.

    Parameters
    ----------
    jit : callable
        The decorator that compiles a function for the target.
    exp_act : callable
        The exponential of the sigmoid.
    exp, log : callable
        The exponential and logarithm of the softmax (real or complex).
    tanh : callable
        The tanh of the activation.
    re : callable
        The real part of a real or complex number.
    """

    def act(x, code):
        """act(x) for one scalar (real or complex; relu branches on the real part)."""
        if code == SIGMOID:
            return 1.0 / (1.0 + exp_act(-x))
        if code == TANH:
            return tanh(x)
        if code == RELU:
            return x if re(x) > 0 else 0.0 * x
        return x

    def act_grad(a, code):
        """act'(z) written in terms of a = act(z) (relu'(0) = 0)."""
        if code == SIGMOID:
            return a * (1.0 - a)
        if code == TANH:
            return 1.0 - a * a
        if code == RELU:
            return 1.0 if a > 0 else 0.0
        return 1.0

    act_c = jit(act)

    def row_loss(z, off, T, i, K, loss, out_act):
        """Loss of sample i, its outputs at z[off:off + K] and targets T[i], not yet divided
        by the batch size.

        softmax_ce: logsumexp(z) * sum(t) - t . z   (stable: the max of the real parts is
        taken out first); mse: 0.5 * |out_act(z) - t|^2. T and the row index are passed
        rather than the view T[i]: on the CPU a view of a shared array costs an atomic
        reference-count update, and threads doing that in inner loops contend for it.
        """
        r = 0.0 * z[off]
        if loss == SOFTMAX_CE:
            m = re(z[off])
            for k in range(1, K):
                if re(z[off + k]) > m:
                    m = re(z[off + k])
            s = 0.0 * z[off]
            for k in range(K):
                s += exp(z[off + k] - m)
            lse = m + log(s)
            for k in range(K):
                r -= T[i, k] * (z[off + k] - lse)
            return r
        for k in range(K):
            d = act_c(z[off + k], out_act) - T[i, k]
            r += 0.5 * (d * d)
        return r

    return SimpleNamespace(act=act_c, act_grad=jit(act_grad), row_loss=jit(row_loss))
