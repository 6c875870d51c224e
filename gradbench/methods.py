"""The registry of methods: one record per way of computing a loss or a gradient.

Everything that needs to know about a method asks here: the sweep (what to time and how to
build, warm and predict it), the result files (provider, kind, scheme and strategy are
recorded beside the name), the figures and the report (how to name and draw it), the command
line (what may be asked for). Nothing else parses a method name; adding a method means adding
one record to :data:`REGISTRY`.

A record's ``build(net, X, T, threads)`` returns a callable of no arguments that computes the
method once on that network and batch; ``warm(net, threads, batch=None)`` compiles (or loads
from the cache) what that callable needs and returns the seconds it took, so the timing that
follows compiles nothing. Without ``batch`` it does what does not depend on the inputs' shape;
with it (the batch the timed calls will use), methods that compile per input shape (jax's)
compile for that shape too; a second call finds everything compiled and returns at once.

``gradient(net, threads)`` (analytic and numerical methods) returns ``fn(X, T)``, the gradient
at the network's parameters as they are at call time, a list shaped like ``net.params`` in its
dtype: what training calls once per step (``gradbench train`` updates ``net.params`` in place
between calls). Whatever it prepares (a compiled function, tensors viewing the parameters) is
prepared once per network, not per step.

Peers are the implementations a user would pick instead of gradbench's: the NumPy textbook,
torch, jax, scipy.optimize and numdifftools, one module each under :mod:`gradbench.peers`
(the only place that imports those libraries: their records import it when first called).
A peer record also says how far its gradient may lie from gradbench's backprop
(``tolerance``), so that a wrong fast gradient is never timed into the results; the sweep
runs each peer provider's cases in a process of its own (see :mod:`gradbench.bench.parts`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import costmodel
from .kernels.codes import SCHEMES, STRATEGIES

#: What a method computes: the loss alone, an analytic gradient, a numerical gradient.
KINDS = ("loss", "analytic", "numerical")

#: The two methods the project's headline compares.
ANALYTIC = "backprop"
NUMERICAL = "numerical:central:naive"
LOSS = "primal"
#: The provider of gradbench's own methods; every other provider is a peer.
OURS = "gradbench"
#: Where a method computes unless it says otherwise (results.DEFAULT_DEVICE), and the GPU.
DEFAULT_DEVICE = "cpu"
GPU = "cuda"

#: The colours and markers of a record that names none (a plugin's): one of each, at the place
#: its name hashes to (the same in every run), none of them a built-in method's.
PLUGIN_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#ffbb78",
                  "#ff9896", "#c5b0d5", "#dbdb8d", "#9edae5")
PLUGIN_MARKERS = ("X", "*", "h", "p", "<", ">")
#: The marker of gradbench's own series, where a figure tells providers apart by marker.
OURS_MARKER = "o"


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
    #: Peers: (net, X, T, loss, ours, fn) -> the largest distance from gradbench's backprop
    #: (``ours``, flat float64) that a correct result may have, a number or one per parameter;
    #: ``fn`` is the callable ``build`` returned, after a call. None for gradbench's methods.
    tolerance: Callable | None = None
    #: Loss evaluations of one gradient as a function of N, for methods whose count is not
    #: their scheme's (numdifftools evaluates many steps per parameter); None: the scheme's.
    loss_evals: Callable[[int], int] | None = None
    #: Where it computes: "cpu", or "cuda" (an NVIDIA GPU, through numba.cuda). Part of each
    #: case's identity and series: a GPU's times never merge with a CPU's.
    device: str = DEFAULT_DEVICE
    #: How figures draw it: its colour (a matplotlib colour, its own in every figure, the
    #: same on every device), and its marker where a figure tells providers apart. None: one
    #: of :data:`PLUGIN_COLOURS` and :data:`PLUGIN_MARKERS`, chosen by the name.
    colour: str | None = None
    marker: str | None = None
    #: A plugin's method: the distribution that provides it (or the module ``--plugin``
    #: loaded) and its version; set by gradbench when it loads the plugin. None: built in.
    plugin: str | None = None
    plugin_version: str | None = None

    def __post_init__(self):
        at = zlib.crc32(self.name.encode())
        if self.colour is None:
            object.__setattr__(self, "colour", PLUGIN_COLOURS[at % len(PLUGIN_COLOURS)])
        if self.marker is None:
            object.__setattr__(self, "marker", PLUGIN_MARKERS[at % len(PLUGIN_MARKERS)])

    @property
    def part(self) -> str:
        """The part of a run that times it (each part a process of its own): its provider's
        on the CPU, ``provider@device`` on another device."""
        return self.provider if self.device == DEFAULT_DEVICE else f"{self.provider}@{self.device}"

    def cost(self, sizes, batch: int, dtype: str) -> costmodel.Cost:
        """Predicted flops, bytes and loss evaluations of one call."""
        if self.loss_evals is not None:
            evals = int(self.loss_evals(costmodel.num_params(sizes)))
            itemsize = np.dtype(dtype).itemsize
            return costmodel.Cost(evals * costmodel.forward_flops(sizes, batch),
                                  evals * costmodel.forward_bytes(sizes, batch, itemsize), evals)
        if self.kind == "loss":
            return costmodel.predict("primal", sizes, batch, dtype)
        if self.kind == "analytic":
            return costmodel.predict("backprop", sizes, batch, dtype)
        return costmodel.predict("numerical", sizes, batch, dtype, self.scheme, self.strategy)

    def available(self) -> bool:
        """Whether every module the method requires can be imported here (and, for a GPU
        method, a GPU is there)."""
        return self.unavailable_reason() is None

    def unavailable_reason(self) -> str | None:
        """None when available; else what is missing and the command that installs it."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            return (f"{', '.join(missing)} not installed: "
                    f"{self.install or 'install ' + missing[0]}")
        if self.device == GPU:
            from . import gpu

            if self.provider == OURS:
                return gpu.unavailable_reason(timing=True)
            return gpu.driver_reason()
        return None


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


def _warm(scheme: str | None = None, strategy: str = "naive"):
    """Warm-up of a method of ours: loss and backprop, and with a scheme that scheme's
    numerical kernels too."""

    def warm(net, threads, batch=None):
        from .gradients import warm_up

        return warm_up(net, scheme, strategy, threads)

    return warm


#: The headline's scheme (:data:`NUMERICAL`'s): listed first, the others after it in the
#: order of their codes (:data:`gradbench.kernels.codes.SCHEMES`).
HEADLINE_SCHEME = NUMERICAL.split(":")[1]
#: The schemes in the order the registry, and so every figure and table, lists them.
SHOWN_SCHEMES = tuple(sorted(SCHEMES, key=lambda s: s != HEADLINE_SCHEME))

#: Colours of gradbench's methods: the loss and backprop; each scheme's naive strategy, its
#: incremental strategy a darker shade of it (and a dashed line: the report's figures).
COLOURS = {LOSS: "#7f7f7f", ANALYTIC: "#1f77b4"}
SCHEME_COLOURS = {  # scheme -> (naive, incremental)
    "forward": ("#ff7f0e", "#a34f00"),
    "central": ("#d62728", "#7b1113"),
    "five_point": ("#9467bd", "#4b2a70"),
    "complex_step": ("#8c564b", "#4a2b25"),
}


def _style(name: str, scheme: str | None = None, strategy: str | None = None) -> dict:
    """The colour and marker of gradbench's method ``name`` (of ``scheme`` and ``strategy``
    for a numerical one)."""
    colour = (COLOURS[name] if scheme is None
              else SCHEME_COLOURS[scheme][STRATEGIES.index(strategy)])
    return {"colour": colour, "marker": OURS_MARKER}


def _ours() -> list[Method]:
    out = [
        Method(LOSS, "gradbench", "loss", "primal", _loss, _warm(), **_style(LOSS)),
        Method(ANALYTIC, "gradbench", "analytic", "backprop", _backprop, _warm(),
               gradient=_backprop_gradient, **_style(ANALYTIC)),
    ]
    for scheme in SHOWN_SCHEMES:
        for strategy in STRATEGIES:
            out.append(Method(
                f"numerical:{scheme}:{strategy}", "gradbench", "numerical",
                f"{scheme.replace('_', '-')} ({strategy})", _numerical(scheme, strategy),
                _warm(scheme, strategy), scheme=scheme, strategy=strategy,
                dtypes=("float64",) if scheme == "complex_step" else ("float32", "float64"),
                threaded=True, gradient=_numerical_gradient(scheme, strategy),
                **_style(f"numerical:{scheme}:{strategy}", scheme, strategy)))
    return out


# ----------------------------------------------------------------------------- on a GPU


def on_device(name: str, device: str) -> str:
    """The name of gradbench's method ``name`` (primal, backprop, numerical:...) on
    ``device``: itself on the CPU, ``cuda:name`` on the GPU."""
    return name if device == DEFAULT_DEVICE else f"{device}:{name}"


def base_name(name: str) -> str:
    """The inverse of :func:`on_device`: ``cuda:backprop`` -> ``backprop``."""
    m = REGISTRY.get(name)
    if m is None or m.device == DEFAULT_DEVICE:
        return name
    return name[len(m.device) + 1:]


def _gpu_build(what: str, scheme: str | None = None, strategy: str | None = None):
    def build(net, X, T, threads):
        from .gpu import Resident

        on = Resident(net, X, T)  # parameters and batch on the GPU before any timing
        if what == "loss":
            return on.loss
        if what == "backprop":
            return on.backprop
        return lambda: on.numerical(scheme, None, strategy)

    return build


def _gpu_warm(scheme: str | None = None, strategy: str = "naive"):
    def warm(net, threads, batch=None):
        from .gpu.gradients import warm_up

        return warm_up(net, scheme, strategy)

    return warm


def _gpu_gradient(scheme: str | None = None, strategy: str | None = None):
    def gradient(net, threads):
        from . import gpu

        if scheme is None:
            return lambda X, T: gpu.backprop(net, X, T)
        return lambda X, T: gpu.numerical_gradient(net, X, T, scheme, strategy=strategy)

    return gradient


def _gpus() -> list[Method]:
    """gradbench's kernels on an NVIDIA GPU (numba.cuda): the same math, another device."""
    kw = dict(requires=("numba_cuda",), install='pip install "gradbench-fd[cuda]"',
              device=GPU)
    out = [
        Method(on_device(LOSS, GPU), OURS, "loss", "primal (GPU)", _gpu_build("loss"),
               _gpu_warm(), **_style(LOSS), **kw),
        Method(on_device(ANALYTIC, GPU), OURS, "analytic", "backprop (GPU)",
               _gpu_build("backprop"), _gpu_warm(), gradient=_gpu_gradient(),
               **_style(ANALYTIC), **kw),
    ]
    for scheme in SHOWN_SCHEMES:
        for strategy in STRATEGIES:
            out.append(Method(
                on_device(f"numerical:{scheme}:{strategy}", GPU), OURS, "numerical",
                f"{scheme.replace('_', '-')} ({strategy}, GPU)",
                _gpu_build("numerical", scheme, strategy), _gpu_warm(scheme, strategy),
                scheme=scheme, strategy=strategy,
                dtypes=("float64",) if scheme == "complex_step" else ("float32", "float64"),
                gradient=_gpu_gradient(scheme, strategy),
                **_style(f"numerical:{scheme}:{strategy}", scheme, strategy), **kw))
    return out


# ----------------------------------------------------------------------------- peers


def _peer(module: str, attr: str) -> Callable:
    """``gradbench.peers.<module>.<attr>``, imported when first called: only peers/ imports
    torch, jax, numdifftools or scipy.optimize, and only when a peer is used."""
    def call(*args, **kwargs):
        return getattr(importlib.import_module(f"gradbench.peers.{module}"), attr)(*args,
                                                                                 **kwargs)

    call.__qualname__ = f"gradbench.peers.{module}.{attr}"
    return call


def _peer_method(name, provider, kind, title, module, what, *, colour, **fields) -> Method:
    """The record of a peer whose functions live in ``gradbench.peers.<module>``.

    Parameters
    ----------
    name, provider, kind, title
        The record's fields of those names.
    module, what
        Where its callables live: ``build_<what>``, ``gradient_<what>`` and
        ``tolerance_<what>`` of that module, and the module's ``warm``.
    colour
        Its colour in figures (each peer names its own); its marker is its provider's
        (:data:`PEER_MARKERS`).
    **fields
        Any other field of :class:`Method` (scheme, strategy, requires, install, dtypes,
        loss_evals, device), passed to the record as they are: a name that is not a field
        is the record's TypeError.
    """
    return Method(name, provider, kind, title, _peer(module, f"build_{what}"),
                  _peer(module, "warm"), gradient=_peer(module, f"gradient_{what}"),
                  tolerance=_peer(module, f"tolerance_{what}"), colour=colour,
                  marker=PEER_MARKERS[provider], **fields)


#: A marker per peer provider (gradbench's own: :data:`OURS_MARKER`); each peer's colour is
#: its own, none of gradbench's.
PEER_MARKERS = {"numpy": "s", "torch": "^", "jax": "D", "scipy": "v", "numdifftools": "P"}


#: numdifftools.Gradient's defaults: central differences at 15 steps (MaxStepGenerator's
#: num_steps), each a pair of loss evaluations per parameter, and one at the point itself,
#: combined by Richardson extrapolation (tests/test_peers.py counts them).
NUMDIFFTOOLS_STEPS = 15


def _peers() -> list[Method]:
    torch = dict(requires=("torch",), install='pip install "gradbench-fd[torch]"')
    torch_gpu = dict(requires=("torch",), install='pip install "gradbench-fd[torch]" (a CUDA '
                                                  'build, on a machine with an NVIDIA GPU)')
    numpy = dict(requires=("numpy",), install="pip install numpy")  # always, with gradbench
    return [
        _peer_method("numpy:backprop", "numpy", "analytic", "backprop (NumPy textbook)",
                     "textbook", "backprop", colour="#2ca02c", **numpy),
        _peer_method("numpy:central", "numpy", "numerical", "central (NumPy textbook loop)",
                     "textbook", "central", scheme="central", strategy="naive",
                     colour="#98df8a", **numpy),
        _peer_method("torch:backprop", "torch", "analytic", "backprop (torch autograd)",
                     "torch_peer", "backprop", colour="#e377c2", **torch),
        _peer_method("torch:numerical", "torch", "numerical", "central (torch gradcheck)",
                     "torch_peer", "numerical", scheme="central", strategy="naive",
                     dtypes=("float64",), loss_evals=lambda n: 2 * n + 1, colour="#f7b6d2",
                     **torch),
        _peer_method(on_device("torch:backprop", GPU), "torch", "analytic",
                     "backprop (torch CUDA autograd)", "torch_cuda_peer", "backprop",
                     device=GPU, colour="#e377c2", **torch_gpu),  # torch:backprop's
        _peer_method(on_device("torch:central", GPU), "torch", "numerical",
                     "central (torch CUDA, batched)", "torch_cuda_peer", "central",
                     scheme="central", strategy="naive", device=GPU, colour="#ad4a8f",
                     **torch_gpu),
        _peer_method("jax:backprop", "jax", "analytic", "backprop (jax.jit(jax.grad))",
                     "jax_peer", "backprop", requires=("jax", "jaxlib"),
                     install='pip install "gradbench-fd[jax]"', colour="#bcbd22"),
        _peer_method("scipy:approx_fprime", "scipy", "numerical",
                     "forward (scipy approx_fprime)", "scipy_peer", "approx_fprime",
                     scheme="forward", strategy="naive", dtypes=("float64",),
                     requires=("scipy",), install="pip install scipy", colour="#17becf"),
        _peer_method("numdifftools:gradient", "numdifftools", "numerical",
                     "Richardson (numdifftools)", "numdifftools_peer", "gradient",
                     scheme="central", strategy="richardson", dtypes=("float64",),
                     requires=("numdifftools",), install='pip install "gradbench-fd[numdifftools]"',
                     loss_evals=lambda n: 2 * NUMDIFFTOOLS_STEPS * n + 1, colour="#e7ba52"),
    ]


# ----------------------------------------------------------------------------- plugins
#
# A plugin is a module that provides methods: ``GRADBENCH_PROTOCOL``, the version of this
# protocol it speaks, and ``methods()``, a list of :class:`Method` records (the record is the
# protocol: the same fields gradbench's own methods and peers fill in). Installed
# distributions declare such modules in the entry-point group :data:`ENTRY_POINT_GROUP`;
# ``--plugin MODULE`` (run, check, train, ab, methods) loads one that is not packaged, a module
# name or a .py file, through :data:`PLUGINS_ENV`, so that every process of a run (each part,
# each gate worker) builds the same registry. A plugin that fails to load registers nothing
# and is listed with why (:data:`PLUGINS`); it never stops gradbench.

#: The version of the method protocol (the fields of :class:`Method` and what their
#: callables take): a plugin says which it speaks as ``GRADBENCH_PROTOCOL``.
PROTOCOL_VERSION = 1
#: Where installed distributions declare their plugin modules.
ENTRY_POINT_GROUP = "gradbench.methods"
#: Plugin modules or files to load beside the installed ones, separated by os.pathsep.
PLUGINS_ENV = "GRADBENCH_PLUGINS"


@dataclass(frozen=True)
class Plugin:
    """A plugin gradbench found: where, what it registered, or why it registered nothing."""

    name: str  # the entry point's name, or the module or file --plugin named
    source: str  # "entry point NAME of DIST VERSION", or "--plugin SPEC"
    distribution: str | None
    version: str | None
    methods: tuple[str, ...] = ()
    error: str | None = None  # one line: why none of its methods is registered


class PluginError(Exception):
    """A plugin that cannot be used: one line saying which and why."""


def raised(exc: BaseException) -> str:
    """What a plugin raised, in one line: the exception's type and its message's first line
    (how the registry, the suite and the gate record a plugin that raised)."""
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def _import_plugin(spec: str):
    """The module ``--plugin`` names: a .py file, or a module importable from the current
    folder or the path."""
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise PluginError(f"no such file {spec!r}")
        name = f"gradbench_plugin_{path.stem}"
        loader = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module
        loader.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(spec)


def plugin_methods(module, where: str, known: dict[str, Method]) -> list[Method]:
    """The records a plugin module provides, checked against the protocol and against the
    names ``known`` already (a clash names both); a PluginError saying what to fix."""
    version = getattr(module, "GRADBENCH_PROTOCOL", None)
    if version != PROTOCOL_VERSION:
        raise PluginError(
            f"{where} speaks method protocol {version!r}, this gradbench speaks "
            f"{PROTOCOL_VERSION}: update the plugin (GRADBENCH_PROTOCOL = {PROTOCOL_VERSION}, "
            "the fields of gradbench.Method) or gradbench")
    provide = getattr(module, "methods", None)
    if not callable(provide):
        raise PluginError(f"{where} has no methods() returning gradbench.Method records")
    records = list(provide())
    if not records:
        raise PluginError(f"{where}: methods() returned no records")
    out = []
    for m in records:
        if not isinstance(m, Method):
            raise PluginError(f"{where}: methods() returned a {type(m).__name__}, "
                              "not a gradbench.Method")
        if m.kind not in KINDS:
            raise PluginError(f"{where}: method {m.name!r} has kind {m.kind!r}, not one of "
                              f"{', '.join(KINDS)}")
        if m.provider == OURS:
            raise PluginError(f"{where}: method {m.name!r} names gradbench as its provider; "
                              "a plugin names its own")
        if m.kind != "loss" and (m.gradient is None or m.tolerance is None):
            raise PluginError(f"{where}: method {m.name!r} computes a gradient but gives no "
                              "gradient or no tolerance (gradbench checks every gradient "
                              "against its backprop before timing it)")
        clash = known.get(m.name) or next((o for o in out if o.name == m.name), None)
        if clash is not None:
            owner = (f"plugin {clash.plugin}'s" if clash.plugin else "gradbench's built-in")
            raise PluginError(f"{where}: method {m.name!r} clashes with {owner} {m.name!r}; "
                              "rename it")
        out.append(m)
    return out


def _found_plugins():
    """(name, source, distribution, version, load) of each plugin to load: the installed
    distributions' entry points, then the modules of :data:`PLUGINS_ENV`."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        name, version = (dist.name, dist.version) if dist is not None else (None, None)
        yield (ep.name, f"entry point {ep.name} of {name} {version}", name, version, ep.load)
    for spec in filter(None, os.environ.get(PLUGINS_ENV, "").split(os.pathsep)):
        yield (spec, f"--plugin {spec}", spec, None, lambda spec=spec: _import_plugin(spec))


def _load_plugin(name, source, dist, version, load, registry: dict[str, Method]) -> Plugin:
    """Register the methods of the plugin that ``load()`` imports in ``registry``; the
    plugin's record, with its error (and nothing registered) when it cannot be used."""
    where = f"plugin {name} ({source})"
    try:
        records = plugin_methods(load(), where, registry)
    except PluginError as exc:
        return Plugin(name, source, dist, version, error=str(exc))
    except (Exception, SystemExit) as exc:  # a plugin never takes gradbench down
        return Plugin(name, source, dist, version, error=f"{where} failed to load: {raised(exc)}")
    for m in records:
        registry[m.name] = replace(m, plugin=dist, plugin_version=version)
    return Plugin(name, source, dist, version, tuple(m.name for m in records))


#: Every method, by name, in the order figures and tables list them: gradbench's, the
#: peers', then the plugins'.
REGISTRY: dict[str, Method] = {m.name: m for m in _ours() + _gpus() + _peers()}
#: The plugins found in this process (installed, and named by --plugin), in load order.
PLUGINS: list[Plugin] = [_load_plugin(*found, REGISTRY) for found in _found_plugins()]


def plugin_part(part: str) -> str | None:
    """The plugin (its distribution and version) whose methods a part of a run times, when
    all of them are one plugin's; None for gradbench's and the peers' parts."""
    ms = [m for m in REGISTRY.values() if m.part == part]
    if not ms or any(m.plugin is None for m in ms):
        return None
    return " ".join(filter(None, (ms[0].plugin, ms[0].plugin_version)))


def use_plugins(specs) -> list[Plugin]:
    """Load the plugin modules or files ``specs`` (what ``--plugin`` names) into the registry,
    here and in every process this one starts (:data:`PLUGINS_ENV`); returns their records,
    a failed one with its ``error``. A spec already loaded is not loaded again."""
    specs = [str(s) for s in specs]
    env = [s for s in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if s]
    os.environ[PLUGINS_ENV] = os.pathsep.join(env + [s for s in specs if s not in env])
    for spec in specs:
        source = f"--plugin {spec}"
        if not any(p.source == source for p in PLUGINS):
            PLUGINS.append(_load_plugin(spec, source, spec, None,
                                        lambda spec=spec: _import_plugin(spec), REGISTRY))
    return [p for p in PLUGINS if p.source in {f"--plugin {spec}" for spec in specs}]


def _recorded(name) -> Method | None:
    """The record of a method as a result file names it: a registry name, or one that only a
    GPU has (``torch:central``, recorded without its device)."""
    return REGISTRY.get(name) or REGISTRY.get(on_device(str(name), GPU))


def recorded(name) -> Method | None:
    """The record of a method as a result file names it (a registry name, or one that only a
    GPU has, recorded without its device: ``torch:central``), or None for a name not
    registered here (a newer version's)."""
    return _recorded(name)


def get(name: str) -> Method:
    """The record of ``name``; a ValueError naming the choices when there is none."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def title(name: str) -> str:
    """The short display name of a method, or the name itself for one not registered here
    (a result file may come from a version that had more)."""
    m = _recorded(name)
    return m.title if m is not None else str(name)


def order(name: str) -> int:
    """Sort key: registry order, unknown methods last."""
    names = list(REGISTRY)
    m = _recorded(name)
    return names.index(m.name) if m is not None else len(names)


def providers(names) -> list[str]:
    """The parts of a run that time the methods named (their providers', ``provider@device``
    off the CPU), in registry order, each once."""
    seen = []
    for name in sorted(names, key=order):
        p = get(name).part
        if p not in seen:
            seen.append(p)
    return seen


def counterpart(name: str) -> str | None:
    """gradbench's method that computes what a peer computes, on the peer's device: backprop
    for analytic peers, naive differences of the peer's scheme for numerical ones (central
    when gradbench has no such scheme); None for gradbench's own methods and methods not
    registered here."""
    m = REGISTRY.get(name)
    if m is None or m.provider == OURS:
        return None
    if m.kind == "analytic":
        return on_device(ANALYTIC, m.device)
    if m.kind == "numerical":
        same = on_device(f"numerical:{m.scheme}:naive", m.device)
        return same if same in REGISTRY else on_device(NUMERICAL, m.device)
    return on_device(LOSS, m.device)
