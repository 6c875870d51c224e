"""What a benchmark run measures: profiles, cases, predicted times and the time budget.

Plain Python (no pytest-benchmark here), so the suite's parametrisation and budget logic
can be tested without timing anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .. import methods
from .case import CLASSIC, Case  # noqa: F401  (the one case type, and where it lived)

#: Every method of the registry, in its order.
METHODS = list(methods.REGISTRY)
#: The peers (every provider but gradbench), in registry order.
PEERS = [n for n, m in methods.REGISTRY.items() if m.provider != methods.OURS]
ANALYTIC_PEERS = [n for n in PEERS if methods.get(n).kind == "analytic"]

#: Hidden widths in steps of sqrt(2), from 1 to 8192.
LADDER = [1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024,
          1448, 2048, 2896, 4096, 5793, 8192]

# The networks are inputs-w-classes, 256 inputs and 10 classes, the hidden width w on the
# ladder: N ~ 267 w, from 277 to 2.2 million. With the inputs fixed, every cost of a loss
# evaluation that grows with the network (matrix products, one exponential per hidden unit)
# grows with w, so with N: the naive numerical gradient is O(N^2) across the sweep. (With w-w-10
# networks the exponentials grow like sqrt(N) and would dominate below w ~ 180.) What does not
# grow is the per-call cost of handing the batch to BLAS (packing B x inputs values): it bends
# the curve at small N. It is proportional to the inputs, so 256 inputs reach the asymptotic
# regime sooner than the classic experiment's 784 (see results.FIT_DECADES for where).


@dataclass(frozen=True)
class Profile:
    """A named sweep with a total time budget in seconds."""

    name: str
    budget: float
    widths: tuple[int, ...]
    methods: tuple[str, ...]
    dtypes: tuple[str, ...] = ("float64",)
    batch: int = 32
    inputs: int = 256
    classes: int = 10
    max_time: float = 0.1  # pytest-benchmark's calibration time for fast cases
    #: Weight of a method in sharing the budget (default: DEFAULT_WEIGHT for numerical
    #: methods, PEER_WEIGHTS for peers); naive central differences, the headline, get the
    #: most.
    weights: tuple[tuple[str, float], ...] = (("numerical:central:naive", 8.0),
                                             ("numerical:central:incremental", 1.0),
                                             ("primal", 1.0), ("backprop", 1.0))
    #: Add the classic network (:data:`CLASSIC`) as a case of every method, beside the ladder,
    #: so that the report can compare every method on it (float64 methods only).
    classic: bool = True

    def weight(self, method: str) -> float:
        given = dict(self.weights)
        if method in given:
            return given[method]
        m = methods.get(method)
        if m.provider != methods.OURS:
            return PEER_WEIGHTS[m.kind]
        if m.device != methods.DEFAULT_DEVICE:
            return GPU_WEIGHT
        return DEFAULT_WEIGHT

    def groups(self) -> dict[tuple[str, str], float]:
        """(dtype, method) -> weight, in run order: the budget's shares. A GPU's methods
        share it only where there is a GPU (their share would be left unspent, and the CPU's
        methods would get less, on every machine without one)."""
        out, usable = {}, {}
        for c in cases(self, 1):
            m = c.record
            if m.device != methods.DEFAULT_DEVICE:
                if m.name not in usable:
                    usable[m.name] = m.available()
                if not usable[m.name]:
                    continue
            out.setdefault((c.dtype, c.method), self.weight(c.method))
        return out

    @property
    def providers(self) -> list[str]:
        """Who implements the profile's methods, in run order: gradbench first, then each
        peer provider (each runs in a process of its own: gradbench.bench.parts)."""
        return methods.providers(self.methods)


DEFAULT_WEIGHT = 1.5
#: Weight of each of gradbench's methods on a GPU: fast there, a small share reaches far.
GPU_WEIGHT = 0.5
#: Weights of the peers: an analytic peer's ladder of fast cases needs about what our backprop
#: gets; a numerical peer shows its O(N^2) over the small sizes its share reaches.
PEER_WEIGHTS = {"analytic": 0.5, "numerical": 0.25, "loss": 0.25}

_QUICK = ("primal", "backprop", "numerical:central:naive", "numerical:central:incremental")
_DEFAULT = _QUICK + ("numerical:forward:naive", "numerical:five_point:naive",
                     "numerical:complex_step:naive")
#: The headline's methods on a GPU: timed where there is one, recorded as unavailable (with
#: the reason) elsewhere.
_GPU = tuple(methods.on_device(m, methods.GPU) for m in _QUICK)

# Budgets: the default profile gave gradbench's methods 320 s before the peers came; its
# peers' weights (3 x 0.5 + 4 x 0.25 = 2.5 against 15.5) add 52 s, so that gradbench's
# methods keep their 320 s (what they leave unspent passes to the peers, which run last).
# The quick profile's analytic peers and the NumPy loop (3 x 0.5 + 0.25 = 1.75 against 11)
# add 7 s to its 45 s.
PROFILES = {
    "quick": Profile("quick", 52.0, tuple(LADDER[:17]),
                     _QUICK + _GPU + tuple(ANALYTIC_PEERS) + ("numpy:central",),
                     max_time=0.05),
    "default": Profile("default", 372.0, tuple(LADDER), _DEFAULT + _GPU + tuple(PEERS),
                       max_time=0.25),
    "full": Profile("full", 4 * 3600.0, tuple(LADDER), tuple(METHODS),
                    dtypes=("float64", "float32"), max_time=0.5),
    # a GPU machine's check (scripts/gpu-check): gradbench's headline methods on the GPU and
    # the CPU, and torch on the GPU, at a few sizes and the classic network
    "gpu": Profile("gpu", 90.0, (4, 16, 64, 256, 1024, 4096),
                   ("primal", "backprop", "numerical:central:incremental") + _GPU
                   + tuple(n for n in PEERS if methods.get(n).device == methods.GPU),
                   max_time=0.05, weights=(("cuda:numerical:central:naive", 4.0),)),
}


def profile(name: str, budget: float | None = None) -> Profile:
    """A profile by name, with its budget replaced when one is given."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    p = PROFILES[name]
    if budget is not None:
        if not (budget > 0 and budget < float("inf")):
            raise ValueError(f"budget must be a positive number of seconds, got {budget!r}")
        p = dataclasses.replace(p, budget=float(budget))
    return p


def cases(p: Profile, threads: int, provider: str | None = None) -> list[Case]:
    """Every case of a profile, in run order: per part (gradbench's CPU methods first; then
    its GPU methods, and each peer provider, each in a process of its own), per dtype, each
    method from small to large (primal first: its times predict the others'), the classic
    network among them at its place by predicted work. With ``provider``, only that part's
    cases. A GPU's cases are recorded at one thread (the host's threads do not enter)."""
    out = []
    for who in p.providers:
        if provider is not None and who != provider:
            continue
        for dtype in p.dtypes:
            for method in p.methods:
                m = methods.get(method)
                if m.part != who or dtype not in m.dtypes:
                    continue
                t = threads if m.device == methods.DEFAULT_DEVICE else 1
                mine = [Case(method, (p.inputs, w, p.classes), p.batch, dtype, t)
                        for w in p.widths]
                sizes, batch, classic_dtype = CLASSIC
                if p.classic and dtype == classic_dtype:
                    mine.append(Case(method, sizes, batch, dtype, t))
                out += sorted(mine, key=lambda c: (c.cost().flops, c.n_params))
    return out


def predict_seconds(case: Case, seconds_per_flop: float) -> float:
    """Predicted seconds of one call: the case's flops at the rate measured for primal
    (loss) calls (:func:`gradbench.costmodel.predict_seconds`, through
    :meth:`Case.predict_seconds`)."""
    return case.predict_seconds(seconds_per_flop)


@dataclass
class Budget:
    """Spending of a run's time budget, method by method.

    Each (dtype, method) group of cases gets an allotment when its first case comes: what is
    left of the budget times its weight over the weights of the groups still to come (so
    what one group leaves unspent passes to the later ones), and never less than ``floor``
    of its nominal share (its weight's part of the whole budget): a group that overran its
    allotment (a case slower than predicted) cannot starve the groups after it, at the cost
    of overrunning the total by at most that floor. A case runs when its predicted time fits
    what is left of its group's allotment; it then gets as many rounds as fit into
    ``repeat_share`` of the allotment, from one to ``max_rounds``.
    """

    total: float
    weights: dict  # (dtype, method) -> weight, in run order
    spent: float = 0.0
    max_rounds: int = 5
    repeat_share: float = 0.05
    floor: float = 0.25
    group: tuple | None = None
    allotment: float = 0.0
    group_spent: float = 0.0

    @property
    def left(self) -> float:
        return max(0.0, self.total - self.spent)

    @property
    def group_left(self) -> float:
        return max(0.0, self.allotment - self.group_spent)

    def enter(self, group: tuple) -> None:
        """Start spending for ``group`` (a no-op when it is the current one)."""
        if group == self.group:
            return
        order = list(self.weights)
        if group not in self.weights:
            raise ValueError(f"{group!r} is not one of this budget's groups")
        later = order[order.index(group):]
        share = self.weights[group] / sum(self.weights[g] for g in later)
        nominal = self.total * self.weights[group] / sum(self.weights.values())
        allotment = max(self.left * share, self.floor * nominal)
        self.group, self.allotment, self.group_spent = group, allotment, 0.0

    def rounds(self, group: tuple, predicted: float) -> int:
        """Rounds for a case of ``group`` predicted to take ``predicted`` seconds a round;
        0 means skip it (it does not fit what is left of the group's allotment)."""
        self.enter(group)
        if predicted > self.group_left:
            return 0
        repeats = self.repeat_share * self.allotment // max(predicted, 1e-9)
        return int(max(1, min(self.max_rounds, repeats)))

    def charge(self, seconds: float) -> None:
        self.spent += seconds
        self.group_spent += seconds
