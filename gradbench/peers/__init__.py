"""Peers: the implementations a user would pick instead of gradbench's, one module each.

    textbook           NumPy, from gradbench.reference: backprop and the central-difference loop
    torch_peer         torch CPU autograd; the numerical Jacobian torch.autograd.gradcheck computes
    torch_cuda_peer    torch on a GPU: CUDA autograd; central differences in batched products
    jax_peer           jax.jit(jax.grad(loss)) on the CPU, float64 enabled
    scipy_peer         scipy.optimize.approx_fprime (forward differences)
    numdifftools_peer  numdifftools.Gradient (central differences at 15 steps, Richardson)

Only this package imports torch, jax, numdifftools or scipy.optimize, and only when a peer is
used: the registry (gradbench.methods) reaches these modules through functions that import them
when first called. Each module offers, per method ``what``, ``build_<what>(net, X, T,
threads)``, ``gradient_<what>(net, threads)`` and ``tolerance_<what>(...)`` (see
gradbench.methods.Method), and for the module ``warm(net, threads, batch=None)``,
``configure_process(threads)`` and ``describe(threads)``.

Every peer computes the loss of DESIGN.md exactly (the activations and losses the MLP
supports, relu'(0) = 0, softmax cross-entropy as the mean over the batch of -T . log_softmax)
and returns a gradient shaped like ``net.params`` in the network's dtype, read from the
parameters as they are when it is called.
"""

from __future__ import annotations

import importlib

_blas_limit = None  # the process-wide BLAS limit of the NumPy-based peers, kept alive


def limit_blas(threads: int) -> None:
    """For the peers whose work runs in NumPy's BLAS (textbook, scipy, numdifftools): limit
    every BLAS pool of this process to ``threads``, for the rest of the process."""
    global _blas_limit
    import threadpoolctl

    _blas_limit = threadpoolctl.threadpool_limits(threads, user_api="blas")

#: The module of each peer provider.
MODULES = {
    "numpy": "textbook",
    "torch": "torch_peer",
    "torch@cuda": "torch_cuda_peer",
    "jax": "jax_peer",
    "scipy": "scipy_peer",
    "numdifftools": "numdifftools_peer",
}


def module(provider: str):
    """The peer module of ``provider`` (imports its library)."""
    if provider not in MODULES:
        raise ValueError(f"no peer provider {provider!r}: choose one of {', '.join(MODULES)}")
    return importlib.import_module(f"gradbench.peers.{MODULES[provider]}")


def configure_process(provider: str, threads: int) -> dict:
    """Set up this process for ``provider``'s cases, before any of them runs: its thread
    pools limited to ``threads``. The benchmark calls it in the process it runs that provider
    in, and nowhere else (it changes process-wide settings: CPU affinity for jax).

    Returns
    -------
    dict
        ``library`` (name and version) and ``thread_control`` (what was set, and what could
        not be), recorded with every case of the provider.
    """
    return module(provider).configure_process(threads)
