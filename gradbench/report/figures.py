"""Report figures: one function per figure, each taking tidy DataFrames and writing one PNG.

matplotlib's object API with the Agg canvas: no pyplot state, no display needed. Each
function returns the legend labels of the series it drew (tests check them), or raises
``MissingData`` when the frame lacks what the figure needs, so that a report can say what is
missing and draw the rest.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from .. import methods, results
from . import pages

#: A method the registry does not know (a newer file's): one colour for them all.
OTHER_COLOR = "#aec7e8"
#: Colour per method as result files name them (a GPU's methods by what they compute): the
#: registry's (:attr:`gradbench.methods.Method.colour`), each its own in every figure.
METHOD_COLORS = {methods.base_name(n): m.colour for n, m in methods.REGISTRY.items()}
#: Colour per scheme (the step-error figure's lines are schemes): its naive method's; and the
#: loss's and backprop's.
COLORS = {
    **{k: methods.get(k).colour for k in (methods.LOSS, methods.ANALYTIC)},
    **{m.scheme: m.colour for m in methods.REGISTRY.values()
       if m.provider == methods.OURS and m.device == methods.DEFAULT_DEVICE
       and m.strategy == "naive"},
}
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
SIZE = (7.0, 4.4)  # inches, at DPI: 700 x 440 pixels
DPI = 100


class MissingData(ValueError):
    """The results lack what a figure needs (e.g. no backprop cases); the message says what."""


def method_name(method: str) -> str:
    """A method's short name from the registry: 'numerical:central:naive' -> 'central
    (naive)'."""
    return methods.title(method)


def plain(text) -> str:
    """A string from a result file, safe for matplotlib: '$' would start mathtext."""
    return str(text).replace("$", r"\$")


def _record(method: str) -> methods.Method | None:
    """The registry's record of a method as a result file names it (None: not known here)."""
    return methods.recorded(methods.base_name(method))


def _style(method: str) -> dict:
    """The method's own colour (its record's), the same on every device (a marker tells
    devices apart); incremental dashed."""
    m = _record(method)
    dashed = m is not None and m.strategy == "incremental"
    return {"color": m.colour if m is not None else OTHER_COLOR,
            "linestyle": "--" if dashed else "-"}


def _marker(method: str, provider: str) -> str:
    """The method's marker in a figure of providers (its record's); for a method not known
    here, that of its provider's first record, or gradbench's."""
    m = _record(method) or next((r for r in methods.REGISTRY.values()
                                 if r.provider == provider), None)
    return m.marker if m is not None else methods.OURS_MARKER


#: What tells two series of one method apart, in the order a legend names it.
_DISTINCT = [k for k in results.SERIES_KEY if k != "method"]


def _varying(df: pd.DataFrame) -> list[str]:
    """The series parameters that take more than one value in ``df``: a legend names them."""
    return [k for k in _DISTINCT if k in df and df[k].nunique(dropna=False) > 1]


def _describe(key: dict, varying: list[str]) -> list[str]:
    """The values of the ``varying`` parameters of a series, as a legend shows them."""
    out = []
    for k in varying:
        v = key[k]
        out.append(plain(v) if k == "label" else pages.threads(v) if k == "threads"
                   else f"batch {int(v)}" if k == "batch" else str(v))
    return out


def _series_label(method: str, key: dict, varying: list[str]) -> str:
    """A series' legend entry: the method, and what tells it from the others drawn."""
    extra = _describe(key, varying)
    name = method_name(method)
    return f"{name} [{', '.join(extra)}]" if extra else name


def _new_figure() -> Figure:
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, ax, path, ylabel: str, title: str, xlabel: str = "N, parameters"):
    """Log-log axes, labels, grid and legend; then the PNG."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.savefig(Path(path), dpi=DPI)


def _groups(df: pd.DataFrame):
    """(series key as a dict, frame of its medians sorted by N, legend name, machine index)
    for every series (results.SERIES_KEY: two thread counts or devices never merge)."""
    varying = _varying(df)
    marks = _marks(df)
    for key, g in results.series(df):
        key = dict(zip(results.SERIES_KEY, key, strict=True))
        g = g.groupby("n_params", as_index=False).median(numeric_only=True)
        yield key, g, _series_label(key["method"], key, varying), marks[_mark_key(key)]


#: What a marker tells apart: the machine, its device and threads (colour: the method).
_MARK_KEY = ["label", "device", "threads"]


def _mark_key(key: dict) -> tuple:
    return tuple(key[k] for k in _MARK_KEY)


def _marks(df: pd.DataFrame) -> dict:
    """An index (into MARKERS) per machine, device and thread count in ``df``."""
    found = sorted(set(zip(*(df[k] for k in _MARK_KEY), strict=True)), key=str)
    return {m: i for i, m in enumerate(found)}


def _fit_key(f: results.PowerLaw) -> tuple:
    return tuple(getattr(f, k) for k in results.SERIES_KEY)


def time_vs_n(df: pd.DataFrame, path) -> list[str]:
    """Seconds per gradient against N, log-log: measured medians, fitted power laws with
    their exponents, O(N) and O(N^2) guides, budget-skipped cases hollow at their
    predicted time."""
    ok = df[(df["status"] == "ok") & df["median"].notna()]
    if ok.empty:
        raise MissingData("no timed cases in these results")
    fits = {_fit_key(f): f for f in results.fits(df)}
    fig = _new_figure()
    ax = fig.add_subplot()
    drawn = []
    for key, g, name, i in _groups(ok):
        method = key["method"]
        st = _style(method)
        f = fits.get(tuple(key[k] for k in results.SERIES_KEY))
        if f is not None:
            name += f": k = {f.k:.2f} [{f.k_low:.2f}, {f.k_high:.2f}]"
            name += "" if f.asymptotic else " (range, not the law)"
            n = np.geomspace(f.n_min, f.n_max, 20)
            ax.plot(n, f.predict(n), color=st["color"], linestyle=st["linestyle"], lw=1.5)
        ax.plot(g["n_params"], g["median"], marker=MARKERS[i % len(MARKERS)], ms=3.5,
                linestyle="none", color=st["color"], label=name)
        drawn.append(name)
    skipped = df[(df["status"] == "skipped") & df["predicted_seconds"].notna()]
    for (method, *_), g in results.series(skipped):
        ax.plot(g["n_params"], g["predicted_seconds"], marker="o", ms=4, linestyle="none",
                markerfacecolor="none", color=_style(method)["color"], alpha=0.7)
    if len(skipped):
        ax.plot([], [], marker="o", linestyle="none", markerfacecolor="none", color="k",
                label="skipped by the budget\n(predicted time)")
    _guides(ax, ok)
    _finish(fig, ax, path, "time per call (s)", "Time per gradient against network size")
    return drawn


def _guides(ax, ok: pd.DataFrame) -> None:
    """Grey O(N) and O(N^2) lines, anchored a factor 3 below the smallest backprop and
    central-difference times (or the smallest time measured)."""
    lo, hi = ok["n_params"].min(), ok["n_params"].max()
    n = np.geomspace(lo, hi, 20)
    for power, method, text in ((1, methods.ANALYTIC, "∝ N"), (2, methods.NUMERICAL, "∝ N²")):
        ref = ok[ok["method"] == method]
        ref = ref if len(ref) else ok
        first = ref.loc[ref["n_params"].idxmin()]
        t = first["median"] / 3 * (n / first["n_params"]) ** power
        keep = t <= ok["median"].max() * 10
        if keep.sum() >= 2:
            ax.plot(n[keep], t[keep], color="0.6", linestyle=":", lw=1)
            ax.annotate(text, (n[keep][-1], t[keep][-1]), fontsize=8, color="0.4",
                        ha="right", va="bottom")


def _ratio_figure(ratios: pd.DataFrame, path, ylabel: str, title: str, guides=()) -> list[str]:
    fig = _new_figure()
    ax = fig.add_subplot()
    varying = _varying(ratios)
    marks = _marks(ratios)
    drawn = []
    names = [c for c in ratios.columns if c not in (*results.PANEL_KEY, "n_params")]
    for method in sorted(names, key=methods.order):
        for key, g in results.series(ratios, results.PANEL_KEY):
            key = dict(zip(results.PANEL_KEY, key, strict=True))
            g = g[g[method].notna()]
            if g.empty:
                continue
            st = _style(method)
            name = _series_label(method, key, varying)
            ax.plot(g["n_params"], g[method], marker=MARKERS[marks[_mark_key(key)] % 7],
                    ms=3.5, label=name, **st)
            drawn.append(name)
    n = np.geomspace(ratios["n_params"].min(), ratios["n_params"].max(), 20)
    for factor, text in guides:
        ax.plot(n, factor * n, color="0.6", linestyle=":", lw=1)
        ax.annotate(text, (n[-1], factor * n[-1]), fontsize=8, color="0.4", ha="right",
                    va="bottom")
    _finish(fig, ax, path, ylabel, title)
    return drawn


def _ratios(df: pd.DataFrame, reference: str) -> pd.DataFrame:
    if not ((df["method"] == reference) & (df["status"] == "ok")).any():
        raise MissingData(f"no {reference} cases in these results")
    return results.ratio_to(df, reference)


def ratio_to_primal(df: pd.DataFrame, path) -> list[str]:
    """Gradient time over primal (loss) time against N: about 2N for central differences,
    N for forward, 4N for five-point, a small constant for backprop."""
    r = _ratios(df, methods.LOSS)
    return _ratio_figure(r, path, "gradient time / loss time",
                         "Gradient cost in loss evaluations",
                         guides=((1, "N"), (2, "2N"), (4, "4N")))


def speed_ratio(df: pd.DataFrame, path) -> list[str]:
    """Numerical gradient time over backprop time against N."""
    r = _ratios(df, methods.ANALYTIC)
    numerical = set(df.loc[df["kind"] == "numerical", "method"])
    cols = [c for c in r.columns if c in numerical]
    if not cols:
        raise MissingData("no numerical-gradient cases in these results")
    return _ratio_figure(r[[*results.PANEL_KEY, "n_params", *cols]], path,
                         "numerical time / backprop time",
                         "How much slower a numerical gradient is than backprop")


def gflops(df: pd.DataFrame, path) -> list[str]:
    """Achieved GFLOP/s (predicted flops over median time) against N, with the machine's
    calibrated matmul peak (all threads) as a horizontal line per machine and dtype."""
    ok = df[(df["status"] == "ok") & df["gflops"].notna() & (df["gflops"] > 0)]
    if ok.empty:
        raise MissingData("no timed cases with a flop count in these results")
    fig = _new_figure()
    ax = fig.add_subplot()
    drawn = []
    for key, g, name, i in _groups(ok):
        ax.plot(g["n_params"], g["gflops"], marker=MARKERS[i % len(MARKERS)], ms=3.5,
                label=name, **_style(key["method"]))
        drawn.append(name)
    many = ok["label"].nunique() > 1 or ok["dtype"].nunique() > 1
    peaks = ok.groupby(["label", "dtype"])["peak_gflops"].first().dropna()  # per machine
    for (label, dtype), peak in peaks.items():
        tag = f" [{plain(label)}, {dtype}]" if many else f" ({dtype})"
        ax.axhline(peak, color="k", lw=1, linestyle="-.")
        ax.annotate(f"calibrated matmul peak{tag}: {peak:.0f} GFLOP/s",
                    (ok["n_params"].min(), peak), fontsize=7, va="bottom")
    _finish(fig, ax, path, "achieved GFLOP/s (predicted flops / time)",
            "How close the kernels come to the hardware")
    return drawn


def step_curve(curve: pd.DataFrame, path) -> list[str]:
    """Gradient-check error against step size h per scheme and dtype (the truncation vs
    round-off V curve), the default step of each curve marked with a star."""
    if curve.empty:
        raise MissingData("no error-against-step data")
    fig = _new_figure()
    ax = fig.add_subplot()
    drawn = []
    floor = 1e-17
    for (scheme, dtype), g in curve.groupby(["scheme", "dtype"], sort=True):
        g = g[g["error"].notna()].sort_values("h")  # NaN: the step moved nothing
        if g.empty:
            continue
        err = np.maximum(g["error"].to_numpy(), floor)
        # complex step shares central differences' truncation error (f''' h^2 / 6):
        # dash-dot keeps the two lines apart where they overlap
        style = "-." if scheme == "complex_step" else "-" if dtype == "float64" else "--"
        color = COLORS.get(scheme, OTHER_COLOR)
        name = f"{scheme.replace('_', '-')} ({dtype})"
        ax.plot(g["h"], err, color=color, linestyle=style, lw=1.3, label=name)
        h0 = g["default_h"].iloc[0]
        at = g.iloc[int(np.argmin(np.abs(np.log(g["h"].to_numpy() / h0))))]
        ax.plot([at["h"]], [max(at["error"], floor)], marker="*", ms=11, color=color,
                markeredgecolor="k", markeredgewidth=0.5, linestyle="none")
        drawn.append(name)
    ax.plot([], [], marker="*", ms=11, color="w", markeredgecolor="k", linestyle="none",
            label="default step")
    ax.set_ylim(floor / 3, 10)
    _finish(fig, ax, path, "max |numerical − exact| / max |exact|",
            "Gradient error against step: truncation vs round-off",
            xlabel="step h (before scaling by max(1, |θ|))")
    return drawn


#: A marker per peer provider (gradbench's own series: circles): the registry's.
PEER_MARKERS = methods.PEER_MARKERS


def peers_time(df: pd.DataFrame, path) -> list[str]:
    """Seconds per gradient against N, log-log: each peer beside gradbench's method that
    computes the same thing (backprop for analytic peers, naive differences of the same
    scheme for numerical ones), with each series' fitted exponent k. Solid lines: analytic
    gradients; dashed: numerical ones; circles: gradbench's."""
    ok = results.ladder(df)
    ok = ok[(ok["status"] == "ok") & ok["median"].notna()]
    theirs = ok[ok["provider"] != methods.OURS]
    if theirs.empty:
        raise MissingData("no peer was timed in these results")
    ours = {methods.counterpart(m) for m in theirs["method"].unique()}
    shown = ok[ok["method"].isin(ours) | (ok["provider"] != methods.OURS)]
    providers = shown.drop_duplicates("method").set_index("method")["provider"]
    kinds = shown.drop_duplicates("method").set_index("method")["kind"]
    fits = {_fit_key(f): f for f in results.fits(shown)}
    fig = _new_figure()
    ax = fig.add_subplot()
    drawn = []
    order = sorted(_groups(shown), key=lambda s: (methods.order(s[0]["method"]), s[2]))
    for key, g, name, _ in order:
        method = key["method"]
        color, marker = _style(method)["color"], _marker(method, providers[method])
        f = fits.get(tuple(key[k] for k in results.SERIES_KEY))
        if f is not None:
            name += f": k = {f.k:.2f}" + ("" if f.asymptotic else " (range)")
        ax.plot(g["n_params"], g["median"], marker=marker, ms=3.5, lw=1.0, color=color,
                linestyle="--" if kinds[method] == "numerical" else "-", label=name)
        drawn.append(name)
    _finish(fig, ax, path, "time per call (s)", "The peers beside gradbench")
    return drawn


#: The report's figures: file name, function, what it is about (for the page).
FIGURES = [
    ("time.png", time_vs_n, "Time per gradient against N"),
    ("ratio_primal.png", ratio_to_primal, "Gradient time in units of one loss evaluation"),
    ("ratio_backprop.png", speed_ratio, "Numerical gradient time over backprop time"),
    ("gflops.png", gflops, "Achieved GFLOP/s against the calibrated peak"),
]



def trend(series: pd.DataFrame, changes: pd.DataFrame, method: str, path) -> list[str]:
    """One method's time per case across runs in commit order, each case relative to its
    median over the runs (1 = typical); detected changes marked where they start."""
    s = series[series["method"] == method]
    if s.empty:
        raise MissingData(f"no {method} cases in these runs")
    fig = _new_figure()
    ax = fig.add_subplot()
    drawn = []
    labels = sorted(s["label"].unique())
    cmap = matplotlib.colormaps["viridis"]
    varying = [k for k in _varying(s) if k != "label"]
    for key, g in results.series(s, [*results.CASE_ON_MACHINE]):
        key = dict(zip(results.CASE_ON_MACHINE, key, strict=True))
        label, n = key["label"], int(g["n_params"].iloc[0])
        rel = g["median"] / g["median"].median()
        name = f"N = {n:,}" + (f" [{plain(label)}]" if len(labels) > 1 else "") + "".join(
            f" {d}" for d in _describe(key, varying))
        share = np.log(n / s["n_params"].min()) / max(np.log(s["n_params"].max() /
                                                             s["n_params"].min()), 1e-9)
        ax.plot(g["position"] + 1, rel, marker=MARKERS[labels.index(label) % len(MARKERS)],
                ms=3, lw=1, color=cmap(0.9 * share), label=name)
        drawn.append(name)
    for c in changes[changes["method"] == method].itertuples():
        ax.axvline(c.position + 1, color="#d62728" if c.ratio > 1 else "#2ca02c", lw=0.8,
                   linestyle="--")
    ax.set_yscale("log")
    ax.set_xlabel("run, in commit order")
    ax.set_ylabel("time / the case's median over the runs")
    ax.set_title(f"{methods.title(method)}: time across runs (dashed: detected changes)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
              ncol=1 if len(drawn) <= 20 else 2)
    fig.savefig(Path(path), dpi=DPI)
    return drawn


# ----------------------------------------------------------------------------- training


def training_curves(epochs: pd.DataFrame, path, title: str) -> list[str]:
    """Training loss (left, log-log) and test accuracy (right; training accuracy dotted)
    against the seconds spent in training steps (evaluations excluded), one series per
    training record of the same network: how far each gradient method gets in the same time.
    The evaluation before the first step (at 0 s) is left out of the log axis."""
    ep = epochs[(epochs["epoch"] > 0) & (epochs["train_seconds"] > 0)]
    if ep.empty:
        raise MissingData("no finished epochs in these training records")
    fig = Figure(figsize=(SIZE[0] * 1.45, SIZE[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    runs = list(dict.fromkeys(ep["file"]))
    varied = [c for c in ("optimizer", "batch", "label") if ep[c].nunique() > 1]
    drawn = []
    for i, file in enumerate(runs):
        g = ep[ep["file"] == file].sort_values("steps")
        first = g.iloc[0]
        name = method_name(first["method"])
        extra = [plain(first[c]) if c == "label" else f"{c} {first[c]}" if c == "batch"
                 else str(first[c]) for c in varied]
        if sum(ep.drop_duplicates("file")["method"] == first["method"]) > 1:
            extra.append(Path(str(file)).stem[-15:])  # same method twice: which record
        if extra:
            name += f" [{', '.join(extra)}]"
        st = _style(first["method"])
        marker = MARKERS[i % len(MARKERS)]
        loss = g[g["loss"].notna() & (g["loss"] > 0)]
        ax_loss.plot(loss["train_seconds"], loss["loss"], marker=marker, ms=3, label=name,
                     **st)
        ax_acc.plot(g["train_seconds"], 100 * g["test_accuracy"], marker=marker, ms=3, **st)
        ax_acc.plot(g["train_seconds"], 100 * g["train_accuracy"], color=st["color"],
                    linestyle=":", lw=1)
        drawn.append(name)
    ax_acc.plot([], [], color="k", linestyle=":", lw=1, label="training accuracy")
    for ax, ylabel in ((ax_loss, "training loss (full training set)"),
                       (ax_acc, "test accuracy (%)")):
        ax.set_xscale("log")
        ax.set_xlabel("seconds in training steps")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    ax_loss.set_yscale("log")
    for axis in (ax_loss.xaxis, ax_loss.yaxis, ax_acc.xaxis):  # 0.5 and 20, not 5 x 10^-1;
        axis.set_major_formatter(FormatStrFormatter("%g"))  # unlabelled minor ticks
        axis.set_minor_formatter(NullFormatter())
    ax_acc.set_ylim(0, 100)
    ax_loss.legend(fontsize=7, frameon=False)
    ax_acc.legend(fontsize=7, frameon=False, loc="lower right")
    fig.suptitle(plain(title), fontsize=11)
    fig.savefig(Path(path), dpi=DPI)
    return drawn
