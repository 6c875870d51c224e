"""``gradbench ab``: the regression gate, base and head timed interleaved on one machine."""

from __future__ import annotations

import datetime
import math
import os
import shutil
import sys
from pathlib import Path

from .. import interrupt
from ..config import GATE_THRESHOLD
from .common import (
    EXIT_CRASH,
    EXIT_FINDING,
    EXIT_OK,
    UsageError,
    add_plugin_option,
    add_verb,
    check_threads,
    created_folders,
    writable_folder,
)

PROG = "gradbench ab"


def add_parser(sub) -> None:
    p = add_verb(
        sub, "ab", help="time two installs of gradbench against each other, interleaved; "
        "exit 1 on a slowdown",
        description="The regression gate. Times BASE and HEAD (two Python environments, "
        "each with its own gradbench) on this machine, case by case: one worker process per "
        "side compiles and warms every case first (never timed), then the two sides take "
        "turns in quads of short blocks of calls (ABBA or BAAB, at random), many times over, "
        "so that whatever the machine does in those seconds hits both alike; only one side "
        "computes at a time. Per method and thread count (the numerical methods on one thread "
        "and on --threads: their serial and parallel drivers) it "
        "states the ratio head/base with a 99 % interval and the smallest slowdown this run "
        "could have detected; a method is slower when its interval lies above 1 and its ratio "
        "above the threshold. Both sides' blocks are saved as result files (gradbench compare "
        "and report read them). Exit 1 when a method is slower.")
    p.add_argument("--base", required=True, metavar="PYTHON",
                   help="the python of the base environment (e.g. venv-base/bin/python)")
    p.add_argument("--head", default=None, metavar="PYTHON",
                   help="the python of the head environment (default: this one, "
                        f"{shown_python()})")
    p.add_argument("--profile", default="gate",
                   help="gate (default: loss and backprop at 4 sizes on one thread, naive "
                        "and incremental central differences at 3 sizes on one thread and on "
                        "--threads, 144 s of timing in 16 generations of workers) or tiny "
                        "(seconds)")
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds of timed blocks (default: the profile's); more seconds, "
                        "smaller detectable slowdowns")
    p.add_argument("--generations", type=int, default=None,
                   help="pairs of worker processes, one after the other, sharing the seconds "
                        "(default: the profile's, 16 for gate), each started with its memory "
                        "layout perturbed at random: the verdict rests on their spread, since "
                        "a process's layout shifts its speed")
    p.add_argument("--threads", type=int, default=None,
                   help="threads of the numerical methods' parallel cases (default: all "
                        "cores, as gradbench run and check use); every case is also timed on "
                        "one thread, and loss and backprop only on one (1: every case on one)")
    p.add_argument("--fixed-layout", action="store_true",
                   help="start every worker with the same environment, not with its memory "
                        "layout perturbed at random: to measure the offset an install keeps")
    p.add_argument("--threshold", type=float, default=None,
                   help="slowdown factor a method must exceed to be slower "
                        f"(default {GATE_THRESHOLD})")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the random orders (default: a random one, recorded)")
    p.add_argument("--out", default="results",
                   help="folder for the two result files (default results/)")
    p.add_argument("--summary", default=None, metavar="FILE",
                   help="also write the verdict as Markdown to FILE (a CI job's summary)")
    add_plugin_option(p)
    p.set_defaults(func=main)


def shown_python() -> str:
    return os.path.basename(sys.executable) or "python"


def _python(path: str, option: str) -> str:
    """The python of a side, checked as far as can be before anything starts."""
    p = Path(path)
    if p.is_dir():
        hint = p / "bin" / "python"
        raise UsageError(f"{PROG}: {option} {path} is a folder; give its python"
                         + (f" ({hint})" if hint.exists() else ""))
    found = shutil.which(path) if os.sep not in path else (path if p.exists() else None)
    if found is None:
        raise UsageError(f"{PROG}: {option} {path}: no such file; give the python of an "
                         "environment with gradbench (e.g. venv-base/bin/python)")
    if not os.access(found, os.X_OK):
        raise UsageError(f"{PROG}: {option} {path} is not executable; give a python")
    return os.path.abspath(found)


def _check(args):
    from ..gate import profile, stats

    if args.seconds is not None and not (math.isfinite(args.seconds)
                                         and 0 < args.seconds <= 24 * 3600):
        raise UsageError(f"{PROG}: --seconds must be a positive number of seconds up to a "
                         f"day, got {args.seconds!r}")
    threshold = stats.THRESHOLD if args.threshold is None else args.threshold
    if not (math.isfinite(threshold) and threshold >= 1):
        raise UsageError(f"{PROG}: --threshold must be a factor of at least 1 such as "
                         f"{GATE_THRESHOLD}, got {args.threshold!r}")
    args.threads = check_threads(args.threads, PROG)
    if args.threads is None:  # every core, as run and check (Numba's count of them)
        from ..blas import check_threads as default_threads

        args.threads = default_threads(None)
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"{PROG}: --seed must be a non-negative integer, got {args.seed}")
    if args.generations is not None and not 1 <= args.generations <= 100:
        raise UsageError(f"{PROG}: --generations must lie in 1..100, got {args.generations}")
    try:
        prof = profile.profile(args.profile, args.seconds, args.generations)
    except ValueError as exc:
        raise UsageError(f"{PROG}: --profile: {exc}") from None
    return prof, threshold


def main(args) -> int:
    import random

    from ..gate import coordinator
    from ..results import names

    prof, threshold = _check(args)
    base = _python(args.base, "--base")
    head = _python(args.head or sys.executable, "--head")
    out = writable_folder(args.out, PROG)
    summary = Path(args.summary) if args.summary else None
    if summary is not None:
        writable_folder(str(summary.parent), PROG)
        if summary.is_dir():
            raise UsageError(f"{PROG}: --summary {summary} is a folder; name a file")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)

    made = created_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    paths, locks = {}, []
    try:
        for side in coordinator.SIDES:  # claimed: a second gate in the same second differs
            paths[side], lock = names.claim(out, f"ab-{stamp}-{side}")
            locks.append(lock)
        say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
        try:
            outcome = coordinator.run(base, head, prof, args.threads, paths, seed=seed,
                                      say=say, perturb=not args.fixed_layout)
        except coordinator.SideError as exc:
            raise UsageError(f"{PROG}: {exc}") from None
        except OSError as exc:  # a full disk, say, at a checkpoint
            print(f"{PROG}: could not save the results ({exc}); the gate stopped there",
                  file=sys.stderr)
            return EXIT_CRASH
    finally:
        names.release(*locks)
        if made is not None and not any(p.is_file() for p in made.rglob("*")):
            shutil.rmtree(made, ignore_errors=True)
    return _report(outcome, threshold, summary)


def _report(outcome, threshold: float, summary: Path | None) -> int:
    from ..gate import coordinator, render

    docs = outcome.documents
    if not docs:  # stopped while the workers started: nothing was written
        if outcome.status == "interrupted":
            print(f"{PROG}: interrupted{interrupt.by()} before the workers were ready; "
                  "nothing to save", file=sys.stderr)
            return interrupt.exit_status()
        print(f"{PROG}: {outcome.error}; nothing was saved", file=sys.stderr)
        return EXIT_CRASH
    case_rows, method_rows = coordinator.analyze(docs["base"], docs["head"], threshold)
    share = outcome.idle_cpu_share
    text = render.text(case_rows, method_rows, threshold, share)
    sys.stdout.write(text)
    if summary is not None:
        from ..results import write_text

        write_text(summary, render.markdown(case_rows, method_rows, threshold, share,
                                            outcome.status))
    files = " and ".join(str(p) for p in outcome.paths.values())
    print(f"{PROG}: both sides' blocks in {files}", file=sys.stderr)
    if outcome.status == "failed":
        print(f"{PROG}: {outcome.error}; the cases timed until then are kept",
              file=sys.stderr)
        return EXIT_CRASH
    if outcome.status == "interrupted":
        print(f"{PROG}: interrupted{interrupt.by()}; the quads timed until then are kept",
              file=sys.stderr)
        return interrupt.exit_status()
    slower = [coordinator.label(r) for r in method_rows if r["estimate"].verdict == "slower"]
    if slower:
        print(f"{PROG}: slower: {', '.join(slower)}", file=sys.stderr)
        return EXIT_FINDING
    return EXIT_OK
