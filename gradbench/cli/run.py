"""``gradbench run``: the benchmark suite (shipped in the package), its result file, the report."""

from __future__ import annotations

import datetime
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .. import interrupt
from ..config import CASE_TIMEOUT_SECONDS
from .common import (
    EXIT_CRASH,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_plugin_option,
    add_verb,
    check_budget,
    check_label,
    check_seconds,
    check_threads,
    created_folders,
    default_label,
    writable_folder,
)

PROG = "gradbench run"


def add_parser(sub) -> None:
    p = add_verb(
        sub, "run", help="run the benchmark suite, save the results, build the report",
        description="Time loss, backprop and numerical gradients across network sizes with "
        "pytest-benchmark, within a time budget, and beside them the peers that are installed "
        "(NumPy, torch, jax, scipy, numdifftools), each library in a process of its own; save "
        "the results as JSON (written as cases complete: Ctrl-C keeps them), summarise the "
        "power laws and build the report.")
    p.add_argument("--profile", default="default",
                   help="quick (about a minute), default (about 7 minutes), full (hours) or "
                        "gpu (a GPU machine's check: the GPU's methods beside the CPU's)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds the timed cases may take (default: the profile's)")
    p.add_argument("--out", default="results",
                   help="folder for the result files (default results/)")
    p.add_argument("--label", default=None,
                   help="machine label: ASCII letters and digits, . _ + -, at most 64 "
                        "(default: the host name)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--report", default="reports", metavar="DIR",
                   help="folder for the report built from this run (default reports/)")
    p.add_argument("--no-report", action="store_true", help="do not build the report")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show pytest's and pytest-benchmark's own output of each part (a "
                        "letter per case, a table of its timings) instead of one progress "
                        "line per part; the result file is the same")
    add_plugin_option(p)
    p.add_argument("--case-timeout", type=float, default=CASE_TIMEOUT_SECONDS,
                   metavar="SECONDS",
                   help="seconds a plugin's case may take beyond what its predicted time "
                        "allows before it is stopped, with its process, and recorded as "
                        f"rejected (default {CASE_TIMEOUT_SECONDS:g})")
    p.set_defaults(func=main)


def main(args) -> int:
    # SIGTERM and SIGHUP stop the run as Ctrl-C does, during start-up too
    previous = interrupt.install()
    try:
        return _main(args)
    finally:
        interrupt.restore(previous)


def _main(args) -> int:
    from ..bench import sweep

    # everything the run will need is checked before the first case runs
    budget = check_budget(args.budget, PROG)
    try:
        prof = sweep.profile(args.profile, budget)
    except ValueError as exc:
        raise UsageError(f"{PROG}: {exc}") from None
    label = check_label(args.label, PROG) if args.label is not None else default_label()
    threads = check_threads(args.threads, PROG)
    case_timeout = check_seconds(args.case_timeout, "--case-timeout", PROG)
    out = writable_folder(args.out, PROG)
    if not args.no_report:
        writable_folder(args.report, PROG)

    import pytest

    from .. import methods
    from ..bench import parts
    from ..results import names

    made = created_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    final = lock = storage = outcome = None
    try:
        # claimed before anything is written: a run started in the same second with the
        # same label and folder takes the next name (-2, -3, ...)
        final, lock = names.claim(out, f"{label}-{prof.name}-{stamp}")
        print(f"{PROG}: profile {prof.name}, budget {prof.budget:g} s, results to {final}")
        _warn_if_busy()
        storage = tempfile.mkdtemp(prefix="gradbench-pytest-benchmark-")  # its unused storage
        outcome = parts.run(prof, label, threads, final, storage, PROG, case_timeout,
                            verbose=args.verbose)
    except KeyboardInterrupt:  # before pytest took over (its start-up): nothing written
        pass
    finally:
        if storage is not None:
            shutil.rmtree(storage, ignore_errors=True)
        if lock is not None:
            names.release(lock)  # the suite's writing is over
    code = outcome.codes[methods.OURS] if outcome else pytest.ExitCode.INTERRUPTED
    if outcome is not None and outcome.write_error is not None:  # a full disk, say
        kept = ("the cases completed up to its last good write are kept in it"
                if final.is_file() else "nothing was saved")
        if made is not None and not any(p.is_file() for p in made.rglob("*")):
            shutil.rmtree(made, ignore_errors=True)
        print(f"{PROG}: could not save the results ({outcome.write_error}); the run "
              f"stopped there; {kept}", file=sys.stderr)
        return EXIT_CRASH
    if outcome is None or not final.is_file():
        if made is not None and not any(p.is_file() for p in made.rglob("*")):
            shutil.rmtree(made, ignore_errors=True)  # nothing saved: no empty folder left
        if final is not None and final.is_file():  # written, then interrupted outside pytest
            print(f"{PROG}: interrupted{interrupt.by()}; what completed is in {final}",
                  file=sys.stderr)
            return interrupt.exit_status()
        if code == pytest.ExitCode.INTERRUPTED:
            print(f"{PROG}: interrupted{interrupt.by()} before any case completed; nothing "
                  "to save", file=sys.stderr)
            return interrupt.exit_status()
        print(f"{PROG}: the suite failed before any case completed (pytest exit status "
              f"{int(code)}; its output is above)", file=sys.stderr)
        return EXIT_CRASH if code != pytest.ExitCode.USAGE_ERROR else EXIT_USAGE

    try:
        return _after(args, final, outcome)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted{interrupt.by()}; the results are complete in {final}; "
              f"build the report from it with: gradbench report {final}", file=sys.stderr)
        return interrupt.exit_status()


def _after(args, final: Path, outcome) -> int:
    """The summary and the report, once the suite has written its file."""
    from .. import results

    interrupted = outcome.interrupted
    rs = results.load_set(outcome.document)  # the driver's final document: not read again
    if getattr(args, "verbose", False):  # pytest ends a quiet part with a blank line itself
        print()
    print(summary(rs.cases))
    if interrupted:
        print(f"\n{PROG}: interrupted{interrupt.by()}; the {len(rs.cases)} cases that "
              f"completed or were skipped are in {final}; build the report from it with: "
              f"gradbench report {final}", file=sys.stderr)
        return interrupt.exit_status()
    status = EXIT_OK
    if outcome.status != "complete":
        codes = ", ".join(f"{who} {int(c)}" for who, c in outcome.codes.items())
        print(f"{PROG}: the suite itself failed (pytest exit status per part: {codes}): a "
              f"case raised an error, shown above; this is a bug in gradbench or its "
              f"installation, not in your options. Completed cases are in {final}",
              file=sys.stderr)
        status = EXIT_CRASH
    if not args.no_report:
        from .. import report

        earlier = Path(args.report) / "index.html"
        if earlier.is_file():  # said, not silent: the earlier runs' results stay
            print(f"\nreport: replacing the earlier report in {args.report} with this run's "
                  f"(every run's results stay in {final.parent}: gradbench report "
                  f"{final.parent} builds one of them all; --report DIR puts a run's "
                  "elsewhere)")
        try:
            print(f"\nreport: {report.build(outcome.document, args.report)}")
        except Exception as exc:  # the run succeeded: its results must not be lost to this
            reason = (str(exc).splitlines() or [""])[0]
            if not isinstance(exc, ValueError):  # not bad data: a bug, name it
                reason = f"{type(exc).__name__}: {reason}".rstrip(": ")
            print(f"{PROG}: the report could not be built ({reason}); the results are saved "
                  f"in {final}; build the report from them with: gradbench report {final} "
                  f"--out {args.report}", file=sys.stderr)
            return EXIT_CRASH
    return status


#: A 1-minute load average above this share of the cores before a run starts earns a warning.
BUSY_LOAD = 0.5


def _warn_if_busy(prog: str = PROG) -> None:
    """Other processes' thread pools distort every timing (measured: a 55 us loss evaluation
    took 16 ms, a whole scheduler quantum per call, while another benchmark ran): say so, as
    ``prog`` (gradbench check warns too)."""
    from ..machine import load_average

    load = load_average()
    if load is None:  # the system does not say (Windows)
        return
    cores = os.cpu_count() or 1
    if load[0] > BUSY_LOAD * cores:
        print(f"{prog}: warning: this machine is busy (load average {load[0]:.1f} on {cores} "
              "cores); other processes distort the timings: run on a quiet machine",
              file=sys.stderr)


def _on(method: str, device: str) -> str:
    """A method as the summary names it: with its device when that is not the CPU."""
    return method if device == "cpu" else f"{method} ({device})"


def summary(df) -> str:
    """Per method: fitted exponent with its interval; at the largest N where every method
    ran, each numerical method's time over backprop's."""
    from .. import methods, results

    found = results.fits(df)
    lines = ([f"{'method':34s} exponent k  95% interval     N range             cost law?"]
             if found else ["no method ran at enough sizes to fit a power law"])
    for f in found:
        lines.append(f"{_on(f.method, f.device):34s} {f.k:8.2f}   "
                     f"[{f.k_low:5.2f}, {f.k_high:5.2f}]   "
                     f"{f'{f.n_min:,} - {f.n_max:,}':19s} "
                     f"{'yes' if f.asymptotic else 'no, see below'}")
    ranges = [f for f in found if not f.asymptotic]
    if ranges:
        lines.append("\nnot cost laws, only what their range shows (intervals hold the scatter "
                     "and run-to-run drift):")
        for f in ranges:
            lines.append(f"  {_on(f.method, f.device)}: {f.note}")
    ours = results.ladder(df[(df["status"] == "ok") & (df["provider"] == methods.OURS)])
    for device, ok in ours.groupby("device", sort=False):
        by_n = ok.groupby("n_params")["method"].nunique()
        common = by_n[by_n == ok["method"].nunique()]
        if not len(common) or methods.ANALYTIC not in set(ok["method"]):
            continue
        n = int(common.index.max())
        at = ok[ok["n_params"] == n].groupby("method")["median"].median()
        kinds = ok.drop_duplicates("method").set_index("method")["kind"]
        lines.append(f"\n{'' if device == methods.DEFAULT_DEVICE else f'on the {device} device, '}"
                     f"at N = {n:,} (largest size every gradbench method ran there; the "
                     "report's headline, below, is at the largest size central differences "
                     "and backprop both ran):")
        for m, t in at.items():
            if kinds[m] == "numerical":
                lines.append(f"  {m:34s} {t / at[methods.ANALYTIC]:12,.0f} x backprop")
    from ..report import headlines

    heads, _ = headlines(results.ladder(df[df["provider"] == methods.OURS]), found)
    lines += ["", *heads] if heads else []
    lines += peers_summary(df)
    off = df[(df["provider"] == methods.OURS) & (df["device"] != methods.DEFAULT_DEVICE)]
    for device, g in off[off["status"] == "unavailable"].groupby("device", sort=False):
        lines.append(f"\ngradbench on the {device} device: not run here ({len(g)} cases): "
                     f"{g['reason'].iloc[0]}")
    counts = df[(df["provider"] != methods.OURS) | (df["status"] != "unavailable")][
        "status"].value_counts()
    not_timed = [f"{int(counts[s])} {what}" for s, what in (
        ("skipped", "skipped by the budget (predicted times kept)"),
        ("unavailable", "of peers not installed"), ("rejected", "of peers rejected"))
        if counts.get(s, 0)]
    if not_timed:
        lines.append(f"\ncases not timed: {'; '.join(not_timed)}")
    return "\n".join(lines)


def peers_summary(df) -> list[str]:
    """On the classic network, each peer's time against gradbench's counterpart; the peers
    not installed (with the command that installs them) and those rejected."""
    from .. import methods
    from ..report import classic_ratios, nice

    lines = []
    classic = classic_ratios(df)
    classic = classic[classic["provider"] != methods.OURS]
    if len(classic):
        lines.append("\non the classic network (784-50-10, batch 100, float64), gradbench's "
                     "counterpart over each peer (below 1: gradbench's is faster):")
        for r in classic.itertuples():
            lines.append(f"  {r.method:34s} {r.seconds:10.4g} s   "
                         f"{methods.title(r.counterpart)} / this: {nice(r.ours_over)}")
    theirs = df[df["provider"] != methods.OURS]
    missing = theirs[theirs["status"] == "unavailable"].drop_duplicates("method")
    if len(missing):
        lines.append("\npeers not installed here (not run):")
        for r in missing.itertuples():
            lines.append(f"  {r.method:34s} {r.reason}")
    rejected = theirs[theirs["status"] == "rejected"]
    if len(rejected):
        lines.append(f"\n{len(rejected)} peer cases rejected (a gradient outside its bound, "
                     "or a plugin that failed: raised, changed its inputs, died or overran its "
                     "time): see the report")
    return lines
