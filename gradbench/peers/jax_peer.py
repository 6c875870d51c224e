"""The jax peer (provider "jax"): ``jax.jit(jax.grad(loss))`` on the CPU, float64 enabled
(``jax_enable_x64``; float32 networks stay float32).

The first call on a new input shape traces and compiles: ``warm(net, threads, batch)`` does
it for the case's shapes and returns the seconds, so the timed calls compile nothing. The
timed callable holds the parameters and batch as jax arrays made once (as a jax user's
training loop would); ``gradient_backprop`` copies ``net.params`` into jax arrays at every
call, since they may have changed.

Threads: XLA sizes its CPU thread pools from, and runs them on, the CPUs the process may use;
no flag of this jaxlib limits them (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` was
measured to change nothing). ``configure_process`` therefore pins the process to ``threads``
CPUs (``os.sched_setaffinity``) before jax is imported, when ``threads`` is fewer than the
CPUs it has; in any other process (tests, training) jax keeps every CPU, and that is recorded.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from ..model import MLP, prepare_batch
from . import agreement

_thread_note = None  # what configure_process could set


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def configure_process(threads: int) -> dict:
    global _thread_note
    cpus = _cpus()
    if "jax" in sys.modules:
        _thread_note = (f"jax was imported before the process was configured: XLA's pools "
                        f"kept the {len(cpus)} CPUs it saw")
    elif threads < len(cpus) and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus[:threads])
        _thread_note = (f"process pinned to CPUs {cpus[:threads]} (os.sched_setaffinity) "
                        "before jax was imported: XLA sizes its pools from them")
    elif threads < len(cpus):
        _thread_note = (f"XLA's pools use all {len(cpus)} CPUs: this system cannot pin a "
                        "process to fewer")
    else:
        _thread_note = f"XLA's pools on all {len(cpus)} CPUs, the case's {threads} threads"
    _jax()
    return describe(threads)


def describe(threads: int) -> dict:
    jax = _jax()
    import jaxlib

    note = _thread_note or (f"not configured: XLA's pools on the {len(_cpus())} CPUs this "
                            "process may use")
    return {"library": f"jax {jax.__version__} (jaxlib {jaxlib.__version__}), x64 enabled",
            "thread_control": note}


def _jax():
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_enable_x64", True)
    return jax


_GRADS = {}  # (activation, loss, output_activation) -> jitted gradient


def _grad_fn(net: MLP):
    """jax.jit(jax.grad(loss)) for the network's activation and loss, made once: jit caches
    its compilations per input shapes on this one function."""
    key = (net.activation, net.loss, net.output_activation)
    if key not in _GRADS:
        jax = _jax()
        jnp = jax.numpy
        acts = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
                "relu": jax.nn.relu,  # derivative 0 at 0, as DESIGN.md (jnp.maximum gives 1/2)
                "identity": lambda z: z}
        act, out_act = acts[net.activation], acts[net.output_activation]
        softmax_ce = net.loss == "softmax_ce"

        def loss(params, X, T):
            a = X
            L = len(params) // 2
            for l in range(L):
                z = a @ params[2 * l] + params[2 * l + 1]
                a = act(z) if l < L - 1 else z
            if softmax_ce:
                return -(T * jax.nn.log_softmax(a, axis=1)).sum() / X.shape[0]
            return 0.5 * ((out_act(a) - T) ** 2).sum() / X.shape[0]

        _GRADS[key] = jax.jit(jax.grad(loss))
    return _GRADS[key]


def warm(net: MLP, threads: int, batch: int | None = None) -> float:
    """Trace and compile for the network's shapes and ``batch`` (nothing but jax's import
    when no batch is given: the first call compiles)."""
    t0 = time.perf_counter()
    jnp = _jax().numpy
    if batch is not None:
        grad = _grad_fn(net)
        params = [jnp.zeros(p.shape, dtype=p.dtype) for p in net.params]
        X = jnp.zeros((batch, net.sizes[0]), dtype=net.dtype)
        T = jnp.zeros((batch, net.sizes[-1]), dtype=net.dtype)
        for g in grad(params, X, T):
            g.block_until_ready()
    return time.perf_counter() - t0


def _call(grad, params, X, T):
    return [np.asarray(g) for g in grad(params, X, T)]  # waits for the result


def build_backprop(net: MLP, X, T, threads: int):
    jnp = _jax().numpy
    Xp, Tp = prepare_batch(net, X, T)
    grad = _grad_fn(net)
    params = [jnp.asarray(p) for p in net.params]
    Xj, Tj = jnp.asarray(Xp), jnp.asarray(Tp)
    return lambda: _call(grad, params, Xj, Tj)


def gradient_backprop(net: MLP, threads: int):
    jnp = _jax().numpy
    grad = _grad_fn(net)

    def fn(X, T):
        Xp, Tp = prepare_batch(net, X, T)
        return _call(grad, [jnp.asarray(p) for p in net.params], jnp.asarray(Xp),
                     jnp.asarray(Tp))

    return fn


def tolerance_backprop(net, X, T, loss, ours, fn):
    return agreement.analytic(net, len(X), loss)
