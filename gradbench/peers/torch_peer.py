"""The torch peer (provider "torch"): CPU autograd backprop in float64 and float32, and the
numerical Jacobian that ``torch.autograd.gradcheck`` computes.

gradcheck (torch 2.13, torch/autograd/gradcheck.py, default ``fast_mode=False``) calls
``_slow_gradcheck``, which takes the numerical Jacobian from ``_get_numerical_jacobian(func,
inputs, outputs, eps=eps)``: for every input element in turn, central differences
``(f(x + eps) - f(x - eps)) / (2 eps)`` with gradcheck's default ``eps = 1e-6`` (absolute,
divided by the nominal step), in Python, one element at a time: 2N loss evaluations, plus one
at the point itself when no outputs are passed. Here it runs on the loss as a function of the
flat parameters (a copy: gradcheck perturbs its input in place).

Threads: ``torch.set_num_threads`` sizes the intra-op OpenMP pool, which MKL's products use too;
these calls use no inter-op parallelism.
"""

from __future__ import annotations

import inspect
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.gradcheck import _get_numerical_jacobian

from ..gradients import unflatten
from ..model import MLP, flat_params, prepare_batch
from . import agreement

#: gradcheck's default step.
EPS = inspect.signature(torch.autograd.gradcheck).parameters["eps"].default

_ACT = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
        "identity": lambda z: z}  # torch.relu's derivative at 0 is 0, as DESIGN.md's


def configure_process(threads: int) -> dict:
    torch.set_num_threads(threads)
    return describe(threads)


def describe(threads: int) -> dict:
    return {"library": f"torch {torch.__version__}",
            "thread_control": f"torch.set_num_threads({threads}): intra-op OpenMP pool and "
                              f"MKL at {torch.get_num_threads()} threads (inter-op pool "
                              "unused by these calls)"}


def loss(net: MLP, params, X, T):
    """DESIGN.md's loss of the network with parameters ``params`` (tensors)."""
    a = X
    L = len(params) // 2
    for l in range(L):
        z = a @ params[2 * l] + params[2 * l + 1]
        a = _ACT[net.activation](z) if l < L - 1 else z
    if net.loss == "softmax_ce":
        return F.cross_entropy(a, T)  # T one-hot (class probabilities): mean over the batch
    y = _ACT[net.output_activation](a)
    return 0.5 * ((y - T) ** 2).sum() / X.shape[0]


def warm(net: MLP, threads: int, batch: int | None = None) -> float:
    """One forward and backward pass on a tiny network of the same dtype (autograd's engine
    and the thread pool start)."""
    torch.set_num_threads(threads)
    tiny = MLP([2, 2, 2], activation=net.activation, loss=net.loss, dtype=net.dtype,
               output_activation=net.output_activation)
    X, T = np.zeros((1, 2), dtype=net.dtype), np.eye(2, dtype=net.dtype)[:1]
    t0 = time.perf_counter()
    build_backprop(tiny, X, T, threads)()
    return time.perf_counter() - t0


class _Leaves:
    """Tensors viewing ``net.params`` (no copy), requiring gradients; remade when
    ``net.params`` holds other arrays than those viewed."""

    def __init__(self, net: MLP):
        self.net, self.arrays, self.tensors = net, None, None

    def get(self):
        if self.arrays is None or any(a is not p for a, p in zip(self.arrays, self.net.params,
                                                                  strict=True)):
            self.arrays = list(self.net.params)
            self.tensors = [torch.from_numpy(np.ascontiguousarray(p)).requires_grad_()
                            for p in self.arrays]
        for t in self.tensors:
            t.grad = None
        return self.tensors


def _batch(net, X, T):
    Xp, Tp = prepare_batch(net, X, T)
    return torch.from_numpy(Xp), torch.from_numpy(Tp)


# ----------------------------------------------------------------------------- backprop


def _backprop(net, leaves, Xt, Tt):
    params = leaves.get()
    loss(net, params, Xt, Tt).backward()
    return [p.grad.numpy() for p in params]


def build_backprop(net: MLP, X, T, threads: int):
    leaves, (Xt, Tt) = _Leaves(net), _batch(net, X, T)
    return lambda: _backprop(net, leaves, Xt, Tt)


def gradient_backprop(net: MLP, threads: int):
    leaves = _Leaves(net)
    torch.set_num_threads(threads)  # once: nothing else in training changes it

    def fn(X, T):
        return _backprop(net, leaves, *_batch(net, X, T))

    return fn


def tolerance_backprop(net, X, T, loss, ours, fn):
    return agreement.analytic(net, len(X), loss)


# ----------------------------------------------------------------------------- numerical


def _numerical(net, Xt, Tt):
    theta = torch.from_numpy(flat_params(net).copy()).requires_grad_()

    def f(th):  # the loss as a function of the flat parameters
        return loss(net, [th[a:b].view(shape) for a, b, shape in net.slices], Xt, Tt)

    ((jacobian,),) = _get_numerical_jacobian(f, (theta,), eps=EPS)
    return unflatten(net, jacobian.reshape(-1).numpy())


def build_numerical(net: MLP, X, T, threads: int):
    if net.dtype != np.float64:
        raise ValueError("torch:numerical needs a float64 network: gradcheck's step "
                         f"{EPS:g} is below float32's resolution")
    Xt, Tt = _batch(net, X, T)
    return lambda: _numerical(net, Xt, Tt)


def gradient_numerical(net: MLP, threads: int):
    if net.dtype != np.float64:
        raise ValueError("torch:numerical needs a float64 network: gradcheck's step "
                         f"{EPS:g} is below float32's resolution")

    torch.set_num_threads(threads)  # once: nothing else in training changes it

    def fn(X, T):
        return _numerical(net, *_batch(net, X, T))

    return fn


def tolerance_numerical(net, X, T, loss, ours, fn):
    theta = flat_params(net).astype(np.float64)
    return agreement.finite_difference(net, len(X), (loss, theta, ours), "central", EPS,
                                       exact_divisor=False)
