"""The checks of a result document's fields: the walk over every field that both the checked
loader (:meth:`gradbench.results.document.Document.load`) and the frame builder
(:mod:`gradbench.results.frames`) use.

Files are untrusted input: every field used is checked for presence, type and range, and a
bad one is refused with one line naming the file and the field. Schema 1 files (gradbench
0.1.0 before the method registry) are read too: their methods are looked up in the registry;
they carry no accuracy figures. Files before schema 3 ran every case on the CPU. Files
before schema 4 keep every round of a case or none (``stats.data``); from schema 4 on, a case
of many rounds keeps their quantiles instead (``stats.quantiles``, :mod:`.kept`).
"""

from __future__ import annotations

import math
import os
import socket

from .. import costmodel, methods
from .kept import ALL, QUANTILES
from .schema import (
    CASE_KEY,
    DEFAULT_DEVICE,
    DTYPES,
    NOT_TIMED,
    RATES,
    STATUSES,
    Fields,
    rate_column,
    short,
)


def _case(f: Fields, info: dict, where: str, version: int) -> dict:
    """The parameters of one case, checked; provider and kind from the registry for
    schema 1 files."""
    method = f.text(info, "method", where)
    if version == 1 or "kind" not in info:
        if method not in methods.REGISTRY:
            f.fail(f"{where}.method", f"names no method this version knows ({short(method)})")
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
        f.fail(f"{where}.sizes", f"must list two or more whole numbers >= 1, got {short(sizes)}")
    return {
        "method": method, "provider": provider, "kind": kind, "scheme": scheme,
        "strategy": strategy, "sizes": "-".join(map(str, sizes)), "width": sizes[1],
        "depth": len(sizes) - 1, "n_params": costmodel.num_params(sizes),
        "batch": f.integer(info, "batch", where, lo=1),
        "dtype": f.choice(info, "dtype", where, DTYPES),
        "threads": f.integer(info, "threads", where, lo=1),
        "device": (f.text(info, "device", where, max_len=64) if version >= 3
                   else DEFAULT_DEVICE),
        # the BLAS threads in effect while the case was timed (schema 3)
        "blas_threads": f.integer(info, "blas_threads", where, lo=1, optional=True),
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
        # a plugin's method: its distribution (or --plugin file) and version
        "plugin": f.text(info, "plugin", where, optional=True, max_len=500),
        "plugin_version": f.text(info, "plugin_version", where, optional=True),
        # the classic 784-50-10 network's case, beside the sweep's ladder of networks
        "classic": f.choice(info, "network", where, ("ladder", "classic"),
                            optional=True) == "classic",
    }


def _timing(f: Fields, st: dict, where: str, version: int) -> tuple[dict, list[float], str]:
    """Timing statistics of a case, checked (times positive and finite), its rounds kept and
    how (:mod:`gradbench.results.kept`): every round, or from schema 4 on the quantiles of
    them (ascending, at most one per round timed)."""
    out = {k: f.number(st, k, where, positive=True) for k in ("median", "mean", "min")}
    out["max"] = f.number(st, "max", where, positive=True, optional=True)
    out["iqr"] = f.number(st, "iqr", where, optional=True)
    out["stddev"] = f.number(st, "stddev", where, optional=True)
    out["rounds"] = f.integer(st, "rounds", where, lo=1)
    if not out["min"] <= out["median"] <= (out["max"] or math.inf):
        f.fail(f"{where}.median", "must lie between min and max")
    data = _seconds(f, st, "data", where)
    if data and len(data) != out["rounds"]:
        f.fail(f"{where}.data", f"holds {len(data)} rounds, stats.rounds says {out['rounds']}")
    quantiles = _seconds(f, st, "quantiles", where) if version >= 4 else []
    if not quantiles:
        return out, data, ALL
    if data:
        f.fail(f"{where}.quantiles", "must not stand beside stats.data (a case keeps every "
                                     "round or their quantiles)")
    if not 2 <= len(quantiles) <= out["rounds"]:
        f.fail(f"{where}.quantiles", f"holds {len(quantiles)} values, must hold 2 to "
                                     f"stats.rounds ({out['rounds']})")
    if any(b < a for a, b in zip(quantiles, quantiles[1:], strict=False)):
        f.fail(f"{where}.quantiles", "must be in ascending order")
    return out, quantiles, QUANTILES


def _seconds(f: Fields, st: dict, key: str, where: str) -> list[float]:
    """A list of positive finite seconds (``stats.data``, ``stats.quantiles``), checked."""
    values = f.get(st, key, where, (list,), optional=True, default=[])
    for i, t in enumerate(values):
        if isinstance(t, bool) or not isinstance(t, int | float) or not (
                math.isfinite(t) and t > 0):
            f.fail(f"{where}.{key}[{i}]", f"must be a positive finite number, got {short(t)}")
    return [float(t) for t in values]


def _run(f: Fields, data: dict) -> dict:
    """The run and machine of one file, checked."""
    mi = f.obj(data, "machine_info", "")
    gb = data["gradbench"]
    version = gb["schema_version"]
    cal = f.obj(mi, "calibration", "machine_info", optional=True)
    ci = f.obj(data, "commit_info", "", optional=True) if version == 1 else {}
    code = f.obj(gb, "code", "gradbench", optional=True)
    writer = f.obj(gb, "writer", "gradbench", optional=True)  # who created the file
    host = f.text(writer, "host", "gradbench.writer", optional=True, max_len=255)
    pid = f.integer(writer, "pid", "gradbench.writer", lo=1, optional=True)
    label = (f.text(mi, "label", "machine_info", optional=True)
             or f.text(mi, "node", "machine_info", optional=True) or "unknown")
    blas = f.get(mi, "blas", "machine_info", (list,), optional=True, default=[])
    blas = "; ".join(f"{b.get('internal_api', '?')} {b.get('version', '?')} "
                     f"({b.get('num_threads', '?')} threads)" for b in blas
                     if isinstance(b, dict))
    commit = f.text(code, "commit", "gradbench.code", optional=True)
    where_gpu = "gradbench.devices.cuda"
    gpu = f.obj(f.obj(gb, "devices", "gradbench", optional=True), "cuda", "gradbench.devices",
                optional=True)
    gpu_cal = f.obj(gpu, "calibration", where_gpu, optional=True)
    if version == 1:  # pytest-benchmark's commit_info of the current folder; often useless
        cid = f.text(ci, "id", "commit_info", optional=True)
        commit = None if cid in (None, "unversioned") else cid
    return {
        "label": label,
        "run": f.text(data, "datetime", "", optional=True) or "",
        "status": shown_status(f.choice(gb, "status", "gradbench", STATUSES, optional=True)
                               or "complete", host, pid),
        "signal": f.text(gb, "signal", "gradbench", optional=True, max_len=32),
        "writer_host": host,
        "writer_pid": pid,
        "schema": version,
        "gradbench_version": f.text(gb, "gradbench_version", "gradbench", optional=True),
        "commit": commit,
        "commit_time": f.text(code, "commit_time", "gradbench.code", optional=True),
        "dirty": f.get(code, "dirty", "gradbench.code", (bool,), optional=True),
        "git_error": f.text(code, "git_error", "gradbench.code", optional=True, max_len=500),
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
           for k in RATES},
        # the GPU that a part of the run timed, and its rates measured in the same run
        "gpu": f.text(f.obj(gpu, "description", where_gpu, optional=True), "name",
                      f"{where_gpu}.description", optional=True),
        **{rate_column("cuda", k): f.number(gpu_cal, k, f"{where_gpu}.calibration",
                                            positive=True, optional=True) for k in RATES},
    }


def shown_status(status: str, host: str | None, pid: int | None) -> str:
    """A run's (or training's) status as readers show it: the file's, or "abandoned" when the
    file says "running" but its writer, on this host, is no longer alive (only a live run is
    running)."""
    if status == "running" and host == socket.gethostname() and pid and not alive(pid):
        return "abandoned"
    return status


def writer() -> dict:
    """This process as a file's writer: host name and process id."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (True where the system cannot say)."""
    if os.name != "posix":  # os.kill would end it there, not probe it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: alive
        return True
    return True


def walk(path, data: dict, runs: list, cases: list, rounds: list, curve: list,
         checks: list) -> None:
    """Every field of one result document (parsed, checked at the top level) checked, its
    rows appended to the lists given: the run, its cases (timed and not), their rounds, the
    step curve and the gradient check (ValueError naming the file and field otherwise)."""
    f = Fields(path)
    run = _run(f, data)
    gb = data["gradbench"]
    version = gb["schema_version"]
    base = {"file": str(path), "label": run["label"], "run": run["run"],
            "profile": run["profile"], "commit": run["commit"]}
    n_cases = 0
    for i, b in enumerate(data["benchmarks"]):
        where = f"benchmarks[{i}]"
        if not isinstance(b, dict):
            f.fail(where, f"must be an object, got {short(b)}")
        info = f.obj(b, "extra_info", where)
        if info.get("gradbench_schema") is None:
            continue  # a benchmark of someone else's in the same file
        case = _case(f, info, f"{where}.extra_info", version)
        timing, data_rounds, how = _timing(f, f.obj(b, "stats", where), f"{where}.stats",
                                           version)
        cases.append({**base, **case, **timing, "status": "ok", "reason": None})
        for r, t in enumerate(data_rounds):
            rounds.append({"file": str(path), "label": run["label"],
                           **{k: case[k] for k in CASE_KEY}, "round": r, "seconds": t,
                           "kept": how, "rounds": timing["rounds"]})
        n_cases += 1
    skipped = f.get(gb, "skipped", "gradbench", (list,), optional=True, default=[])
    for i, info in enumerate(skipped):
        where = f"gradbench.skipped[{i}]"
        if not isinstance(info, dict):
            f.fail(where, f"must be an object, got {short(info)}")
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


def _parse_accuracy(f: Fields, acc: dict, base: dict, curve: list, checks: list) -> None:
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


def check(doc) -> None:
    """Every field of a document checked (ValueError naming the file and field otherwise);
    ``doc`` is a :class:`~gradbench.results.document.Document` (its ``path`` and ``data``)."""
    walk(doc.path, doc.data, [], [], [], [], [])
