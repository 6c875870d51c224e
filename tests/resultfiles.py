"""Result files for the tests: pytest-benchmark-shaped JSON with known timings."""

import json

import numpy as np

from gradbench import sweep

CALIBRATION = {"matmul_gflops_float64": 60.0, "matmul_gflops_float32": 120.0,
               "memory_gbs": 12.0}


def write_result(path, timings, label="m1", skipped=(), schema=sweep.SCHEMA_VERSION):
    """A pytest-benchmark-shaped file: timings = [(method, width, median seconds)]."""
    benchmarks = []
    for method, w, t in timings:
        case = sweep.Case(method, (784, w, 10), 32, "float64", 2)
        benchmarks.append({"name": f"test_case[{case.id}]", "extra_info": case.info(),
                           "stats": {"median": t, "iqr": t / 10, "mean": t, "min": t,
                                     "rounds": 5}})
    skipped = [{**sweep.Case(m, (784, w, 10), 32, "float64", 2).info(), "predicted_seconds": p}
               for m, w, p in skipped]
    data = {"machine_info": {"label": label, "node": "host", "calibration": CALIBRATION,
                             "cpu_model": "Test CPU", "cores": 2},
            "datetime": "2026-11-22T20:00",
            "benchmarks": benchmarks,
            "gradbench": {"schema_version": schema, "profile": "quick", "budget_seconds": 45.0,
                          "threads": 2, "skipped": skipped}}
    path.write_text(json.dumps(data))
    return path


def power(method, k, c, widths, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for w in widths:
        n = sweep.Case(method, (784, w, 10), 32, "float64", 2).n_params
        out.append((method, w, c * n**k * float(np.exp(noise * rng.standard_normal()))))
    return out


WIDTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
