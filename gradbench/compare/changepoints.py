"""Change points of a series: a penalised piecewise-constant fit (optimal partitioning).

The series is a case's log time across runs in commit order. The fit chooses the segments
that minimise the sum of squared deviations from each segment's mean plus a penalty ``beta``
per segment, exactly, by dynamic programming (O(n^2) for n runs: histories of thousands of
runs take well under a second). With the noise's standard deviation ``s`` (log time), the
penalty is ``beta = s**2 * (PENALTY_BASE + PENALTY_LOG * ln n)``: splitting pure noise must
lower the squared error by more than that, which happens in fewer than one series in a
thousand (measured by simulation, see tests/test_history.py), while a 1.3x step in 20 runs
with 8 % noise lowers it by about 40 s**2. Segments hold at least ``MIN_SEGMENT`` runs, so
one wild run inside a series (a burst of noise) must be about 9 s off before it reads as a
change.
"""

from __future__ import annotations

import math

import numpy as np

MIN_SEGMENT = 2
PENALTY_BASE = 8.0
PENALTY_LOG = 4.0


def penalty(sd: float, n: int) -> float:
    return sd**2 * (PENALTY_BASE + PENALTY_LOG * math.log(max(n, 2)))


def segments(y, beta: float, min_segment: int = MIN_SEGMENT) -> list[int]:
    """Start indices of the segments after the first (the change points) of the optimal
    partition of ``y`` with penalty ``beta`` per segment."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 2 * min_segment:
        return []
    s1 = np.concatenate([[0.0], np.cumsum(y)])
    s2 = np.concatenate([[0.0], np.cumsum(y * y)])

    def cost(i, j):  # squared deviations of y[i:j] from their mean
        m = j - i
        return s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / m

    best = np.full(n + 1, math.inf)
    best[0] = -beta
    last = np.zeros(n + 1, dtype=int)
    for j in range(min_segment, n + 1):
        for i in range(0, j - min_segment + 1):
            if i != 0 and i < min_segment:
                continue
            if not math.isfinite(best[i]):
                continue
            c = best[i] + beta + cost(i, j)
            if c < best[j]:
                best[j], last[j] = c, i
    cps, j = [], n
    while j > 0:
        i = last[j]
        if i > 0:
            cps.append(i)
        j = i
    return sorted(cps)


def differ(left, right, beta: float) -> bool:
    """Whether two runs of times differ by the fit's own evidence: cutting them apart (one
    segment into two) lowers the squared error by more than the penalty ``beta`` of a segment.
    For segments side by side this is the test :func:`segments` applies; here it also judges
    segments that are not neighbours (is a later segment still off the one before a change?)."""
    left, right = np.asarray(left, dtype=float), np.asarray(right, dtype=float)
    n1, n2 = len(left), len(right)
    if n1 == 0 or n2 == 0:
        return False
    return n1 * n2 / (n1 + n2) * (left.mean() - right.mean()) ** 2 > beta


def noise_sd(series: list) -> float:
    """Robust standard deviation of the noise, pooled over several series: from their first
    differences (1.4826 MAD / sqrt 2), which a few steps barely move."""
    diffs = np.concatenate([np.diff(np.asarray(y, dtype=float)) for y in series
                            if len(y) >= 2] or [np.zeros(0)])
    if len(diffs) == 0:
        return math.nan
    return 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2)
