"""Power laws fitted to result frames: time against N, one fit per series, and whether the
range measured supports calling the fit the method's cost law.

Two numbers per series. The exponent ``k`` is the slope of log time against log N over the
top ``FIT_DECADES`` of the N measured: what the range shows, with a 95 % interval that holds
the fit's scatter and the run-to-run drift that tilts a sweep (its two ends measured minutes
apart). Whether that slope is the asymptotic law is a separate question. The cost model says
which law a method tends to, N^q (q = 1 for the loss, backprop and incremental differences,
2 for naive ones: the slope of its predicted flops); each series is fitted with::

    t = a N^(q - 1) + b N^q        (a, b >= 0)

the predicted work plus an overhead that grows one power slower: a fixed cost per call for
an O(N) method (dispatch, thread start-up, Python), a fixed cost per loss evaluation for an
O(N^2) one (numpy:central's Python loop, scipy's and torch's per-call machinery). At the top
of the range the overhead takes ``overhead_share`` of the time; where that is above
``OVERHEAD_MAX`` the slope is still rising toward q and is not the cost law (measured on the
project's committed example runs: numpy:central's 1.44 over N up to 17,098 with 40 %
overhead; scipy's approx_fprime 26 %, numdifftools 64 %, torch's numerical Jacobian 55 %;
every gradbench method 0-7 %, and the analytic peers 0-2 %). A slope steeper than q is no
overhead (the fit puts none there): it is a law of its own, and a regression when it grows.
A fit is also not a law over less than ``MIN_DECADES`` of N, nor where its whole interval
lies below q (the range has not reached the law whatever the fit calls overhead: the
examples' five-point sweeps, which the budget stops at N = 48,337, gave 1.83 [1.67, 2.00]
and 1.64 [1.31, 1.98]).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .. import methods
from .schema import PANEL_KEY, SERIES_KEY, series


@dataclass(frozen=True)
class PowerLaw:
    """time = c * N**k, fitted by least squares on log time against log N."""

    method: str
    label: str
    dtype: str
    threads: int
    device: str
    batch: int
    k: float
    k_low: float  # 95 % interval of k: the fit's scatter and run-to-run drift
    k_high: float
    c: float
    n_points: int
    n_min: int
    n_max: int
    fit_half: float = math.nan  # half-width of the fit's own 95 % interval (scatter only)
    asymptotic: bool = False  # whether the range supports calling k the cost law
    overhead_share: float = math.nan  # the slower-growing term's share of time at n_max
    p: float = math.nan  # the cost model's exponent: the law the curve tends to
    note: str = ""  # why k is not the cost law (empty when it is)

    def predict(self, n: float) -> float:
        return self.c * n**self.k


#: The fit uses the top ``FIT_DECADES`` decades of N measured for a method (at least
#: ``MIN_POINTS`` sizes): at small N fixed per-call costs (dispatch, packing the batch for
#: BLAS, the output layer) flatten the curve, and the asymptotic exponent only shows at the
#: large end. Measured on the sweep's 256-w-10 networks: one loss evaluation's cost grows like
#: w^0.82-0.89 for w = 16-128 and like w^0.95-1.02 from w = 128 up, at batch 8 to 64 alike; the
#: naive numerical gradient, within the default budget, reaches w = 362-512, so a decade below
#: its top would reach into the flat part. Three quarters of a decade is 5 sizes of the ladder.
FIT_DECADES = 0.75
MIN_POINTS = 4
#: Drift of a method's times between two moments of a run (log time, one standard deviation;
#: the block drift per run measured on the project's machines, as gradbench.compare.rule's
#: prior): the two ends of a sweep, timed minutes apart, move by this much each.
DRIFT = 0.08
#: At most this share of the time at the top of the range may be overhead for the fit to be
#: called the cost law.
OVERHEAD_MAX = 0.2
#: A cost law needs at least this many decades of N measured.
MIN_DECADES = 1.0


def drift_tilt(n_min: float, n_max: float, drift: float = DRIFT) -> float:
    """One standard deviation of the slope that drift alone gives a fit over
    [n_min, n_max]: its two ends moving apart by ``drift * sqrt(2)`` in log time."""
    if not n_max > n_min > 0:
        return math.inf
    return drift * math.sqrt(2) / math.log(n_max / n_min)


def law_order(n, flops) -> int:
    """The exponent of the cost model's prediction: the slope of log predicted flops against
    log N, rounded (1 for the loss, backprop and incremental differences, 2 for naive ones)."""
    n, flops = np.log(np.asarray(n, dtype=float)), np.log(np.asarray(flops, dtype=float))
    if len(n) < 2 or np.ptp(n) == 0:
        return 1
    return max(1, round(float(np.polyfit(n, flops, 1)[0])))


def nonnegative_lstsq(A, y) -> np.ndarray:
    """The x >= 0 that minimises ||A x - y|| (A with a few columns: two for
    :func:`overhead_share`), in NumPy: the optimum is the least-squares solution on some set
    of columns, the others zero, so each set is solved and the best non-negative one kept
    (scipy.optimize.nnls's answer to rounding, without importing scipy.optimize)."""
    A, y = np.asarray(A, dtype=float), np.asarray(y, dtype=float)
    best, best_res = np.zeros(A.shape[1]), float(y @ y)  # x = 0
    for k in range(1, A.shape[1] + 1):
        for cols in itertools.combinations(range(A.shape[1]), k):
            x = np.linalg.lstsq(A[:, cols], y, rcond=None)[0]
            res = float(np.sum((A[:, cols] @ x - y) ** 2))
            if np.all(x >= 0) and res < best_res:
                best, best_res = np.zeros(A.shape[1]), res
                best[list(cols)] = x
    return best


def overhead_share(n, t, q: int) -> float:
    """The share of time at the largest n of the slower term of ``t = a n^(q-1) + b n^q``
    (a, b >= 0, least squares on relative errors): the overhead per call (q = 1) or per
    loss evaluation (q = 2) beside the work the cost model predicts."""
    n, t = np.asarray(n, dtype=float), np.asarray(t, dtype=float)
    basis = np.vstack([n ** (q - 1), n**q]).T
    a, b = nonnegative_lstsq(basis / t[:, None], np.ones_like(t))
    top = n.max()
    slow, fast = a * top ** (q - 1), b * top**q
    return float(slow / (slow + fast)) if slow + fast > 0 else math.nan


def judge(n, t, flops, k: float, half: float) -> tuple[bool, float, int, str]:
    """(asymptotic, overhead share, the cost model's exponent q, note) of a series whose
    top-decades fit gave ``k`` with a 95 % half-width ``half``: see the module's
    docstring."""
    n = np.asarray(n, dtype=float)
    decades = math.log10(n.max() / n.min())
    q = law_order(n, flops)
    if len(n) < MIN_POINTS:
        return False, math.nan, q, f"only {len(n)} sizes: too few for a cost law"
    share = overhead_share(n, t, q)
    if decades < MIN_DECADES:
        return False, share, q, (f"N spans {decades:.2f} decades, under the "
                                 f"{MIN_DECADES:g} a cost law needs")
    if not share <= OVERHEAD_MAX:
        per = "call" if q == 1 else "loss evaluation"
        return False, share, q, (
            f"{100 * share:.0f} % of the time at N = {int(n.max()):,} is overhead per {per} "
            f"(fitted beside the cost model's N^{q}): the slope is still rising toward "
            f"{q}; larger N would show the law")
    if not half <= 0.5:
        return False, share, q, f"the interval (+-{half:.2f}) is too wide for a cost law"
    if k + half < q:
        return False, share, q, (f"the slope {k:.2f} [{k - half:.2f}, {k + half:.2f}] is still "
                                 f"below the cost model's N^{q}: the range has not reached "
                                 "the law")
    return True, share, q, ""


def fit_power_law(n, t, decades: float = FIT_DECADES) -> tuple[float, float, float, float, int]:
    """(k, k_low, k_high, c, points used) for t = c n^k over the top decades of n."""
    n, t = np.asarray(n, dtype=float), np.asarray(t, dtype=float)
    if not (np.all(np.isfinite(n)) and np.all(n > 0) and np.all(np.isfinite(t))
            and np.all(t > 0)):
        raise ValueError("a power law needs positive, finite sizes and times")
    order = np.argsort(n)
    n, t = n[order], t[order]
    keep = n >= n[-1] / 10**decades
    if keep.sum() < MIN_POINTS:
        keep = np.zeros(len(n), bool)
        keep[-MIN_POINTS:] = True
    x, y = np.log(n[keep]), np.log(t[keep])
    if len(x) < 2:
        raise ValueError("a power law needs at least two sizes")
    res = stats.linregress(x, y)
    m = len(x)
    half = stats.t.ppf(0.975, m - 2) * res.stderr if m > 2 else math.inf
    return res.slope, res.slope - half, res.slope + half, math.exp(res.intercept), m


def ladder(df: pd.DataFrame) -> pd.DataFrame:
    """The cases of the sweep's ladder of networks: the classic network's cases (another
    input size and batch, off the ladder) left out."""
    return df[~df["classic"].fillna(False).astype(bool)] if "classic" in df else df


def fits(df: pd.DataFrame) -> list[PowerLaw]:
    """A power law per series (method, machine, batch, dtype, threads, device), from the
    median times of the ladder's cases that ran (repeated runs pooled by their median)."""
    df = ladder(df)
    ok = df[(df["status"] == "ok") & df["median"].notna()]
    out = []
    for key, g in series(ok):
        s = dict(zip(SERIES_KEY, key, strict=True))
        g = g.groupby("n_params", as_index=False)[["median", "predicted_flops"]].median()
        if len(g) < 2:
            continue
        k, lo, hi, c, m = fit_power_law(g["n_params"], g["median"])
        used = g["n_params"].sort_values().iloc[-m:]
        n_min, n_max = int(used.min()), int(used.max())
        fit_half = hi - k
        half = math.hypot(fit_half, 1.96 * drift_tilt(n_min, n_max))
        law, share, p, note = judge(g["n_params"], g["median"], g["predicted_flops"], k, half)
        out.append(PowerLaw(s["method"], s["label"], s["dtype"], int(s["threads"]),
                            s["device"], int(s["batch"]), k, k - half, k + half, c, m, n_min,
                            n_max, fit_half, law, share, p, note))
    return sorted(out, key=lambda f: (f.label, f.device, f.threads, f.dtype, f.batch,
                                      methods.order(f.method)))


def fits_frame(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([f.__dict__ for f in fits(df)],
                        columns=[f.name for f in PowerLaw.__dataclass_fields__.values()])


def ratio_to(df: pd.DataFrame, reference: str = methods.LOSS) -> pd.DataFrame:
    """Median time of each method over that of ``reference`` at the same size, in the same
    panel (machine, batch, dtype, threads, device): the gradient/primal ratio of autodiff
    benchmarks."""
    ok = df[df["status"] == "ok"]
    med = ok.groupby([*PANEL_KEY, "n_params", "method"], dropna=False)["median"].median()
    med = med.unstack()
    if reference not in med:
        raise ValueError(f"no {reference!r} cases in these results")
    return med.div(med[reference], axis=0).drop(columns=reference).reset_index()
