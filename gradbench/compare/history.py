"""Trends across many runs: per machine and case, times in commit order, and where they
changed (see :mod:`gradbench.compare.changepoints`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import results
from . import changepoints as cp

KEY = results.CASE_KEY
#: Changes smaller than this factor are not reported, however sure.
MIN_CHANGE = 1.05
#: The noise is never taken below this (log time): identical runs would otherwise make any
#: difference a change.
NOISE_FLOOR = 0.01


@dataclass
class History:
    series: pd.DataFrame  # one row per case and run: label, KEY, n_params, position, commit...
    changes: pd.DataFrame  # one row per change point
    noise: dict  # label -> noise sd (log time) used for that machine


def _order(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs in commit order (commit time; the run's own time where none was recorded)."""
    when = pd.to_datetime(runs["commit_time"].fillna(runs["run"]), utc=True, errors="coerce",
                          format="ISO8601")
    runs = runs.assign(when=when, run_time=pd.to_datetime(runs["run"], utc=True,
                                                          errors="coerce", format="ISO8601"))
    return runs.sort_values(["label", "when", "run_time", "file"])


def history(paths) -> History:
    """Trends and change points of every case across the runs in ``paths`` (folders are
    searched at any depth)."""
    rs = results.load_set(paths, recursive=True)
    runs = _order(rs.runs)
    runs["position"] = runs.groupby("label").cumcount()
    ok = rs.cases[rs.cases["status"] == "ok"]
    series = ok.merge(runs[["file", "position", "when"]], on="file")
    series = series[["label", *KEY, "n_params", "position", "when", "commit", "file",
                     "median"]].sort_values(["label", *KEY, "position"])
    rows, noise = [], {}
    for label, per_label in series.groupby("label", sort=True):
        groups = list(per_label.groupby(KEY, sort=False))
        sd = cp.noise_sd([np.log(g["median"].to_numpy()) for _, g in groups])
        sd = max(NOISE_FLOOR, sd if math.isfinite(sd) else NOISE_FLOOR)
        noise[label] = sd
        for key, g in groups:
            y = np.log(g["median"].to_numpy())
            bounds = [0, *cp.segments(y, cp.penalty(sd, len(y))), len(y)]
            for a, b, c in zip(bounds, bounds[1:], bounds[2:], strict=False):
                ratio = math.exp(y[b:c].mean() - y[a:b].mean())
                if max(ratio, 1 / ratio) < MIN_CHANGE:
                    continue
                at = g.iloc[b]
                rows.append({"label": label, **dict(zip(KEY, key, strict=True)),
                             "n_params": at["n_params"], "position": int(at["position"]),
                             "commit": at["commit"], "when": at["when"], "ratio": ratio,
                             "runs_before": b - a, "runs_after": c - b})
    changes = pd.DataFrame(rows, columns=["label", *KEY, "n_params", "position", "commit",
                                          "when", "ratio", "runs_before", "runs_after"])
    return History(series.reset_index(drop=True), changes, noise)


def describe(change) -> str:
    """'backprop 256-724-10 b32 float64 t2 on m1: from commit abc1234567 (2026-11-20):
    1.3x slower'."""
    commit = f"commit {change['commit'][:10]}" if isinstance(change["commit"], str) else (
        f"run {change['position'] + 1}")
    when = change["when"]
    date = when.strftime("%Y-%m-%d") if isinstance(when, pd.Timestamp) and not pd.isna(
        when) else "date not recorded"
    r = change["ratio"]
    how = f"{r:.2g}x slower" if r > 1 else f"{1 / r:.2g}x faster"
    return (f"{change['method']} {change['sizes']} b{change['batch']} {change['dtype']} "
            f"t{change['threads']} on {change['label']}: from {commit} ({date}): {how}")
