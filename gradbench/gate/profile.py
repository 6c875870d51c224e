"""What the gate times: the cases that matter in review, at sizes where a call takes from
tens of microseconds to a fraction of a second, so that a block of calls lasts about
:data:`BLOCK_SECONDS` and a case gets dozens of quads within the budget.

Measured on a 2-core AMD EPYC (2 threads; one thread takes up to twice as long): loss and
backprop at 256-4-10 take 40-60 us, at 256-256-10 0.3-0.5 ms; naive central differences
19 ms at 256-4-10, 91 ms at 256-16-10; incremental 3 ms at 256-4-10, 69 ms at 256-128-10.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bench.case import Case
from ..config import CLASSIC_BATCH, CLASSIC_DTYPE, CLASSIC_SIZES

#: Seconds a block of calls aims at (at least one call).
BLOCK_SECONDS = 0.1
#: The classic network, 784-50-10, batch 100 (float64, the gate's cases' dtype).
CLASSIC = (CLASSIC_SIZES, CLASSIC_BATCH)
#: The gate's case is the one case type. A profile's case has ``threads`` 1 (timed on one
#: thread) or None (timed on the run's threads, ``gradbench ab --threads``: every core by
#: default), resolved by :func:`at_threads`.
GateCase = Case
#: The threads of a case timed serially.
SERIAL = 1


def _ladder(method: str, widths, threads: int | None = SERIAL) -> list[Case]:
    return [Case(method, (256, w, 10), 32, threads=threads) for w in widths]


def _both(method: str, widths) -> list[Case]:
    """A numerical method's ladder on one thread (its serial driver) and on the run's threads
    (its parallel driver, the one ``gradbench run`` and ``check`` use by default)."""
    return _ladder(method, widths) + _ladder(method, widths, None)


@dataclass(frozen=True)
class GateProfile:
    name: str
    cases: tuple[Case, ...]
    seconds: float  # of timed blocks
    block_seconds: float = BLOCK_SECONDS
    #: Pairs of worker processes, one after the other, each timing its share of the seconds:
    #: a process's memory layout makes it a per cent or two faster or slower for as long as
    #: it lives (measured: 1.02-1.03x between two processes of the same code, a false alarm
    #: with one pair), so the verdict rests on the spread between generations.
    generations: int = 16


PROFILES = {
    # CI's gate: the four methods of the headline, the classic network for loss and backprop
    # (loss and backprop run the same code at any threads, BLAS's own threading aside: one)
    "gate": GateProfile(
        "gate", tuple(_ladder("primal", (4, 32, 256)) + [Case("primal", *CLASSIC, threads=SERIAL)]
                      + _ladder("backprop", (4, 32, 256))
                      + [Case("backprop", *CLASSIC, threads=SERIAL)]
                      + _both("numerical:central:naive", (2, 4, 8))
                      + _both("numerical:central:incremental", (8, 32, 128))), 144.0),
    # the tests' and a first look's: seconds, not minutes
    "tiny": GateProfile(
        "tiny", tuple(_ladder("primal", (2, 4)) + _ladder("backprop", (2, 4))
                      + _both("numerical:central:incremental", (2,))), 2.0, 0.005, 1),
}


#: A plugin's method is timed on the classic network when one call costs at most this many
#: loss evaluations there (a loss, a backprop-like gradient); one that costs more (one or more
#: per parameter) on the numerical ladder's first network, 256-4-10 at batch 32 (N = 1,078).
PLUGIN_CLASSIC_EVALS = 4
PLUGIN_LADDER = ((256, 4, 10), 32)


def plugin_case(method) -> Case:
    """The gate's case of a plugin's method (in every profile, when both sides have it): one
    network where a call takes a fraction of a second, float64 when it supports it, on one
    thread (a threaded method is timed on the run's threads as well: see the coordinator)."""
    dtype = CLASSIC_DTYPE if CLASSIC_DTYPE in method.dtypes else method.dtypes[0]
    evals = method.cost(CLASSIC_SIZES, CLASSIC_BATCH, dtype).loss_evals
    sizes, batch = CLASSIC if evals <= PLUGIN_CLASSIC_EVALS else PLUGIN_LADDER
    return Case(method.name, sizes, batch, dtype, SERIAL)


def at_threads(cases, threads: int) -> list[Case]:
    """The cases with their threads: a case of the run's threads (None) on ``threads``; a
    case that then repeats another (on one thread, ``threads`` 1) once."""
    import dataclasses

    out = [c if c.threads is not None else dataclasses.replace(c, threads=threads)
           for c in cases]
    return list(dict.fromkeys(out))


def profile(name: str, seconds: float | None = None,
            generations: int | None = None) -> GateProfile:
    """A gate profile by name (``seconds`` and ``generations`` replace its own)."""
    import dataclasses

    if name not in PROFILES:
        raise ValueError(f"unknown gate profile {name!r}: choose one of {', '.join(PROFILES)}")
    p = PROFILES[name]
    if seconds is not None:
        p = dataclasses.replace(p, seconds=float(seconds))
    if generations is not None:
        p = dataclasses.replace(p, generations=int(generations))
    return p
