"""The decision rule of ``gradbench compare``: pure functions of numbers, no I/O.

Work in log time. For one case, ``d = log(t_current / t_baseline)``, where each side's time
is the geometric mean of its runs' medians. Its noise has two parts:

* within a run, the median's sampling error, from the spread of the rounds: for n rounds
  whose log times have interquartile range q, ``se = 1.2533 * (q / 1.349) / sqrt(n)``
  (the median of a normal sample; rounds are not independent, so this part is small and
  optimistic, which is why it is not the only part);
* between runs, drift: the machine's speed changes from minute to minute (up to 30 % on
  this project's 2-core machines), so the same case timed in two runs differs by far more
  than its rounds suggest. Its standard deviation ``s_run`` (in log time, per run) is
  estimated from repeated runs on a side when there are any (the pooled variance of each
  case's run medians), and otherwise from the comparison itself: the robust spread (1.4826
  times the median absolute deviation) of d across the matched cases about their method's
  median d (a change, or another machine, that moves a whole method is a shift, not noise),
  taken at the upper end of its 95 % interval (see :func:`drift_from_spread`). It is never
  taken below ``DRIFT_FLOOR``.

Then ``sigma_d**2 = s_run**2 * (1/n_base + 1/n_current) + se_base**2 + se_current**2`` and a
case is

* ``slower`` when its ratio exceeds the threshold and ``d - Z * sigma_d > 0`` (the slowdown
  survives drift at about 3 standard deviations, one-sided: with a hundred cases compared, a
  false alarm in a thousand comparisons);
* ``faster`` symmetrically;
* ``unchanged`` when the ratio lies within the threshold band (1/threshold, threshold);
* ``inconclusive`` when it lies beyond the band but the evidence does not hold, or when a
  side has fewer than ``MIN_ROUNDS`` rounds (its spread cannot be measured).

The smallest slowdown a case could have shown as ``slower`` is
``max(threshold, exp(Z * sigma_d))``: the gate states it, so a green result says what it
could not have seen.
"""

from __future__ import annotations

import math

import numpy as np

#: Standard deviations the evidence must clear (one-sided).
Z = 3.0
#: Smallest run-to-run drift assumed, in log time (3 %): identical files must not make the
#: rule believe in a perfectly quiet machine.
DRIFT_FLOOR = 0.03
#: Fewer rounds than this on either side: inconclusive.
MIN_ROUNDS = 3
#: Fewer judged cases than this: the cross-case spread is not trusted, and ``DRIFT_PRIOR``
#: stands in for it.
MIN_CASES_FOR_SPREAD = 8
#: Efficiency of the MAD relative to the standard deviation (normal data).
MAD_EFFICIENCY = 0.37
#: Run-to-run drift assumed when it cannot be measured (10 %, about what this project's
#: machines show between back-to-back runs).
DRIFT_PRIOR = 0.10

VERDICTS = ("slower", "faster", "unchanged", "inconclusive")


def median_se(log_rounds) -> float:
    """Standard error of the median of one run's rounds, in log time (0 for fewer than 2)."""
    x = np.asarray(log_rounds, dtype=float)
    if len(x) < 2:
        return 0.0
    q75, q25 = np.percentile(x, [75, 25])
    return 1.2533 * (q75 - q25) / 1.349 / math.sqrt(len(x))


def robust_sd(x) -> float:
    """1.4826 times the median absolute deviation from the median (the sd for normal data)."""
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return math.nan
    return 1.4826 * float(np.median(np.abs(x - np.median(x))))


def drift_from_spread(resid, se2, n_base: int, n_cur: int, n_groups: int = 1) -> float:
    """Run-to-run drift per run from the spread of d across cases (one run or more a side).

    ``resid`` are the cases' d about their group's median (``n_groups`` medians taken out),
    ``se2`` their within-run variances (both sides added); what the spread holds beyond them
    is drift, shared out over the runs. A spread measured on a few dozen cases can come out
    low by chance, and a low drift means false alarms, so the estimate is the upper end of
    its 95 % interval: chi-square on the MAD's effective degrees of freedom (the MAD has 37 %
    of the standard deviation's efficiency).
    """
    from scipy import stats

    resid = np.asarray(resid, dtype=float)
    if len(resid) < MIN_CASES_FOR_SPREAD:
        return DRIFT_PRIOR
    df = max(1.0, MAD_EFFICIENCY * (len(resid) - n_groups))
    upper = robust_sd(resid) ** 2 * df / stats.chi2.ppf(0.05, df)
    var = upper - float(np.median(se2))
    return max(DRIFT_FLOOR, math.sqrt(max(var, 0.0) / (1.0 / n_base + 1.0 / n_cur)))


def drift_from_repeats(run_logs: list) -> float | None:
    """Run-to-run drift from repeated runs: ``run_logs`` holds, per case, the log medians of
    its runs on one side; None when no case has two runs."""
    variances = [float(np.var(x, ddof=1)) for x in run_logs if len(x) >= 2]
    if not variances:
        return None
    return max(DRIFT_FLOOR, math.sqrt(float(np.median(variances))))


def sigma(s_run: float, n_base: int, n_cur: int, se_base: float, se_cur: float) -> float:
    """Standard deviation of d for one case."""
    return math.sqrt(s_run**2 * (1.0 / n_base + 1.0 / n_cur) + se_base**2 + se_cur**2)


def verdict(d: float, sigma_d: float, threshold: float, rounds_ok: bool) -> str:
    """slower, faster, unchanged or inconclusive (see the module docstring)."""
    if not rounds_ok:
        return "inconclusive"
    band = math.log(threshold)
    if abs(d) <= band:
        return "unchanged"
    if d > 0 and d - Z * sigma_d > 0:
        return "slower"
    if d < 0 and d + Z * sigma_d < 0:
        return "faster"
    return "inconclusive"


def detectable(sigma_d: float, threshold: float) -> float:
    """The smallest slowdown (a ratio) that this case would have shown as slower."""
    return max(threshold, math.exp(Z * sigma_d))


def exponent_changed(k_base, lo_base, hi_base, k_cur, lo_cur, hi_cur) -> bool:
    """A change of fitted exponent beyond both intervals: each estimate lies outside the
    other's 95 % interval."""
    return not (lo_base <= k_cur <= hi_base) and not (lo_cur <= k_base <= hi_cur)
