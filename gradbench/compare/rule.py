"""The decision rule of ``gradbench compare``: pure functions of numbers, no I/O.

Work in log time. For one case, ``d = log(t_current / t_baseline)``, where each side's time
is the geometric mean of its runs' medians. On this project's 2-core machines the speed drifts
by up to 30 % from minute to minute, and that drift has a shape, measured on five pairs of
back-to-back quick runs (the documentation, docs/compare.md, "The decision rule"):

* **block drift**: the cases of one method run one after the other within seconds, so a
  change of the machine's speed moves a method's whole sweep together. The median d of a
  method moved by up to 0.18 (1.2x) between two runs of the same code. Its standard
  deviation per run, ``s_block``, is measured from repeated runs when a side has them (the
  spread of each method's median across its runs), and otherwise assumed:
  ``BLOCK_DRIFT_PRIOR`` = 8 % per run;
* **case spread**: about its method's median, a case deviates by a few per cent mostly, and
  now and then (a burst of contention lasting a few cases) by up to 1.6x. Its scale ``s_case``
  is, per method, the 90th percentile of the cases' absolute deviations from the method's
  median d over 1.645 (the normal's 90 % point: a tail measure, so that bursts count as
  noise), then the median over the methods;
* within each run, the median's sampling error, from the rounds' interquartile range
  (``se = 1.2533 * (q / 1.349) / sqrt(n)`` for n rounds of log-IQR q): small and optimistic,
  since rounds are not independent.

A case is ``slower`` only when (1) its ratio exceeds the threshold, (2) ``d`` exceeds ``Z``
standard deviations of ``sqrt(s_block**2 (1/n_base + 1/n_current) + s_case**2 + se**2)``,
and (3) its method as a whole moved the same way beyond ``Z`` standard deviations of block
drift (the method's median d, ``sqrt(s_block**2 (1/n_base + 1/n_current) + s_case**2 / n)``
for its n cases): one case far off while its method stayed put is a burst, not a change of
code; a regression confined to the largest sizes shows in the exponent instead. ``faster`` is
symmetric; ``unchanged`` means a ratio within the threshold band (1/threshold, threshold);
``inconclusive`` a ratio beyond the band without that evidence, or a side with fewer than
``MIN_ROUNDS`` rounds.

The smallest slowdown a case could have shown as ``slower`` is ``max(threshold,
exp(Z * sigma_d))``: the gate states it, so a green result says what it could not have seen.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import COMPARE_THRESHOLD

#: The slowdown factor a case must exceed to be ``slower`` (``gradbench compare
#: --threshold``'s default; see gradbench.config).
THRESHOLD = COMPARE_THRESHOLD
#: Standard deviations the evidence must clear (one-sided).
Z = 3.0
#: Smallest drift assumed, per run and per case (3 %): identical files must not make the rule
#: believe in a perfectly quiet machine.
DRIFT_FLOOR = 0.03
#: Block drift per run assumed with one run a side (measured on the project's machines: the
#: largest shift of a method's median between two back-to-back runs was 0.18, three times
#: 8 % x sqrt 2 is 0.34).
BLOCK_DRIFT_PRIOR = 0.08
#: Case spread assumed when too few cases are matched to measure it.
CASE_SPREAD_PRIOR = 0.10
#: The tail point of the case spread, and the normal's quantile there.
CASE_QUANTILE, CASE_Z = 0.90, 1.645
#: Fewer rounds than this on either side: inconclusive.
MIN_ROUNDS = 3
#: Fewer judged cases than this: the case spread is not measured but assumed.
MIN_CASES_FOR_SPREAD = 8

VERDICTS = ("slower", "faster", "unchanged", "inconclusive")


def median_se(log_rounds, n: int | None = None) -> float:
    """Standard error of the median of one run's rounds, in log time (0 for fewer than 2).
    ``log_rounds`` are the rounds, or evenly spaced quantiles of them (a result file's kept
    rounds, gradbench.results.kept) whose IQR is theirs; ``n`` is then the number of rounds
    timed (default: as many as given)."""
    x = np.asarray(log_rounds, dtype=float)
    n = len(x) if n is None else int(n)
    if len(x) < 2 or n < 2:
        return 0.0
    q75, q25 = np.percentile(x, [75, 25])
    return 1.2533 * (q75 - q25) / 1.349 / math.sqrt(n)


def case_spread(resid_by_method: list) -> float:
    """Scale of the cases' deviations from their method's median d (see the module
    docstring): per method, the tail point of the absolute deviations over the normal's; then
    the median over methods, so that one method whose change depends on N (a trend, which the
    exponent comparison judges) does not pass for noise. ``CASE_SPREAD_PRIOR`` when there are
    too few cases, never below the floor."""
    groups = [np.abs(np.asarray(r, dtype=float)) for r in resid_by_method if len(r)]
    if sum(len(g) for g in groups) < MIN_CASES_FOR_SPREAD:
        return CASE_SPREAD_PRIOR
    tails = [float(np.quantile(g, CASE_QUANTILE)) / CASE_Z for g in groups]
    return max(DRIFT_FLOOR, float(np.median(tails)))


def block_drift_from_repeats(method_run_logs: list) -> float | None:
    """Block drift per run from repeated runs: ``method_run_logs`` holds, per method and
    side, the method's median log time in each run; None when none has two runs. The mean
    of the variances, not their median: a burst is drift too."""
    variances = [float(np.var(x, ddof=1)) for x in method_run_logs if len(x) >= 2]
    if not variances:
        return None
    return max(DRIFT_FLOOR, math.sqrt(float(np.mean(variances))))


def runs_factor(n_base: int, n_cur: int) -> float:
    return math.sqrt(1.0 / n_base + 1.0 / n_cur)


def sigma(block: float, n_base: int, n_cur: int, spread: float, se_base: float,
          se_cur: float) -> float:
    """Standard deviation of a case's d."""
    return math.sqrt((block * runs_factor(n_base, n_cur)) ** 2 + spread**2 + se_base**2
                     + se_cur**2)


def sigma_method(block: float, n_base: int, n_cur: int, spread: float, n_cases: int) -> float:
    """Standard deviation of a method's median d over its n cases."""
    return math.sqrt((block * runs_factor(n_base, n_cur)) ** 2 + spread**2 / max(n_cases, 1))


def verdict(d: float, sigma_d: float, d_method: float, sigma_m: float, threshold: float,
            rounds_ok: bool) -> str:
    """slower, faster, unchanged or inconclusive (see the module docstring)."""
    if not rounds_ok:
        return "inconclusive"
    band = math.log(threshold)
    if abs(d) <= band:
        return "unchanged"
    if d > 0 and d - Z * sigma_d > 0 and d_method - Z * sigma_m > 0:
        return "slower"
    if d < 0 and d + Z * sigma_d < 0 and d_method + Z * sigma_m < 0:
        return "faster"
    return "inconclusive"


def detectable(sigma_d: float, threshold: float) -> float:
    """The smallest slowdown (a ratio) that this case would have shown as slower."""
    return max(threshold, math.exp(Z * sigma_d))


def exponent_changed(k_base, lo_base, hi_base, k_cur, lo_cur, hi_cur) -> bool:
    """A change of fitted exponent beyond both intervals: each estimate lies outside the
    other's interval."""
    return not (lo_base <= k_cur <= hi_base) and not (lo_cur <= k_base <= hi_cur)
