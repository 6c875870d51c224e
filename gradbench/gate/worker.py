"""One side of the gate: a long-lived process that imports its own gradbench, prepares cases
and times blocks of calls when the coordinator asks (``python -m gradbench.gate.worker``).

The protocol is one JSON object per line. The worker speaks first, a greeting::

    {"protocol": 1, "gradbench": "0.1.0", "code": {...}, "machine": {...}, "pid": 123,
     "plugins": {"forward_ad:jvp": {"plugin": "gradbench-forward-ad 0.1.0", "case": {...},
                                    "threaded": false}},
     "features": ["threads", "settle", "layout"], "layout": {...}, ...}

(``plugins``: the plugins' methods this side has, each with the case it would be timed on;
``features``: what this worker does beyond protocol 1's first version, which a coordinator
may rely on: ``threads``, a case's own threads in ``prepare``; ``settle``, answers to
``time`` only once the thread pools sleep; ``layout``, a memory layout perturbed at start,
described by ``layout``.)

then answers each request on stdin with one line, ``{"ok": true, ...}`` or ``{"ok": false,
"error": "..."}``:

* ``{"op": "prepare", "case": {"method", "sizes", "batch", "dtype", "threads"}}``: build the
  network and its batch (seed 0, as the suite does), compile and warm the method on the
  case's threads (the worker's ``--threads`` when it has none), call it until settled,
  estimate its seconds per call; answers ``case_info`` (the side's own record of the case),
  ``compile_seconds`` and ``call_seconds``, or ``unavailable`` (why) for a method not
  installed or not known to this side's gradbench, or a peer's or plugin's method rejected
  (its gradient checked as the suite checks it; a plugin that raised). Nothing in
  ``prepare`` is timed for the result.
* ``{"op": "time", "case": i, "calls": n}``: ``n`` calls of prepared case ``i`` (the i-th
  prepare) on its threads, one clock reading before and one after; then waits until the
  process's other threads stop running (a thread pool spins for a while after parallel work:
  Numba's OpenMP pool about 10 ms, a threaded OpenBLAS call's pool about 100 ms) and answers
  ``seconds``, ``settle_seconds`` (that wait) and ``spin_seconds`` (the CPU its other
  threads ran meanwhile).
* ``{"op": "quit"}``: ends the process.

While it waits for a request the worker does nothing: it blocks reading stdin, and its thread
pools sleep, having settled before it answered (the coordinator measures the CPU it uses
meanwhile).

Its memory layout is perturbed at start, from the seed in ``GRADBENCH_GATE_LAYOUT`` (the
coordinator draws one per worker, with the hash seed and the size of the environment): the
heap is offset by a random number of small allocations and the case's arrays by a random
one before each prepare, so that where the code's data lands differs from process to
process and not from install to install (a fixed layout makes two installs of the same code
differ by a per cent or two for as long as they live). Its standard output
carries the protocol alone (anything a library prints goes to standard error). Ctrl-C is the
coordinator's to handle: the worker runs in a process group of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time

#: The protocol this worker speaks; the coordinator refuses a worker that speaks another.
PROTOCOL = 1
#: Untimed calls before a case's estimate, and the least time they take together.
SETTLE_CALLS = 3
SETTLE_SECONDS = 0.05
#: What this worker does beyond protocol 1's first version (see the module docstring).
FEATURES = ("threads", "settle", "layout")
#: The environment variable that carries the worker's layout seed.
LAYOUT_VARIABLE = "GRADBENCH_GATE_LAYOUT"
#: After a block: poll the other threads' CPU every POLL seconds until one poll finds them
#: using less than QUIET of it (a pool asleep), for at most PATIENCE seconds.
POLL, QUIET, PATIENCE = 0.001, 0.05, 1.0


class Worker:
    """The worker's state: its thread count and its prepared cases."""

    def __init__(self, threads: int, label: str, layout: Layout | None = None):
        self.threads = threads
        self.label = label
        self.layout = layout or Layout(None)
        self.cases: list = []  # (callable, threads) of each prepared case (None: unavailable)

    def hello(self) -> dict:
        import platform
        import socket

        import gradbench
        from gradbench import machine

        info = machine.describe(self.label)
        info.update(node=socket.gethostname(), python_version=platform.python_version(),
                    system=platform.system(), release=platform.release(),
                    machine=platform.machine(), load_average=machine.load_average())
        return {"protocol": PROTOCOL, "gradbench": gradbench.__version__,
                "code": machine.code_info(), "machine": info, "pid": os.getpid(),
                "executable": sys.executable,
                "package": os.path.dirname(os.path.abspath(gradbench.__file__)),
                "plugins": _plugins(), "features": list(FEATURES),
                "layout": self.layout.describe()}

    def prepare(self, case: dict) -> dict:
        from gradbench import methods
        from gradbench.bench.case import Case
        from gradbench.blas import check_threads, thread_limits
        from gradbench.data import make_batch
        from gradbench.model import MLP

        name = case["method"]
        sizes, batch, dtype = [int(s) for s in case["sizes"]], int(case["batch"]), case["dtype"]
        threads = check_threads(int(case.get("threads", self.threads)))
        if name not in methods.REGISTRY:
            self.cases.append(None)
            return {"ok": True, "unavailable": f"{name} is not a method of this gradbench"}
        method = methods.get(name)
        if not method.available():
            self.cases.append(None)
            return {"ok": True, "unavailable": method.unavailable_reason()}
        self.layout.offset()  # where this case's arrays land
        net = MLP(sizes, activation="sigmoid", loss="softmax_ce", dtype=dtype, seed=0)
        X, T = make_batch(net, batch, seed=0)
        with thread_limits(threads):
            try:
                compile_seconds, fn = self._ready(method, net, X, T, threads)
            except _Rejected as exc:
                self.cases.append(None)
                return {"ok": True, "unavailable": str(exc)}
            calls, t0 = 0, time.perf_counter()
            while calls < SETTLE_CALLS or time.perf_counter() - t0 < SETTLE_SECONDS:
                fn()
                calls += 1
            call_seconds = (time.perf_counter() - t0) / calls
        self.cases.append((fn, threads))
        info = Case(name, sizes, batch, dtype, threads).info()
        return {"ok": True, "case_info": info, "compile_seconds": compile_seconds,
                "call_seconds": call_seconds}

    def _ready(self, method, net, X, T, threads):
        """The method compiled and built: (its compile seconds, the callable to time). A
        peer's or a plugin's is checked as the suite checks it (gradbench.peers.agreement):
        a wrong gradient, or a plugin that raises, is _Rejected, not timed."""
        from gradbench import methods
        from gradbench.peers import agreement

        given = agreement.inputs(net, X, T) if method.tolerance is not None else None
        try:
            seconds = method.warm(net, threads) + method.warm(net, threads, X.shape[0])
            fn = method.build(net, X, T, threads)
            if given is not None:
                checked = agreement.check(method, net, X, T, fn(), fn, given)
                if not checked.passed:
                    raise _Rejected(checked.reason(method.name))
        except Exception as exc:
            if method.plugin is None or isinstance(exc, _Rejected):
                raise
            raise _Rejected(f"rejected: plugin {method.plugin}'s {method.name} raised "
                            f"{methods.raised(exc)}") from None
        return seconds, fn

    def time(self, case: int, calls: int) -> dict:
        from gradbench.blas import thread_limits

        fn, threads = self.cases[case]
        clock = time.perf_counter
        with thread_limits(threads):
            t0 = clock()
            for _ in range(calls):
                fn()
            seconds = clock() - t0
        waited, spun = settle()
        return {"ok": True, "seconds": seconds, "settle_seconds": waited,
                "spin_seconds": spun}

    def handle(self, request: dict) -> dict | None:
        op = request.get("op")
        if op == "prepare":
            return self.prepare(request["case"])
        if op == "time":
            return self.time(int(request["case"]), int(request["calls"]))
        if op == "quit":
            return None
        return {"ok": False, "error": f"unknown request {op!r}"}


def pool_cpu() -> float | None:
    """CPU seconds run so far by this process's threads other than the calling one; None
    where there is no /proc. Each thread's CPU clock is read (Linux's clock id of a thread:
    ``(~tid << 3) | 6``), which brings a running thread's time up to date: its schedstat
    moves only at the scheduler's ticks, 4 ms apart, too coarse to tell a pool asleep."""
    me = str(threading.get_native_id())
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    total = 0.0
    for t in tasks:
        if t == me:
            continue
        try:
            total += time.clock_gettime((~int(t) << 3) | 6)
        except (OSError, ValueError, OverflowError):  # a thread that ended meanwhile
            pass
    return total


def settle(poll: float = POLL, quiet: float = QUIET, patience: float = PATIENCE):
    """Wait until the other threads sleep: (seconds waited, CPU seconds they ran meanwhile).
    Returns at once, (0, 0), where their CPU cannot be read."""
    clock = time.perf_counter
    start, last = clock(), pool_cpu()
    if last is None:
        return 0.0, 0.0
    spun = 0.0
    while clock() - start < patience:
        t0 = clock()
        time.sleep(poll)
        now = pool_cpu()
        ran, last = max(0.0, now - last), now
        spun += ran
        if ran < quiet * (clock() - t0):
            break
    return clock() - start, spun


class Layout:
    """The worker's memory layout, perturbed from a seed (None: left as it is): the heap
    offset at start by a random number of small allocations, and before each case by one
    more; kept alive for the process's life."""

    def __init__(self, seed: int | None):
        self.seed = seed
        self._rng = random.Random(seed)
        self._kept: list = []
        self.start_bytes = 0
        if seed is not None:
            sizes = [self._rng.randrange(16, 4096) for _ in range(self._rng.randrange(64))]
            self._kept = [bytearray(n) for n in sizes]
            self.start_bytes = sum(sizes)

    def offset(self) -> None:
        """One more random allocation (before a case's arrays are made)."""
        if self.seed is not None:
            self._kept.append(bytearray(self._rng.randrange(16, 65536)))

    def describe(self) -> dict:
        return {"seed": self.seed, "hash_seed": os.environ.get("PYTHONHASHSEED"),
                "environment_bytes": sum(len(k) + len(v) + 2 for k, v in os.environ.items()),
                "heap_offset_bytes": self.start_bytes}


class _Rejected(Exception):
    """A method whose case is not timed: why, in one line."""


def _plugins() -> dict:
    """The plugins' methods installed on this side: name -> their plugin (distribution and
    version) and the case the gate times them on (gate.profile.plugin_case)."""
    from gradbench import methods

    from .profile import plugin_case

    return {m.name: {"plugin": methods.plugin_part(m.part) or m.plugin,
                     "case": plugin_case(m).request(), "threaded": bool(m.threaded)}
            for m in methods.REGISTRY.values() if m.plugin is not None and m.available()}


def serve(worker: Worker, requests, answer) -> None:
    """Answer ``requests`` (lines) through ``answer`` (a function of one dict) until quit or
    the end of input."""
    answer(worker.hello())
    for line in requests:
        try:
            reply = worker.handle(json.loads(line))
        except Exception as exc:  # the coordinator reports it with the side and the case
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if reply is None:
            return
        answer(reply)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradbench.gate.worker")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--label", default=None)
    args = parser.parse_args(argv)
    # the protocol's channel is the real standard output; print() goes to standard error
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr

    def answer(reply: dict) -> None:
        channel.write(json.dumps(reply) + "\n")

    seed = os.environ.get(LAYOUT_VARIABLE)
    layout = Layout(int(seed) if seed and seed.isdigit() else None)

    from gradbench.blas import thread_limits

    with thread_limits(args.threads):
        serve(Worker(args.threads, args.label, layout), sys.stdin, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
