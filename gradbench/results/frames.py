"""Result files as tidy frames: one row per run, case and round kept.

Every field is checked on the way (:mod:`gradbench.results.fields`), and a bad one is refused
with one line naming the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .document import Document, gather
from .fields import walk
from .schema import (
    CASE_COLUMNS,
    CHECK_COLUMNS,
    ROUND_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
)


@dataclass
class ResultSet:
    """Everything in a set of result files, as tidy frames."""

    runs: pd.DataFrame
    cases: pd.DataFrame
    rounds: pd.DataFrame
    step_curve: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STEP_COLUMNS))
    checks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHECK_COLUMNS))


def load_set(sources, recursive: bool = False) -> ResultSet:
    """Every result file named (files or folders), read once and checked, as frames.
    ``sources`` may also hold :class:`Document` objects already loaded (not read again)."""
    if isinstance(sources, str | Path | Document):
        sources = [sources]
    runs, cases, rounds, curve, checks = [], [], [], [], []
    records, names = [], []
    for source in sources:
        if isinstance(source, Document):
            docs, found = [source], []
        else:
            docs, found = gather(source, recursive)
            records += found
        for doc in docs:
            walk(doc.path, doc.data, runs, cases, rounds, curve, checks)
        names += [str(d.path) for d in docs] + [str(p) for p, _ in found]
    if not names:
        raise ValueError("no result files given")
    df = pd.DataFrame(cases, columns=CASE_COLUMNS)
    if df.empty:
        names = ", ".join(names)
        if records and not runs:
            raise ValueError(f"{names}: only training records (gradbench train), no benchmark "
                             "results; run the benchmarks first (gradbench run)")
        raise ValueError(f"{names}: the result files hold no gradbench cases (timed or "
                         "skipped); run the benchmarks first")
    runs_df = pd.DataFrame(runs, columns=RUN_COLUMNS)
    df["gflops"] = df["predicted_flops"] / df["median"] / 1e9
    peaks = runs_df.set_index("file")
    df["peak_gflops"] = [peaks.at[f, f"matmul_gflops_{d}"]
                         for f, d in zip(df["file"], df["dtype"], strict=True)]
    for col in ("median", "iqr", "mean", "min", "max", "stddev", "predicted_seconds",
                "predicted_flops", "gflops", "peak_gflops", "compile_seconds"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return ResultSet(runs_df, df, pd.DataFrame(rounds, columns=ROUND_COLUMNS),
                     pd.DataFrame(curve, columns=STEP_COLUMNS),
                     pd.DataFrame(checks, columns=CHECK_COLUMNS))


def subset(rs: ResultSet, labels) -> ResultSet:
    """The runs of the machines named (labels), every frame filtered alike."""
    labels = set(labels)
    return ResultSet(*(df[df["label"].isin(labels)] for df in (
        rs.runs, rs.cases, rs.rounds, rs.step_curve, rs.checks)))


def load(paths) -> pd.DataFrame:
    """All cases of all result files named (files or folders), one row per case and run."""
    return load_set(paths).cases


def runs(paths) -> pd.DataFrame:
    """One row per result file: the run (status, code measured, profile, budget, threads) and
    its machine (CPU, versions, BLAS, calibration figures)."""
    return load_set(paths).runs


def rounds(paths) -> pd.DataFrame:
    """One row per round kept of every case: every round of a case (in time order), or for
    a case of many rounds the quantiles of them its file keeps (gradbench.results.kept); the
    column ``rounds`` holds the case's number of rounds timed."""
    return load_set(paths).rounds


def load_all(paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(load(paths), runs(paths))``, reading each file once."""
    rs = load_set(paths)
    return rs.cases, rs.runs


