"""The result format, and its one owner: schema, writing, reading, tidy frames, fits.

A result file is plain pytest-benchmark JSON (``pytest-benchmark compare`` reads it) with a
``gradbench`` section. Each case's ``extra_info`` says what was timed (method, provider, kind,
scheme, strategy, sizes, batch, dtype, threads, predicted work); ``stats`` holds the timing,
``stats.data`` the raw rounds. The section holds the run: schema version, gradbench version and
the code measured (commit id, time and dirty flag of the gradbench checkout, whatever the
current folder was), profile and budget, the cases the budget skipped, whether the run
completed, and the accuracy figures the run computed (the error-against-step curve and the
classic network's gradient check), so that a report shows each machine's own numbers.

Files are written atomically (a temporary file beside the destination, then a rename), so a
reader never sees half a file. Files are untrusted input when read: every field used is
checked for presence, type and range, and a bad one is refused with one line naming the file
and the field. Schema 1 files (gradbench 0.1.0 before the method registry) are read too:
their methods are looked up in the registry; they carry no accuracy figures.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import costmodel, methods

#: Version of what gradbench adds to pytest-benchmark's JSON. 2: the method registry's
#: provider and kind per case, the code measured, the run's status, raw rounds, accuracy.
SCHEMA_VERSION = 2
#: Versions this code reads.
READABLE = (1, 2)

DTYPES = ("float32", "float64")
STATUSES = ("running", "complete", "interrupted", "failed")
#: Why a case was not timed (``gradbench.skipped[].why``), and its status in the cases frame:
#: the budget ("skipped", with its predicted time), not installed here ("unavailable", with
#: the command that installs it), or a peer whose gradient failed the check ("rejected").
NOT_TIMED = {"budget": "skipped", "unavailable": "unavailable", "rejected": "rejected"}
#: A case is identified by these parameters (never by a test name).
CASE_KEY = ["method", "sizes", "batch", "dtype", "threads"]
#: The ``format`` of the training records `gradbench train` writes beside the result files
#: (gradbench.train_results reads them): benchmark result sets leave them out.
TRAINING_FORMAT = "gradbench-train"


class TrainingRecord(ValueError):
    """A file that is a training record, not a benchmark result."""


# ----------------------------------------------------------------------------- writing


def write(path, document: dict) -> Path:
    """Write a result document to ``path`` atomically; returns the path.

    The JSON is strict (no NaN or Infinity), written to a hidden temporary file in the same
    folder and renamed over ``path``: an interruption leaves the previous file or the new one,
    never a mixture.
    """
    path = Path(path)
    text = json.dumps(document, allow_nan=False, separators=(",", ":"), default=str)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as an ordinary file, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def section(*, profile: str, budget: float, threads: int, label: str, code: dict,
            status: str, spent: float, wall: float, skipped: list, accuracy: dict | None,
            version: str) -> dict:
    """The ``gradbench`` section of a result document."""
    out = {"schema_version": SCHEMA_VERSION, "gradbench_version": version, "code": code,
           "status": status, "label": label, "profile": profile, "budget_seconds": budget,
           "spent_seconds": spent, "wall_seconds": wall, "threads": threads,
           "skipped": skipped}
    if accuracy is not None:
        out["accuracy"] = accuracy
    return out


def accuracy_record(curve: pd.DataFrame, check: pd.DataFrame, network: str) -> dict:
    """The accuracy figures a run saves: the step curve and the classic gradient check."""
    rows = []
    for r in check.to_dict("records"):
        rows.append({k: (list(r[k]) if k == "shape" else r[k])
                     for k in ("tensor", "shape", "max_rel_err", "median_rel_err",
                               "max_abs_err", "n_over", "passed")})
    a = check.attrs
    return {
        # null error: the quotient is not finite (a step too small to move the parameter)
        "step_curve": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                        for k, v in r.items()} for r in curve.to_dict("records")],
        "check": {"network": network, "h": float(check["h"].iloc[0]),
                  "threshold": float(check["threshold"].iloc[0]), "loss": float(a["loss"]),
                  "passed": bool(a["passed"]), "strategy": a.get("strategy"), "rows": rows},
    }


# ----------------------------------------------------------------------------- reading


def result_files(paths, recursive: bool = False) -> list[Path]:
    """The JSON files named, and those inside the folders named (directly, or at any depth
    when ``recursive``), sorted; hidden files (temporary ones among them) are left out."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.glob("**/*.json" if recursive else "*.json")
                           if not f.name.startswith("."))
            if not found:
                raise ValueError(f"{p}: no result files (*.json) in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    if not files:
        raise ValueError("no result files given")
    return files


class _Fields:
    """Typed, range-checked access to one untrusted file's fields; errors name the field."""

    def __init__(self, path):
        self.path = path

    def fail(self, where: str, what: str):
        raise ValueError(f"{self.path}: field {where} {what}; the file is damaged or not "
                         "from gradbench: re-run the benchmarks to get a good one")

    def get(self, d: dict, key: str, where: str, kinds, *, optional=False, default=None):
        if key not in d or d[key] is None:
            if optional:
                return default
            self.fail(f"{where}.{key}", "is missing")
        v = d[key]
        if isinstance(v, bool) and bool not in kinds:
            self.fail(f"{where}.{key}", f"must be {_kind_names(kinds)}, got {v!r}")
        if not isinstance(v, kinds):
            self.fail(f"{where}.{key}", f"must be {_kind_names(kinds)}, got {_short(v)}")
        return v

    def obj(self, d, key, where, optional=False) -> dict:
        return self.get(d, key, where, (dict,), optional=optional, default={})

    def text(self, d, key, where, optional=False, max_len=200) -> str | None:
        v = self.get(d, key, where, (str,), optional=optional)
        if v is not None and not (0 < len(v) <= max_len):
            self.fail(f"{where}.{key}", f"must be a string of 1 to {max_len} characters")
        return v

    def integer(self, d, key, where, lo=0, optional=False) -> int | None:
        v = self.get(d, key, where, (int,), optional=optional)
        if v is not None and v < lo:
            self.fail(f"{where}.{key}", f"must be at least {lo}, got {v}")
        return v

    def number(self, d, key, where, positive=False, optional=False, default=None):
        v = self.get(d, key, where, (int, float), optional=optional)
        if v is None:
            return default
        v = float(v)
        if not math.isfinite(v) or v < 0 or (positive and v == 0):
            self.fail(f"{where}.{key}", f"must be a {'positive' if positive else 'non-negative'}"
                      f" finite number, got {v!r}")
        return v

    def choice(self, d, key, where, choices, optional=False):
        v = self.get(d, key, where, (str,), optional=optional)
        if v is not None and v not in choices:
            self.fail(f"{where}.{key}", f"must be one of {', '.join(choices)}, got {_short(v)}")
        return v


def _kind_names(kinds) -> str:
    if float in kinds:
        return "a number"
    names = {dict: "an object", list: "a list", str: "a string", int: "a whole number",
             bool: "true or false"}
    return " or ".join(names[k] for k in kinds)


def _short(v) -> str:
    text = json.dumps(v) if not isinstance(v, float) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def read(path) -> dict:
    """One result file, parsed and checked at the top level (pytest-benchmark's shape, our
    section and a schema version this code reads). Fields are checked by :func:`load_set`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); "
                         "the file is corrupt or was cut short") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot be read ({e})") from None
    if isinstance(data, dict) and data.get("format") == TRAINING_FORMAT:
        raise TrainingRecord(f"{path}: a training record (gradbench train), not a benchmark "
                             "result; gradbench report shows it")
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark result file (no 'benchmarks' list)")
    if not isinstance(data.get("machine_info", {}), dict):
        raise ValueError(f"{path}: not a pytest-benchmark result file ('machine_info' is not "
                         "an object)")
    section = data.get("gradbench")
    if not isinstance(section, dict):
        raise ValueError(f"{path}: not written by a gradbench run (no 'gradbench' section)")
    version = section.get("schema_version")
    if isinstance(version, bool) or version not in READABLE:
        raise ValueError(f"{path}: written with gradbench result schema {version!r}; this "
                         f"version reads schemas {', '.join(map(str, READABLE))}: re-run the "
                         "benchmarks with this version of gradbench")
    return data


def _case(f: _Fields, info: dict, where: str, version: int) -> dict:
    """The parameters of one case, checked; provider and kind from the registry for
    schema 1 files."""
    method = f.text(info, "method", where)
    if version == 1 or "kind" not in info:
        if method not in methods.REGISTRY:
            f.fail(f"{where}.method", f"names no method this version knows ({_short(method)})")
        m = methods.get(method)
        provider, kind, scheme, strategy = m.provider, m.kind, m.scheme, m.strategy
    else:
        provider = f.text(info, "provider", where)
        kind = f.choice(info, "kind", where, methods.KINDS)
        scheme = f.text(info, "scheme", where, optional=True)
        strategy = f.text(info, "strategy", where, optional=True)
    sizes = f.get(info, "sizes", where, (list,))
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                             for s in sizes):
        f.fail(f"{where}.sizes", f"must list two or more whole numbers >= 1, got {_short(sizes)}")
    return {
        "method": method, "provider": provider, "kind": kind, "scheme": scheme,
        "strategy": strategy, "sizes": "-".join(map(str, sizes)), "width": sizes[1],
        "depth": len(sizes) - 1, "n_params": costmodel.num_params(sizes),
        "batch": f.integer(info, "batch", where, lo=1),
        "dtype": f.choice(info, "dtype", where, DTYPES),
        "threads": f.integer(info, "threads", where, lo=1),
        "predicted_flops": f.number(info, "predicted_flops", where),
        "predicted_bytes": f.number(info, "predicted_bytes", where, optional=True),
        "loss_evals": f.integer(info, "loss_evals", where, optional=True),
        "compile_seconds": f.number(info, "compile_seconds", where, optional=True),
        "predicted_seconds": f.number(info, "predicted_seconds", where, optional=True),
        "mode": f.text(info, "mode", where, optional=True),
        # peers: the library, its threads, the check against gradbench's backprop; the
        # process the case ran in (each peer provider has its own)
        "library": f.text(info, "library", where, optional=True),
        "thread_control": f.text(info, "thread_control", where, optional=True, max_len=500),
        "check_max_abs_err": f.number(info, "check_max_abs_err", where, optional=True),
        "check_ratio": f.number(info, "check_ratio", where, optional=True),
        "pid": f.integer(info, "pid", where, optional=True),
        # the classic 784-50-10 network's case, beside the sweep's ladder of networks
        "classic": f.choice(info, "network", where, ("ladder", "classic"),
                            optional=True) == "classic",
    }


def _timing(f: _Fields, st: dict, where: str) -> tuple[dict, list[float]]:
    """Timing statistics of a case, checked (times positive and finite), and its rounds."""
    out = {k: f.number(st, k, where, positive=True) for k in ("median", "mean", "min")}
    out["max"] = f.number(st, "max", where, positive=True, optional=True)
    out["iqr"] = f.number(st, "iqr", where, optional=True)
    out["stddev"] = f.number(st, "stddev", where, optional=True)
    out["rounds"] = f.integer(st, "rounds", where, lo=1)
    if not out["min"] <= out["median"] <= (out["max"] or math.inf):
        f.fail(f"{where}.median", "must lie between min and max")
    data = f.get(st, "data", where, (list,), optional=True, default=[])
    for i, t in enumerate(data):
        if isinstance(t, bool) or not isinstance(t, int | float) or not (
                math.isfinite(t) and t > 0):
            f.fail(f"{where}.data[{i}]", f"must be a positive finite number, got {_short(t)}")
    if data and len(data) != out["rounds"]:
        f.fail(f"{where}.data", f"holds {len(data)} rounds, stats.rounds says {out['rounds']}")
    return out, [float(t) for t in data]


def _run(f: _Fields, data: dict) -> dict:
    """The run and machine of one file, checked."""
    mi = f.obj(data, "machine_info", "")
    gb = data["gradbench"]
    version = gb["schema_version"]
    cal = f.obj(mi, "calibration", "machine_info", optional=True)
    ci = f.obj(data, "commit_info", "", optional=True) if version == 1 else {}
    code = f.obj(gb, "code", "gradbench", optional=True)
    label = (f.text(mi, "label", "machine_info", optional=True)
             or f.text(mi, "node", "machine_info", optional=True) or "unknown")
    blas = f.get(mi, "blas", "machine_info", (list,), optional=True, default=[])
    blas = "; ".join(f"{b.get('internal_api', '?')} {b.get('version', '?')} "
                     f"({b.get('num_threads', '?')} threads)" for b in blas
                     if isinstance(b, dict))
    commit = f.text(code, "commit", "gradbench.code", optional=True)
    if version == 1:  # pytest-benchmark's commit_info of the current folder; often useless
        cid = f.text(ci, "id", "commit_info", optional=True)
        commit = None if cid in (None, "unversioned") else cid
    return {
        "label": label,
        "run": f.text(data, "datetime", "", optional=True) or "",
        "status": f.choice(gb, "status", "gradbench", STATUSES, optional=True) or "complete",
        "schema": version,
        "gradbench_version": f.text(gb, "gradbench_version", "gradbench", optional=True),
        "commit": commit,
        "commit_time": f.text(code, "commit_time", "gradbench.code", optional=True),
        "dirty": f.get(code, "dirty", "gradbench.code", (bool,), optional=True),
        "git_error": f.text(code, "git_error", "gradbench.code", optional=True),
        "profile": f.text(gb, "profile", "gradbench"),
        "budget_seconds": f.number(gb, "budget_seconds", "gradbench", positive=True),
        "spent_seconds": f.number(gb, "spent_seconds", "gradbench", optional=True),
        "wall_seconds": f.number(gb, "wall_seconds", "gradbench", optional=True),
        "threads": f.integer(gb, "threads", "gradbench", lo=1, optional=True),
        "cpu_model": f.text(mi, "cpu_model", "machine_info", optional=True),
        "cores": f.integer(mi, "cores", "machine_info", lo=1, optional=True),
        "python": f.text(mi, "python_version", "machine_info", optional=True),
        "numba": f.text(mi, "numba", "machine_info", optional=True),
        "llvmlite": f.text(mi, "llvmlite", "machine_info", optional=True),
        "numpy": f.text(mi, "numpy", "machine_info", optional=True),
        "threading_layer": f.text(mi, "threading_layer", "machine_info", optional=True),
        "svml": f.get(mi, "svml", "machine_info", (bool,), optional=True),
        "blas": blas,
        **{k: f.number(cal, k, "machine_info.calibration", positive=True, optional=True)
           for k in ("matmul_gflops_float64", "matmul_gflops_float32", "memory_gbs")},
    }


#: Columns of the runs frame, one row per result file.
RUN_COLUMNS = ["file", "label", "run", "status", "schema", "gradbench_version", "commit",
               "commit_time", "dirty", "git_error", "profile", "budget_seconds", "spent_seconds",
               "wall_seconds", "threads", "cpu_model", "cores", "python", "numba", "llvmlite",
               "numpy", "threading_layer", "svml", "blas", "matmul_gflops_float64",
               "matmul_gflops_float32", "memory_gbs", "n_cases", "n_skipped"]
#: Columns of the cases frame, one row per case and run (timed or skipped).
CASE_COLUMNS = ["file", "label", "run", "profile", "commit", "method", "provider", "kind",
                "scheme", "strategy", "sizes", "width", "depth", "n_params", "batch", "dtype",
                "threads", "predicted_flops", "predicted_bytes", "loss_evals",
                "compile_seconds", "predicted_seconds", "mode", "status", "reason", "median",
                "iqr", "mean", "min", "max", "stddev", "rounds", "gflops", "peak_gflops",
                "library", "thread_control", "check_max_abs_err", "check_ratio", "pid",
                "classic"]
#: Columns of the rounds frame, one row per timed round.
ROUND_COLUMNS = ["file", "label", "method", "sizes", "batch", "dtype", "threads", "round",
                 "seconds"]
STEP_COLUMNS = ["file", "label", "scheme", "dtype", "h", "error", "default_h"]
CHECK_COLUMNS = ["file", "label", "network", "tensor", "shape", "max_rel_err",
                 "median_rel_err", "max_abs_err", "n_over", "passed", "h", "threshold", "loss",
                 "all_passed", "strategy"]


@dataclass
class ResultSet:
    """Everything in a set of result files, as tidy frames."""

    runs: pd.DataFrame
    cases: pd.DataFrame
    rounds: pd.DataFrame
    step_curve: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STEP_COLUMNS))
    checks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHECK_COLUMNS))


def _parse(path: Path, data: dict, runs, cases, rounds, curve, checks) -> None:
    f = _Fields(path)
    run = _run(f, data)
    gb = data["gradbench"]
    version = gb["schema_version"]
    base = {"file": str(path), "label": run["label"], "run": run["run"],
            "profile": run["profile"], "commit": run["commit"]}
    n_cases = 0
    for i, b in enumerate(data["benchmarks"]):
        where = f"benchmarks[{i}]"
        if not isinstance(b, dict):
            f.fail(where, f"must be an object, got {_short(b)}")
        info = f.obj(b, "extra_info", where)
        if info.get("gradbench_schema") is None:
            continue  # a benchmark of someone else's in the same file
        case = _case(f, info, f"{where}.extra_info", version)
        timing, data_rounds = _timing(f, f.obj(b, "stats", where), f"{where}.stats")
        cases.append({**base, **case, **timing, "status": "ok", "reason": None})
        for r, t in enumerate(data_rounds):
            rounds.append({"file": str(path), "label": run["label"], "method": case["method"],
                           "sizes": case["sizes"], "batch": case["batch"],
                           "dtype": case["dtype"], "threads": case["threads"], "round": r,
                           "seconds": t})
        n_cases += 1
    skipped = f.get(gb, "skipped", "gradbench", (list,), optional=True, default=[])
    for i, info in enumerate(skipped):
        where = f"gradbench.skipped[{i}]"
        if not isinstance(info, dict):
            f.fail(where, f"must be an object, got {_short(info)}")
        case = _case(f, info, where, version)
        if case["predicted_seconds"] is None:
            f.fail(f"{where}.predicted_seconds", "is missing")
        why = f.choice(info, "why", where, tuple(NOT_TIMED), optional=True) or "budget"
        cases.append({**base, **case, "status": NOT_TIMED[why],
                      "reason": f.text(info, "reason", where, optional=True, max_len=500),
                      "rounds": 0})
    runs.append({"file": str(path), **run, "n_cases": n_cases, "n_skipped": len(skipped)})
    acc = f.obj(gb, "accuracy", "gradbench", optional=True)
    if acc:
        _parse_accuracy(f, acc, base, curve, checks)


def _parse_accuracy(f: _Fields, acc: dict, base: dict, curve: list, checks: list) -> None:
    where = "gradbench.accuracy"
    for i, r in enumerate(f.get(acc, "step_curve", where, (list,))):
        w = f"{where}.step_curve[{i}]"
        if not isinstance(r, dict):
            f.fail(w, "must be an object")
        curve.append({"file": base["file"], "label": base["label"],
                      "scheme": f.text(r, "scheme", w), "dtype": f.choice(r, "dtype", w, DTYPES),
                      "h": f.number(r, "h", w, positive=True),
                      # null: the step moved nothing (0/0), drawn as a gap
                      "error": f.number(r, "error", w, optional=True, default=math.nan),
                      "default_h": f.number(r, "default_h", w, positive=True)})
    c = f.obj(acc, "check", where)
    w = f"{where}.check"
    head = {"file": base["file"], "label": base["label"], "network": f.text(c, "network", w),
            "h": f.number(c, "h", w, positive=True),
            "threshold": f.number(c, "threshold", w, positive=True),
            "loss": f.number(c, "loss", w), "all_passed": f.get(c, "passed", w, (bool,)),
            "strategy": f.text(c, "strategy", w, optional=True)}
    for i, r in enumerate(f.get(c, "rows", w, (list,))):
        wr = f"{w}.rows[{i}]"
        if not isinstance(r, dict):
            f.fail(wr, "must be an object")
        shape = f.get(r, "shape", wr, (list,))
        checks.append({**head, "tensor": f.text(r, "tensor", wr),
                       "shape": tuple(int(s) for s in shape if isinstance(s, int)),
                       "max_rel_err": f.number(r, "max_rel_err", wr),
                       "median_rel_err": f.number(r, "median_rel_err", wr),
                       "max_abs_err": f.number(r, "max_abs_err", wr),
                       "n_over": f.integer(r, "n_over", wr),
                       "passed": f.get(r, "passed", wr, (bool,))})


def load_set(paths, recursive: bool = False) -> ResultSet:
    """Every result file named (files or folders), read once and checked, as frames."""
    runs, cases, rounds, curve, checks = [], [], [], [], []
    records = []
    for path in result_files(paths, recursive):
        try:
            data = read(path)
        except TrainingRecord:
            records.append(path)  # gradbench train's, beside the results: not ours
            continue
        _parse(path, data, runs, cases, rounds, curve, checks)
    df = pd.DataFrame(cases, columns=CASE_COLUMNS)
    if df.empty:
        names = ", ".join(str(p) for p in result_files(paths, recursive))
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
    """One row per timed round of every case: the raw timings statistics need."""
    return load_set(paths).rounds


def load_all(paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(load(paths), runs(paths))``, reading each file once."""
    rs = load_set(paths)
    return rs.cases, rs.runs


# ----------------------------------------------------------------------------- fits


@dataclass(frozen=True)
class PowerLaw:
    """time = c * N**k, fitted by least squares on log time against log N."""

    method: str
    label: str
    dtype: str
    k: float
    k_low: float  # 95 % confidence interval of k
    k_high: float
    c: float
    n_points: int
    n_min: int
    n_max: int

    def predict(self, n: float) -> float:
        return self.c * n**self.k


#: The fit uses the top ``FIT_DECADES`` decades of N measured for a method (at least
#: ``MIN_POINTS`` sizes): at small N fixed per-call costs (dispatch, packing the batch for
#: BLAS, the output layer) flatten the curve, and the asymptotic exponent only shows at the
#: large end. Measured on the sweep's 256-w-10 networks: one loss evaluation's cost grows like
#: w^0.82-0.89 for w = 16-128 and like w^0.95-1.02 from w = 128 up, at batch 8 to 64 alike; the
#: naive numerical gradient, within the default budget, reaches w = 362-512, so a decade below
#: its top would reach into the flat part. Three quarters of a decade is 5 sizes of the ladder.
FIT_DECADES = 0.75
MIN_POINTS = 4


def fit_power_law(n, t, decades: float = FIT_DECADES) -> tuple[float, float, float, float, int]:
    """(k, k_low, k_high, c, points used) for t = c n^k over the top decades of n."""
    n, t = np.asarray(n, dtype=float), np.asarray(t, dtype=float)
    if not (np.all(np.isfinite(n)) and np.all(n > 0) and np.all(np.isfinite(t))
            and np.all(t > 0)):
        raise ValueError("a power law needs positive, finite sizes and times")
    order = np.argsort(n)
    n, t = n[order], t[order]
    keep = n >= n[-1] / 10**decades
    if keep.sum() < MIN_POINTS:
        keep = np.zeros(len(n), bool)
        keep[-MIN_POINTS:] = True
    x, y = np.log(n[keep]), np.log(t[keep])
    if len(x) < 2:
        raise ValueError("a power law needs at least two sizes")
    res = stats.linregress(x, y)
    m = len(x)
    half = stats.t.ppf(0.975, m - 2) * res.stderr if m > 2 else math.inf
    return res.slope, res.slope - half, res.slope + half, math.exp(res.intercept), m


def ladder(df: pd.DataFrame) -> pd.DataFrame:
    """The cases of the sweep's ladder of networks: the classic network's cases (another
    input size and batch, off the ladder) left out."""
    return df[~df["classic"].fillna(False).astype(bool)] if "classic" in df else df


def fits(df: pd.DataFrame) -> list[PowerLaw]:
    """A power law per method, machine and dtype, from the median times of the ladder's
    cases that ran."""
    df = ladder(df)
    ok = df[(df["status"] == "ok") & df["median"].notna()]
    out = []
    for (method, label, dtype), g in ok.groupby(["method", "label", "dtype"], sort=True):
        g = g.groupby("n_params", as_index=False)["median"].median()
        if len(g) < 2:
            continue
        k, lo, hi, c, m = fit_power_law(g["n_params"], g["median"])
        used = g["n_params"].sort_values().iloc[-m:]
        out.append(PowerLaw(method, label, dtype, k, lo, hi, c, m, int(used.min()),
                            int(used.max())))
    return sorted(out, key=lambda f: (f.label, f.dtype, methods.order(f.method)))


def fits_frame(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([f.__dict__ for f in fits(df)],
                        columns=[f.name for f in PowerLaw.__dataclass_fields__.values()])


def ratio_to(df: pd.DataFrame, reference: str = methods.LOSS) -> pd.DataFrame:
    """Median time of each method over that of ``reference`` at the same size, machine and
    dtype (the gradient/primal ratio of autodiff benchmarks)."""
    ok = df[df["status"] == "ok"]
    med = ok.groupby(["label", "dtype", "n_params", "method"])["median"].median().unstack()
    if reference not in med:
        raise ValueError(f"no {reference!r} cases in these results")
    return med.div(med[reference], axis=0).drop(columns=reference).reset_index()
