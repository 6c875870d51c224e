"""Power laws fitted to result frames: time against N, one fit per series."""

from __future__ import annotations

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
    k_low: float  # 95 % confidence interval of k
    k_high: float
    c: float
    n_points: int
    n_min: int
    n_max: int

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
        g = g.groupby("n_params", as_index=False)["median"].median()
        if len(g) < 2:
            continue
        k, lo, hi, c, m = fit_power_law(g["n_params"], g["median"])
        used = g["n_params"].sort_values().iloc[-m:]
        out.append(PowerLaw(s["method"], s["label"], s["dtype"], int(s["threads"]),
                            s["device"], int(s["batch"]), k, lo, hi, c, m, int(used.min()),
                            int(used.max())))
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