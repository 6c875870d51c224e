"""The gate's decision: paired statistics on interleaved blocks. Pure functions, no I/O.

The coordinator times each case in *quads*: four blocks of calls, base and head alternating in
a random order, ABBA or BAAB. A quad's difference ``d = mean(log t_head) - mean(log t_base)``
(t: seconds per call of a block) cancels whatever the machine does linearly over the quad's
second or so: drift that moves a whole run by 1.2x moves both sides alike here.

The quads come from several *generations* of worker processes (a fresh pair each). A process
keeps its memory layout for life, and that can make one side a per cent or two faster or
slower in every quad it times (measured before layouts were perturbed: 1.02-1.03x between two
processes of the same code; each worker now starts with a random layout, see the worker),
which no number of quads from one pair averages away. So, with 3 generations or more, a
case's estimate is the 20 % trimmed mean of its quads' d (a burst of contention that hits one
block makes one quad an outlier: on this machine a quad's d has a spread of 5-15 %, heavy
tailed), and its standard error is Yuen's computed over generations: the spread of the
generations' means of the winsorized d, over sqrt(generations) and over 1 - 2 x 0.2, with
Student's t at generations - 1 degrees of freedom. A method's estimate is the mean of its
cases' weighted by their precision (1 / se^2), its error the same over the generations'
means across its cases, with the same weights.

With a single pair (``--generations 1``) a case's standard error is Yuen's over its quads,
with a Newey-West long-run variance (quads close in time share the machine's state); a
method's is that of the mean of its cases'. This interval ignores the process's own offset:
it is for a first look, not for a gate.

A method (or case) is ``slower`` when the lower end of its 99 % interval lies above zero (the
ratio above 1) *and* its ratio exceeds the threshold; ``faster`` symmetrically; ``unchanged``
otherwise. The smallest slowdown it could have detected is the ratio that would be flagged
in 9 runs out of 10 with this run's standard error:
``max(exp((t_99.5 + t_90) se), threshold exp(t_90 se))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import GATE_THRESHOLD

#: Two-sided 99 % interval (one side 0.5 %): with four methods a gate run, an A/A pair
#: raises a false alarm on the interval alone once in 50 runs, and the threshold lowers that.
Z = 2.576
Z_LEVEL = "99 %"
LEVEL = 0.995  # one-sided
POWER = 0.9
#: The power the detectable slowdown is stated at: flagged in 90 % of runs.
Z_POWER = 1.2816
#: Slower only beyond this ratio (see gradbench.config).
THRESHOLD = GATE_THRESHOLD
#: Smallest standard error a case's weight is computed from (log time: 0.01 %).
SE_FLOOR = 1e-4
#: Fraction of quads trimmed from each end.
TRIM = 0.2
#: Fewer quads than this: no verdict ("inconclusive").
MIN_QUADS = 4
#: Fewer generations of workers than this: the quads' own statistics (one pair of processes).
MIN_GENERATIONS = 3
ORDERS = ("ABBA", "BAAB")


@dataclass(frozen=True)
class Estimate:
    """A ratio head/base with its standard error in log time and the verdict."""

    log_ratio: float
    se: float
    n: int  # quads (a case) or cases (a method)
    verdict: str  # slower, faster, unchanged, inconclusive
    threshold: float
    df: float = math.inf  # degrees of freedom of se (generations - 1; inf: normal)

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)

    @property
    def interval(self) -> tuple[float, float]:
        z = critical(self.df)
        return (math.exp(self.log_ratio - z * self.se), math.exp(self.log_ratio + z * self.se))

    @property
    def detectable(self) -> float:
        """The smallest slowdown flagged in 9 runs of 10 like this one."""
        if not math.isfinite(self.se):
            return math.inf
        z, power = critical(self.df), critical(self.df, POWER)
        return max(math.exp((z + power) * self.se), self.threshold * math.exp(power * self.se))


def critical(df: float, level: float | None = None) -> float:
    """The one-sided quantile of Student's t with ``df`` degrees of freedom (the normal's for
    an infinite df): at the interval's level by default, at ``level`` when given."""
    if level is None:
        level = LEVEL
    if not math.isfinite(df):
        return Z if level == LEVEL else Z_POWER
    from scipy.stats import t

    return float(t.ppf(level, df))


def quad_differences(log_base, log_head) -> np.ndarray:
    """Per quad, mean log time of head's blocks minus base's: ``log_base`` and ``log_head``
    hold each quad's two blocks per side (shape (n, 2))."""
    b = np.asarray(log_base, dtype=float).reshape(-1, 2)
    h = np.asarray(log_head, dtype=float).reshape(-1, 2)
    if b.shape != h.shape:
        raise ValueError(f"base and head have different numbers of blocks: {b.size} and "
                         f"{h.size}")
    return h.mean(axis=1) - b.mean(axis=1)


def newey_west_lags(n: int) -> int:
    """The usual bandwidth, floor(4 (n/100)^(2/9))."""
    return int(math.floor(4 * (n / 100.0) ** (2.0 / 9.0))) if n > 0 else 0


def long_run_variance(x) -> float:
    """Newey-West (Bartlett kernel) estimate of the variance of the series' mean times n:
    the variance plus twice the weighted autocovariances up to the bandwidth; never below
    the plain variance's half (negative autocorrelation cannot make a series of a few quads
    look exact)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < 2:
        return math.inf
    x = x - x.mean()
    gamma0 = float(x @ x) / (n - 1)
    lrv = gamma0
    for lag in range(1, newey_west_lags(n) + 1):
        w = 1.0 - lag / (newey_west_lags(n) + 1.0)
        lrv += 2.0 * w * float(x[lag:] @ x[:-lag]) / (n - 1)
    return max(lrv, gamma0 / 2.0)


def trimmed(d) -> tuple[float, float]:
    """The trimmed mean of a case's quad differences (in time order) and its standard error
    (Yuen's, with the long-run variance of the winsorized series)."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    if n < 2:
        return (float(d.mean()) if n else 0.0), math.inf
    g = int(math.floor(TRIM * n))
    order = np.sort(d)
    mean = float(order[g:n - g].mean())
    lo, hi = order[g], order[n - g - 1]
    winsorized = np.clip(d, lo, hi)  # in time order: the autocorrelation is over time
    se = math.sqrt(long_run_variance(winsorized) / n) / (1.0 - 2.0 * g / n)
    return mean, se


def decide(log_ratio: float, se: float, threshold: float, df: float = math.inf) -> str:
    """slower, faster or unchanged (see the module docstring)."""
    if not math.isfinite(se):
        return "inconclusive"
    band, z = math.log(threshold), critical(df)
    if log_ratio - z * se > 0 and log_ratio > band:
        return "slower"
    if log_ratio + z * se < 0 and log_ratio < -band:
        return "faster"
    return "unchanged"


def case_estimate(d, threshold: float = THRESHOLD, generations=None) -> Estimate:
    """A case's estimate from its quads' differences, in time order; ``generations``: the
    generation of workers that timed each quad."""
    d = np.asarray(d, dtype=float)
    if generations is not None and len(set(generations)) >= MIN_GENERATIONS:
        w, center, factor = winsorized(d)
        means = [float(np.mean(x)) for x in by_generation(w, generations).values()]
        return clustered(means, center, factor, threshold, n=len(d))
    if len(d) < MIN_QUADS:
        mean = float(d.mean()) if len(d) else 0.0
        return Estimate(mean, math.inf, len(d), "inconclusive", threshold)
    mean, se = trimmed(d)
    return Estimate(mean, se, len(d), decide(mean, se, threshold), threshold)


def winsorized(d) -> tuple[np.ndarray, float, float]:
    """The quads' differences winsorized at :data:`TRIM` (in their order), their trimmed
    mean, and ``1 - 2 trim`` as trimmed (Yuen's factor)."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    g = int(math.floor(TRIM * n))
    order = np.sort(d)
    return np.clip(d, order[g], order[n - g - 1]), float(order[g:n - g].mean()), 1 - 2 * g / n


def by_generation(values, generations) -> dict:
    """generation -> its values, in order."""
    out: dict = {}
    for v, g in zip(values, generations, strict=True):
        out.setdefault(g, []).append(v)
    return out


def clustered(means, center: float, factor: float = 1.0, threshold: float = THRESHOLD,
              n: int | None = None) -> Estimate:
    """The estimate ``center`` (a trimmed mean) with the error that the generations of
    workers give it: ``means`` holds, per generation, the mean of its winsorized quad
    differences; the standard error is theirs (a mean of independent values: each generation
    is a fresh pair of processes, with its own memory layout) over Yuen's ``factor``, with
    Student's t at generations - 1 degrees of freedom."""
    m = np.asarray(means, dtype=float)
    g = len(m)
    if g < MIN_GENERATIONS:
        return Estimate(center, math.inf, n or g, "inconclusive", threshold)
    se, df = float(m.std(ddof=1)) / math.sqrt(g) / factor, g - 1
    return Estimate(center, se, n or g, decide(center, se, threshold, df), threshold, df)


def precision_weights(cases: list[Estimate]) -> np.ndarray:
    """Each case's weight in its method's estimate: 1 / se^2, normalised to sum 1 (a case that
    bursts of contention hit harder counts less: on this machine one noisy run spread a small
    case's generations over 0.8-1.4x while the large cases stayed within 1.0-1.14x); 0 for a
    case without an error (too few quads or generations)."""
    se = np.array([c.se for c in cases], dtype=float)
    ok = np.isfinite(se)
    w = np.where(ok, 1.0 / np.maximum(np.where(ok, se, 1.0), SE_FLOOR) ** 2, 0.0)
    return w / w.sum() if w.sum() > 0 else w


def method_estimate(cases: list[Estimate], threshold: float = THRESHOLD,
                    per_generation=None, factor: float = 1.0) -> Estimate:
    """A method's estimate, the mean of its cases' log ratios weighted by their precision
    (:func:`precision_weights`). With ``per_generation`` (per generation of workers, the
    same weighted mean over the method's cases of their winsorized quads there) its error is
    :func:`clustered`'s; otherwise the standard error of a weighted mean of independent
    cases."""
    usable = [c for c in cases if math.isfinite(c.se)]
    if not usable:
        return Estimate(0.0, math.inf, 0, "inconclusive", threshold)
    w = precision_weights(usable)
    mean = float(np.dot(w, [c.log_ratio for c in usable]))
    if per_generation is not None:
        e = clustered(per_generation, mean, factor, threshold)
        return Estimate(mean, e.se, len(cases), e.verdict, threshold, e.df)
    se = math.sqrt(float(np.dot(w**2, [c.se**2 for c in usable])))
    return Estimate(mean, se, len(usable), decide(mean, se, threshold), threshold)
