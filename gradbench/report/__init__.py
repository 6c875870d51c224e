"""The report: PNG figures and one self-contained index.html from saved results.

Data first, then rendering: the results are loaded into DataFrames (results.load_set, fits),
the figures are drawn by gradbench.report.figures and the page by a jinja2 template with
autoescaping, so every string from a result file is shown as text. The report shows saved
results only: the accuracy figures (error against step, the classic network's gradient check)
were computed by each run on its own machine and saved with its timings; building a report
computes no gradient and compiles no kernel. Everything is written into a temporary
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

from .. import methods, results
from ..results import training as train_results
from . import figures, pages
from .pages import duration, nice  # noqa: F401  (the report's names, as before)

#: The methods the headline needs; missing ones are named on the page.
KEY_METHODS = (methods.LOSS, methods.ANALYTIC, methods.NUMERICAL)
NUMERICAL = methods.NUMERICAL
BACKPROP = methods.ANALYTIC


@dataclass
class TrainingSection:
    """The training records' part of the page: a figure per network, the table of time per
    step with the ratio to backprop, the commands that reproduce them."""

    figures: list[dict]  # file, title, caption, missing (message or None)
    runs: pd.DataFrame  # train_results.step_table: one row per training record
    commands: list[str]


@dataclass
class Report:
    """Everything the page shows, computed from the results; rendering only formats it."""

    headlines: list[str]
    figures: list[dict]  # file, title, caption, missing (message or None)
    fits: pd.DataFrame
    cases: pd.DataFrame  # one row per machine, dtype and size; a column per method
    case_methods: list[str]
    skipped: pd.DataFrame
    compile: pd.DataFrame
    runs: pd.DataFrame
    commands: list[str]
    missing: list[str] = field(default_factory=list)
    check: pd.DataFrame | None = None
    check_note: str = ""
    machines: pd.DataFrame | None = None  # each method's time relative to the reference
    reference: str | None = None
    peers: Peers | None = None
    fit_decades: float = results.FIT_DECADES
    fit_min_points: int = results.MIN_POINTS
    overhead_max: float = results.OVERHEAD_MAX
    benchmarks: bool = True  # False: only training records were given
    training: TrainingSection | None = None


def headlines(df: pd.DataFrame, fits: list[results.PowerLaw]) -> tuple[list[str], list[str]]:
    """One sentence per panel (machine, batch, dtype, threads, device) with the key
    figures, and what is missing."""
    ok = df[(df["status"] == "ok") & df["median"].notna()]
    present = set(ok["method"])
    missing = [f"no {m} cases in these results" for m in KEY_METHODS if m not in present]
    out = []
    k = {tuple(getattr(f, c) for c in results.SERIES_KEY): f for f in fits}
    # what tells two panels of one machine apart, named where it varies
    varying = [k for k in ("batch", "threads", "device") if ok[k].nunique() > 1]
    for key, g in results.series(ok, results.PANEL_KEY):
        panel = dict(zip(results.PANEL_KEY, key, strict=True))
        label, dtype = panel["label"], panel["dtype"]
        med = g.groupby(["n_params", "method"])["median"].median().unstack()
        if NUMERICAL not in med or BACKPROP not in med:
            continue
        both = med[[NUMERICAL, BACKPROP]].dropna()
        if both.empty:
            continue
        n = int(both.index.max())
        ratio = both.loc[n, NUMERICAL] / both.loc[n, BACKPROP]
        where = ", ".join([dtype] + [pages.threads(panel["threads"]) if k == "threads" else
                                     f"batch {panel['batch']}" if k == "batch" else
                                     str(panel[k]) for k in varying])
        s = (f"On {label} ({where}), at N = {n:,} a central-difference gradient is "
             f"{nice(ratio)} x slower than backprop")
        fn, fb = (k.get(tuple({**panel, "method": m}[c] for c in results.SERIES_KEY))
                  for m in (NUMERICAL, BACKPROP))
        if fn is not None and fb is not None:
            laws = fn.asymptotic and fb.asymptotic
            s += (f"; {'fitted exponents' if laws else 'slopes over the range measured'} "
                  f"{fn.k:.2f} [{fn.k_low:.2f}, {fn.k_high:.2f}] and "
                  f"{fb.k:.2f} [{fb.k_low:.2f}, {fb.k_high:.2f}]")
            if not laws:
                s += " (not the cost laws: see the fits)"
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


def check_tables(checks: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    """The classic network's gradient check as each run saved it, and a sentence about it."""
    if checks.empty:
        return None, ("not recorded: these result files carry no accuracy figures (files of "
                      "schema 1, or runs interrupted before the end); re-run the benchmarks "
                      "to get them")
    first = checks.iloc[0]
    per_label = checks.groupby("label", sort=True).agg(
        ok=("all_passed", "first"), worst=("max_rel_err", "max"), threshold=("threshold",
                                                                              "first"))
    note = (f"{first['network']}: central differences ({first['strategy'] or 'incremental'} "
            f"strategy, which agrees with naive to rounding), h = {first['h']:.3g}; "
            + "; ".join(f"on {label} {'PASSED' if r.ok else 'FAILED'}: worst relative error "
                        f"{r.worst:.2g}, {'within' if r.ok else 'beyond'} the threshold "
                        f"{r.threshold:.2g}" for label, r in per_label.iterrows())
            + ". Computed by each run on its own machine.")
    cols = ["label", "threads", "tensor", "shape", "max_rel_err", "median_rel_err",
            "max_abs_err", "n_over", "passed"]
    return checks[cols], note


def _spread(row) -> str:
    """Median, with half the IQR as a percentage only where rounds measured one."""
    if pd.isna(row["median"]):
        return ""
    text = duration(float(row["median"]))
    if row["rounds"] >= 2 and pd.notna(row["iqr"]):
        text += f" ±{100 * row['iqr'] / 2 / row['median']:.0f}%"
    return text


def _tables(df: pd.DataFrame):
    """The page's tables: cases pivoted (one row per machine, device, threads, dtype, size
    and batch; a cell per method: the median, or the median over the runs that timed the
    same case), skipped cases, compile times; and the full per-case table for the CSV."""
    ok = df[df["status"] == "ok"].copy()
    names = sorted(ok["method"].unique(), key=methods.order)
    ok["cell"] = ok.apply(_spread, axis=1)
    key = results.CASE_ON_MACHINE
    runs = ok.groupby(key, dropna=False)["median"].agg(["median", "size"])
    once = ok.drop_duplicates(key).set_index(key)["cell"]
    cells = pd.Series([once[i] if n == 1 else f"{duration(m)} (median of {n} runs)"
                       for i, m, n in zip(runs.index, runs["median"], runs["size"],
                                          strict=True)],
                      index=runs.index, name="cell").reset_index()
    cells = cells.merge(ok.drop_duplicates(key)[[*key, "n_params"]], on=key)
    rows = ["label", "device", "threads", "dtype", "n_params", "sizes", "batch"]
    pivot = cells.pivot(index=rows, columns="method", values="cell")
    pivot = pivot.reindex(columns=names).fillna("").reset_index()
    skipped = df[df["status"] == "skipped"][["label", "method", "dtype", "threads", "device",
                                             "n_params", "sizes", "predicted_seconds",
                                             "reason"]]
    skipped = skipped.sort_values(["label", "device", "threads", "dtype", "method",
                                   "n_params"])
    comp = ok.groupby(results.SERIES_KEY, as_index=False, dropna=False)[
        "compile_seconds"].agg(first="first", largest="max", total="sum")
    full = df.drop(columns=["file"]).sort_values(["label", "dtype", "method", "n_params"])
    return pivot, names, skipped, comp, full


def machine_table(rs: results.ResultSet, reference: str | None) -> tuple[pd.DataFrame, str]:
    """Each machine's time per method relative to the reference machine: the geometric mean
    over the cases both timed, raw and normalised by each case's bottleneck. A machine that
    cannot be compared has one row, its ``note`` saying why (``note`` is NaN elsewhere)."""
    from .. import compare

    labels = sorted(rs.runs["label"].unique())
    if reference is None:
        reference = labels[0]
    if reference not in labels:
        raise ValueError(f"no machine labelled {reference!r} in these results: choose one of "
                         f"{', '.join(labels)}")
    ref = results.subset(rs, [reference])
    rows = []
    for label in labels:
        if label == reference:
            continue
        other = results.subset(rs, [label])
        try:
            raw = compare.compare(ref, other).methods
            normed = compare.compare(ref, other, normalize="auto").methods
        except ValueError as exc:  # nothing in common, or no calibration: say so
            rows.append({"machine": label, "cases": 0, "note": f"left out: {exc}"})
            continue
        key = results.METHOD_KEY
        both = raw.merge(normed[[*key, "geomean_ratio"]], on=key,
                         suffixes=("", "_normalised"))
        for r in both.to_dict("records"):
            rows.append({"machine": label, "method": r["method"], "dtype": r["dtype"],
                         "threads": r["threads"], "device": r["device"],
                         "cases": r["cases"], "raw": r["geomean_ratio"],
                         "normalised": r["geomean_ratio_normalised"]})
    return pd.DataFrame(rows, columns=["machine", "method", "dtype", "threads", "device",
                                       "cases", "raw", "normalised", "note"]), reference


# ----------------------------------------------------------------------------- peers


@dataclass
class Peers:
    """The peers section: the figure, the classic network's ratios, each provider's library,
    threads, process and check, and the peers that were not installed or were rejected."""

    figure: dict  # file, title, caption, missing
    classic: pd.DataFrame  # classic_ratios()
    providers: pd.DataFrame
    unavailable: pd.DataFrame  # label, method, reason (with the install command)
    rejected: pd.DataFrame  # label, method, sizes, reason
    timed: list[str] = field(default_factory=list)  # what each peer timed here is, in words


#: What each peer is, for the sentence that names the peers a report's runs timed.
PEER_WORDS = {
    "numpy:backprop": "the NumPy textbook's backprop",
    "numpy:central": "the NumPy textbook's central-difference loop",
    "torch:backprop": "torch CPU autograd",
    "torch:numerical": "the numerical Jacobian torch.autograd.gradcheck computes",
    "jax:backprop": "jax.jit(jax.grad(loss))",
    "scipy:approx_fprime": "scipy.optimize.approx_fprime (forward differences)",
    "numdifftools:gradient": "numdifftools.Gradient (central differences at 15 steps, "
                             "Richardson extrapolation)",
}


def classic_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Every method timed on the classic network (784-50-10, batch 100, float64), per
    machine: its median time, that time over gradbench's backprop's (``over_backprop``) and,
    for a peer, the time of gradbench's method that computes the same thing
    (``counterpart``; "" for gradbench's own) over the peer's (``ours_over``: below 1,
    gradbench's is faster)."""
    cols = ["label", "threads", "device", "method", "title", "provider", "kind", "seconds",
            "over_backprop", "counterpart", "ours_over"]
    if "classic" not in df:
        return pd.DataFrame(columns=cols)
    ok = df[(df["status"] == "ok") & df["classic"].fillna(False).astype(bool)
            & df["median"].notna()]
    rows = []
    for key, g in results.series(ok, results.PANEL_KEY):
        panel = dict(zip(results.PANEL_KEY, key, strict=True))
        med = g.groupby("method")["median"].median()
        first = g.drop_duplicates("method").set_index("method")
        bp = med.get(BACKPROP)
        for m in sorted(med.index, key=methods.order):
            # the registry's name of the method on this panel's device
            name = methods.on_device(m, panel["device"])
            name = name if name in methods.REGISTRY else m
            c = methods.counterpart(name)
            c = methods.base_name(c) if c else None
            rows.append({"label": panel["label"], "threads": int(panel["threads"]),
                         "device": panel["device"], "method": m, "title": methods.title(name),
                         "provider": first.at[m, "provider"], "kind": first.at[m, "kind"],
                         "seconds": float(med[m]),
                         "over_backprop": float(med[m] / bp) if bp else math.nan,
                         "counterpart": c or "",
                         "ours_over": float(med[c] / med[m]) if c in med else math.nan})
    return pd.DataFrame(rows, columns=cols)


def _peer_providers(df: pd.DataFrame) -> pd.DataFrame:
    """Per machine and peer provider: the library, its threads, the process its cases ran in
    against gradbench's, what happened to its cases, and its worst check."""
    rows = []
    for (label, file, provider), g in df[df["provider"] != methods.OURS].groupby(
            ["label", "file", "provider"], sort=True):
        ours = df[(df["file"] == file) & (df["provider"] == methods.OURS)]["pid"].dropna()
        pids = sorted(int(p) for p in g["pid"].dropna().unique())
        counts = g["status"].value_counts()
        library = g["library"].dropna()
        threads = g["thread_control"].dropna()
        rows.append({
            "label": label, "provider": provider,
            "methods": ", ".join(sorted(g["method"].unique(), key=methods.order)),
            "library": library.iloc[0] if len(library) else "",
            "thread_control": threads.iloc[0] if len(threads) else "",
            "process": (", ".join(map(str, pids)) + (
                f" (gradbench's: {int(ours.iloc[0])})" if len(ours) else "")) if pids else "–",
            "own_process": bool(pids) and not set(pids) & set(ours.astype(int)),
            "timed": int(counts.get("ok", 0)), "skipped": int(counts.get("skipped", 0)),
            "unavailable": int(counts.get("unavailable", 0)),
            "rejected": int(counts.get("rejected", 0)),
            "worst_check": float(g["check_ratio"].max()) if g["check_ratio"].notna().any()
            else math.nan})
    return pd.DataFrame(rows)


def peers_section(df: pd.DataFrame, out: Path) -> Peers | None:
    """The peers section's content, its figure drawn into ``out``; None when the results
    hold no peer at all (timed or not)."""
    theirs = df[df["provider"] != methods.OURS]
    if theirs.empty:
        return None
    entry = {"file": "peers.png", "title": "The peers beside gradbench",
             "caption": (figures.peers_time.__doc__ or "").strip(), "missing": None}
    try:
        figures.peers_time(df, out / "peers.png")
    except figures.MissingData as exc:
        entry["missing"] = str(exc)
    unavailable = theirs[theirs["status"] == "unavailable"].drop_duplicates(
        ["label", "method"])[["label", "method", "reason"]]
    rejected = theirs[theirs["status"] == "rejected"][["label", "method", "sizes", "reason"]]
    timed = sorted(theirs.loc[theirs["status"] == "ok", "method"].unique(), key=methods.order)
    return Peers(entry, classic_ratios(df), _peer_providers(df), unavailable, rejected,
                 [PEER_WORDS.get(m, methods.title(m)) for m in timed])


def collect(paths, out: Path, reference: str | None = None) -> Report:
    """Load the results, draw the figures and write the CSV into ``out``, and gather the
    page's content."""
    rs = results.load_set(paths)
    machines = None
    if rs.runs["label"].nunique() > 1 or reference is not None:
        machines, reference = machine_table(rs, reference)
    df = rs.cases
    fits = results.fits(df)
    # the headline and the figures above the peers section: gradbench's methods on the ladder
    ours = results.ladder(df[df["provider"] == methods.OURS])
    heads, missing = headlines(ours, fits)
    figs = []
    for name, draw, title in figures.FIGURES:
        entry = {"file": name, "title": title, "caption": (draw.__doc__ or "").strip(),
                 "missing": None}
        try:
            draw(ours, out / name)
        except figures.MissingData as exc:
            entry["missing"] = str(exc)
        figs.append(entry)
    entry = {"file": "step.png", "title": "Gradient error against step size",
             "caption": (figures.step_curve.__doc__ or "").strip(), "missing": None}
    curve = rs.step_curve
    if curve.empty:
        entry["missing"] = "these result files carry no error-against-step data"
    else:
        label = curve["label"].iloc[0]
        curve = curve[curve["file"] == curve["file"].iloc[0]]
        figures.step_curve(curve, out / "step.png")
        entry["caption"] += (f" A 16-8-4 sigmoid network, batch 8, computed by the run on "
                             f"{label}.")
    figs.append(entry)
    # each check with the threads of the run that computed it
    check, note = check_tables(rs.checks.merge(rs.runs[["file", "threads"]], on="file",
                                               how="left"))
    cases, names, skipped, comp, full = _tables(df)
    full.to_csv(out / "cases.csv", index=False)
    return Report(heads, figs, results.fits_frame(df), cases, names, skipped, comp, rs.runs,
                  reproduce(rs.runs), missing, check, note, machines, reference,
                  peers=peers_section(df, out))


def render(report: Report) -> str:
    return pages.render("report.html.j2", r=report, figures_doc=figures.__doc__)


# ----------------------------------------------------------------------------- training


def training_section(records, out: Path) -> TrainingSection:
    """Load the training records (``(path, parsed JSON)`` pairs from
    :func:`gradbench.results.training.split`), draw a figure per network trained (every method
    that trained it on one figure) into ``out``, and gather the table and commands."""
    ts = train_results.load(records)
    figs = []
    key = results.TRAINING_KEY
    for i, (k, g) in enumerate(results.series(ts.runs, key)):
        net = dict(zip(key, k, strict=True))
        title = (f"{net['data']}, {net['sizes']} {net['activation']} {net['dtype']}, batch "
                 f"{net['batch']}, {net['threads']} threads, on {net['label']}")
        name = f"training-{i + 1}.png"
        entry = {"file": name, "title": f"Training: {title}",
                 "caption": (figures.training_curves.__doc__ or "").strip(), "missing": None}
        try:
            figures.training_curves(ts.epochs[ts.epochs["file"].isin(g["file"])], out / name,
                                    title)
        except figures.MissingData as exc:
            entry["missing"] = str(exc)
        figs.append(entry)
    table = train_results.step_table(ts.runs).sort_values(
        [*key, "method"], key=lambda c: c.map(methods.order) if c.name == "method"
        else c)
    commands = [c for c in ts.runs["command"].dropna()] + [
        shlex.join(["gradbench", "report", *ts.runs["file"]])]
    return TrainingSection(figs, table, commands)


def _no_benchmarks() -> Report:
    """The benchmark part of a page built from training records alone: empty."""
    empty = pd.DataFrame()
    return Report([], [], empty, empty, [], empty, empty, empty, [], benchmarks=False)


def build(paths, out="reports", reference: str | None = None) -> Path:
    """Write index.html, the PNG figures and cases.csv for the results in ``paths`` to
    ``out``.

    Parameters
    ----------
    paths : str, Path or list of them
        Result files or folders of them (gradbench run's JSON), training records (gradbench
        train's) among them or alone.
    out : str or Path
        Destination folder, created if needed.
    reference : str, optional
        The machine (label) the others are measured against in the table of machines;
        default the first label in sorting order. The table appears when the results hold
        several machines.

    Returns
    -------
    Path of index.html. Raises ValueError on unreadable results or an unwritable ``out``
    (a full disk among the causes, or a folder where a file of the page goes): nothing of
    the page is then written to ``out`` (:func:`place`), the temporary folder is removed.
    """
    out = Path(out)
    missing = [p for p in [out, *out.parents] if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    except OSError as exc:
        raise ValueError(f"cannot write the report to {out}: {exc.strerror}") from None
    try:
        bench, records = train_results.split(paths)
        report = collect(bench, tmp, reference) if bench else _no_benchmarks()
        if records:
            report.training = training_section(records, tmp)
        (tmp / "index.html").write_text(render(report), encoding="utf-8")
        place(tmp, out)
    except BaseException as exc:
        if missing:  # folders this call made: a failed build leaves none behind
            shutil.rmtree(missing[-1], ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk, say: the page was not replaced
            where = f" ({Path(exc.filename).name})" if exc.filename else ""
            raise ValueError(f"cannot write the report to {out}: "
                             f"{exc.strerror or exc}{where}") from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "index.html"


def place(built: Path, out: Path) -> None:
    """Move every file of a page built in ``built`` (a folder on the same file system, such as
    a hidden one inside ``out``) into ``out``, all of them or none: each replaces its earlier
    version in one step, the page (index.html) last since it names the figures. First every
    destination is checked (a folder where a file goes: ValueError, nothing moved); a move
    that fails after that (a full disk, permissions) undoes the moves before it, so the
    earlier files are back as they were; then OSError. The earlier versions are kept aside
    (hard links, or copies where the file system has none) until the last move is done."""
    names = sorted(p.name for p in built.iterdir() if p.name != "index.html")
    names.append("index.html")
    for name in names:
        dest = out / name
        if dest.exists() and not dest.is_file() and not dest.is_symlink():
            what = "a folder" if dest.is_dir() else "not a regular file"
            raise ValueError(f"cannot write the report to {out}: {dest} is {what}, where the "
                             f"report's {name} goes; remove it or choose another folder")
    aside = Path(tempfile.mkdtemp(prefix=".report-earlier-", dir=out))
    done: list[tuple[str, bool]] = []  # (name, an earlier version was set aside)
    try:
        for name in names:
            dest = out / name
            earlier = dest.exists() or dest.is_symlink()
            if earlier:
                _set_aside(dest, aside / name)
            done.append((name, earlier))
            os.replace(built / name, dest)
    except BaseException:
        lost = _undo(done, out, aside)
        if lost:  # the earlier files could not all be put back: they stay where they are
            raise ValueError(f"cannot write the report to {out}, nor put back all of the "
                             f"earlier report: its {', '.join(lost)} "
                             f"{'is' if len(lost) == 1 else 'are'} in {aside}") from None
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _set_aside(path: Path, to: Path) -> None:
    """A second name for ``path``'s file (a hard link), or a copy where links are refused."""
    try:
        os.link(path, to, follow_symlinks=False)
    except OSError:
        shutil.copy2(path, to, follow_symlinks=False)


def _undo(done: list[tuple[str, bool]], out: Path, aside: Path) -> list[str]:
    """The moves ``done`` undone, last first: each earlier version put back, each new file
    without one removed; the names that could not be put back."""
    lost = []
    for name, earlier in reversed(done):
        try:
            if earlier:
                if not _same_file(aside / name, out / name):  # its move was done
                    os.replace(aside / name, out / name)
            else:
                (out / name).unlink(missing_ok=True)
        except OSError:
            if earlier:
                lost.append(name)
    return lost


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
