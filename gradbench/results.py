"""Benchmark results: pytest-benchmark JSON files into one tidy DataFrame, and power-law fits.

One row per case and run (file). Cases the budget skipped are rows too, with
``status == "skipped"`` and their predicted time, so reports can show them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .sweep import SCHEMA_VERSION

INFO_COLUMNS = ["method", "scheme", "strategy", "width", "depth", "n_params", "batch", "dtype",
                "threads", "predicted_flops", "predicted_bytes", "loss_evals",
                "compile_seconds", "predicted_seconds", "mode"]


def result_files(paths) -> list[Path]:
    """The JSON files named, and those directly inside the folders named (sorted)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.json"))
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


def read(path: Path) -> dict:
    """One result file, checked: valid JSON, pytest-benchmark's shape, our schema version."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); "
                         "the file is corrupt or was cut short") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot be read ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark result file (no 'benchmarks' list)")
    if not isinstance(data.get("machine_info", {}), dict):
        raise ValueError(f"{path}: not a pytest-benchmark result file ('machine_info' is not "
                         "an object)")
    section = data.get("gradbench")
    if not isinstance(section, dict):
        raise ValueError(f"{path}: not written by a gradbench run (no 'gradbench' section)")
    version = section.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: written with gradbench result schema {version!r}; this "
                         f"version reads schema {SCHEMA_VERSION}: re-run the benchmarks with it")
    return data


def _label(mi: dict) -> str:
    return mi.get("label") or mi.get("node") or "unknown"


def _calibration(mi: dict) -> dict:
    cal = mi.get("calibration")
    return cal if isinstance(cal, dict) else {}


def load(paths) -> pd.DataFrame:
    """All cases of all result files named (files or folders), one row per case and run."""
    return _cases([(path, read(path)) for path in result_files(paths)])


def load_all(paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(load(paths), runs(paths))``, reading each file once."""
    files = [(path, read(path)) for path in result_files(paths)]
    return _cases(files), _runs(files)


def _cases(files) -> pd.DataFrame:
    rows = []
    for path, data in files:
        mi = data.get("machine_info", {})
        base = {"file": str(path), "label": _label(mi), "run": data.get("datetime", ""),
                "profile": data["gradbench"].get("profile")}
        peaks = _calibration(mi)
        for b in data["benchmarks"]:
            info = b.get("extra_info", {})
            if info.get("gradbench_schema") != SCHEMA_VERSION:
                continue  # not one of ours
            st = b.get("stats", {})
            row = {**base, **{k: info.get(k) for k in INFO_COLUMNS}, "status": "ok",
                   "median": st.get("median"), "iqr": st.get("iqr"), "mean": st.get("mean"),
                   "min": st.get("min"), "rounds": st.get("rounds"),
                   "sizes": "-".join(map(str, info.get("sizes", [])))}
            row["peak_gflops"] = peaks.get(f"matmul_gflops_{row['dtype']}")
            rows.append(row)
        for info in data["gradbench"].get("skipped", []):
            rows.append({**base, **{k: info.get(k) for k in INFO_COLUMNS}, "status": "skipped",
                         "median": None, "iqr": None, "mean": None, "min": None, "rounds": 0,
                         "sizes": "-".join(map(str, info.get("sizes", []))),
                         "peak_gflops": peaks.get(f"matmul_gflops_{info.get('dtype')}")})
    df = pd.DataFrame(rows)
    if df.empty:
        raise ValueError("the result files hold no gradbench cases")
    for col in ("median", "iqr", "mean", "min", "predicted_seconds", "predicted_flops"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["gflops"] = df["predicted_flops"] / df["median"] / 1e9
    df["peak_gflops"] = pd.to_numeric(df["peak_gflops"], errors="coerce")
    return df


#: Columns of :func:`runs`, one row per result file.
RUN_COLUMNS = ["file", "label", "run", "profile", "budget_seconds", "spent_seconds",
               "wall_seconds", "threads", "cpu_model", "cores", "python", "numba", "llvmlite",
               "numpy", "threading_layer", "svml", "blas", "matmul_gflops_float64",
               "matmul_gflops_float32", "memory_gbs", "n_cases", "n_skipped"]


def runs(paths) -> pd.DataFrame:
    """One row per result file: the run (profile, budget, threads) and its machine
    (CPU, versions, BLAS, calibration figures), for reports and comparisons."""
    return _runs([(path, read(path)) for path in result_files(paths)])


def _runs(files) -> pd.DataFrame:
    rows = []
    for path, data in files:
        mi, gb = data.get("machine_info", {}), data["gradbench"]
        cal = _calibration(mi)
        blas = "; ".join(f"{b.get('internal_api', '?')} {b.get('version', '?')} "
                         f"({b.get('num_threads', '?')} threads)"
                         for b in mi.get("blas") or [] if isinstance(b, dict))
        rows.append({
            "file": str(path), "label": _label(mi),
            "run": data.get("datetime", ""), "profile": gb.get("profile"),
            "budget_seconds": gb.get("budget_seconds"), "spent_seconds": gb.get("spent_seconds"),
            "wall_seconds": gb.get("wall_seconds"), "threads": gb.get("threads"),
            "cpu_model": mi.get("cpu_model"), "cores": mi.get("cores"),
            "python": mi.get("python_version"), "numba": mi.get("numba"),
            "llvmlite": mi.get("llvmlite"), "numpy": mi.get("numpy"),
            "threading_layer": mi.get("threading_layer"), "svml": mi.get("svml"), "blas": blas,
            **{k: cal.get(k) for k in ("matmul_gflops_float64", "matmul_gflops_float32",
                                       "memory_gbs")},
            "n_cases": len(data["benchmarks"]), "n_skipped": len(gb.get("skipped", [])),
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


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


def fits(df: pd.DataFrame) -> list[PowerLaw]:
    """A power law per method, machine and dtype, from the median times of cases that ran."""
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
    return out


def fits_frame(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([f.__dict__ for f in fits(df)])


def ratio_to(df: pd.DataFrame, reference: str = "primal") -> pd.DataFrame:
    """Median time of each method over that of ``reference`` at the same size, machine and
    dtype (the gradient/primal ratio of autodiff benchmarks)."""
    ok = df[df["status"] == "ok"]
    med = ok.groupby(["label", "dtype", "n_params", "method"])["median"].median().unstack()
    if reference not in med:
        raise ValueError(f"no {reference!r} cases in these results")
    return med.div(med[reference], axis=0).drop(columns=reference).reset_index()
