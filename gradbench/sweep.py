"""What a benchmark run measures: profiles, cases, predicted times and the time budget.

Plain Python (no pytest-benchmark here), so the suite's parametrisation and budget logic
can be tested without timing anything.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from . import costmodel

#: Version of what gradbench adds to pytest-benchmark's JSON (extra_info keys, the
#: "gradbench" section). Readers refuse other versions.
SCHEMA_VERSION = 1

NUMERICAL = [f"numerical:{s}:{t}" for s in ("forward", "central", "five_point", "complex_step")
             for t in ("naive", "incremental")]
METHODS = ["primal", "backprop", *NUMERICAL]

#: Hidden widths in steps of sqrt(2), from 1 to 2048.
LADDER = [1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024,
          1448, 2048]

# The networks are inputs-w-classes with 784 inputs (the classic experiment's), the hidden
# width w on the ladder: N ~ 795 w. With a wide input every hidden unit carries 2 * 784 flops
# of matrix product against one exponential, so a loss evaluation costs O(N) across the
# sweep and the naive numerical gradient O(N^2). With w-w-10 networks the exponentials
# (~360 flops' worth each) would dominate below w ~ 180, and the cost would grow like
# N^1.5 over any range a budget affords.


@dataclass(frozen=True)
class Profile:
    """A named sweep with a total time budget in seconds."""

    name: str
    budget: float
    widths: tuple[int, ...]
    methods: tuple[str, ...]
    dtypes: tuple[str, ...] = ("float64",)
    batch: int = 32
    inputs: int = 784
    classes: int = 10
    max_time: float = 0.1  # pytest-benchmark's calibration time for fast cases
    #: Largest share of the budget one case of a method may take (default: DEFAULT_SHARE).
    #: Naive central differences, the headline, get the most room.
    shares: tuple[tuple[str, float], ...] = (("numerical:central:naive", 0.35),)

    def share(self, method: str) -> float:
        return dict(self.shares).get(method, DEFAULT_SHARE)


DEFAULT_SHARE = 0.1


PROFILES = {
    "quick": Profile("quick", 45.0, tuple(LADDER[:16]),
                     ("primal", "backprop", "numerical:central:naive",
                      "numerical:central:incremental"), max_time=0.05),
    "default": Profile("default", 300.0, tuple(LADDER),
                       ("primal", "backprop", "numerical:forward:naive",
                        "numerical:central:naive", "numerical:central:incremental",
                        "numerical:five_point:naive", "numerical:complex_step:naive"),
                       max_time=0.1),
    "full": Profile("full", 4 * 3600.0, tuple(LADDER), tuple(METHODS),
                    dtypes=("float64", "float32"), max_time=0.5),
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


@dataclass(frozen=True)
class Case:
    """One benchmark: a method on one network, batch, dtype and thread count."""

    method: str
    sizes: tuple[int, ...]
    batch: int
    dtype: str
    threads: int

    @property
    def scheme(self) -> str | None:
        return self.method.split(":")[1] if self.method.startswith("numerical:") else None

    @property
    def strategy(self) -> str | None:
        return self.method.split(":")[2] if self.method.startswith("numerical:") else None

    @property
    def n_params(self) -> int:
        return costmodel.num_params(self.sizes)

    @property
    def id(self) -> str:
        return f"{self.method}-{'x'.join(map(str, self.sizes))}-b{self.batch}-{self.dtype}" \
               f"-t{self.threads}"

    def cost(self) -> costmodel.Cost:
        if self.scheme is None:
            return costmodel.predict(self.method, self.sizes, self.batch, self.dtype)
        return costmodel.predict("numerical", self.sizes, self.batch, self.dtype,
                                 self.scheme, self.strategy)

    def info(self) -> dict:
        """What every result records about its case (extra_info)."""
        c = self.cost()
        return {
            "gradbench_schema": SCHEMA_VERSION,
            "method": self.method,
            "scheme": self.scheme,
            "strategy": self.strategy,
            "sizes": list(self.sizes),
            "depth": len(self.sizes) - 1,
            "width": self.sizes[1],
            "n_params": self.n_params,
            "batch": self.batch,
            "dtype": self.dtype,
            "threads": self.threads,
            "predicted_flops": c.flops,
            "predicted_bytes": c.bytes,
            "loss_evals": c.loss_evals,
        }


def cases(p: Profile, threads: int) -> list[Case]:
    """Every case of a profile, in run order: per dtype, each method from small to large
    (primal first: its times predict the others')."""
    out = []
    for dtype in p.dtypes:
        for method in p.methods:
            if method.startswith("numerical:complex_step") and dtype != "float64":
                continue
            for w in p.widths:
                out.append(Case(method, (p.inputs, w, p.classes), p.batch, dtype, threads))
    return out


def predict_seconds(case: Case, seconds_per_flop: float) -> float:
    """Predicted seconds of one call: the case's flops at the rate measured for primal
    (loss) calls. Numerical gradients spread over the threads; primal and backprop get
    theirs from BLAS, already inside the measured rate."""
    t = case.cost().flops * seconds_per_flop
    return t / case.threads if case.scheme is not None else t


@dataclass
class Budget:
    """Spending of a run's time budget, case by case.

    A case runs when its predicted time fits what is left and its method's cap (a share of
    the total); it then gets as many rounds (at most ``max_rounds``) as fit into what is left
    divided by the cases left, but at least one round.
    """

    total: float
    spent: float = 0.0
    max_rounds: int = 5
    skipped: list = field(default_factory=list)

    @property
    def left(self) -> float:
        return max(0.0, self.total - self.spent)

    def rounds(self, predicted: float, cases_left: int, cap: float = math.inf) -> int:
        """Rounds for a case predicted to take ``predicted`` seconds a round; 0 means skip it
        (it does not fit what is left of the budget, or the case's ``cap``)."""
        if predicted > min(self.left, cap):
            return 0
        share = self.left / max(1, cases_left)
        return int(max(1, min(self.max_rounds, share // max(predicted, 1e-9))))

    def charge(self, seconds: float) -> None:
        self.spent += seconds
