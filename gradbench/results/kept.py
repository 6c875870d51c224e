"""Which of a case's rounds a result file keeps, and to what precision (schema 4).

A fast case is timed in thousands of rounds (18,531 for the fastest of a default run on this
project's machines); kept raw they made 86 % of a 4.3 MB file. What gradbench computes from
the rounds depends only on their distribution, never on their order: pytest-benchmark's
statistics (min, max, mean, stddev, median, quartiles, IQR, outliers), which the report, the
fits and history read, and compare's standard error of a run's median (the IQR of the log
rounds and their number, :func:`gradbench.compare.rule.median_se`). The gate, which does use
the order of its blocks, writes its own records and keeps every block.

So a case of at most :data:`KEPT` rounds keeps every round, in time order, in ``stats.data``
(as before schema 4); a case of more keeps, in ``stats.quantiles``, the :data:`KEPT` evenly
spaced quantiles of all its rounds (linear interpolation, NumPy's default), ascending: the
minimum, every half per cent, the maximum. ``stats.rounds`` and pytest-benchmark's statistics
stay those of every round. Any percentile at a multiple of 0.5 % (the median, the quartiles,
so the IQR) taken from the kept values with NumPy's default method is then the percentile of
all the rounds, up to the rounding below; others are interpolated between half-per-cent
points. A case costs at most 201 numbers, however long it ran: chosen by rank, not by time,
so without bias to early or late rounds.

Values are kept to :data:`ROUND_DIGITS` significant figures, as before schema 4: a relative
error of at most 5e-4 each (half a unit in the fourth figure). The one statistic the kept
values feed, compare's standard error of the median, enters the decision in quadrature beside
drift floors of 3 % per run and per case (:data:`gradbench.compare.rule.DRIFT_FLOOR`): it
counts only for a case whose IQR is several per cent of its median, where 5e-4 is a few per
cent of the IQR at most, so rounding moves no verdict. The median and IQR the report, the
fits and history show come from ``stats``, at full precision from every round.
"""

from __future__ import annotations

import numpy as np

#: Significant figures kept of each round or quantile.
ROUND_DIGITS = 4
#: A case of more rounds than this keeps this many quantiles of them instead (201: the
#: minimum, every half per cent, the maximum; 200 intervals, so the quartiles and every whole
#: percentile fall on a kept value).
KEPT = 201
#: How a case's rounds are kept: ``stats.data`` (every round) or ``stats.quantiles``.
ALL, QUANTILES = "all", "quantiles"


def rounded(x: float) -> float:
    """``x`` to :data:`ROUND_DIGITS` significant figures."""
    return float(f"{x:.{ROUND_DIGITS}g}")


def keep(data) -> dict:
    """What ``stats`` keeps of a case's rounds (seconds, in time order): ``{"data": every
    round}`` for at most :data:`KEPT` rounds, else ``{"quantiles": KEPT quantiles}``, each
    value rounded (:data:`ROUND_DIGITS`)."""
    data = [float(t) for t in data]
    if len(data) <= KEPT:
        return {"data": [rounded(t) for t in data]}
    q = np.quantile(np.asarray(data), np.linspace(0.0, 1.0, KEPT))
    return {"quantiles": [rounded(t) for t in q]}
