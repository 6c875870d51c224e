"""The result format's definitions: versions, statuses, the case and series keys, the columns
of the tidy frames, and typed access to an untrusted file's fields.

A case's identity is :data:`CASE_KEY`; the cases of one method on one machine that a curve
against N joins are a series, :data:`SERIES_KEY`. Every groupby in fits, figures, the report,
compare and history uses these two (through :func:`series`): nothing else decides which cases
belong together, so two thread counts, two devices or two machines never merge.
"""

from __future__ import annotations

import json
import math

#: Version of what gradbench adds to pytest-benchmark's JSON. 2: the method registry's
#: provider and kind per case, the code measured, the run's status, raw rounds, accuracy.
#: 3: each case's device and the BLAS threads in effect while it was timed.
#: 4: a case of more than 201 rounds keeps the quantiles of its rounds (``stats.quantiles``)
#: instead of every round (``stats.data``): gradbench.results.kept.
SCHEMA_VERSION = 4
#: Versions this code reads.
READABLE = (1, 2, 3, 4)

DTYPES = ("float32", "float64")
STATUSES = ("running", "complete", "interrupted", "failed")
#: A run's status as readers show it (the runs frame): a file's, or "abandoned" for a file
#: still "running" whose writer is gone (same host, its process no longer alive).
RUN_STATUSES = (*STATUSES, "abandoned")
#: Why a case was not timed (``gradbench.skipped[].why``), and its status in the cases frame:
#: the budget ("skipped", with its predicted time), not installed here ("unavailable", with
#: the command that installs it), or a peer whose gradient failed the check ("rejected").
NOT_TIMED = {"budget": "skipped", "unavailable": "unavailable", "rejected": "rejected"}
#: Where a case ran when its file does not say (schemas 1 and 2: every case ran on the CPU).
DEFAULT_DEVICE = "cpu"

#: A case's identity: what was timed (never a test name).
CASE_KEY = ["method", "sizes", "batch", "dtype", "threads", "device"]
#: The machine a case was timed on (a run's ``--label``).
MACHINE_KEY = ["label"]
#: One case on one machine: a row of the report's tables; repeated runs of it are repeats.
CASE_ON_MACHINE = [*MACHINE_KEY, *CASE_KEY]
#: A series: one method's cases on one machine that a curve against N joins (a fit, a line
#: of a figure, a row of the exponent table). Every case parameter but the sizes.
SERIES_KEY = [*MACHINE_KEY, *(k for k in CASE_KEY if k != "sizes")]
#: A method as comparisons judge it across two sides (machines or commits): its cases pooled
#: over sizes and batches, never over dtypes, thread counts or devices.
METHOD_KEY = ["method", "dtype", "threads", "device"]
#: A group whose methods are compared with each other at the same N (ratio to backprop or
#: to the loss): a series without its method.
PANEL_KEY = [k for k in SERIES_KEY if k != "method"]

#: A network trained by several methods, whose records one figure and one ratio table
#: compare: the machine, the data, the network, the batch and the threads.
TRAINING_KEY = [*MACHINE_KEY, "data", "sizes", "activation", "dtype", "batch", "threads"]

#: The ``format`` of the training records `gradbench train` writes beside the result files
#: (gradbench.results.training reads them): benchmark result sets leave them out.
TRAINING_FORMAT = "gradbench-train"


class TrainingRecord(ValueError):
    """A file that is a training record, not a benchmark result."""


def check_version(path, version, readable=READABLE, *, what: str = "a benchmark result file",
                  rerun: str = "the benchmarks") -> int:
    """``version``, the schema a file says it was written with, when this code reads it
    (``readable``); otherwise ValueError in one line naming the file, the schema found and
    the ones read, and how to get a file this version reads (re-run ``rerun``). The one
    refusal of a result file's or training record's version."""
    if isinstance(version, bool) or version not in readable:
        found = "no schema version" if version is None else f"schema {short(version)}"
        s = "s" if len(readable) > 1 else ""
        raise ValueError(f"{path}: {what} written with {found}; this version of gradbench "
                         f"reads schema{s} {', '.join(map(str, readable))}: re-run {rerun} "
                         "with this version of gradbench to get one it reads")
    return version


def series(df, key=SERIES_KEY, **kw):
    """``df`` grouped by ``key`` (default: one group per series), sorted; extra keyword
    arguments go to ``DataFrame.groupby``."""
    return df.groupby(list(key), sort=True, dropna=False, **kw)


#: Columns of the runs frame, one row per result file.
RUN_COLUMNS = ["file", "label", "run", "status", "signal", "writer_host", "writer_pid", "schema",
               "gradbench_version", "commit", "commit_time", "dirty", "git_error", "profile",
               "budget_seconds", "spent_seconds", "wall_seconds", "threads", "cpu_model", "cores",
               "python", "numba", "llvmlite", "numpy", "threading_layer", "svml", "blas",
               "matmul_gflops_float64", "matmul_gflops_float32", "memory_gbs", "gpu",
               "cuda_matmul_gflops_float64", "cuda_matmul_gflops_float32", "cuda_memory_gbs",
               "n_cases", "n_skipped"]
#: The rates a machine's calibration measures, per device: the CPU's under these names, a
#: GPU's (``gradbench.devices.cuda.calibration``) as ``cuda_<name>``.
RATES = ("matmul_gflops_float64", "matmul_gflops_float32", "memory_gbs")


def rate_column(device: str, rate: str) -> str:
    """The runs frame's column of a device's calibrated rate."""
    return rate if device == DEFAULT_DEVICE else f"{device}_{rate}"
#: Columns of the cases frame, one row per case and run (timed or skipped).
CASE_COLUMNS = ["file", "label", "run", "profile", "commit", "method", "provider", "kind",
                "scheme", "strategy", "sizes", "width", "depth", "n_params", "batch", "dtype",
                "threads", "device", "blas_threads", "predicted_flops", "predicted_bytes",
                "loss_evals", "compile_seconds", "predicted_seconds", "mode", "status",
                "reason", "median", "iqr", "mean", "min", "max", "stddev", "rounds", "gflops",
                "peak_gflops", "library", "thread_control", "check_max_abs_err",
                "check_ratio", "pid", "plugin", "plugin_version", "classic"]
#: Columns of the rounds frame, one row per round kept (gradbench.results.kept): "round" is
#: the round's place in time order where every round is kept ("kept" is "all"), its rank
#: among the case's kept quantiles otherwise ("quantiles"); "rounds" the case's number of
#: rounds timed, which statistics of their count (a standard error) use.
ROUND_COLUMNS = ["file", "label", *CASE_KEY, "round", "seconds", "kept", "rounds"]
STEP_COLUMNS = ["file", "label", "scheme", "dtype", "h", "error", "default_h"]
CHECK_COLUMNS = ["file", "label", "network", "tensor", "shape", "max_rel_err",
                 "median_rel_err", "max_abs_err", "n_over", "passed", "h", "threshold", "loss",
                 "all_passed", "strategy"]


class Fields:
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
            self.fail(f"{where}.{key}", f"must be {kind_names(kinds)}, got {v!r}")
        if not isinstance(v, kinds):
            self.fail(f"{where}.{key}", f"must be {kind_names(kinds)}, got {short(v)}")
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
            self.fail(f"{where}.{key}", f"must be one of {', '.join(choices)}, got {short(v)}")
        return v


def kind_names(kinds) -> str:
    if float in kinds:
        return "a number"
    names = {dict: "an object", list: "a list", str: "a string", int: "a whole number",
             bool: "true or false"}
    return " or ".join(names[k] for k in kinds)


def short(v) -> str:
    text = json.dumps(v) if not isinstance(v, float) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


