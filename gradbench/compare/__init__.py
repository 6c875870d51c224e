"""Comparing result sets: runs, commits or machines. Pure: frames in, findings out.

Each side is one or more result files of one machine (a side pooling several machines is
refused); several runs on a side are pooled as repeated runs: a
case's time on that side is the geometric mean of its runs' medians, and the spread of those
medians measures run-to-run drift directly (see :mod:`gradbench.compare.rule`). Cases are
matched on their parameters (method, sizes, batch, dtype, threads), never on test names;
cases found on one side only are listed, never dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import results
from . import normalize as norm
from . import rule

KEY = results.CASE_KEY
#: What a method is here: its cases pooled over sizes and batches (results.METHOD_KEY).
METHOD = results.METHOD_KEY


@dataclass
class Comparison:
    """What a comparison found; :mod:`gradbench.compare.render` formats it."""

    cases: pd.DataFrame  # one row per matched case: times, ratio, interval, verdict
    unmatched: pd.DataFrame  # cases on one side only
    scaling: pd.DataFrame  # per method and dtype: exponents on both sides, changed or not
    methods: pd.DataFrame  # per method and dtype: geometric-mean ratio, counts of verdicts
    baseline: dict  # description of each side: labels, CPUs, commits, runs
    current: dict
    threshold: float
    normalize: str
    drift: float  # block drift per run used, log time
    spread: float  # case spread about the method's median, log time
    drift_source: str
    same_machine: bool
    notes: list = field(default_factory=list)
    both_skipped: int = 0  # cases the budget skipped on both sides
    both_unavailable: int = 0  # cases of peers not installed on either side

    @property
    def regressions(self) -> pd.DataFrame:
        return self.cases[self.cases["verdict"] == "slower"]

    @property
    def scaling_regressions(self) -> pd.DataFrame:
        s = self.scaling
        return s[s["changed"] & (s["k_current"] > s["k_baseline"])]

    @property
    def failed(self) -> bool:
        """The gate: any case slower beyond the threshold with evidence, or any exponent
        that grew beyond both intervals."""
        return len(self.regressions) > 0 or len(self.scaling_regressions) > 0

    @property
    def detectable(self) -> float:
        """The smallest slowdown this comparison could have detected: the median over the
        cases it could judge of each case's detectable ratio (NaN when none)."""
        judged = self.cases[self.cases["rounds_ok"]]
        return float(judged["detectable"].median()) if len(judged) else math.nan


def machine(run) -> str:
    """What a run's machine is, from its description: the CPU model and its cores; the
    label only where the file recorded no CPU. Two labels on one host are one machine."""
    cpu = run["cpu_model"]
    if not isinstance(cpu, str) or not cpu:
        return f"label {run['label']} (CPU not recorded)"
    cores = run.get("cores")
    return cpu if cores is None or pd.isna(cores) else f"{cpu}, {int(cores)} cores"


def describe(rs: results.ResultSet) -> dict:
    r = rs.runs
    commits = sorted({f"{c[:10]}{'+dirty' if d is True else ''}"
                      for c, d in zip(r["commit"], r["dirty"], strict=True)
                      if isinstance(c, str) and c})
    return {"runs": len(r), "labels": sorted(r["label"].unique()),
            "cpus": sorted(str(c) for c in r["cpu_model"].dropna().unique()),
            "machines": sorted({machine(run) for run in r.to_dict("records")}),
            "commits": commits, "files": list(r["file"])}


def _one_machine(side: str, d: dict) -> None:
    """Runs pooled on a side are repeats of one machine's timings; runs from several
    machines are not, and are refused."""
    if len(d["machines"]) > 1:
        raise ValueError(f"the {side} pools runs from {len(d['machines'])} machines ("
                         f"{'; '.join(d['machines'])}): repeats must come from one machine; "
                         f"compare one machine's runs at a time")


def _per_run(rs: results.ResultSet, resources: dict, mode: str) -> pd.DataFrame:
    """One row per timed case and run: log of its (normalised) median, its rounds and the
    median's standard error from the rounds kept (every round, or their quantiles: the IQR
    from those, the count of every round timed)."""
    ok = rs.cases[rs.cases["status"] == "ok"].copy()
    runs = rs.runs.set_index("file")
    se = {}
    if len(rs.rounds):
        for key, g in rs.rounds.groupby(["file", *KEY], sort=False):
            se[key] = rule.median_se(np.log(g["seconds"].to_numpy()), int(g["rounds"].iloc[0]))
    rows = []
    for r in ok.to_dict("records"):
        key = tuple(r[k] for k in KEY)
        resource = resources.get(key, "none") if mode != "none" else "none"
        run = runs.loc[r["file"]]
        f = norm.factor(resource, *_rates(run, r))
        s = se.get((r["file"], *key))
        if s is None and r["iqr"] is not None and not math.isnan(r["iqr"]):
            # no raw rounds kept: the IQR in log terms, approximately
            s = 1.2533 * (r["iqr"] / r["median"]) / 1.349 / math.sqrt(r["rounds"])
        rows.append({**{k: r[k] for k in KEY}, "file": r["file"], "n_params": r["n_params"],
                     "log_t": math.log(r["median"] * f), "seconds": r["median"],
                     "rounds": r["rounds"], "se": s or 0.0, "resource": resource})
    return pd.DataFrame(rows, columns=[*KEY, "file", "n_params", "log_t", "seconds", "rounds",
                                       "se", "resource"])


def _block_drift(per_runs) -> tuple[float, str]:
    """Block drift per run: measured from repeated runs on a side, else the prior."""
    logs = []
    for per_run in per_runs:
        med = per_run.groupby([*METHOD, "file"])["log_t"].median()
        logs += [list(g) for _, g in med.groupby(level=METHOD)]
    measured = rule.block_drift_from_repeats(logs)
    if measured is not None:
        return measured, "measured from repeated runs on a side"
    return rule.BLOCK_DRIFT_PRIOR, ("assumed with one run a side (measured on this project's "
                                    "machines; give a side two runs or more to measure it)")


def _pool(per_run: pd.DataFrame) -> pd.DataFrame:
    """One row per case: runs pooled as repeats."""
    g = per_run.groupby(KEY, sort=False)
    out = g.agg(n_params=("n_params", "first"), n_runs=("log_t", "size"),
                log_t=("log_t", "mean"), seconds=("seconds", lambda s: float(np.exp(np.log(
                    s).mean()))), min_rounds=("rounds", "min"), resource=("resource", "first"))
    out["se2"] = g["se"].apply(lambda s: float(np.mean(np.square(s))) / len(s))
    out["run_logs"] = g["log_t"].apply(list)
    return out.reset_index()


def _rates(run, case) -> tuple:
    """(matrix-product GFLOP/s in the case's dtype, memory GB/s) of the device that timed the
    case, as its run calibrated them: the CPU's, or a GPU's."""
    return (run.get(results.rate_column(case["device"], f"matmul_gflops_{case['dtype']}")),
            run.get(results.rate_column(case["device"], "memory_gbs")))


def _resources(base: results.ResultSet, mode: str) -> dict:
    """The resource each case is normalised by, decided on the baseline's machine."""
    if mode == "none":
        return {}
    runs = base.runs.set_index("file")
    out = {}
    for r in base.cases.to_dict("records"):
        run = runs.loc[r["file"]]
        gflops, gbs = _rates(run, r)
        if mode == "auto" and not (gflops and gbs):
            raise ValueError(f"{r['file']}: no calibration to normalise by (re-run the "
                             "benchmarks with this version)")
        out[tuple(r[k] for k in KEY)] = norm.bottleneck(r["predicted_flops"],
                                                        r["predicted_bytes"], gflops, gbs, mode)
    return out


def _unmatched(base: results.ResultSet, cur: results.ResultSet, matched: set):
    """Cases not matched: each with the side that timed it (``neither`` when no side did)
    and what the other side did with it; and how many cases were skipped by the budget on
    both sides, and how many were unavailable (a peer not installed) on both sides, which are
    counted, not listed."""
    status = {}
    for side, rs in (("baseline", base), ("current", cur)):
        for r in rs.cases.to_dict("records"):
            key = tuple(r[k] for k in KEY)
            st = status.setdefault(key, {"n_params": r["n_params"]})
            if st.get(side) != "ok":  # timed in any run of the side counts as timed
                st[side] = r["status"]
    rows, both = [], {"skipped": 0, "unavailable": 0}
    for key, st in status.items():
        if key in matched:
            continue
        b, c = st.get("baseline"), st.get("current")
        if b == c and b in both:
            both[b] += 1
            continue
        if b == "ok":
            side, why = "baseline", f"{_why(c)} in the current results"
        elif c == "ok":
            side, why = "current", f"{_why(b)} in the baseline results"
        else:  # timed on neither side, for different reasons
            side, why = "neither", (f"{_why(b)} in the baseline results, {_why(c)} in the "
                                    "current results")
        rows.append({"side": side, **dict(zip(KEY, key, strict=True)),
                     "n_params": st["n_params"], "why": why})
    df = pd.DataFrame(rows, columns=["side", *KEY, "n_params", "why"])
    return (df.sort_values(["side", "method", "n_params"]).reset_index(drop=True),
            both["skipped"], both["unavailable"])


def _why(status: str | None) -> str:
    return {"skipped": "skipped by the budget", None: "absent"}.get(status, status)


def _scaling(base: results.ResultSet, cur: results.ResultSet, block: float) -> pd.DataFrame:
    """Fitted exponents per method on both sides, with intervals that hold drift; an
    exponent change is a finding only between two fits that are cost laws.

    A fit's own 95 % interval reflects the scatter of its points about the line; drift that
    moves during a method's sweep tilts the line without scattering it. The two ends of the
    fitted range drifting apart by the block drift per run (log time) tilt the slope by
    :func:`gradbench.results.fits.drift_tilt` (one standard deviation); its ``rule.Z``
    multiple is added in quadrature to the fit's half-width. A fit whose range did not reach
    the asymptotic regime (results.fits: overhead still a large share at the top, or less
    than a decade of N) is shown but never judged: its slope moves with the overhead, which
    drift alone changes (two back-to-back runs of the same code gave numpy:central 1.12 and
    1.46).
    """
    fits = {}
    for side, rs in (("baseline", base), ("current", cur)):
        df = rs.cases.assign(label=side)
        for f in results.fits(df):
            tilt = results.drift_tilt(f.n_min, f.n_max, block)
            half = math.hypot(f.fit_half, rule.Z * tilt)
            key = tuple(getattr(f, k) for k in METHOD) + (f.batch,)
            fits[(side, *key)] = (f.k, f.k - half, f.k + half, f.asymptotic)
    rows = []
    for (side, *key), (kb, lo_b, hi_b, law_b) in fits.items():
        fc = fits.get(("current", *key))
        if side != "baseline" or fc is None:
            continue
        kc, lo_c, hi_c, law_c = fc
        rows.append({**dict(zip([*METHOD, "batch"], key, strict=True)), "k_baseline": kb,
                     "k_baseline_low": lo_b, "k_baseline_high": hi_b, "k_current": kc,
                     "k_current_low": lo_c, "k_current_high": hi_c,
                     "asymptotic": law_b and law_c,
                     "changed": law_b and law_c
                     and rule.exponent_changed(kb, lo_b, hi_b, kc, lo_c, hi_c)})
    return pd.DataFrame(rows, columns=[*METHOD, "batch", "k_baseline", "k_baseline_low",
                                       "k_baseline_high", "k_current", "k_current_low",
                                       "k_current_high", "asymptotic", "changed"])


def compare(baseline, current, threshold: float = rule.THRESHOLD,
            normalize: str = "none") -> Comparison:
    """Compare two sets of result files (paths, or :class:`results.ResultSet`).

    Parameters
    ----------
    baseline, current : path, list of paths, or ResultSet
        Files or folders; several runs on a side are pooled as repeated runs.
    threshold : float
        A case is slower only when its ratio exceeds this factor (and the evidence holds);
        default :data:`gradbench.compare.rule.THRESHOLD`.
    normalize : {"none", "auto", "flops", "memory"}
        Divide each case's time by its machine's speed at the case's bottleneck (auto:
        decided per case from its arithmetic intensity against the baseline machine's
        balance), or at the resource named.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not (
            math.isfinite(threshold) and threshold >= 1):
        raise ValueError(f"threshold must be a number of at least 1 (a slowdown factor such "
                         f"as {rule.THRESHOLD:.2f}), got {threshold!r}")
    if normalize not in norm.MODES:
        raise ValueError(f"unknown normalisation {normalize!r}: choose one of "
                         f"{', '.join(norm.MODES)}")
    base = baseline if isinstance(baseline, results.ResultSet) else results.load_set(baseline)
    cur = current if isinstance(current, results.ResultSet) else results.load_set(current)
    db, dc = describe(base), describe(cur)
    _one_machine("baseline", db)
    _one_machine("current", dc)
    resources = _resources(base, normalize)
    rb, rc = _per_run(base, resources, normalize), _per_run(cur, resources, normalize)
    pb, pc = _pool(rb), _pool(rc)
    m = pb.merge(pc, on=KEY, suffixes=("_b", "_c"))
    if m.empty:
        raise ValueError(_nothing_in_common(pb, pc))
    m["d"] = m["log_t_c"] - m["log_t_b"]
    m["rounds_ok"] = (m["min_rounds_b"] >= rule.MIN_ROUNDS) & (m["min_rounds_c"] >=
                                                               rule.MIN_ROUNDS)
    block, source = _block_drift([rb, rc])
    judged = m[m["rounds_ok"]]
    resid = judged["d"] - judged.groupby(METHOD)["d"].transform("median")
    spread = rule.case_spread([list(g) for _, g in resid.groupby(
        [judged[k] for k in METHOD])])
    shift = judged.groupby(METHOD)["d"].agg(["median", "size"])
    rows = []
    for r in m.to_dict("records"):
        n_b, n_c = r["n_runs_b"], r["n_runs_c"]
        s = rule.sigma(block, n_b, n_c, spread, math.sqrt(r["se2_b"]), math.sqrt(r["se2_c"]))
        key = tuple(r[k] for k in METHOD)
        d_m, n_m = shift.loc[key] if key in shift.index else (0.0, 1)
        s_m = rule.sigma_method(block, n_b, n_c, spread, int(n_m))
        ratio = math.exp(r["d"])
        rows.append({**{k: r[k] for k in KEY}, "n_params": r["n_params_b"],
                     "baseline_seconds": r["seconds_b"], "current_seconds": r["seconds_c"],
                     "ratio": ratio, "ratio_low": math.exp(r["d"] - rule.Z * s),
                     "ratio_high": math.exp(r["d"] + rule.Z * s),
                     "method_ratio": math.exp(d_m),
                     "verdict": rule.verdict(r["d"], s, d_m, s_m, threshold, r["rounds_ok"]),
                     "detectable": rule.detectable(s, threshold),
                     "rounds_baseline": r["min_rounds_b"], "rounds_current": r["min_rounds_c"],
                     "runs_baseline": n_b, "runs_current": n_c,
                     "rounds_ok": r["rounds_ok"], "normalized_by": r["resource_b"]})
    cases = pd.DataFrame(rows).sort_values(["dtype", "method", "n_params"]).reset_index(
        drop=True)
    matched = set(map(tuple, cases[KEY].to_numpy().tolist()))
    same = db["machines"] == dc["machines"]
    notes = []
    if not same and normalize == "none":
        notes.append("the two sides ran on different machines and times are not normalised: "
                     "ratios include the hardware difference (use --normalize auto)")
    for side, rs in (("baseline", base), ("current", cur)):
        notes += _unfinished(side, rs.runs)
    unmatched, both_skipped, both_unavailable = _unmatched(base, cur, matched)
    return Comparison(cases, unmatched, _scaling(base, cur, block), _method_summary(cases),
                      db, dc, float(threshold), normalize, block, spread, source, same, notes,
                      both_skipped, both_unavailable)


def _unfinished(side: str, runs: pd.DataFrame) -> list[str]:
    """A note on a side's runs that did not complete (interrupted, failed, abandoned)."""
    counts = runs.loc[runs["status"] != "complete", "status"].value_counts()
    if not len(counts):
        return []
    text = ", ".join(f"{n} run{'s' if n != 1 else ''} {s}" for s, n in sorted(counts.items()))
    if "abandoned" in counts:
        text += " (abandoned: the file still says running, but its process is gone)"
    return [f"{side}: {text}"]


def _nothing_in_common(pb: pd.DataFrame, pc: pd.DataFrame) -> str:
    """Why two sides share no timed case: another thread count or device, or other cases."""
    where = ["threads", "device"]
    what = [k for k in KEY if k not in where]
    same = pb[what].merge(pc[what]).drop_duplicates()
    if len(same):
        sides = [", ".join(sorted({f"{int(t)} threads" if d == results.DEFAULT_DEVICE
                                   else f"{int(t)} threads on {d}"
                                   for t, d in zip(p["threads"], p["device"], strict=True)}))
                 for p in (pb, pc)]
        return (f"the two sides timed the same cases at other thread counts or devices "
                f"(baseline: {sides[0]}; current: {sides[1]}), and times are never compared "
                "across them; run both sides with the same --threads")
    return ("the two sides have no timed case in common (method, sizes, batch, dtype, threads "
            "and device must all match); compare runs of the same profile")


def _method_summary(cases: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for key, g in results.series(cases, METHOD):
        counts = g["verdict"].value_counts()
        rows.append({**dict(zip(METHOD, key, strict=True)), "cases": len(g),
                     "geomean_ratio": float(np.exp(np.log(g["ratio"]).mean())),
                     **{v: int(counts.get(v, 0)) for v in rule.VERDICTS}})
    return pd.DataFrame(rows)
