"""Trends across many runs: per machine and case, times in commit order, and where they
changed (see :mod:`gradbench.compare.changepoints`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


CHANGE_COLUMNS = ["label", *KEY, "n_params", "position", "commit", "when", "ratio",
                  "runs_before", "runs_after", "standing", "until_position", "until_commit",
                  "until_when"]


@dataclass
class History:
    series: pd.DataFrame  # one row per case and run: label, KEY, n_params, position, commit...
    changes: pd.DataFrame  # one row per change point (CHANGE_COLUMNS); ``standing``: still
    # in effect at the newest run, else ``until_*`` says from which run it was undone
    noise: dict  # label -> noise sd (log time) used for that machine
    # label -> why the noise was not measured there ("one run", "no case timed twice"); a
    # machine missing here had its noise measured (the sd above is then measured, or the floor)
    unmeasured: dict = field(default_factory=dict)

    def noise_text(self, label: str) -> str:
        """'noise 8.0 % per run', or 'noise not measured (one run)' where it was not."""
        if label in self.unmeasured:
            return f"noise not measured ({self.unmeasured[label]})"
        return f"noise {100 * self.noise[label]:.1f} % per run"


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
    rows, noise, unmeasured = [], {}, {}
    for label, per_label in series.groupby("label", sort=True):
        groups = list(per_label.groupby(KEY, sort=False))
        sd = cp.noise_sd([np.log(g["median"].to_numpy()) for _, g in groups])
        if not math.isfinite(sd):
            unmeasured[label] = ("one run" if per_label["file"].nunique() == 1
                                 else "no case timed twice")
        sd = max(NOISE_FLOOR, sd if math.isfinite(sd) else NOISE_FLOOR)
        noise[label] = sd
        for key, g in groups:
            y = np.log(g["median"].to_numpy())
            beta = cp.penalty(sd, len(y))
            bounds = [0, *cp.segments(y, beta), len(y)]
            segs = [y[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
            for k in range(len(segs) - 1):
                ratio = math.exp(segs[k + 1].mean() - segs[k].mean())
                if max(ratio, 1 / ratio) < MIN_CHANGE:
                    continue
                b = bounds[k + 1]
                at = g.iloc[b]
                undone = _undone(segs, k, ratio > 1, beta)
                end = None if undone is None else g.iloc[bounds[undone]]
                rows.append({"label": label, **dict(zip(KEY, key, strict=True)),
                             "n_params": at["n_params"], "position": int(at["position"]),
                             "commit": at["commit"], "when": at["when"], "ratio": ratio,
                             "runs_before": len(segs[k]), "runs_after": len(segs[k + 1]),
                             "standing": undone is None,
                             "until_position": None if end is None else int(end["position"]),
                             "until_commit": None if end is None else end["commit"],
                             "until_when": None if end is None else end["when"]})
    changes = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    return History(series.reset_index(drop=True), changes, noise, unmeasured)


def _undone(segs: list, k: int, slower: bool, beta: float) -> int | None:
    """Where the change from segment ``k`` to ``k + 1`` stops standing: the index of the first
    later segment that is no longer off segment ``k`` in the change's direction (by at least
    MIN_CHANGE, with the fit's evidence: :func:`changepoints.differ`); None when every later
    segment, the newest included, still is."""
    before = segs[k]
    for j in range(k + 2, len(segs)):
        ratio = math.exp(segs[j].mean() - before.mean())
        still = ratio >= MIN_CHANGE if slower else 1 / ratio >= MIN_CHANGE
        if not (still and cp.differ(before, segs[j], beta)):
            return j
    return None


def standing_slowdowns(h: History) -> pd.DataFrame:
    """The changes that make ``gradbench history`` fail: slowdowns still in effect at the
    newest run (a slowdown fixed later is listed, and passes)."""
    c = h.changes
    return c[(c["ratio"] > 1) & c["standing"].astype(bool)]


def status(change) -> str:
    """"standing" (still in effect at the newest run), "fixed" (a slowdown undone later) or
    "undone" (a speed-up lost later)."""
    if change["standing"]:
        return "standing"
    return "fixed" if change["ratio"] > 1 else "undone"


def _date(when) -> str:
    return when.strftime("%Y-%m-%d") if isinstance(when, pd.Timestamp) and not pd.isna(
        when) else "date not recorded"


def describe(change) -> str:
    """'backprop 256-724-10 b32 float64 t2 on m1: from commit abc1234567 (2026-11-20):
    1.3x slower [fixed from commit 0123456789 (2026-11-24)]', or '... 1.3x slower [standing]'
    when the newest run is still that slow (see :func:`status`)."""
    commit = f"commit {change['commit'][:10]}" if isinstance(change["commit"], str) else (
        f"run {change['position'] + 1}")
    r = change["ratio"]
    how = f"{r:.2g}x slower" if r > 1 else f"{1 / r:.2g}x faster"
    state = status(change)
    if state != "standing":
        until = f"commit {change['until_commit'][:10]}" if isinstance(
            change["until_commit"], str) else f"run {int(change['until_position']) + 1}"
        state = f"{state} from {until} ({_date(change['until_when'])})"
    return (f"{change['method']} {change['sizes']} b{change['batch']} {change['dtype']} "
            f"t{change['threads']} on {change['label']}: from {commit} "
            f"({_date(change['when'])}): {how} [{state}]")
