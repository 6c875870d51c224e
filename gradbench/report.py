"""The report: PNG figures and one self-contained index.html from saved results.

Data first, then rendering: the results are loaded into DataFrames (results.load, .runs,
.fits), the accuracy figures are computed here (they depend on arithmetic, not on timing), the
figures are drawn by gradbench.figures and the page by a jinja2 template with autoescaping, so
every string from a result file is shown as text. Everything is written into a temporary
folder beside the destination and moved into place at the end, index.html last: a failed or
interrupted build leaves no half-written file.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from . import figures, results
from .check import gradient_check, step_curve
from .data import make_batch
from .model import MLP

#: The methods the headline needs; missing ones are named on the page.
KEY_METHODS = ("primal", "backprop", "numerical:central:naive")
NUMERICAL = "numerical:central:naive"


@dataclass
class Report:
    """Everything the page shows, computed from the results; rendering only formats it."""

    headlines: list[str]
    figures: list[dict]  # file, title, caption, missing (message or None)
    fits: pd.DataFrame
    cases: pd.DataFrame
    skipped: pd.DataFrame
    compile: pd.DataFrame
    runs: pd.DataFrame
    commands: list[str]
    missing: list[str] = field(default_factory=list)
    check: pd.DataFrame | None = None
    check_note: str = ""
    fit_decades: float = results.FIT_DECADES
    fit_min_points: int = results.MIN_POINTS


def nice(x: float) -> str:
    """A ratio for a sentence: three significant figures, thousands separated."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def headlines(df: pd.DataFrame, fits: list[results.PowerLaw]) -> tuple[list[str], list[str]]:
    """One sentence per machine and dtype with the key figures, and what is missing."""
    ok = df[(df["status"] == "ok") & df["median"].notna()]
    present = set(ok["method"])
    missing = [f"no {m} cases in these results" for m in KEY_METHODS if m not in present]
    out = []
    k = {(f.method, f.label, f.dtype): f for f in fits}
    for (label, dtype), g in ok.groupby(["label", "dtype"], sort=True):
        med = g.groupby(["n_params", "method"])["median"].median().unstack()
        if NUMERICAL not in med or "backprop" not in med:
            continue
        both = med[[NUMERICAL, "backprop"]].dropna()
        if both.empty:
            continue
        n = int(both.index.max())
        ratio = both.loc[n, NUMERICAL] / both.loc[n, "backprop"]
        s = (f"On {label} ({dtype}), at N = {n:,} a central-difference gradient is "
             f"{nice(ratio)} x slower than backprop")
        fn, fb = k.get((NUMERICAL, label, dtype)), k.get(("backprop", label, dtype))
        if fn is not None and fb is not None:
            s += (f"; fitted exponents {fn.k:.2f} [{fn.k_low:.2f}, {fn.k_high:.2f}] and "
                  f"{fb.k:.2f} [{fb.k_low:.2f}, {fb.k_high:.2f}]")
        out.append(s + ".")
    return out, missing


def reproduce(runs: pd.DataFrame) -> list[str]:
    """The commands that re-run each result file's benchmark and rebuild this report."""
    cmds = []
    for r in runs.itertuples():
        argv = ["gradbench", "run", "--profile", str(r.profile)]
        if r.budget_seconds is not None and not pd.isna(r.budget_seconds):
            argv += ["--budget", f"{float(r.budget_seconds):g}"]
        argv += ["--label", str(r.label)]
        if r.threads is not None and not pd.isna(r.threads):
            argv += ["--threads", str(int(r.threads))]
        cmds.append(shlex.join(argv))
    cmds.append(shlex.join(["gradbench", "report", *runs["file"]]))
    return cmds


def classic_check() -> tuple[pd.DataFrame, str]:
    """The gradient check of the classic 784-50-10 sigmoid network, batch 100."""
    net = MLP([784, 50, 10], activation="sigmoid", loss="softmax_ce", seed=0)
    X, T = make_batch(net, 100, seed=0)
    df = gradient_check(net, X, T, "central", strategy="incremental")
    a = df.attrs
    note = (f"784-50-10 sigmoid, softmax cross-entropy, batch 100, float64, seed 0: central "
            f"differences (incremental strategy, which agrees with naive to rounding), "
            f"h = {df['h'].iloc[0]:.3g}; loss {a['loss']:.6f}; "
            f"{'PASSED' if a['passed'] else 'FAILED'} at relative error "
            f"{df['threshold'].iloc[0]:.2g}. Computed when this report was built.")
    cols = ["tensor", "shape", "max_rel_err", "median_rel_err", "max_abs_err", "n_over",
            "passed"]
    return df[cols], note


def _tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ok = df[df["status"] == "ok"]
    cases = ok[["label", "method", "dtype", "n_params", "sizes", "batch", "median", "iqr",
                "rounds", "gflops", "mode"]].sort_values(["label", "dtype", "method",
                                                          "n_params"])
    skipped = df[df["status"] == "skipped"][["label", "method", "dtype", "n_params", "sizes",
                                             "predicted_seconds"]]
    skipped = skipped.sort_values(["label", "dtype", "method", "n_params"])
    comp = ok.groupby(["label", "method", "dtype"], as_index=False)["compile_seconds"].agg(
        first="first", largest="max", total="sum")
    return cases, skipped, comp


def collect(paths, out: Path, *, accuracy: bool = True) -> Report:
    """Load the results, draw the figures into ``out`` and gather the page's content."""
    df, runs = results.load_all(paths)
    fits = results.fits(df)
    heads, missing = headlines(df, fits)
    figs = []
    for name, draw, title in figures.FIGURES:
        entry = {"file": name, "title": title, "caption": (draw.__doc__ or "").strip(),
                 "missing": None}
        try:
            draw(df, out / name)
        except figures.MissingData as exc:
            entry["missing"] = str(exc)
        figs.append(entry)
    check, note = None, "not computed (accuracy=False)"
    if accuracy:
        curve = step_curve()
        figures.step_curve(curve, out / "step.png")
        figs.append({"file": "step.png", "title": "Gradient error against step size",
                     "caption": (figures.step_curve.__doc__ or "").strip()
                     + " A 16-8-4 sigmoid network, batch 8, computed when this report was "
                       "built.", "missing": None})
        check, note = classic_check()
    cases, skipped, comp = _tables(df)
    fit_frame = results.fits_frame(df)
    return Report(heads, figs, fit_frame, cases, skipped, comp, runs, reproduce(runs),
                  missing, check, note)


def _fmt(v, spec: str = ".3g", unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return format(v, spec) + unit
    return str(v) + unit


def render(report: Report) -> str:
    env = Environment(loader=PackageLoader("gradbench", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["seconds"] = lambda v: _fmt(v, unit=" s")
    return env.get_template("report.html.j2").render(r=report, figures_doc=figures.__doc__)


def build(paths, out="reports", *, accuracy: bool = True) -> Path:
    """Write index.html and the PNG figures for the results in ``paths`` to ``out``.

    Parameters
    ----------
    paths : str, Path or list of them
        Result files or folders of them (gradbench run's JSON).
    out : str or Path
        Destination folder, created if needed.
    accuracy : bool
        Also compute the error-against-step curve and the classic gradient check (a few
        seconds); tests switch it off.

    Returns
    -------
    Path of index.html. Raises ValueError on unreadable results or an unwritable ``out``.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    except OSError as exc:
        raise ValueError(f"cannot write the report to {out}: {exc.strerror}") from None
    try:
        report = collect(paths, tmp, accuracy=accuracy)
        (tmp / "index.html").write_text(render(report), encoding="utf-8")
        names = sorted(p.name for p in tmp.iterdir() if p.name != "index.html")
        for name in [*names, "index.html"]:  # the page last: it names the figures
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "index.html"
