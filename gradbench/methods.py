"""The registry of methods: one record per way of computing a loss or a gradient.

Everything that needs to know about a method asks here: the sweep (what to time and how to
build, warm and predict it), the result files (provider, kind, scheme and strategy are
recorded beside the name), the figures and the report (how to name and draw it), the command
line (what may be asked for). Nothing else parses a method name; adding a method means adding
one record to :data:`REGISTRY`.

A record's ``build(net, X, T, threads)`` returns a callable of no arguments that computes the
method once on that network and batch; ``warm(net, threads)`` compiles (or loads from the
cache) what that callable needs and returns the seconds it took, so the timing that follows
compiles nothing.

``gradient(net, threads)`` (analytic and numerical methods) returns ``fn(X, T)``, the gradient
at the network's parameters as they are at call time, a list shaped like ``net.params`` in its
dtype: what training calls once per step (``gradbench train`` updates ``net.params`` in place
between calls). Whatever it prepares (a compiled function, tensors viewing the parameters) is
prepared once per network, not per step.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from . import costmodel

#: What a method computes: the loss alone, an analytic gradient, a numerical gradient.
KINDS = ("loss", "analytic", "numerical")

#: The two methods the project's headline compares.
ANALYTIC = "backprop"
NUMERICAL = "numerical:central:naive"
LOSS = "primal"


@dataclass(frozen=True)
class Method:
    """One method: what it is, how to run it, what it costs, whether it is installed here."""

    name: str
    provider: str  # who implements it: "gradbench", "numpy", "torch", ...
    kind: str  # one of KINDS
    title: str  # short name for figures and tables
    build: Callable  # (net, X, T, threads) -> callable of no arguments
    warm: Callable  # (net, threads) -> seconds spent compiling or loading
    scheme: str | None = None  # numerical methods: forward, central, five_point, complex_step
    strategy: str | None = None  # numerical methods: naive, incremental
    requires: tuple[str, ...] = ()  # modules that must be importable
    install: str | None = None  # the command that installs what it requires
    dtypes: tuple[str, ...] = ("float32", "float64")
    #: True when the method spreads its work over the case's threads itself (the time
    #: predicted from one loss evaluation is divided by them); False when only BLAS does.
    threaded: bool = False
    #: (net, threads) -> fn(X, T) -> list of gradient arrays; None for loss-only methods.
    gradient: Callable | None = None

    def cost(self, sizes, batch: int, dtype: str) -> costmodel.Cost:
        """Predicted flops, bytes and loss evaluations of one call."""
        if self.kind == "loss":
            return costmodel.predict("primal", sizes, batch, dtype)
        if self.kind == "analytic":
            return costmodel.predict("backprop", sizes, batch, dtype)
        return costmodel.predict("numerical", sizes, batch, dtype, self.scheme, self.strategy)

    def available(self) -> bool:
        """Whether every module the method requires can be imported here."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def unavailable_reason(self) -> str | None:
        """None when available; else what is missing and the command that installs it."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not missing:
            return None
        return f"{', '.join(missing)} not installed: {self.install or 'install ' + missing[0]}"


# ----------------------------------------------------------------------------- gradbench's own


def _loss(net, X, T, threads):
    from . import gradients

    return lambda: gradients.loss(net, X, T)


def _backprop(net, X, T, threads):
    from . import gradients

    return lambda: gradients.backprop(net, X, T)


def _backprop_gradient(net, threads):
    from . import gradients

    return lambda X, T: gradients.backprop(net, X, T)


def _numerical_gradient(scheme: str, strategy: str):
    def gradient(net, threads):
        from . import gradients

        return lambda X, T: gradients.numerical_gradient(net, X, T, scheme, strategy=strategy,
                                                         threads=threads)

    return gradient


def _numerical(scheme: str, strategy: str):
    def build(net, X, T, threads):
        from . import gradients

        return lambda: gradients.numerical_gradient(net, X, T, scheme, strategy=strategy,
                                                    threads=threads)

    return build


def _warm(scheme: str = "central", strategy: str = "naive"):
    def warm(net, threads):
        from .gradients import warm_up

        return warm_up(net, scheme, strategy, threads)

    return warm


SCHEMES = ("central", "forward", "five_point", "complex_step")
STRATEGIES = ("naive", "incremental")


def _ours() -> list[Method]:
    out = [
        Method(LOSS, "gradbench", "loss", "primal", _loss, _warm()),
        Method(ANALYTIC, "gradbench", "analytic", "backprop", _backprop, _warm(),
               gradient=_backprop_gradient),
    ]
    for scheme in SCHEMES:
        for strategy in STRATEGIES:
            out.append(Method(
                f"numerical:{scheme}:{strategy}", "gradbench", "numerical",
                f"{scheme.replace('_', '-')} ({strategy})", _numerical(scheme, strategy),
                _warm(scheme, strategy), scheme=scheme, strategy=strategy,
                dtypes=("float64",) if scheme == "complex_step" else ("float32", "float64"),
                threaded=True, gradient=_numerical_gradient(scheme, strategy)))
    return out


#: Every method, by name, in the order figures and tables list them.
REGISTRY: dict[str, Method] = {m.name: m for m in _ours()}


def get(name: str) -> Method:
    """The record of ``name``; a ValueError naming the choices when there is none."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def title(name: str) -> str:
    """The short display name of a method, or the name itself for one not registered here
    (a result file may come from a version that had more)."""
    m = REGISTRY.get(name)
    return m.title if m is not None else str(name)


def order(name: str) -> int:
    """Sort key: registry order, unknown methods last."""
    names = list(REGISTRY)
    return names.index(name) if name in REGISTRY else len(names)
