"""Training records: what `gradbench train` saves, and reading them back, checked.

A training record is one JSON file beside the benchmark results (``results/`` by default),
``train-LABEL-METHOD-DATE.json``, written atomically (:func:`gradbench.results.write`) after
every epoch, so Ctrl-C keeps the epochs that finished. Its top level::

    format          "gradbench-train" (what tells it from a benchmark result file)
    schema_version  1
    status          running | complete | interrupted | diverged | failed  (note: why);
                    read back as "abandoned" when "running" and its writer is gone
    writer          host and pid of the process that wrote it
    label, datetime, gradbench_version, code (the code measured), machine (machine.describe,
                    with the load average when training started: others' work distorts times),
    command         the gradbench train command that reproduces the run (or null)
    data            name, source, scaling, inputs, classes, n_train, n_test
    network         sizes, activation, loss, output_activation, dtype, init, scale, n_params
    method          name, provider, kind, scheme, strategy
    training        optimizer, lr, momentum (null for sgd), batch, seed, threads,
                    steps_per_epoch, planned_steps, planned_epochs, compile_seconds
    prediction      null, or seconds, per_step, basis (numerical methods)
    epochs          one object per evaluation (epoch 0 before the first step): epoch, steps,
                    epoch_steps, loss, train_accuracy, test_loss, test_accuracy,
                    elapsed_seconds, train_seconds, and seconds per gradient call and per
                    whole step in that epoch (gradient_mean/median, step_mean/median)
    timing          over every step so far: gradient and step, each count, mean, median,
                    min, max (seconds)

Losses are null where they were not finite (a diverged run). Records are untrusted input when
read: every field used is checked for presence, type and range, and a bad one is refused with
one line naming the file and the field (see :func:`load`).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .. import __version__, costmodel
from .document import gather, is_training, parse, result_files
from .document import write as write_atomically
from .fields import shown_status, writer
from .schema import DTYPES, TRAINING_FORMAT, TRAINING_KEY, Fields, check_version, short

SCHEMA_VERSION = 1
READABLE = (1,)
STATUSES = ("running", "complete", "interrupted", "diverged", "failed")


# ----------------------------------------------------------------------------- writing


def _finite(v):
    return v if v is None or math.isfinite(v) else None


@dataclass(frozen=True)
class Provenance:
    """Where a training run comes from: what every record of the run repeats, save after save.

    Parameters
    ----------
    label : str
        The machine label the run was given.
    machine : dict
        :func:`gradbench.machine.describe`, with the load average when training started.
    code : dict
        The code measured (:func:`gradbench.machine.code_info`).
    prediction : gradbench.train.Prediction, optional
        The time predicted before the run (numerical methods), or None.
    started : str, optional
        When the run started (ISO 8601); None: the time the record is made.
    command : str, optional
        The gradbench train command line that reproduces the run, when there is one.
    """

    label: str
    machine: dict
    code: dict
    prediction: object = None
    started: str | None = None
    command: str | None = None


def document(history, net, data, provenance: Provenance, *, status: str,
             note: str | None = None) -> dict:
    """The training record of a run as a dict.

    Parameters
    ----------
    history : gradbench.train.History
        What the run did so far.
    net : gradbench.MLP
        The network it trains.
    data : gradbench.datasets.Dataset
        What it trains on.
    provenance : Provenance
        Where the run comes from: the same in every record of the run.
    status : str
        One of :data:`STATUSES`.
    note : str, optional
        Why, for a status that needs saying (diverged, interrupted, failed).
    """
    prediction = provenance.prediction
    p = history.plan
    m = p.method
    epochs = []
    for e in history.epochs:
        d = asdict(e)
        for k in ("loss", "test_loss"):
            d[k] = _finite(d[k])
        epochs.append(d)
    return {
        "format": TRAINING_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "note": note,
        "label": provenance.label,
        "datetime": (provenance.started
                     or datetime.datetime.now().isoformat(timespec="seconds")),
        "gradbench_version": __version__,
        "code": provenance.code,
        "command": provenance.command,
        "machine": provenance.machine,
        "data": data.describe(),
        "network": {"sizes": list(net.sizes), "activation": net.activation, "loss": net.loss,
                    "output_activation": net.output_activation, "dtype": net.dtype.name,
                    "init": net.init, "scale": net.scale, "seed": net.seed,
                    "n_params": net.num_params},
        "method": {"name": m.name, "provider": m.provider, "kind": m.kind,
                   "scheme": m.scheme, "strategy": m.strategy},
        "training": {"optimizer": p.optimizer, "lr": p.lr, "momentum": p.momentum,
                     "batch": p.batch, "seed": p.seed, "threads": p.threads,
                     "steps_per_epoch": p.steps_per_epoch, "planned_steps": p.total_steps,
                     "planned_epochs": p.epochs, "compile_seconds": history.compile_seconds},
        "prediction": None if prediction is None else {
            "seconds": prediction.seconds, "per_step": prediction.per_step,
            "basis": prediction.basis},
        "epochs": epochs,
        "timing": history.timing(),
        "writer": writer(),  # a record still "running" whose writer is gone: abandoned
    }


def write(path, doc: dict) -> Path:
    """Write a training record atomically (a temporary file renamed over ``path``)."""
    return write_atomically(path, doc)


# ----------------------------------------------------------------------------- reading


class _Fields(Fields):
    """results' field checks, with the fix-it advice of a training record."""

    def fail(self, where: str, what: str):
        raise ValueError(f"{self.path}: field {where} {what}; the file is damaged or not "
                         "from gradbench train: re-run the training to get a good one")

    def fraction(self, d, key, where):
        v = self.number(d, key, where)
        if v > 1:
            self.fail(f"{where}.{key}", f"must lie in [0, 1], got {v!r}")
        return v


def peek(path) -> dict | None:
    """The parsed JSON of ``path`` when it is a training record (any schema), else None.
    Unreadable files give None too: the benchmark reader reports them."""
    try:
        data = parse(path)
    except ValueError:
        return None
    return data if is_training(data) else None


def split(paths) -> tuple[list, list[tuple[Path, dict]]]:
    """The files named (or in the folders named), each parsed once: (benchmark result
    documents, [(training record, its parsed JSON)]); see
    :func:`gradbench.results.document.gather`."""
    return gather(paths)


#: Columns of the runs frame: one row per training record.
RUN_COLUMNS = ["file", "label", "datetime", "status", "data", "sizes", "n_params",
               "activation", "loss_name", "dtype", "method", "provider", "kind", "scheme",
               "strategy", "optimizer", "lr", "momentum", "batch", "seed", "threads",
               "planned_steps", "steps", "epochs", "final_loss", "final_train_accuracy",
               "final_test_accuracy", "train_seconds", "gradient_median", "gradient_mean",
               "step_median", "step_mean", "predicted_seconds", "cpu_model", "command"]
#: Columns of the epochs frame: one row per evaluation of every record.
EPOCH_COLUMNS = ["file", "label", "data", "sizes", "activation", "dtype", "batch", "threads",
                 "method",
                 "optimizer", "epoch", "steps", "epoch_steps", "loss", "train_accuracy",
                 "test_loss", "test_accuracy", "elapsed_seconds", "train_seconds",
                 "gradient_median", "step_median"]


@dataclass
class TrainingSet:
    """Training records as tidy frames."""

    runs: pd.DataFrame
    epochs: pd.DataFrame


def _check_top(path, data) -> None:
    check_version(path, data.get("schema_version"), READABLE, what="a training record",
                  rerun="the training")


def _parse(path: Path, data: dict, runs: list, epochs: list) -> None:
    f = _Fields(path)
    _check_top(path, data)
    who = f.obj(data, "writer", "", optional=True)
    status = shown_status(f.choice(data, "status", "", STATUSES),
                          f.text(who, "host", "writer", optional=True, max_len=255),
                          f.integer(who, "pid", "writer", lo=1, optional=True))
    label = f.text(data, "label", "", max_len=64)
    when = f.text(data, "datetime", "", optional=True) or ""
    machine = f.obj(data, "machine", "", optional=True)
    d = f.obj(data, "data", "")
    net = f.obj(data, "network", "")
    m = f.obj(data, "method", "")
    t = f.obj(data, "training", "")
    sizes = f.get(net, "sizes", "network", (list,))
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                             for s in sizes):
        f.fail("network.sizes", f"must list two or more whole numbers >= 1, got "
               f"{short(sizes)}")
    optimizer = f.choice(t, "optimizer", "training", ("sgd", "momentum"))
    momentum = f.number(t, "momentum", "training", optional=True)
    if optimizer == "momentum" and (momentum is None or momentum >= 1):
        f.fail("training.momentum", "must be a number in [0, 1) for the momentum optimizer")
    pred = f.obj(data, "prediction", "", optional=True)
    base = {"file": str(path), "label": label, "data": f.text(d, "name", "data"),
            "sizes": "-".join(map(str, sizes)),
            "activation": f.text(net, "activation", "network"),
            "dtype": f.choice(net, "dtype", "network", DTYPES),
            "batch": f.integer(t, "batch", "training", lo=1),
            "threads": f.integer(t, "threads", "training", lo=1),
            "method": f.text(m, "name", "method"), "optimizer": optimizer}
    rows = []
    for i, e in enumerate(f.get(data, "epochs", "", (list,))):
        w = f"epochs[{i}]"
        if not isinstance(e, dict):
            f.fail(w, "must be an object")
        rows.append({**base, "epoch": f.integer(e, "epoch", w),
                     "steps": f.integer(e, "steps", w),
                     "epoch_steps": f.integer(e, "epoch_steps", w),
                     "loss": f.number(e, "loss", w, optional=True, default=math.nan),
                     "train_accuracy": f.fraction(e, "train_accuracy", w),
                     "test_loss": f.number(e, "test_loss", w, optional=True,
                                           default=math.nan),
                     "test_accuracy": f.fraction(e, "test_accuracy", w),
                     "elapsed_seconds": f.number(e, "elapsed_seconds", w),
                     "train_seconds": f.number(e, "train_seconds", w),
                     "gradient_median": f.number(e, "gradient_median", w, positive=True,
                                                 optional=True, default=math.nan),
                     "step_median": f.number(e, "step_median", w, positive=True,
                                             optional=True, default=math.nan)})
    if not rows:
        f.fail("epochs", "is empty")
    for a, b in zip(rows, rows[1:], strict=False):
        if b["steps"] < a["steps"] or b["train_seconds"] < a["train_seconds"]:
            f.fail("epochs", "must be in training order (steps and train_seconds growing)")
    timing = f.obj(data, "timing", "")
    stats = {}
    for part in ("gradient", "step"):
        s = f.obj(timing, part, "timing", optional=True)
        for k in ("median", "mean"):
            stats[f"{part}_{k}"] = (f.number(s, k, f"timing.{part}", positive=True)
                                    if s else math.nan)
    last = rows[-1]
    runs.append({**{k: base[k] for k in ("file", "label", "data", "sizes", "activation",
                                         "dtype", "batch", "method", "optimizer")},
                 "datetime": when, "status": status, "n_params": costmodel.num_params(sizes),
                 "loss_name": f.text(net, "loss", "network"),
                 "provider": f.text(m, "provider", "method"),
                 "kind": f.choice(m, "kind", "method", ("analytic", "numerical")),
                 "scheme": f.text(m, "scheme", "method", optional=True),
                 "strategy": f.text(m, "strategy", "method", optional=True),
                 "lr": f.number(t, "lr", "training", positive=True), "momentum": momentum,
                 "seed": f.integer(t, "seed", "training"),
                 "threads": f.integer(t, "threads", "training", lo=1),
                 "planned_steps": f.integer(t, "planned_steps", "training", lo=1),
                 "steps": last["steps"], "epochs": last["epoch"],
                 "final_loss": last["loss"], "final_train_accuracy": last["train_accuracy"],
                 "final_test_accuracy": last["test_accuracy"],
                 "train_seconds": last["train_seconds"], **stats,
                 "predicted_seconds": f.number(pred, "seconds", "prediction", optional=True)
                 if pred else None,
                 "cpu_model": f.text(machine, "cpu_model", "machine", optional=True),
                 "command": f.text(data, "command", "", optional=True, max_len=2000)})
    epochs += rows


def load(items) -> TrainingSet:
    """Training records, checked, as frames.

    Parameters
    ----------
    items : paths (files or folders), or the ``(path, parsed JSON)`` pairs of :func:`split`

    Raises
    ------
    ValueError
        One line naming the file and the field, for a file that is not a training record or
        holds a field of the wrong type or range.
    """
    if isinstance(items, str | Path):
        items = [items]
    pairs = []
    for it in items:
        if isinstance(it, tuple):
            pairs.append(it)
            continue
        for path in result_files(it):
            data = peek(path)
            if data is None:
                raise ValueError(f"{path}: not a training record (gradbench train's JSON)")
            pairs.append((path, data))
    runs, epochs = [], []
    for path, data in pairs:
        _parse(Path(path), data, runs, epochs)
    return TrainingSet(pd.DataFrame(runs, columns=RUN_COLUMNS),
                       pd.DataFrame(epochs, columns=EPOCH_COLUMNS))


# ----------------------------------------------------------------------------- summaries


#: A network trained by several methods on one machine at one thread count (the figure and
#: the ratios compare methods within one such group): defined beside the benchmark's keys.
NETWORK_KEY = TRAINING_KEY


def step_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per training record: median seconds per gradient call and per step, and their ratio
    to backprop's on the same machine, data, network and batch (NaN when no backprop run
    shares them; the median over backprop runs when several do)."""
    out = runs.copy()
    bp = (runs[runs["method"] == "backprop"].groupby(NETWORK_KEY)[
        ["gradient_median", "step_median"]].median())
    ratios_g, ratios_s = [], []
    for r in runs.itertuples():
        key = tuple(getattr(r, k) for k in NETWORK_KEY)
        if key in bp.index:
            ratios_g.append(r.gradient_median / bp.loc[key, "gradient_median"])
            ratios_s.append(r.step_median / bp.loc[key, "step_median"])
        else:
            ratios_g.append(math.nan)
            ratios_s.append(math.nan)
    out["gradient_vs_backprop"] = ratios_g
    out["step_vs_backprop"] = ratios_s
    return out
