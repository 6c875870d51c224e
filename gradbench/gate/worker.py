"""One side of the gate: a long-lived process that imports its own gradbench, prepares cases
and times blocks of calls when the coordinator asks (``python -m gradbench.gate.worker``).

The protocol is one JSON object per line. The worker speaks first, a greeting::

    {"protocol": 1, "gradbench": "0.1.0", "code": {...}, "machine": {...}, "pid": 123,
     "plugins": {"forward_ad:jvp": {"plugin": "gradbench-forward-ad 0.1.0", "case": {...}}},
     ...}

(``plugins``: the plugins' methods this side has, each with the case it would be timed on.)

then answers each request on stdin with one line, ``{"ok": true, ...}`` or ``{"ok": false,
"error": "..."}``:

* ``{"op": "prepare", "case": {"method", "sizes", "batch", "dtype"}}``: build the network and
  its batch (seed 0, as the suite does), compile and warm the method, call it until settled,
  estimate its seconds per call; answers ``case_info`` (the side's own record of the case),
  ``compile_seconds`` and ``call_seconds``, or ``unavailable`` (why) for a method not
  installed or not known to this side's gradbench, or a peer's or plugin's method rejected
  (its gradient checked as the suite checks it; a plugin that raised). Nothing in
  ``prepare`` is timed for the result.
* ``{"op": "time", "case": i, "calls": n}``: ``n`` calls of prepared case ``i`` (the i-th
  prepare), one clock reading before and one after; answers ``seconds``.
* ``{"op": "quit"}``: ends the process.

While it waits for a request the worker does nothing: it blocks reading stdin, and its thread
pools are idle (the coordinator measures the CPU it uses meanwhile). Its standard output
carries the protocol alone (anything a library prints goes to standard error). Ctrl-C is the
coordinator's to handle: the worker runs in a process group of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

#: The protocol this worker speaks; the coordinator refuses a worker that speaks another.
PROTOCOL = 1
#: Untimed calls before a case's estimate, and the least time they take together.
SETTLE_CALLS = 3
SETTLE_SECONDS = 0.05


class Worker:
    """The worker's state: its thread count and its prepared cases."""

    def __init__(self, threads: int, label: str):
        self.threads = threads
        self.label = label
        self.cases: list = []  # the callable of each prepared case (None: unavailable)

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
                "plugins": _plugins()}

    def prepare(self, case: dict) -> dict:
        from gradbench import methods
        from gradbench.bench.case import Case
        from gradbench.data import make_batch
        from gradbench.model import MLP

        name = case["method"]
        sizes, batch, dtype = [int(s) for s in case["sizes"]], int(case["batch"]), case["dtype"]
        if name not in methods.REGISTRY:
            self.cases.append(None)
            return {"ok": True, "unavailable": f"{name} is not a method of this gradbench"}
        method = methods.get(name)
        if not method.available():
            self.cases.append(None)
            return {"ok": True, "unavailable": method.unavailable_reason()}
        net = MLP(sizes, activation="sigmoid", loss="softmax_ce", dtype=dtype, seed=0)
        X, T = make_batch(net, batch, seed=0)
        try:
            compile_seconds, fn = self._ready(method, net, X, T)
        except _Rejected as exc:
            self.cases.append(None)
            return {"ok": True, "unavailable": str(exc)}
        calls, t0 = 0, time.perf_counter()
        while calls < SETTLE_CALLS or time.perf_counter() - t0 < SETTLE_SECONDS:
            fn()
            calls += 1
        call_seconds = (time.perf_counter() - t0) / calls
        self.cases.append(fn)
        info = Case(name, sizes, batch, dtype, self.threads).info()  # on this side's threads
        return {"ok": True, "case_info": info, "compile_seconds": compile_seconds,
                "call_seconds": call_seconds}

    def _ready(self, method, net, X, T):
        """The method compiled and built: (its compile seconds, the callable to time). A
        peer's or a plugin's is checked as the suite checks it (gradbench.peers.agreement):
        a wrong gradient, or a plugin that raises, is _Rejected, not timed."""
        from gradbench import methods
        from gradbench.peers import agreement

        given = agreement.inputs(net, X, T) if method.tolerance is not None else None
        try:
            seconds = method.warm(net, self.threads) + method.warm(net, self.threads, X.shape[0])
            fn = method.build(net, X, T, self.threads)
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
        fn = self.cases[case]
        clock = time.perf_counter
        t0 = clock()
        for _ in range(calls):
            fn()
        return {"ok": True, "seconds": clock() - t0}

    def handle(self, request: dict) -> dict | None:
        op = request.get("op")
        if op == "prepare":
            return self.prepare(request["case"])
        if op == "time":
            return self.time(int(request["case"]), int(request["calls"]))
        if op == "quit":
            return None
        return {"ok": False, "error": f"unknown request {op!r}"}


class _Rejected(Exception):
    """A method whose case is not timed: why, in one line."""


def _plugins() -> dict:
    """The plugins' methods installed on this side: name -> their plugin (distribution and
    version) and the case the gate times them on (gate.profile.plugin_case)."""
    from gradbench import methods

    from .profile import plugin_case

    return {m.name: {"plugin": methods.plugin_part(m.part) or m.plugin,
                     "case": plugin_case(m).request()}
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

    from gradbench.blas import thread_limits

    with thread_limits(args.threads):
        serve(Worker(args.threads, args.label), sys.stdin, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
