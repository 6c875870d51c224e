"""pytest plugin of the gradbench sweep: options, run state, machine info, the result file.

Loaded by ``gradbench run`` (``-p gradbench.bench.plugin``) and by ``benchmarks/conftest.py``
for developers who run ``pytest benchmarks/``. It writes the result file itself (``--gb-out``),
through :class:`gradbench.results.Document`: after a case completes (at most every
``CHECKPOINT_SECONDS``) and once more when the session ends, with the run's status. Ctrl-C
(or SIGTERM, SIGHUP: gradbench.interrupt) at any moment therefore leaves every completed case
and the skipped list in the file, and a run in which every case was skipped still writes its
file.

A session runs the cases of one provider (``--gb-provider``, default gradbench's own): each
peer provider's cases run in a process of their own (gradbench.bench.parts). Such a later part
(``--gb-append``) reads the result file the earlier parts wrote, takes the machine, its
calibration, the primal times and the budget spent so far from it, and writes it back with its
own cases added; ``--gb-part`` leaves the status "running" at a completed end, for the driver
to write the run's one final status.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import pytest
import pytest_benchmark

from .. import __version__, interrupt, methods, results
from ..blas import check_threads, numba_threads, thread_limits
from ..config import CASE_TIMEOUT_SECONDS
from ..machine import calibrate, code_info, describe, load_average
from . import sweep

#: At most one checkpoint write per this many seconds while cases complete.
CHECKPOINT_SECONDS = 2.0
#: pytest's exit status of a session that could not write its result file (a full disk, say):
#: it stops at the first failed write; the file keeps what the last good write held.
EXIT_UNWRITABLE = 74


def pytest_addoption(parser):
    g = parser.getgroup("gradbench")
    g.addoption("--gb-profile", default="quick", help="quick, default, full or gpu")
    g.addoption("--gb-budget", type=float, default=None, help="seconds; overrides the profile's")
    g.addoption("--gb-label", default=None, help="machine label (default: host name)")
    g.addoption("--gb-threads", type=int, default=None, help="threads (default: all cores)")
    g.addoption("--gb-out", default=None, help="result file to write (gradbench's own JSON)")
    g.addoption("--gb-provider", default=methods.OURS,
                help="whose cases to run: gradbench (default) or a peer provider")
    g.addoption("--gb-methods", default=None,
                help="comma-separated methods to run (default: the profile's of the provider)")
    g.addoption("--gb-append", action="store_true",
                help="add to the result file --gb-out that earlier parts of the run wrote")
    g.addoption("--gb-part", action="store_true",
                help="one part of a run: leave the status 'running' at a completed end")
    g.addoption("--gb-watch", default=None,
                help="file saying which case runs and by when it must end (a plugin's part, "
                     "watched by its driver)")
    g.addoption("--gb-case-timeout", type=float, default=CASE_TIMEOUT_SECONDS,
                help="seconds a watched case may take beyond its predicted time")


@dataclass
class State:
    """What the session knows while it runs."""

    config: object
    profile: sweep.Profile
    threads: int
    label: str | None
    budget: sweep.Budget
    calibration: dict
    out: Path | None = None
    provider: str = methods.OURS
    only: tuple | None = None  # the methods to run, when restricted
    part: bool = False
    doc: results.Document | None = None  # the run's document: the earlier parts' (loaded)
    # or this session's (made when it first has something to hold)
    peer: dict = field(default_factory=dict)  # library and thread control of a peer provider
    primal: dict = field(default_factory=dict)  # (dtype, sizes, batch, device) -> seconds
    correction: dict = field(default_factory=dict)  # (dtype, method) -> measured / model
    code: dict = field(default_factory=code_info)
    started: float = field(default_factory=time.perf_counter)
    wall_before: float = 0.0  # the earlier parts' wall seconds
    last_write: float = 0.0
    write_error: str | None = None  # "file: [Errno 28] No space left on device", once failed
    watch_file: Path | None = None  # where the running case is said (--gb-watch)
    case_timeout: float = CASE_TIMEOUT_SECONDS

    def document(self) -> results.Document:
        """The run's document, made on first use (the benchmark session's machine info,
        which carries the calibration, is ready by then)."""
        if self.doc is None:
            machine_info = self.config._benchmarksession.get_machine_info()
            self.doc = results.Document.create(
                machine_info=machine_info, code=self.code, label=machine_info.get("label"),
                profile=self.profile.name, budget=self.profile.budget, threads=self.threads,
                version=__version__, pytest_benchmark=pytest_benchmark.__version__)
        return self.doc

    def add(self, stats, case: sweep.Case) -> None:
        """A completed case: its pytest-benchmark record, with the raw rounds."""
        record = stats.as_dict(include_data=True)
        record["params"] = {"case": case.id}
        self.document().add_case(record)
        self.checkpoint()

    def not_timed(self, info: dict, why: str, reason: str) -> None:
        """A case that was not timed, and why (see results.Document.add_not_timed)."""
        self.document().add_not_timed(info, why, reason)
        self.checkpoint()

    def checkpoint(self) -> None:
        if self.out is not None and time.perf_counter() - self.last_write >= CHECKPOINT_SECONDS:
            self.save("running")

    def cases(self) -> list[sweep.Case]:
        """The cases this session runs: the profile's of its provider and methods, but none
        that the run's file holds already (a part restarted after a case stopped it)."""
        out = sweep.cases(self.profile, self.threads, self.provider)
        done = held(self.doc) if self.doc is not None else set()
        return [c for c in out if (self.only is None or c.method in self.only)
                and key(c) not in done]

    def watch(self, case: sweep.Case | None, seconds: float = 0.0) -> None:
        """Say to the driver watching this part (--gb-watch) that ``case`` runs and must end
        within the case timeout plus ``seconds`` from now; None: no case runs."""
        if self.watch_file is None:
            return
        said = None if case is None else {
            "case": case.id, "deadline": time.time() + self.case_timeout + seconds}
        part = self.watch_file.with_name(self.watch_file.name + ".part")
        part.write_text(json.dumps(said))
        os.replace(part, self.watch_file)

    def save(self, status: str, signal: str | None = None) -> None:
        """Write the result file; a failed write (a full disk, say: no later case could be
        saved either) ends the session with :data:`EXIT_UNWRITABLE`."""
        if not self.write(status, signal):
            pytest.exit(self.unwritable(), returncode=EXIT_UNWRITABLE)

    def write(self, status: str, signal: str | None = None) -> bool:
        """Write the result file (``signal``: the one that interrupted the run); False (and
        :attr:`write_error` set) when it failed."""
        if self.out is None:
            return True
        doc = self.document()
        doc.set_status(status, spent=self.budget.spent,
                       wall=self.wall_before + time.perf_counter() - self.started,
                       signal=signal)
        try:
            doc.save(self.out)
        except OSError as exc:
            why = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc)
            self.write_error = f"{self.out}: {why}"
            return False
        self.last_write = time.perf_counter()
        return True

    def unwritable(self) -> str:
        return f"gradbench: cannot save the results to {self.write_error}; the run stops here"


def key(case: sweep.Case) -> tuple:
    """A case's identity as its result records it (results.CASE_KEY; a GPU method by what
    it computes)."""
    return (methods.base_name(case.method), case.sizes, case.batch, case.dtype,
            case.threads, case.device)


def held(doc: results.Document) -> set[tuple]:
    """The identities (as :func:`key` gives them) of the cases a result document holds,
    timed or not."""
    infos = [b["extra_info"] for b in doc.data["benchmarks"]] + doc.not_timed
    return {(i["method"], tuple(i["sizes"]), i["batch"], i["dtype"], i["threads"],
             i.get("device", results.DEFAULT_DEVICE)) for i in infos}


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("benchmark"):
        return
    # SIGTERM and SIGHUP stop the session as Ctrl-C does: its completed cases are saved
    # (a peer's part gets the signal its driver got, passed on)
    config._gradbench_signals = interrupt.install(forget=False)
    try:
        p = sweep.profile(config.getoption("--gb-profile"), config.getoption("--gb-budget"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    threads = config.getoption("--gb-threads")
    try:  # default: every core Numba may use
        threads = numba.config.NUMBA_NUM_THREADS if threads is None else check_threads(threads)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"--gb-{exc}") from None
    # Numba on the run's threads for the session; as it was when the session ends
    config._gradbench_numba_threads = numba_threads(threads).__enter__()
    out = config.getoption("--gb-out")
    provider = config.getoption("--gb-provider")
    if provider not in p.providers:
        raise pytest.UsageError(f"--gb-provider {provider!r} has no methods in profile "
                                f"{p.name}: choose one of {', '.join(p.providers)}")
    if provider != methods.OURS and not config.getoption("--gb-append"):
        # the calibration would start gradbench's BLAS pool in the peer's process
        raise pytest.UsageError(f"--gb-provider {provider} runs as a later part of a run, "
                                "with --gb-append: use gradbench run, which runs each peer "
                                "provider in a process of its own")
    only = config.getoption("--gb-methods")
    only = tuple(only.split(",")) if only else None
    base = _base(out) if config.getoption("--gb-append") else None
    if base is None:
        # at the run's threads, as its cases run: BLAS's default is every core
        budget, calibration = sweep.Budget(p.budget, p.groups()), calibrate(threads=threads)
    else:  # a later part: the machine was calibrated, and budget spent, by the earlier ones
        budget = sweep.Budget(p.budget, p.groups(), spent=base.spent_seconds)
        calibration = base.calibration
    state = State(config, p, threads, config.getoption("--gb-label"), budget, calibration,
                  out=Path(out) if out else None, provider=provider, only=only,
                  part=config.getoption("--gb-part"), doc=base)
    if config.getoption("--gb-watch"):
        state.watch_file = Path(config.getoption("--gb-watch"))
        state.case_timeout = config.getoption("--gb-case-timeout")
    if base is not None:
        state.primal.update(base.primal_times())
        state.wall_before = base.wall_seconds
    config._gradbench = state
    if provider.startswith(f"{methods.OURS}@"):  # gradbench on a GPU: described, calibrated
        state.peer = _device_part(state)
    elif provider != methods.OURS:
        # before any case: this process's thread pools for the provider, limited to threads
        from .. import peers

        state.peer = (peers.configure_process(provider, threads) if provider in peers.MODULES
                      else _configure_plugin_part(provider, threads))


def _configure_plugin_part(provider: str, threads: int) -> dict:
    """A plugin provider's part: BLAS limited to the case's threads (the plugin's own threads
    are its own); what every case of the part records about its library (the plugin's
    distribution and version)."""
    from ..peers import limit_blas

    limit_blas(threads)
    return {"library": f"{methods.plugin_part(provider) or provider} (a gradbench.methods "
                       "plugin)",
            "thread_control": f"BLAS limited to {threads} threads with threadpoolctl; the "
                              "plugin's own threads are its own"}


def _device_part(state: State) -> dict:
    """The GPU part's start: the GPU and its rates (matrix product, memory) measured now,
    saved with the run; what every case of the part records about its library."""
    from ..gpu import gradients

    info = gradients.device_info()
    state.document().set_device(methods.GPU, {"description": info,
                                              "calibration": gradients.calibrate()})
    return {"library": f"numba-cuda {info['numba_cuda']}",
            "thread_control": f"one GPU: {info['name']}"}


def _base(out) -> results.Document:
    """The result document the earlier parts of the run wrote, checked."""
    if not out or not Path(out).is_file():
        raise pytest.UsageError("--gb-append needs --gb-out naming the result file of the "
                                "earlier parts of the run")
    try:
        return results.Document.load(out)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        cases = metafunc.config._gradbench.cases()
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.fixture
def gb_state(request):
    return request.config._gradbench


def pytest_benchmark_update_machine_info(config, machine_info):
    state = getattr(config, "_gradbench", None)
    if state is not None:
        with thread_limits(state.threads):  # the BLAS threads the cases run with
            machine_info.update(describe(state.label))
        machine_info["calibration"] = state.calibration
        machine_info["load_average"] = load_average()  # null where the OS has none


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """For ``--benchmark-json`` files written by pytest-benchmark itself."""
    state = getattr(config, "_gradbench", None)
    if state is not None:
        output_json["gradbench"] = {**state.document().section, "status": "complete"}


def pytest_sessionfinish(session, exitstatus):
    state = getattr(session.config, "_gradbench", None)
    if state is None or state.out is None or state.doc is None:
        return  # nothing to hold: no file
    if state.write_error is not None:
        return  # the file keeps its last good write
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        status = "interrupted"
    elif exitstatus == pytest.ExitCode.OK:
        status = "running" if state.part else "complete"
    else:
        status = "failed"
    # the last write is not to be cut short by a second Ctrl-C: it takes a moment
    with interrupt.deferred():
        if not state.write(status, interrupt.received() if status == "interrupted" else None):
            session.exitstatus = EXIT_UNWRITABLE
            if state.provider != methods.OURS:  # a part in a process of its own: say why
                print(state.unwritable(), file=sys.stderr)


def pytest_unconfigure(config):
    """The process's Numba threads as they were (a run inside another program, or a test)."""
    numba_setting = getattr(config, "_gradbench_numba_threads", None)
    if numba_setting is not None:
        numba_setting.__exit__(None, None, None)
    interrupt.restore(getattr(config, "_gradbench_signals", {}))
