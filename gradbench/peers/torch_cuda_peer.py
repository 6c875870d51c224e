"""The torch peer on a GPU (provider "torch", device "cuda"): CUDA autograd backprop, and the
naive central-difference gradient as a user of torch would write it on a GPU: the perturbed
parameter vectors, :data:`CHUNK` at a time, through batched matrix products (every perturbed
network's loss whole, nothing reused between perturbations).

The central differences take gradbench's steps (eps^(1/3) scaled by max(1, |theta_i|), the
quotient divided by the step actually applied), so their bound is gradbench's own.

Parameters and batch are copied to the GPU when a method is built, before any timing; each
call ends with ``torch.cuda.synchronize()`` and leaves its result on the GPU. ``DEVICE`` may
be set to "cpu" to run the same code without a GPU (the tests do).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from ..gradients import default_step
from ..model import MLP, flat_params, prepare_batch
from . import agreement

# the same steps and divisor as the NumPy loop's: the same bound
from .textbook import tolerance_central  # noqa: F401

#: Where the tensors live.
DEVICE = "cuda"
#: Perturbed parameter vectors per batched product.
CHUNK = 2048

_ACT = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
        "identity": lambda z: z}


def configure_process(threads: int) -> dict:
    torch.set_num_threads(threads)
    return describe(threads)


def describe(threads: int) -> dict:
    where = (torch.cuda.get_device_name() if DEVICE == "cuda" and torch.cuda.is_available()
             else DEVICE)
    return {"library": f"torch {torch.__version__} (CUDA {torch.version.cuda})",
            "thread_control": f"one GPU: {where}; the host's intra-op pool at {threads}"}


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _tensors(net: MLP, X, T):
    Xp, Tp = prepare_batch(net, X, T)
    return (torch.from_numpy(Xp).to(DEVICE), torch.from_numpy(Tp).to(DEVICE))


def warm(net: MLP, threads: int, batch: int | None = None) -> float:
    """Both methods once on a tiny network of the same dtype (CUDA's context, cuBLAS's
    handles and autograd start)."""
    tiny = MLP([2, 2, 2], activation=net.activation, loss=net.loss, dtype=net.dtype,
               output_activation=net.output_activation)
    X, T = np.zeros((1, 2), dtype=net.dtype), np.eye(2, dtype=net.dtype)[:1]
    t0 = time.perf_counter()
    build_backprop(tiny, X, T, threads)()
    build_central(tiny, X, T, threads)()
    return time.perf_counter() - t0


def _output_loss(net: MLP, z, Tt):
    """The mean loss from the outputs z (..., B, K): one per leading index."""
    B = Tt.shape[-2]
    if net.loss == "softmax_ce":
        return -(Tt * F.log_softmax(z, dim=-1)).sum(dim=(-2, -1)) / B
    y = _ACT[net.output_activation](z)
    return 0.5 * ((y - Tt) ** 2).sum(dim=(-2, -1)) / B


def _forward(net: MLP, weights, biases, Xt):
    a = Xt
    L = len(weights)
    for l in range(L):
        z = torch.matmul(a, weights[l]) + biases[l]
        a = _ACT[net.activation](z) if l < L - 1 else z
    return a


# ----------------------------------------------------------------------------- backprop


def build_backprop(net: MLP, X, T, threads: int):
    Xt, Tt = _tensors(net, X, T)
    params = [torch.from_numpy(np.ascontiguousarray(p)).to(DEVICE).requires_grad_()
              for p in net.params]

    def fn():
        for p in params:
            p.grad = None
        _output_loss(net, _forward(net, params[0::2], params[1::2], Xt), Tt).backward()
        _sync()
        return [p.grad for p in params]

    return fn


def gradient_backprop(net: MLP, threads: int):
    def fn(X, T):
        return [g.cpu().numpy() for g in build_backprop(net, X, T, threads)()]

    return fn


def tolerance_backprop(net, X, T, loss, ours, fn):
    return agreement.analytic(net, len(X), loss)


# ----------------------------------------------------------------------------- central


def _central(net: MLP, theta, Xt, Tt, h: float):
    """Central differences of every parameter, CHUNK perturbed networks per batched product."""
    n = theta.shape[0]
    grad = torch.empty_like(theta)
    for start in range(0, n, CHUNK):
        idx = torch.arange(start, min(n, start + CHUNK), device=theta.device)
        t = theta[idx]
        hp = h * torch.clamp(t.abs(), min=1.0)
        moved = (t + hp, t - hp)  # in theta's dtype: the values the networks hold
        f = []
        for m in moved:
            thetas = theta.expand(len(idx), n).clone()
            thetas[torch.arange(len(idx), device=theta.device), idx] = m
            weights = [thetas[:, a:b].view(len(idx), *shape) for (a, b, shape)
                       in net.slices[0::2]]
            biases = [thetas[:, a:b].view(len(idx), 1, *shape) for (a, b, shape)
                      in net.slices[1::2]]
            f.append(_output_loss(net, _forward(net, weights, biases, Xt), Tt))
        grad[idx] = (f[0] - f[1]) / (moved[0] - moved[1])
    return grad


def build_central(net: MLP, X, T, threads: int):
    Xt, Tt = _tensors(net, X, T)
    theta = torch.from_numpy(flat_params(net)).to(DEVICE)
    h = default_step("central", net.dtype)

    def fn():
        grad = _central(net, theta, Xt, Tt, h)
        _sync()
        return [grad[a:b].view(shape) for a, b, shape in net.slices]

    return fn


def gradient_central(net: MLP, threads: int):
    def fn(X, T):
        return [g.cpu().numpy() for g in build_central(net, X, T, threads)()]

    return fn

