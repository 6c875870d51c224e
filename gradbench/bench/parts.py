"""A run of the sweep in parts: gradbench's cases in this process, each peer provider's in a
process of its own, all into one result file.

Thread pools that keep spinning after a call (NumPy's OpenBLAS, the OpenBLAS Numba calls,
torch's OpenMP pool, XLA's) slow each other 5-20x when two of them live in one process on a
small machine. So ``run`` times gradbench's cases with pytest in this process, as before, and
then, for each peer provider of the profile in turn, starts ``python -m pytest`` on the same
suite restricted to that provider's methods (``--gb-provider``, ``--gb-methods``). That
process configures its library's threads before any case (gradbench.peers.configure_process),
loads the result document the earlier parts wrote (gradbench.results.Document), takes the
machine, its calibration, the primal times and the budget spent from it, and writes it back,
atomically, with its cases added, as they complete. One part runs at a time, so the file has
one writer at a time.

The budget is shared as in one process: every part knows every group's weight (the profile's)
and what the earlier parts spent. A provider whose library is not installed is not started:
its cases are recorded here, at the end, as unavailable, with the command that installs it.
Ctrl-C reaches the part that is running (a child is in its own process group, so the
terminal's Ctrl-C reaches this process, which passes it on once; SIGTERM and SIGHUP alike,
gradbench.interrupt); that part saves its completed cases and no later part starts. At the
end this process writes the run's one final status: complete, interrupted or failed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import interrupt, methods, results
from ..config import CASE_TIMEOUT_SECONDS
from . import plugin, sweep

#: Seconds between two looks at what a watched part (a plugin's) says it is running.
WATCH_SECONDS = 0.5


@dataclass
class Outcome:
    """How a run went: pytest's exit status per part, and the document written."""

    status: str  # complete, interrupted or failed ("none" when no file was written)
    codes: dict = field(default_factory=dict)  # provider -> exit status of its part
    document: results.Document | None = None  # the final document (None: no file)
    write_error: str | None = None  # the result file could not be written: why (the run stopped)

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"


def pytest_args(here: Path, prof: sweep.Profile, label: str, threads: int | None,
                out: Path, storage: str, verbose: bool = False) -> list[str]:
    """The arguments every part gives pytest (the suite, its configuration, the run); unless
    ``verbose``, a progress line per part instead of pytest's and pytest-benchmark's output
    (gradbench.bench.progress; failures are still shown)."""
    quiet = (["--gb-verbose"] if verbose
             else ["-q", "-o", "console_output_style=classic", "--benchmark-quiet"])
    argv = [str(here / "suite.py"), "-c", str(here / "pytest.ini"), "--rootdir", str(here),
            "-p", "gradbench.bench.plugin", "-p", "gradbench.bench.progress", *quiet,
            "-p", "no:cacheprovider", "-q",
            "--benchmark-max-time", str(prof.max_time), "--benchmark-columns",
            "median,rounds", "--benchmark-sort", "name", "--gb-profile", prof.name,
            "--gb-budget", str(prof.budget), "--gb-label", label, "--gb-out", str(out),
            "--benchmark-storage", f"file://{storage}", "--gb-part"]
    if threads:
        argv += ["--gb-threads", str(threads)]
    return argv


def run(prof: sweep.Profile, label: str, threads: int | None, out: Path, storage: str,
        prog: str = "gradbench run", case_timeout: float = CASE_TIMEOUT_SECONDS,
        verbose: bool = False) -> Outcome:
    """Every part of the run, the final status written; the outcome. ``case_timeout``: the
    seconds a plugin's case may take beyond what its predicted time allows; ``verbose``:
    pytest's and pytest-benchmark's output of each part (see :func:`pytest_args`)."""
    import pytest

    from .. import bench

    started = time.perf_counter()
    here = Path(bench.__file__).parent
    argv = pytest_args(here, prof, label, threads, out, storage, verbose)
    seen = _WriteError()
    code = pytest.main([*argv, "--gb-provider", methods.OURS], plugins=[seen])
    outcome = Outcome("none", {methods.OURS: int(code)})
    if code == plugin.EXIT_UNWRITABLE:  # no later part starts
        outcome.status, outcome.write_error = "failed", seen.error or f"{out}: not written"
        return outcome
    if not out.is_file():
        return outcome
    failed = code != pytest.ExitCode.OK
    interrupted = code == pytest.ExitCode.INTERRUPTED
    unavailable = []  # cases of peers not installed here
    try:
        for provider in prof.providers[1:]:
            if interrupted:
                break
            code = _peer_part(provider, prof, threads, out, argv, prog, unavailable,
                              case_timeout)
            if code is None:
                continue
            outcome.codes[provider] = code
            if code == plugin.EXIT_UNWRITABLE:
                outcome.status = "failed"
                outcome.write_error = (f"{out}: the {provider} part could not write it (its "
                                       "message is above)")
                return outcome
            interrupted = code == pytest.ExitCode.INTERRUPTED
            if not interrupted and code != pytest.ExitCode.OK and methods.plugin_part(provider):
                # a plugin's process that died or failed takes only its own cases with it
                print(f"{prog}: the plugin part {provider}'s process ended with exit status "
                      f"{code}; the cases it completed are kept, the rest are not timed",
                      file=sys.stderr, flush=True)
                continue
            failed |= code != pytest.ExitCode.OK
    except KeyboardInterrupt:
        interrupted = True
    outcome.status = "interrupted" if interrupted else "failed" if failed else "complete"
    try:
        outcome.document = _finish(out, outcome.status, time.perf_counter() - started,
                                   unavailable)
    except OSError as exc:
        outcome.status = "failed"
        why = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc)
        outcome.write_error = f"{out}: {why}"
    return outcome


class _WriteError:
    """A plugin of the in-process part: why its session could not write the result file."""

    error: str | None = None

    def pytest_unconfigure(self, config):
        self.error = getattr(getattr(config, "_gradbench", None), "write_error", None)


def _peer_part(provider: str, prof: sweep.Profile, threads: int | None, out: Path,
               argv: list[str], prog: str, unavailable: list, timeout: float) -> int | None:
    """One peer provider's part: its cases whose library is not installed added to
    ``unavailable``, the others run in a process of their own; that process's exit status
    (None: nothing was started)."""
    import numba

    cases = sweep.cases(prof, threads or numba.config.NUMBA_NUM_THREADS, provider)
    names = list(dict.fromkeys(c.method for c in cases))
    missing = [n for n in names if not methods.get(n).available()]
    unavailable += [c for c in cases if c.method in missing]
    ready = [n for n in names if n not in missing]
    if not ready:
        return None
    child = [sys.executable, "-P", "-m", "pytest", *argv, "--gb-provider", provider,
             "--gb-append"]
    who = (f"gradbench on the {provider.split('@')[1]} device" if "@" in provider
           else f"{provider} peers")
    if "--gb-verbose" in argv:  # otherwise the part's progress line names it
        print(f"\n{prog}: {who} ({', '.join(ready)}) in a process of their own", flush=True)
    if methods.plugin_part(provider) is None:
        return _run_child([*child, "--gb-methods", ",".join(ready)])
    return _plugin_part(child, [c for c in cases if c.method in ready], out, prog, timeout)


def _plugin_part(argv: list[str], cases: list[sweep.Case], out: Path, prog: str,
                 timeout: float) -> int:
    """A plugin's part, watched: a case that runs past its time (``timeout`` seconds beyond
    what its predicted time allows) is stopped with its process; a case whose process dies is
    caught so too. Either way the case, and its method's cases not yet run, are recorded as
    rejected with one line, and the part goes on, restarted, with its other methods (a
    restarted part runs no case the file holds already). The exit status of its last
    process."""
    names = list(dict.fromkeys(c.method for c in cases))
    while True:
        watch = Path(tempfile.mkdtemp(prefix="gradbench-part-")) / "case.json"
        try:
            code, running, overran = _run_child(
                [*argv, "--gb-methods", ",".join(names), "--gb-watch", str(watch),
                 "--gb-case-timeout", str(timeout)], watch)
        finally:
            shutil.rmtree(watch.parent, ignore_errors=True)
        case = next((c for c in cases if c.id == running), None)
        if case is None:  # it ended between cases: its own exit status says how
            return code
        m = case.record
        why = (f"did not end within its time (--case-timeout {timeout:g} s beyond its "
               "predicted time) and was stopped" if overran
               else f"ended its process (exit status {code})")
        print(f"{prog}: plugin {m.plugin}'s {case.id} {why}; its other cases are not run",
              file=sys.stderr, flush=True)
        _reject(out, case, [c for c in cases if c.method == case.method and c is not case],
                f"plugin {m.plugin}'s {case.id} {why}")
        names.remove(case.method)
        if not names:
            return 0


def _reject(out: Path, case: sweep.Case, rest: list[sweep.Case], why: str) -> None:
    """Record in the run's file (its part has stopped: one writer) ``case`` and those of
    ``rest`` it does not hold as rejected, for ``why``."""
    doc = results.Document.load(out)
    held = plugin.held(doc)
    doc.add_not_timed(case.info(), "rejected", f"rejected: {why}")
    for c in rest:
        if plugin.key(c) not in held:
            doc.add_not_timed(c.info(), "rejected", f"rejected: not run: {why}")
    with interrupt.deferred():
        doc.save(out)


def _child_env() -> dict:
    """The environment of a part: the gradbench this process runs comes first on the path
    (``-P`` keeps the current folder off it)."""
    import gradbench

    root = str(Path(gradbench.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def _run_child(argv: list[str], watch: Path | None = None):
    """Run a part to its end; Ctrl-C (or SIGTERM, SIGHUP) here is passed on to it, once, as
    the same signal, and waited out. Its exit status; with ``watch`` (the file where it says
    which case runs, and by when that case must end), (its exit status, the case running
    when it ended or None, whether it was stopped for running past that time)."""
    posix = os.name == "posix"
    # in a process group of its own, the terminal's Ctrl-C reaches only this process, which
    # passes it on: the part sees exactly one (a second would cut its last save short)
    proc = subprocess.Popen(argv, env=_child_env(), **({"process_group": 0} if posix else {}))
    try:
        if watch is None:
            return proc.wait()
        while True:
            try:
                code = proc.wait(timeout=WATCH_SECONDS)
                return code, _running(watch).get("case"), False
            except subprocess.TimeoutExpired:
                said = _running(watch)
                if said.get("case") and time.time() > said["deadline"]:
                    _kill(proc)
                    return proc.wait(), said["case"], True
    except KeyboardInterrupt:
        if posix and proc.poll() is None:
            proc.send_signal(interrupt.signum())
        while True:
            try:
                proc.wait()
                break
            except KeyboardInterrupt:  # impatience: the part is saving what it has
                continue
        raise


def _running(watch: Path) -> dict:
    """What a watched part last said (the case running, its deadline); {} for nothing."""
    try:
        said = json.loads(watch.read_text())
    except (OSError, ValueError):
        return {}
    return said if isinstance(said, dict) else {}


def _kill(proc: subprocess.Popen) -> None:
    """Stop a part at once, with every process it started (its process group)."""
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            return
        except OSError:
            pass
    proc.kill()


def _finish(out: Path, status: str, wall: float,
            unavailable: list[sweep.Case]) -> results.Document:
    """The run's one final status in the result file, with the cases of the peers not
    installed here (and the command that installs each); the final document."""
    doc = results.Document.load(out)  # the last part's, checked
    for c in unavailable:
        doc.add_not_timed(c.info(), "unavailable", c.record.unavailable_reason())
    # the signal that interrupted this process (a part interrupted by its own keeps that)
    doc.set_status(status, wall=wall,
                   signal=interrupt.received() if status == "interrupted" else None)
    with interrupt.deferred():  # the last write is not to be cut short: it takes a moment
        doc.save(out)
    return doc
