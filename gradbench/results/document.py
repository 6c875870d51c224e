"""The result document: the one writer of benchmark result files, and their reader.

A result file is plain pytest-benchmark JSON (``pytest-benchmark compare`` reads it) with a
``gradbench`` section. Each case's ``extra_info`` says what was timed (method, provider, kind,
scheme, strategy, sizes, batch, dtype, threads, device, predicted work); ``stats`` holds the
timing from every round, ``stats.data`` the rounds themselves, or for a case of many rounds
``stats.quantiles`` (:mod:`gradbench.results.kept`). The section holds the run: schema
version, gradbench version and the code measured (commit id, time and dirty flag of the
gradbench checkout, whatever the current folder was), profile and budget, the cases that were
not timed (the budget's skips, peers not installed, peers rejected), the run's status, and the
accuracy figures the run computed (the error-against-step curve and the classic network's gradient
check), so that a report shows each machine's own numbers.

Everything that writes a result file goes through :class:`Document`: the pytest plugin
creates it and adds cases as they complete, a later part of the run (a peer provider's
process) loads it and adds its own, the driver records the peers not installed and the run's
final status. Files are written atomically (a temporary file beside the destination, then a
rename), so a reader never sees half a file. Every read goes through :meth:`Document.load`,
which checks every field (:mod:`gradbench.results.fields`).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import tempfile
from pathlib import Path

import pandas as pd

from .. import costmodel
from .fields import check
from .kept import ROUND_DIGITS, keep  # noqa: F401 (ROUND_DIGITS: its home before schema 4)
from .schema import (
    DEFAULT_DEVICE,
    NOT_TIMED,
    READABLE,
    SCHEMA_VERSION,
    STATUSES,
    TRAINING_FORMAT,
    TrainingRecord,
    check_version,
)


def write(path, document: dict) -> Path:
    """Write a result document to ``path`` atomically (:func:`write_text`); returns the path.
    The JSON is strict (no NaN or Infinity)."""
    text = json.dumps(document, allow_nan=False, separators=(",", ":"), default=str)
    return write_text(path, text)


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: to a hidden temporary file in the same folder,
    renamed over ``path``, so that an interruption or a full disk leaves the previous file or
    the new one, never a mixture (and no temporary file); returns the path."""
    path = Path(path)
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


#: Largest file read (bytes): a default run's file is a few MB, a full one's tens.
MAX_FILE_BYTES = 256 * 2**20
#: Deepest nesting of arrays and objects accepted: result files and training records need
#: about six levels; deeper is a hostile or broken file, refused before anything walks it.
MAX_DEPTH = 64


class _DuplicateKey(ValueError):
    pass


_TOO_DEEP = object()


def _no_duplicates(pairs: list) -> dict:
    """A JSON object whose keys are all different (json's default keeps the last one)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return obj


def _depth(data) -> int:
    """How deeply arrays and objects nest in ``data`` (a scalar: 0), without recursion;
    stops counting past :data:`MAX_DEPTH`."""
    deepest, level = 0, [(data, 1)]
    while level:
        x, d = level.pop()
        items = x.values() if isinstance(x, dict) else x if isinstance(x, list) else None
        if items is None:
            continue
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            break
        level += [(v, d + 1) for v in items if isinstance(v, dict | list)]
    return deepest


def parse(path):
    """The JSON of ``path``, parsed (ValueError in one line when it is not JSON or cannot be
    read, is larger than :data:`MAX_FILE_BYTES`, nests deeper than :data:`MAX_DEPTH` or
    repeats a key within an object). The one place a result file or training record is
    parsed: files are untrusted input."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"{path}: {size:,} bytes, larger than any result file "
                             f"({MAX_FILE_BYTES // 2**20} MiB at most); not read")
        data = json.loads(Path(path).read_text(encoding="utf-8"),
                          object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); "
                         "the file is corrupt or was cut short") from None
    except _DuplicateKey as e:
        raise ValueError(f"{path}: the key {ascii(str(e.args[0])[:40])} appears twice in one "
                         "object; the file was edited or written by something else") from None
    except RecursionError:  # nested too deeply for the parser itself
        data = _TOO_DEEP
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot be read ({e})") from None
    if data is _TOO_DEEP or _depth(data) > MAX_DEPTH:
        raise ValueError(f"{path}: arrays and objects nested more than {MAX_DEPTH} deep; "
                         "not a result file")
    return data


def is_training(data) -> bool:
    """Whether parsed JSON is a training record (gradbench train's), of any schema."""
    return isinstance(data, dict) and data.get("format") == TRAINING_FORMAT


def check_top(path, data) -> dict:
    """Parsed JSON checked at the top level as a result document: pytest-benchmark's shape,
    our section and a schema version this code reads. Fields are checked by
    :func:`gradbench.results.fields.check`."""
    if is_training(data):
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
    check_version(path, section.get("schema_version"), READABLE)
    return data


def read(path) -> dict:
    """One result file, parsed and checked at the top level (:func:`check_top`)."""
    return check_top(path, parse(path))


def gather(paths, recursive: bool = False) -> tuple[list[Document], list[tuple[Path, dict]]]:
    """The files named (or in the folders named), each parsed once: (benchmark result
    documents, checked at the top level; [(training record, its parsed JSON)]). Documents
    among ``paths`` (already loaded) are passed through, not read again."""
    if isinstance(paths, str | Path | Document):
        paths = [paths]
    docs = [p for p in paths if isinstance(p, Document)]
    paths = [p for p in paths if not isinstance(p, Document)]
    records = []
    for path in result_files(paths, recursive) if paths else []:
        data = parse(path)
        if is_training(data):
            records.append((path, data))
        else:
            docs.append(Document(check_top(path, data), path))
    return docs, records


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


def case_info(method, sizes, batch: int, dtype: str, threads: int, cost, *,
              classic: bool, device: str = DEFAULT_DEVICE) -> dict:
    """What a result records about a case (its ``extra_info``): ``method`` is the registry's
    record, ``cost`` the cost model's prediction for the case.

    A method off the CPU is recorded by what it computes and where: the registry's
    ``cuda:backprop`` as method ``backprop``, device ``cuda``; so the report's panels, fits
    and ratios, grouped by the series key, treat a GPU as one more machine."""
    sizes = [int(s) for s in sizes]
    name = method.name
    if device != DEFAULT_DEVICE and name.startswith(f"{device}:"):
        name = name[len(device) + 1:]
    return {
        "gradbench_schema": SCHEMA_VERSION,
        "method": name,
        "provider": method.provider,
        "kind": method.kind,
        "scheme": method.scheme,
        "strategy": method.strategy,
        "sizes": sizes,
        "depth": len(sizes) - 1,
        "width": sizes[1],
        "n_params": costmodel.num_params(sizes),
        "batch": int(batch),
        "dtype": dtype,
        "threads": int(threads),
        "device": device,
        "predicted_flops": cost.flops,
        "predicted_bytes": cost.bytes,
        "loss_evals": cost.loss_evals,
        "network": "classic" if classic else "ladder",
        # a plugin's method: the distribution that provides it (or the file --plugin named)
        # and its version; None for gradbench's own methods and its peers
        "plugin": method.plugin,
        "plugin_version": method.plugin_version,
    }


def timing_record(seconds, info: dict, name: str) -> dict:
    """A timed case from its rounds' seconds (in time order) and its :func:`case_info`, as
    pytest-benchmark records one (for cases timed outside pytest-benchmark: the gate's
    blocks, one round each)."""
    import numpy as np

    data = np.asarray(seconds, dtype=float)
    if data.size == 0 or not np.all(np.isfinite(data) & (data > 0)):
        raise ValueError("a timed case needs rounds of positive finite seconds")
    q1, median, q3 = (float(x) for x in np.percentile(data, [25, 50, 75]))
    stats = {"min": float(data.min()), "max": float(data.max()), "mean": float(data.mean()),
             "stddev": float(data.std(ddof=1)) if data.size > 1 else 0.0,
             "rounds": int(data.size), "median": median, "iqr": q3 - q1, "q1": q1, "q3": q3,
             "iterations": 1, "total": float(data.sum()), "ops": 1.0 / float(data.mean()),
             "data": [float(x) for x in data]}
    return {"name": name, "fullname": name, "group": None, "params": {"case": name},
            "options": {}, "stats": stats, "extra_info": dict(info)}


class Document:
    """One run's result document, as it is built and saved.

    Create it with :meth:`create` (the first part of a run) or :meth:`load` (a later part,
    the driver, a reader); add timed cases with :meth:`add_case`, cases not timed with
    :meth:`add_not_timed`; set the status with :meth:`set_status`; :meth:`save` writes it
    atomically. ``data`` is the JSON object itself, for readers that need a field this class
    has no accessor for.
    """

    def __init__(self, data: dict, path: Path | None = None):
        self.data = data
        self.path = path

    @classmethod
    def create(cls, *, machine_info: dict, code: dict, label: str | None, profile: str,
               budget: float, threads: int, version: str, pytest_benchmark: str) -> Document:
        """A new run's document, status "running", no cases yet; its writer (host name and
        process id) recorded, so that readers tell a live run from an abandoned one."""
        import socket

        commit_info = {"id": code.get("commit"), "time": code.get("commit_time"),
                       "dirty": code.get("dirty"), "project": "gradbench"}
        gb = {"schema_version": SCHEMA_VERSION, "gradbench_version": version, "code": code,
              "status": "running", "label": label, "profile": profile,
              "budget_seconds": float(budget), "spent_seconds": 0.0, "wall_seconds": 0.0,
              "threads": int(threads), "skipped": [],
              "writer": {"host": socket.gethostname(), "pid": os.getpid()}}
        return cls({"machine_info": machine_info, "commit_info": commit_info,
                    "benchmarks": [],
                    "datetime": datetime.datetime.now(datetime.UTC).isoformat(),
                    "version": pytest_benchmark, "gradbench": gb})

    @classmethod
    def load(cls, path) -> Document:
        """A result file, parsed once and checked field by field (ValueError naming the file
        and the field otherwise; :class:`TrainingRecord` for a training record)."""
        doc = cls(read(path), Path(path))
        check(doc)
        return doc

    @property
    def section(self) -> dict:
        return self.data["gradbench"]

    @property
    def status(self) -> str:
        return self.section.get("status", "complete")

    @property
    def spent_seconds(self) -> float:
        return float(self.section.get("spent_seconds") or 0.0)

    @property
    def wall_seconds(self) -> float:
        return float(self.section.get("wall_seconds") or 0.0)

    @property
    def calibration(self) -> dict:
        return self.data["machine_info"].get("calibration") or {}

    @property
    def n_cases(self) -> int:
        return len(self.data["benchmarks"])

    @property
    def not_timed(self) -> list[dict]:
        return self.section.setdefault("skipped", [])

    def add_case(self, record: dict) -> None:
        """A timed case: pytest-benchmark's record of it (``stats.as_dict(include_data=True)``
        with :func:`case_info` in its ``extra_info``); its rounds kept as
        :func:`gradbench.results.kept.keep` says (every round, or for many the quantiles of
        them; :data:`gradbench.results.ROUND_DIGITS` significant figures), its statistics
        those of every round."""
        if "gradbench_schema" not in record.get("extra_info", {}):
            raise ValueError("a case's extra_info must come from results.case_info")
        stats = dict(record["stats"])
        stats.update(keep(stats.pop("data", [])))
        self.data["benchmarks"].append({**record, "stats": stats})

    def add_not_timed(self, info: dict, why: str, reason: str,
                      predicted_seconds: float | None = None) -> None:
        """A case that was not timed, and why: "budget" (its ``predicted_seconds`` did not
        fit), "unavailable" (not installed here: ``reason`` is the command that installs it)
        or "rejected" (a peer whose gradient failed the check)."""
        if why not in NOT_TIMED:
            raise ValueError(f"why must be one of {', '.join(NOT_TIMED)}, got {why!r}")
        entry = {**info, "reason": reason, "why": why}
        if predicted_seconds is not None:
            entry["predicted_seconds"] = float(predicted_seconds)
        entry.setdefault("predicted_seconds", 0.0)
        self.not_timed.append(entry)

    def set_status(self, status: str, *, spent: float | None = None,
                   wall: float | None = None, signal: str | None = None) -> None:
        """The run's status (running, complete, interrupted, failed), and the budget spent,
        wall seconds so far and the signal that interrupted it (``"SIGTERM"``) when given."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        self.section["status"] = status
        if spent is not None:
            self.section["spent_seconds"] = float(spent)
        if wall is not None:
            self.section["wall_seconds"] = float(wall)
        if signal is not None:
            self.section["signal"] = signal

    def set_gate(self, gate: dict) -> None:
        """How ``gradbench ab`` timed this side against the other: the pair's other file,
        the seed, the idle side's CPU while this one was timed, ..."""
        self.section["gate"] = gate

    def set_accuracy(self, accuracy: dict) -> None:
        """The accuracy figures of the run (:func:`accuracy_record`)."""
        self.section["accuracy"] = accuracy

    def primal_times(self) -> dict:
        """(dtype, sizes, batch, device) -> median seconds of gradbench's loss on that device
        (primal): they predict a later part's times."""
        out = {}
        for b in self.data["benchmarks"]:
            info = b["extra_info"]
            if info.get("kind") == "loss" and info.get("provider") == "gradbench":
                key = (info["dtype"], tuple(info["sizes"]), info["batch"],
                       info.get("device", DEFAULT_DEVICE))
                out[key] = b["stats"]["median"]
        return out

    def set_device(self, device: str, record: dict) -> None:
        """What a part that timed ``device`` (a GPU) found there: its description and the
        calibration measured in the same run."""
        self.section.setdefault("devices", {})[device] = record

    @property
    def devices(self) -> dict:
        """device -> its description and calibration (see :meth:`set_device`)."""
        return self.section.get("devices", {})

    def save(self, path=None) -> Path:
        """Write the document atomically to ``path`` (default: where it was loaded from or
        last saved); returns the path."""
        path = Path(path) if path is not None else self.path
        if path is None:
            raise ValueError("the document has no path yet: give one")
        write(path, self.data)
        self.path = path
        return path
