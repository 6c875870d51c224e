"""Result files for the tests: pytest-benchmark-shaped JSON with known timings."""

import json

import numpy as np

from gradbench import results
from gradbench.bench import sweep

CALIBRATION = {"matmul_gflops_float64": 60.0, "matmul_gflops_float32": 120.0,
               "memory_gbs": 12.0}


def document(timings, label="m1", skipped=(), schema=results.SCHEMA_VERSION, rounds=5,
             accuracy=None, calibration=None, cpu="Test CPU", threads=2):
    """A result document: timings = [(method, width, median seconds)], each case with
    ``rounds`` raw rounds around its median, timed on ``threads`` threads."""
    benchmarks = []
    for method, w, t in timings:
        case = sweep.Case(method, (784, w, 10), 32, "float64", threads)
        info = case.info()
        info["gradbench_schema"] = schema
        if schema == 1:
            for key in ("provider", "kind"):
                info.pop(key)
        data = [t * (1 + 0.02 * (i - rounds // 2)) for i in range(rounds)]
        benchmarks.append({"name": f"test_case[{case.id}]", "extra_info": info,
                           "stats": {"median": t, "iqr": t / 10, "mean": t, "min": min(data),
                                     "max": max(data), "stddev": t / 20, "rounds": rounds,
                                     "data": data}})
    skipped = [{**sweep.Case(m, (784, w, 10), 32, "float64", threads).info(),
                "predicted_seconds": p} for m, w, p in skipped]
    section = {"schema_version": schema, "profile": "quick", "budget_seconds": 45.0,
               "threads": threads, "skipped": skipped}
    if schema >= 2:
        section.update(status="complete", gradbench_version="0.1.0",
                       code={"commit": "abc123", "commit_time": "2026-11-22T20:00:00+00:00",
                             "dirty": False})
        if accuracy is not None:
            section["accuracy"] = accuracy
    return {"machine_info": {"label": label, "node": "host",
                             "calibration": dict(calibration or CALIBRATION),
                             "cpu_model": cpu, "cores": 2},
            "datetime": "2026-11-22T20:00",
            "benchmarks": benchmarks,
            "gradbench": section}


def write_result(path, timings, label="m1", skipped=(), schema=results.SCHEMA_VERSION,
                 **kwargs):
    path.write_text(json.dumps(document(timings, label, skipped, schema, **kwargs)))
    return path


def power(method, k, c, widths, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for w in widths:
        n = sweep.Case(method, (784, w, 10), 32, "float64", 2).n_params
        out.append((method, w, c * n**k * float(np.exp(noise * rng.standard_normal()))))
    return out


WIDTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def accuracy(passed=True):
    """An accuracy section as a run saves it: a V-shaped step curve per scheme and dtype, and a
    two-tensor gradient check."""
    h = np.logspace(-12, -1, 23)
    curve = [{"scheme": s, "dtype": d, "h": float(x), "error": float(x**2 + 1e-16 / x),
              "default_h": 6e-6} for s in ("central", "forward") for d in ("float32", "float64")
             for x in h]
    curve[0]["error"] = None  # a step too small to move anything
    rows = [{"tensor": t, "shape": [4, 3] if t == "W1" else [3], "max_rel_err": 1e-7,
             "median_rel_err": 1e-8, "max_abs_err": 1e-10, "n_over": 0 if passed else 2,
             "passed": passed} for t in ("W1", "b1")]
    return {"step_curve": curve,
            "check": {"network": "784-50-10 sigmoid, softmax cross-entropy, batch 100, float64",
                      "h": 6.06e-6, "threshold": 6.1e-6, "loss": 2.3, "passed": passed,
                      "strategy": "incremental", "rows": rows}}


def halve_times(path, calibration=None):
    """Every time in a result file halved (a machine twice as fast), its calibration
    replaced when given."""
    data = json.loads(path.read_text())
    if calibration is not None:
        data["machine_info"]["calibration"] = calibration
    for bench in data["benchmarks"]:
        st = bench["stats"]
        for k in ("median", "mean", "min", "max", "iqr", "stddev"):
            st[k] /= 2
        for k in ("data", "quantiles"):
            if k in st:
                st[k] = [t / 2 for t in st[k]]
    path.write_text(json.dumps(data))
