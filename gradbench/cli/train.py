"""``gradbench train``: mini-batch SGD or momentum with any gradient method of the registry."""

from __future__ import annotations

import datetime
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

from .. import config, interrupt
from .common import (
    CLASSIC_ARG,
    EXIT_CRASH,
    EXIT_FINDING,
    EXIT_OK,
    UsageError,
    add_plugin_option,
    add_verb,
    check_label,
    check_threads,
    created_folders,
    default_label,
    int_list,
    shown,
    writable_folder,
)

PROG = "gradbench train"
#: A numerical method predicted to take longer than this runs only with --yes.
YES_SECONDS = 120.0
HIDDEN = 50
#: While training, the record is rewritten after an epoch at most once in this many seconds
#: (and always at the end, on Ctrl-C and on an error): short epochs do not rewrite it
#: thousands of times.
SAVE_EVERY = 10.0


def add_parser(sub) -> None:

    p = add_verb(
        sub, "train", help="train an MLP by SGD or momentum with any gradient method",
        description="Train a multilayer perceptron by mini-batch SGD or momentum, its gradient "
        "computed by any method of the registry (backprop, numerical differences, peers), "
        "printing loss, train and test accuracy per epoch and the time per step, and saving "
        "them after every epoch as a training record beside the benchmark results (Ctrl-C "
        "keeps the finished epochs). Data: the handwritten digits of scikit-learn (default "
        "when it is installed), MNIST from IDX files you have (--mnist DIR), or synthetic "
        "class clusters. A numerical method's time is predicted first; one predicted to take "
        f"more than {YES_SECONDS:.0f} s runs only with --yes, as does any run of more than "
        f"{config.MAX_STEPS:,} steps.")
    p.add_argument("--sizes", type=int_list, default=None,
                   help=f"layer widths, inputs first, e.g. {CLASSIC_ARG} (default: the data's "
                        f"inputs, {HIDDEN}, the data's classes); with --data synthetic the "
                        "data take their inputs and classes from it")
    p.add_argument("--activation", default="sigmoid", help="hidden layers: sigmoid (default), "
                   "relu, tanh or identity")
    p.add_argument("--dtype", default="float64", help="float64 (default) or float32")
    p.add_argument("--method", default="backprop",
                   help="a registry method with a gradient: backprop (default), "
                        "numerical:SCHEME:STRATEGY (e.g. numerical:central:incremental), "
                        "or an installed peer")
    p.add_argument("--optimizer", default="sgd", help="sgd (default) or momentum")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (default {config.DEFAULT_LR['sgd']:g} for sgd, "
                        f"{config.DEFAULT_LR['momentum']:g} for momentum)")
    p.add_argument("--momentum", type=float, default=None,
                   help=f"momentum mu in [0, 1) (default {config.DEFAULT_MOMENTUM:g}; "
                        "--optimizer momentum only)")
    how_long = p.add_mutually_exclusive_group()
    how_long.add_argument("--epochs", type=int, default=None,
                          help=f"epochs (default {config.DEFAULT_EPOCHS})")
    how_long.add_argument("--steps", type=int, default=None,
                          help="steps instead of epochs, e.g. 1000 (the last epoch partial)")
    p.add_argument("--batch", type=int, default=config.DEFAULT_BATCH,
                   help=f"samples per step (default {config.DEFAULT_BATCH})")
    p.add_argument("--data", default=None,
                   help="digits (default when scikit-learn is installed) or synthetic")
    p.add_argument("--mnist", default=None, metavar="DIR",
                   help="train on MNIST from the four IDX files in DIR (raw or .gz)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and the shuffling (default 0; the data "
                        "and their split are fixed)")
    p.add_argument("--out", default="results",
                   help="folder for the training record (default results/, beside the "
                        "benchmark results)")
    p.add_argument("--label", default=None,
                   help="machine label: ASCII letters and digits, . _ + -, at most 64 "
                        "(default: the host name)")
    p.add_argument("--yes", action="store_true",
                   help=f"run a numerical method predicted to take more than "
                        f"{YES_SECONDS:.0f} s, or more than {config.MAX_STEPS:,} steps")
    add_plugin_option(p)
    p.set_defaults(func=main)


def _check_options(args) -> None:
    """The options' values on their own, each refusal naming its option (the library's
    checks name its arguments, not the options)."""
    from .. import model, train

    def refuse(message):
        raise UsageError(f"{PROG}: {message}")

    choices = (("--activation", args.activation, model.ACTIVATIONS),
               ("--dtype", args.dtype, model.DTYPES),
               ("--optimizer", args.optimizer, train.OPTIMIZERS))
    for flag, value, allowed in choices:
        if value not in allowed:
            refuse(f"{flag} {shown(value)} is not known: choose one of {', '.join(allowed)}")
    if args.data is not None and args.data not in ("digits", "synthetic"):
        refuse(f"--data {shown(args.data)} is not known: choose digits or synthetic, or give "
               "--mnist DIR")
    if args.seed < 0:
        refuse(f"--seed must be a whole number of at least 0, got {args.seed}")
    for flag, value in (("--batch", args.batch), ("--epochs", args.epochs),
                        ("--steps", args.steps)):
        if value is not None and value < 1:
            refuse(f"{flag} must be at least 1, got {value}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        refuse(f"--lr (the learning rate) must be positive and finite, got {args.lr!r}")
    if args.momentum is not None:
        if args.optimizer != "momentum":
            refuse("--momentum applies to --optimizer momentum only: leave it out for sgd")
        if not 0 <= args.momentum < 1:
            refuse(f"--momentum must lie in [0, 1), got {args.momentum!r}")


def _data(args):
    """The data set the options ask for, and a note for the user (or None)."""
    from .. import datasets

    if args.mnist is not None:
        if args.data is not None:
            raise UsageError(f"{PROG}: --mnist DIR and --data exclude each other; give one")
        return datasets.load_mnist(args.mnist, args.sizes[0] if args.sizes else None), None
    choice, note = args.data, None
    if choice is None:
        choice = "digits" if datasets.digits_available() else "synthetic"
        if choice == "synthetic":
            note = (f"{PROG}: note: scikit-learn is not installed, so the handwritten digits "
                    f"are not available: training on synthetic data ({datasets.DIGITS_INSTALL}"
                    " for the digits)")
    if choice == "digits":
        return datasets.digits(), note
    if choice == "synthetic":
        inputs, classes = (args.sizes[0], args.sizes[-1]) if args.sizes else (64, 10)
        return datasets.synthetic(inputs, classes), note
    raise ValueError(f"unknown data set {choice!r}: choose digits or synthetic, or give "
                     "--mnist DIR")


def duration(seconds: float) -> str:
    """A duration for a line of output: 51.8 us, 2.55 ms, 7.6 s, 3 min 20 s, 2 h 05 min."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 120:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    for unit, scale in (("s", 1.0), ("ms", 1e-3)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-6:.3g} us"


def epoch_line(e, per_epoch: int) -> str:
    """One line per evaluation: epoch, loss, accuracies, time per step, elapsed."""
    part = f" ({e.epoch_steps}/{per_epoch} steps)" if 0 < e.epoch_steps < per_epoch else ""
    loss = f"{e.loss:.4f}" if abs(e.loss) < 1e4 else f"{e.loss:.4g}"  # nan, inf, 1e+300
    text = (f"epoch {e.epoch:3d}{part}  loss {loss}  train {100 * e.train_accuracy:5.1f} %  "
            f"test {100 * e.test_accuracy:5.1f} %")
    if e.step_median is not None:
        text += (f"  {duration(e.step_median)}/step (gradient {duration(e.gradient_median)})")
    return text + f"  elapsed {duration(e.elapsed_seconds)}"


def command(args, data, net, plan, label: str) -> str:
    """The command line that repeats this run, every choice spelled out."""
    import shlex

    argv = ["gradbench", "train"]
    argv += (["--mnist", str(Path(args.mnist).resolve())] if args.mnist is not None
             else ["--data", data.name])
    argv += ["--sizes", ",".join(map(str, net.sizes)), "--activation", net.activation,
             "--dtype", net.dtype.name, "--method", plan.method.name, "--optimizer",
             plan.optimizer, "--lr", repr(plan.lr)]
    if plan.momentum is not None:
        argv += ["--momentum", repr(plan.momentum)]
    argv += (["--steps", str(plan.total_steps)] if args.steps is not None
             else ["--epochs", str(plan.epochs)])
    argv += ["--batch", str(plan.batch), "--seed", str(plan.seed), "--threads",
             str(plan.threads), "--label", label]
    return shlex.join(argv + (["--yes"] if args.yes else []))


#: A 1-minute load average above this share of the cores earns a warning (as gradbench run).
BUSY_LOAD = 0.5


def _warn_if_busy(load: list[float] | None) -> None:
    """Other processes' threads distort every step time (measured here: backprop of
    784-50-10 at batch 100 took 16 ms a step instead of 0.3 ms while another benchmark ran)."""
    cores = os.cpu_count() or 1
    if load is not None and load[0] > BUSY_LOAD * cores:
        print(f"{PROG}: warning: this machine is busy (load average {load[0]:.1f} on {cores} "
              "cores); other processes distort the times per step: train on a quiet machine "
              "to compare methods", file=sys.stderr)


class _Unwritable(Exception):
    """The training record could not be written: the file and the system's reason."""


def main(args) -> int:
    from ..results import names

    # SIGTERM and SIGHUP stop the training as Ctrl-C does: the finished epochs are kept
    previous = interrupt.install()
    held = []  # the lock that claims the record's name (gradbench.results.names)
    try:
        return _main(args, held)
    except _Unwritable as exc:  # a full disk, say: no later epoch could be saved either
        print(f"{PROG}: could not save the training record ({exc}); training stopped there; "
              "the record keeps its last good write, if any", file=sys.stderr)
        return EXIT_CRASH
    finally:
        names.release(*held)
        interrupt.restore(previous)


def _main(args, held: list) -> int:
    import numba

    import gradbench as gb

    from .. import machine, train
    from ..results import names, training

    threads = check_threads(args.threads, PROG) or numba.get_num_threads()
    label = check_label(args.label, PROG) if args.label is not None else default_label()
    out = writable_folder(args.out, PROG)
    _check_options(args)
    try:
        train.gradient_method(args.method)  # before loading any data
    except ValueError as exc:
        raise UsageError(f"{PROG}: --method: {exc}") from None
    try:
        data, data_note = _data(args)
        sizes = args.sizes or [data.inputs, HIDDEN, data.classes]
        net = gb.MLP(sizes, activation=args.activation, dtype=args.dtype, seed=args.seed)
        options = train.TrainOptions(optimizer=args.optimizer, lr=args.lr,
                                     momentum=args.momentum, epochs=args.epochs,
                                     steps=args.steps, batch=args.batch, threads=threads,
                                     seed=args.seed)
        plan = train.plan(net, data, args.method, options)
        if plan.total_steps > config.MAX_STEPS and not args.yes:
            flag = "--steps" if args.steps is not None else "--epochs"
            raise UsageError(f"{PROG}: {flag} {args.steps or plan.epochs:,} is "
                             f"{plan.total_steps:,} steps, more than {config.MAX_STEPS:,}: "
                             "pass --yes to run them anyway (or train fewer)")
        prediction = None
        if plan.method.kind == "numerical":
            prediction = train.predict_seconds(net, data, plan)
            predicted = (f"predicted {duration(prediction.seconds)} ({plan.total_steps:,} "
                         f"steps of {duration(prediction.per_step)}, from {prediction.basis})")
            if prediction.seconds > YES_SECONDS and not args.yes:
                raise UsageError(f"{PROG}: {plan.method.name} is {predicted}, more than "
                                 f"{YES_SECONDS:.0f} s: pass --yes to run it anyway (or "
                                 "train fewer steps, a smaller network, or with backprop)")
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{PROG}: {exc}") from None

    if data_note:
        print(data_note, file=sys.stderr)
    print(f"{PROG}: {data.name} ({len(data.y_train):,} training, {len(data.y_test):,} test "
          f"samples; {data.scaling}), {'-'.join(map(str, net.sizes))} {net.activation} "
          f"{net.dtype.name} ({net.num_params:,} parameters), {plan.method.name}, "
          f"{plan.optimizer} lr {plan.lr:g}"
          + (f" momentum {plan.momentum:g}" if plan.momentum is not None else "")
          + f", batch {plan.batch}, {plan.total_steps:,} steps ({plan.steps_per_epoch} per "
          f"epoch), {plan.threads} thread(s)")
    if prediction is not None:
        print(f"{PROG}: {predicted}")
    load = machine.load_average()
    _warn_if_busy(load)
    made = created_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    method = re.sub(r"[^A-Za-z0-9._+-]", "-", plan.method.name)  # numerical:a:b -> numerical-a-b
    # claimed before anything is written: a training started in the same second with the
    # same label, method and folder takes the next name (-2, -3, ...)
    path, lock = names.claim(out, f"train-{label}-{method}-{stamp}")
    held.append(lock)
    described = {**machine.describe(label), "load_average": load}
    provenance = training.Provenance(
        label=label, machine=described, code=machine.code_info(), prediction=prediction,
        started=started.isoformat(timespec="seconds"),
        command=command(args, data, net, plan, label))
    state = {"history": None, "saved": -math.inf}

    def save(history, status, note=None):
        try:
            training.write(path, training.document(history, net, data, provenance,
                                                   status=status, note=note))
        except OSError as exc:
            why = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc)
            raise _Unwritable(f"{path}: {why}") from None

    from tqdm import tqdm

    bar = None  # made after compiling and the first evaluation, so its rate is the steps'

    def on_step(step, total):
        bar.update(1)

    def on_epoch(history):
        nonlocal bar
        state["history"] = history
        line = epoch_line(history.epochs[-1], plan.steps_per_epoch)
        if bar is None:
            print(line, flush=True)
            bar = tqdm(total=plan.total_steps, unit="step", desc=plan.method.title,
                       leave=False)
        else:
            bar.write(line, file=sys.stdout)
        now = time.monotonic()
        if now - state["saved"] >= SAVE_EVERY:
            save(history, "running")
            state["saved"] = now

    def close():
        if bar is not None:
            bar.close()

    try:
        history = train.train(net, data, args.method, options, on_step=on_step,
                              on_epoch=on_epoch)
    except KeyboardInterrupt:
        close()
        history = state["history"]
        if history is None or len(history.epochs) < 2:
            path.unlink(missing_ok=True)
            names.release(lock)
            if made is not None and not any(p.is_file() for p in made.rglob("*")):
                shutil.rmtree(made, ignore_errors=True)
            print(f"{PROG}: interrupted{interrupt.by()} before the first epoch finished; "
                  "nothing saved", file=sys.stderr)
            return interrupt.exit_status()
        with interrupt.deferred():  # the last write is not to be cut short
            save(history, "interrupted",
                 f"interrupted by {interrupt.received() or 'the user (Ctrl-C)'}")
        print(f"{PROG}: interrupted{interrupt.by()}; the {len(history.epochs) - 1} finished "
              f"epoch(s) are in {path}; see them with: gradbench report {path}",
              file=sys.stderr)
        return interrupt.exit_status()
    except _Unwritable:
        close()
        raise  # no second try: the disk that refused the first refuses this one
    except BaseException:
        close()
        if state["history"] is not None:
            save(state["history"], "failed", "training raised an error")
        raise
    close()
    save(history, history.status, history.note)
    last, t = history.epochs[-1], history.timing()
    if t["gradient"] is not None:
        print(f"{history.steps:,} steps in {duration(last.train_seconds)} (wall "
              f"{duration(last.elapsed_seconds)}, evaluations included); per step: gradient "
              f"{duration(t['gradient']['median'])}, whole step {duration(t['step']['median'])}"
              f" (medians); compiling took {duration(history.compile_seconds)}, not timed")
    print(f"test accuracy {100 * last.test_accuracy:.1f} %, training loss {last.loss:.4g}")
    print(f"saved: {path}\nreport: gradbench report {path}")
    if history.status == "diverged":
        print(f"{PROG}: {history.note}", file=sys.stderr)
        return EXIT_FINDING
    return EXIT_OK
