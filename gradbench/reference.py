"""Plain NumPy textbook implementations: the test oracle and the "textbook" peer.

Written for clarity, one layer at a time, with the math of DESIGN.md. They take a
network and a prepared batch (see :func:`gradbench.model.prepare_batch`).
"""

from __future__ import annotations

import numpy as np


def act(z: np.ndarray, name: str) -> np.ndarray:
    if name == "sigmoid":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0 * z)
    return z


def act_grad(z: np.ndarray, name: str) -> np.ndarray:
    """act'(z); relu'(0) = 0."""
    if name == "sigmoid":
        s = act(z, "sigmoid")
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(z.dtype)
    return np.ones_like(z)


def forward(params, X, activation):
    """Pre-activations zs and activations as of every layer (as[0] = X)."""
    a, zs, acts = X, [], [X]
    L = len(params) // 2
    for l in range(L):
        W, b = params[2 * l], params[2 * l + 1]
        z = a @ W + b
        zs.append(z)
        a = act(z, activation) if l < L - 1 else z
        acts.append(a)
    return zs, acts


def log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.real.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def loss(net, params, X, T) -> float:
    """Mean loss: softmax cross-entropy or half squared error."""
    zs, _ = forward(params, X, net.activation)
    z = zs[-1]
    B = X.shape[0]
    if net.loss == "softmax_ce":
        return -(T * log_softmax(z)).sum() / B
    y = act(z, net.output_activation)
    return 0.5 * ((y - T) ** 2).sum() / B


def backprop(net, params, X, T) -> list[np.ndarray]:
    """Gradient by the chain rule, layer by layer from the top."""
    zs, acts = forward(params, X, net.activation)
    B = X.shape[0]
    z = zs[-1]
    if net.loss == "softmax_ce":
        p = np.exp(log_softmax(z))
        dz = (p * T.sum(axis=1, keepdims=True) - T) / B  # softmax - T for one-hot T
    else:
        y = act(z, net.output_activation)
        dz = (y - T) * act_grad(z, net.output_activation) / B
    grads = [None] * len(params)
    for l in range(len(params) // 2 - 1, -1, -1):
        grads[2 * l] = acts[l].T @ dz          # dW = a_{l-1}^T dz
        grads[2 * l + 1] = dz.sum(axis=0)      # db = sum over the batch
        if l > 0:
            da = dz @ params[2 * l].T          # dL/da_{l-1}
            dz = da * act_grad(zs[l - 1], net.activation)
    return grads


def numerical_gradient(net, params, X, T, h: float, count: int | None = None):
    """Central differences, one parameter at a time: the textbook O(N^2) loop.

    Parameter i moves by h * max(1, |theta_i|); the quotient divides by the step actually
    applied, as the kernels do. Works on copies; the inputs are untouched. With ``count``,
    only the first ``count`` parameters (in [W1, b1, ...] order) are done, the rest left 0:
    every parameter costs the same, so benchmarks may time a part and scale.
    """
    params = [p.copy() for p in params]
    left = sum(p.size for p in params) if count is None else count
    grads = []
    for p in params:
        g = np.zeros(p.shape, dtype=np.float64)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        n, left = min(flat.size, left), left - min(flat.size, left)
        for i in range(n):
            t = flat[i]
            hp = h * max(1.0, abs(float(t)))
            flat[i] = t + hp
            tp, fp = flat[i], loss(net, params, X, T)
            flat[i] = t - hp
            tm, fm = flat[i], loss(net, params, X, T)
            flat[i] = t
            gflat[i] = (fp - fm) / (float(tp) - float(tm))
        grads.append(g.astype(p.dtype))
    return grads
