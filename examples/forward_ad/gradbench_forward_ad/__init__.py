"""A gradbench method plugin: forward-mode automatic differentiation of gradbench's MLPs.

One Jacobian-vector product per parameter: the tangent of that parameter (a one-hot
direction) is pushed forward through the network to the loss. Exact like backprop (the two
agree to rounding), and O(N) passes like central differences (each a pass over the network
downstream of the parameter): the gap between backprop and numerical gradients is the
direction of differentiation, not finite differences as such.

The math (gradbench's DESIGN.md, "Exact math"), for parameter p of layer l, W_l[i, j] or
b_l[j]:

    dZ_l = a_{l-1}[:, i] (1 for b_l[j]) in column j, zero elsewhere
    dA_k = act'(z_k) * dZ_k,   dZ_{k+1} = dA_k @ W_{k+1}       for k = l .. L-1
    dL   = sum(G * dZ_L),      G = dL/dz_L
    G    = (softmax(z_L) * sum_k(T) - T) / B                      softmax_ce
    G    = (y - T) * output_activation'(z_L) / B                  mse

The first product, ``dA_l @ W_{l+1}``, has one nonzero column on its left: it is the outer
product ``dA_l[:, j] W_{l+1}[j, :]`` (the same sums, without the zeros).

Install it with ``pip install examples/forward_ad``; ``gradbench methods`` then lists
``forward_ad:jvp``.
"""

from __future__ import annotations

import time

import gradbench as gb

from .kernels import base_pass, jvp_gradient

__version__ = "0.1.0"

#: The gradbench method protocol this plugin speaks.
GRADBENCH_PROTOCOL = 1

__all__ = ["GRADBENCH_PROTOCOL", "base_pass", "gradient", "jvp_gradient", "methods"]


def gradient(net: gb.MLP, X, T, threads: int = 1) -> list:
    """The loss's gradient at ``net.params`` by forward mode, one JVP per parameter.

    Parameters
    ----------
    net : gradbench.MLP
    X : array (B, sizes[0])
    T : array (B, sizes[-1]), or (B,) integer labels for softmax_ce
    threads : int
        Threads the parameters are spread over (the result does not depend on them).

    Returns
    -------
    list of ndarray
        Shaped like ``net.params``, in the network's dtype. Nothing passed in is modified.
    """
    from gradbench.model import flat_params, prepare_batch

    Xp, Tp = prepare_batch(net, X, T)
    g = jvp_gradient(net, flat_params(net), Xp, Tp, threads)
    return [g[a:b].reshape(shape) for a, b, shape in net.slices]


def _build(net, X, T, threads):
    from gradbench.model import prepare_batch

    Xp, Tp = prepare_batch(net, X, T)
    return lambda: gradient(net, Xp, Tp, threads)


def _gradient(net, threads):
    return lambda X, T: gradient(net, X, T, threads)


def _warm(net, threads, batch=None):
    """Compile the kernels for the network's dtype (or load them from Numba's cache) on a
    tiny network of the same kind; the kernels do not depend on the batch's shape."""
    import numpy as np

    tiny = gb.MLP([2, 2, 2, 2], activation=net.activation, loss=net.loss, dtype=net.dtype,
                  output_activation=net.output_activation)
    X, T = np.zeros((1, 2), dtype=net.dtype), np.zeros((1, 2), dtype=net.dtype)
    t0 = time.perf_counter()
    gradient(tiny, X, T, threads)
    return time.perf_counter() - t0


def _tolerance(net, X, T, loss, ours, fn):
    # exact like backprop: the two differ by rounding alone, summed in other orders
    from gradbench.peers import agreement

    return agreement.analytic(net, len(X), loss)


def methods() -> list[gb.Method]:
    """This plugin's one method, ``forward_ad:jvp``."""
    return [gb.Method(
        "forward_ad:jvp", "forward_ad", "analytic", "forward mode (one JVP per parameter)",
        _build, _warm, gradient=_gradient, tolerance=_tolerance,
        requires=("numba",), install="pip install examples/forward_ad",
        dtypes=("float32", "float64"), threaded=True,
        # each JVP costs at most one forward pass, N of them: the bound the suite predicts
        # from (an analytic record is otherwise predicted as backprop) and corrects after the
        # first case. The pass runs only downstream of the parameter, so on one hidden layer
        # a JVP costs O(B K) and the gradient grows like incremental differences (measured,
        # 784-w-10 at batch 100, w = 64..512: N^0.83), not like naive ones
        loss_evals=lambda n: n)]
