"""The gate's coordinator: two workers, one per side, timed against each other.

The gate runs in *generations*: a pair of worker processes is started, prepares every case
(both compile or load at once, nothing timed), times its share of the seconds, and stops; then
the next pair. A process's memory layout makes it a per cent or two faster or slower for as
long as it lives, the same for every quad it times, so the verdict rests on the spread between
generations, not on one pair's quads alone.

Within a generation the timing goes in rounds: each round visits every case once, in a random
order, and gives it one quad of blocks, base and head alternating as ABBA or BAAB at random; a
block is the same number of calls on either side (fixed by the first generation), about
``block_seconds`` long. Only one side computes at a time: the other waits for its next
request, and the CPU it uses meanwhile is measured (from /proc) and saved.

Beside the profile's cases, the gate times each plugin's method that both sides have
(installed, or loaded with ``--plugin``), on one case each (:func:`gate.profile.plugin_case`),
after checking it as the suite does.

Both sides' blocks are saved as result documents (one per side, each case's rounds its blocks'
seconds per call in time order, with each block's quad, order and generation):
:func:`analyze` computes the verdict from those documents alone, and ``gradbench compare``
and ``gradbench report`` read them as any run.
"""

from __future__ import annotations

import json
import math
import os
import random
import selectors
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import interrupt, results
from ..bench.case import Case
from . import stats
from .profile import SERIAL, GateProfile, at_threads
from .worker import LAYOUT_VARIABLE, PROTOCOL

SIDES = ("base", "head")
#: Seconds a worker may take to greet (it imports NumPy, Numba, SciPy).
HELLO_SECONDS = 120.0
#: Seconds a case's preparation may take (compiling every kernel it needs, cold cache).
PREPARE_SECONDS = 900.0
#: A block may take this many times its expected seconds (and at least HANG_FLOOR) before its
#: worker is declared hung.
HANG_FACTOR, HANG_FLOOR = 50.0, 60.0
#: Seconds between checkpoints of the result files.
CHECKPOINT_SECONDS = 5.0
#: The most characters of padding a worker's environment gets (a layout perturbation: the
#: environment's size moves the stack; Mytkowicz et al., ASPLOS 2009).
PAD_CHARACTERS = 4096
PAD_VARIABLE = "GRADBENCH_GATE_PAD"


class SideError(Exception):
    """A side that cannot take part (not a Python, no gradbench, too old): bad input."""


class WorkerError(Exception):
    """A worker that died, hung or failed during the run."""


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(x.strip() for x in text[-lines:])


class Side:
    """One side's worker process and its conversation."""

    def __init__(self, name: str, python: str, threads: int, label: str,
                 layout: dict | None = None):
        self.name, self.python, self.threads, self.label = name, python, threads, label
        self.layout = layout or {}  # extra environment variables: the layout perturbation
        self.proc: subprocess.Popen | None = None
        self.hello: dict = {}
        self._buffer = b""
        fd, err = tempfile.mkstemp(prefix=f"gradbench-gate-{name}-", suffix=".log")
        os.close(fd)
        self._err = Path(err)  # the worker's standard error, for the reason it stopped

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # its own gradbench
        env.update(self.layout)
        argv = [self.python, "-P", "-m", "gradbench.gate.worker", "--threads",
                str(self.threads), "--label", self.label]
        try:
            # a process group of its own: the terminal's Ctrl-C is the coordinator's
            with self._err.open("wb") as err:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                    **({"process_group": 0} if os.name == "posix" else {}))
        except OSError as exc:
            raise SideError(f"--{self.name} {self.python}: cannot run it ({exc.strerror}): "
                            "give the python of an environment with gradbench") from None

    def greet(self) -> dict:
        line = self._readline(HELLO_SECONDS, "starting")
        if line is None:
            raise SideError(self._why_not_started())
        try:
            hello = json.loads(line)
        except ValueError:
            hello = None
        if not isinstance(hello, dict) or "protocol" not in hello:
            raise SideError(f"--{self.name} {self.python}: its gradbench.gate.worker did not "
                            "greet as a gate worker does")
        if hello["protocol"] != PROTOCOL:
            raise SideError(f"--{self.name} {self.python}: its gradbench "
                            f"{hello.get('gradbench', '?')} speaks gate protocol "
                            f"{hello['protocol']}, this gradbench speaks {PROTOCOL}: run the "
                            f"gate from the newer side's gradbench, or update the other")
        self.hello = hello
        return hello

    def _why_not_started(self) -> str:
        code = self.proc.wait(timeout=30)
        err = self._err.read_text(errors="replace") if self._err.exists() else ""
        who = f"--{self.name} {self.python}"
        if "No module named 'gradbench.gate'" in err:
            return (f"{who}: its gradbench has no gate worker (gradbench.gate): it is older "
                    "than `gradbench ab`; install a gradbench that has it there")
        if "No module named 'gradbench'" in err:
            return (f"{who}: gradbench is not installed in that Python (install it there: "
                    f"{self.python} -m pip install PATH-TO-CHECKOUT)")
        last = _tail(self._err) or f"exit status {code}"
        return f"{who}: its gate worker did not start: {last}"

    def request(self, message: dict, timeout: float, what: str) -> dict:
        """One request and its answer; WorkerError when the worker dies, hangs or fails."""
        self.send(message)
        return self.receive(timeout, what)

    def send(self, message: dict) -> None:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: receiving says how

    def receive(self, timeout: float, what: str) -> dict:
        """The answer to the last request; WorkerError when the worker dies, hangs or
        fails."""
        line = self._readline(timeout, what)
        if line is None:
            code = self.proc.wait(timeout=30)
            last = _tail(self._err)
            raise WorkerError(f"the {self.name} worker died (exit status {code}) while "
                              f"{what}" + (f": {last}" if last else ""))
        try:
            reply = json.loads(line)
        except ValueError:
            reply = {"ok": False, "error": f"an answer that is not JSON: {line[:80]!r}"}
        if not isinstance(reply, dict) or not reply.get("ok"):
            why = reply.get("error") if isinstance(reply, dict) else None
            raise WorkerError(f"the {self.name} worker failed while {what}: "
                              f"{why or 'no reason given'}")
        return reply

    def _readline(self, timeout: float, what: str) -> str | None:
        """The next line from the worker; None at its end; WorkerError (the worker killed)
        after ``timeout`` seconds without one."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill()
                    raise WorkerError(f"the {self.name} worker gave no answer in "
                                      f"{timeout:.0f} s while {what}; it was stopped")
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def cpu_seconds(self) -> float | None:
        """CPU seconds the worker (all its threads) has used; None where /proc has none."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Ask the worker to quit; kill it when it does not in a few seconds. Its pipes and
        its standard error's file go."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.stdin.write(b'{"op": "quit"}\n')
                    self.proc.stdin.flush()
                    self.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    self.kill()
            for pipe in (self.proc.stdin, self.proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        self._err.unlink(missing_ok=True)


@dataclass
class Prepared:
    """A case prepared on both sides."""

    case: Case
    index: int  # the worker's number for it (its place among the prepare requests)
    infos: dict  # side -> case_info
    calls: int  # per block
    call_seconds: float
    blocks: dict = field(default_factory=lambda: {s: [] for s in SIDES})  # side -> rows
    #: side -> [CPU seconds the other side ran while this one was timed, wall seconds of
    #: this side's blocks, seconds its worker waited for its pools to sleep, CPU they ran then]
    idle: dict = field(default_factory=lambda: {s: [0.0, 0.0, 0.0, 0.0] for s in SIDES})


@dataclass
class Outcome:
    status: str  # complete, interrupted, failed
    paths: dict  # side -> Path of its document
    documents: dict  # side -> results.Document
    error: str | None = None
    idle_cpu_share: float | None = None


def _document(side: Side, budget: float, threads: int) -> results.Document:
    """A side's result document. Its files are pytest-benchmark's format, so they carry the
    installed pytest-benchmark's version, read from its distribution (only the suite,
    gradbench.bench, imports pytest-benchmark itself)."""
    from importlib.metadata import version

    h = side.hello
    doc = results.Document.create(machine_info=dict(h["machine"]), code=dict(h["code"]),
                                  label=side.label, profile="gate", budget=budget,
                                  threads=threads, version=h["gradbench"],
                                  pytest_benchmark=version("pytest-benchmark"))
    return doc


def _record(p: Prepared, side: str) -> dict:
    """A side's case as a result record: its blocks' seconds per call as the rounds."""
    rows = p.blocks[side]
    data = [r["seconds"] / p.calls for r in rows]
    record = results.timing_record(data, p.infos[side], name=f"gate[{p.case.id}]")
    idle_cpu, timed, settle, spin = p.idle[side]
    record["extra_info"]["gate"] = {
        "calls": p.calls,
        "idle_cpu_seconds": idle_cpu,  # the other side's CPU while this side was timed
        "timed_seconds": timed,  # wall seconds of this side's blocks, as the coordinator saw
        "settle_seconds": settle,  # this side's wait, after its blocks, for its pools to sleep
        "spin_seconds": spin,  # the CPU its pools ran in that wait
        "quad": [r["quad"] for r in rows],  # the quad each block belongs to
        "order": [r["order"] for r in rows],  # that quad's order, ABBA or BAAB
        "seq": [r["seq"] for r in rows],  # the block's place in the whole run (both sides)
        "generation": [r["generation"] for r in rows],  # which pair of worker processes
    }
    return record


def _save(docs: dict, paths: dict, prepared: list[Prepared], status: str, spent: float,
          wall: float, gate: dict, signal: str | None = None) -> None:
    for side in SIDES:
        doc = docs[side]
        doc.data["benchmarks"] = [_record(p, side) for p in prepared if p.blocks[side]]
        doc.set_status(status, spent=spent, wall=wall, signal=signal)
        doc.set_gate({**gate, "side": side,
                      "pair": paths[SIDES[1 - SIDES.index(side)]].name})
        doc.save(paths[side])


def layout(rng: random.Random) -> dict:
    """A worker's layout perturbation, drawn from ``rng``: the environment variables it
    starts with (its layout seed, a hash seed, padding of the environment's size)."""
    return {LAYOUT_VARIABLE: str(rng.randrange(2**31)),
            "PYTHONHASHSEED": str(rng.randrange(1, 2**32)),
            PAD_VARIABLE: "x" * rng.randrange(PAD_CHARACTERS + 1)}


def run(base: str, head: str, profile: GateProfile, threads: int, paths: dict,
        seed: int | None = None, say=print, perturb: bool = True) -> Outcome:
    """The whole gate: ``profile.generations`` times, start both workers, prepare, time a
    share of ``profile.seconds``, stop them; save.

    Parameters
    ----------
    base, head : str
        Each side's Python (the executable of the environment it times).
    profile : GateProfile
        What to time and for how long: its cases, the seconds of timed blocks, the seconds
        a block aims at and the generations of workers.
    threads : int
        The run's threads: those of the profile's cases that run on the run's threads (the
        numerical methods' parallel drivers); the others run on one.
    paths : dict
        Side -> the file its result document goes to.
    seed : int, optional
        Seed of the order of cases and of each quad (ABBA or BAAB).
    say : callable
        Where progress goes, one line a call.
    perturb : bool
        Start each worker with its memory layout perturbed at random (:func:`layout`), so
        that a process's layout offset varies between generations; False starts every worker
        alike (to measure the offset that an install keeps).

    Returns
    -------
    Outcome

    Raises
    ------
    SideError
        For a side that cannot take part (nothing written).
    """
    cases, seconds = at_threads(profile.cases, threads), profile.seconds
    block_seconds, generations = profile.block_seconds, profile.generations
    rng = random.Random(seed)
    layouts = random.Random(f"{seed}-layout" if seed is not None else None)
    started = time.perf_counter()
    docs: dict = {}
    prepared: list[Prepared] = []
    gate = {"base_python": base, "head_python": head, "seed": seed,
            "block_seconds": block_seconds, "generations": generations,
            "perturbed": perturb, "layouts": []}
    status, error = "running", None
    clock = {"spent": 0.0, "quads": 0, "blocks": 0, "last_save": time.perf_counter(),
             "cpu": 0.0, "wall": 0.0, "own": 0.0}

    def save(status, signal=None):
        _save(docs, paths, prepared, status, clock["spent"], time.perf_counter() - started,
              {**gate, "idle_cpu_seconds": clock["cpu"], "timed_seconds": clock["wall"],
               "coordinator_cpu_seconds": clock["own"]}, signal)

    sides: dict = {}
    try:
        for gen in range(generations):
            # every worker starts on one thread; each case asks for its own
            sides = {n: Side(n, py, SERIAL, n, layout(layouts) if perturb else None)
                     for n, py in (("base", base), ("head", head))}
            for s in sides.values():
                s.start()
            for s in sides.values():
                s.greet()
            gate["layouts"].append({n: s.hello.get("layout") for n, s in sides.items()})
            if gen == 0:
                _first_greeting(sides, gate, say)
                cases += _plugin_cases(sides, threads, say)
                docs = {n: _document(s, seconds, threads) for n, s in sides.items()}
                prepared = _prepare(sides, cases, docs, block_seconds, say)
                say(f"gradbench ab: timing {len(prepared)} cases, quads of blocks of about "
                    f"{block_seconds:g} s, for {seconds:g} s in {generations} generation"
                    f"{'s' if generations > 1 else ''} of workers")
            else:
                _prepare_again(sides, prepared)
            until = seconds * (gen + 1) / generations
            first = clock["quads"]
            while prepared and (clock["spent"] < until or clock["quads"] - first
                                < _least_rounds(generations)):
                _round(sides, prepared, rng, gen, clock)
                if time.perf_counter() - clock["last_save"] >= CHECKPOINT_SECONDS:
                    save("running")
                    clock["last_save"] = time.perf_counter()
            for s in sides.values():
                s.stop()
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
    except WorkerError as exc:
        status, error = "failed", str(exc)
    finally:
        for s in sides.values():
            s.stop()
    if docs:
        with interrupt.deferred():
            save(status, interrupt.received() if status == "interrupted" else None)
    share = clock["cpu"] / clock["wall"] if clock["wall"] > 0 else None
    return Outcome(status, paths if docs else {}, docs, error, share)


def _least_rounds(generations: int) -> int:
    """Rounds each generation times at least: MIN_QUADS in all."""
    return max(1, math.ceil(stats.MIN_QUADS / generations))


def _first_greeting(sides: dict, gate: dict, say) -> None:
    for s in sides.values():
        h = s.hello
        say(f"gradbench ab: {s.name}: gradbench {h['gradbench']} ({_source(h)}), "
            f"{h['executable']}")
    # the same code: both import the same gradbench (the same folder)
    gate["same_environment"] = same = (sides["base"].hello.get("package")
                                       == sides["head"].hello.get("package"))
    if same:
        say(f"gradbench ab: base and head import the same gradbench "
            f"({sides['base'].hello.get('package')}): an A/A run; any method flagged "
            "slower is a false alarm")


def _plugin_cases(sides: dict, threads: int, say) -> list[Case]:
    """The cases of the plugins' methods both sides have (each side's greeting lists its own,
    with the case to time them on: the base's where they differ; on one thread, and on the
    run's ``threads`` too for a method both call threaded); those only one side has said, not
    timed."""
    have = {n: s.hello.get("plugins") or {} for n, s in sides.items()}
    out = []
    for name, base in have["base"].items():
        head = have["head"].get(name)
        if head is None:
            continue
        c = base["case"]
        mine = [Case(name, c["sizes"], c["batch"], c["dtype"], SERIAL)]
        if threads > SERIAL and base.get("threaded") and head.get("threaded"):
            mine.append(Case(name, c["sizes"], c["batch"], c["dtype"], threads))
        out += mine
        say(f"gradbench ab: plugin method {name} on both sides (base: {base['plugin']}, head: "
            f"{head['plugin']}): timed on {' and '.join(m.id for m in mine)}")
    for n, mine in have.items():
        other = SIDES[1 - SIDES.index(n)]
        for name in (m for m in mine if m not in have[other]):
            say(f"gradbench ab: plugin method {name} ({mine[name]['plugin']}) only on {n}; "
                "not timed")
    return out


def _round(sides: dict, prepared: list, rng, gen: int, clock: dict) -> None:
    """One round: every case once, in a random order, one quad each (ABBA or BAAB)."""
    order_of_cases = list(prepared)
    rng.shuffle(order_of_cases)
    for p in order_of_cases:
        order = rng.choice(stats.ORDERS)
        for letter in order:
            side = "base" if letter == "A" else "head"
            other = sides["head" if side == "base" else "base"]
            own0, cpu0 = time.process_time(), other.cpu_seconds()
            t0 = time.perf_counter()
            reply = sides[side].request(
                {"op": "time", "case": p.index, "calls": p.calls},
                max(HANG_FLOOR, HANG_FACTOR * p.calls * p.call_seconds),
                f"timing {p.case.id}")
            wall = time.perf_counter() - t0
            cpu1, own1 = other.cpu_seconds(), time.process_time()
            clock["own"] += own1 - own0
            idle = p.idle[side]
            idle[2] += float(reply.get("settle_seconds", 0.0))
            idle[3] += float(reply.get("spin_seconds", 0.0))
            if cpu0 is not None and cpu1 is not None:
                clock["cpu"] += cpu1 - cpu0
                clock["wall"] += wall
                idle[0] += cpu1 - cpu0
                idle[1] += wall
            p.blocks[side].append({"seconds": float(reply["seconds"]),
                                   "quad": clock["quads"], "order": order,
                                   "seq": clock["blocks"], "generation": gen})
            clock["blocks"] += 1
            clock["spent"] += wall
    clock["quads"] += 1


def _source(hello: dict) -> str:
    code = hello.get("code") or {}
    if code.get("commit"):
        return f"commit {code['commit'][:10]}" + (" with changes" if code.get("dirty") else "")
    return code.get("source", "?")


def _prepare(sides: dict, cases: list[Case], docs: dict, block_seconds: float,
             say) -> list[Prepared]:
    """Every case compiled and warmed on both sides (both at once); cases a side cannot run
    recorded as unavailable on that side."""
    out = []
    for i, case in enumerate(cases):
        what = f"preparing {case.id}"
        for s in sides.values():  # both compile at once
            s.send({"op": "prepare", "case": case.request()})
        replies = {name: s.receive(PREPARE_SECONDS, what) for name, s in sides.items()}
        for r in replies.values():
            had = r.get("case_info", {}).get("threads", case.threads)
            if had != case.threads:
                r["unavailable"] = (f"its gate worker timed it on {had} thread(s), not "
                                    f"{case.threads}: a gradbench older than the gate's "
                                    "per-case threads")
        missing = {n: r["unavailable"] for n, r in replies.items() if "unavailable" in r}
        if missing:
            for n, why in missing.items():
                other = [r for r in replies.values() if "unavailable" not in r]
                if other:
                    docs[n].add_not_timed(other[0]["case_info"], "rejected" if why.startswith(
                        "rejected:") else "unavailable", why)
                say(f"gradbench ab: {case.id}: not on {n} ({why}); not timed")
            continue
        call = math.sqrt(math.prod(_call_seconds(s, i, replies[n]["call_seconds"],
                                                 block_seconds, what)
                                   for n, s in sides.items()))
        calls = max(1, round(block_seconds / call))
        out.append(Prepared(case, i, {n: r["case_info"] for n, r in replies.items()}, calls,
                            call))
    return out


def _call_seconds(side: Side, index: int, estimate: float, block_seconds: float,
                  what: str) -> float:
    """A prepared case's seconds per call on ``side``, the other idle: half a block's worth of
    calls by the preparation's ``estimate`` (made while both sides compiled and warmed at
    once, which on a case of several threads overstates it by as much as 3x), timed."""
    calls = max(1, math.ceil(0.5 * block_seconds / estimate))
    reply = side.request({"op": "time", "case": index, "calls": calls},
                         max(HANG_FLOOR, HANG_FACTOR * calls * estimate), what)
    return max(float(reply["seconds"]), 1e-9) / calls


def _prepare_again(sides: dict, prepared: list[Prepared]) -> None:
    """A new generation of workers: the cases the first one timed, in the same order (the
    workers number them so), with the same calls per block."""
    for i, p in enumerate(prepared):
        what = f"preparing {p.case.id}"
        for s in sides.values():
            s.send({"op": "prepare", "case": p.case.request()})
        for s in sides.values():
            reply = s.receive(PREPARE_SECONDS, what)
            if "unavailable" in reply:
                raise WorkerError(f"the {s.name} worker could not prepare {p.case.id} again: "
                                  f"{reply['unavailable']}")
        p.index = i


def analyze(base: results.Document, head: results.Document,
            threshold: float = stats.THRESHOLD) -> tuple[list[dict], list[dict]]:
    """The verdict from the two documents: one row per case and one per method and threads
    (a method timed on one thread and on several is judged on each apart: its serial and its
    parallel drivers are different code), each with its :class:`stats.Estimate`; a case's
    row also holds ``idle_share``, the CPU the idle side used while the other was timed, in
    cores (None where it was not measured)."""
    def blocks(doc):
        out = {}
        for b in doc.data["benchmarks"]:
            info = b["extra_info"]
            gate = info.get("gate")
            if not gate:
                continue
            key = (info["method"], tuple(info["sizes"]), info["batch"], info["dtype"],
                   info.get("threads"))
            out[key] = (info, gate, b["stats"]["data"])
        return out

    a, b = blocks(base), blocks(head)
    case_rows, per_gen, factors = [], {}, {}
    for key in [k for k in a if k in b]:
        (info, ga, da), (_, gb, db) = a[key], b[key]
        gens, d = _quad_differences(ga, da, gb, db)
        est = stats.case_estimate(d, threshold, generations=gens)
        case_rows.append({"method": key[0], "sizes": key[1], "batch": key[2],
                          "dtype": key[3], "threads": key[4], "n_params": info.get("n_params"),
                          "estimate": est, "idle_share": _idle_share(ga, gb)})
        group = key[0], key[4]  # the method on its threads
        if len(set(gens)) >= stats.MIN_GENERATIONS:  # the case's winsorized mean per generation
            w, _, factor = stats.winsorized(d)
            factors.setdefault(group, []).append(factor)
            for g, x in stats.by_generation(w, gens).items():
                per_gen.setdefault(group, {}).setdefault(g, {})[key] = float(sum(x) / len(x))
    method_rows = []
    for group in dict.fromkeys((r["method"], r["threads"]) for r in case_rows):
        rows = [r for r in case_rows if (r["method"], r["threads"]) == group]
        mine = [r["estimate"] for r in rows]
        means = None
        if group in per_gen:  # generations in which every case of the method was timed, the
            # cases weighted as in the method's estimate
            keys = [(*group[:1], r["sizes"], r["batch"], r["dtype"], group[1]) for r in rows]
            w = dict(zip(keys, stats.precision_weights(mine), strict=True))
            means = [sum(w[k] * x for k, x in v.items()) for v in per_gen[group].values()
                     if len(v) == len(mine)]
        f = factors.get(group, [1.0])
        method_rows.append({"method": group[0], "threads": group[1],
                            "estimate": stats.method_estimate(
                                mine, threshold, per_generation=means, factor=sum(f) / len(f))})
    return case_rows, method_rows


def _idle_share(*gates: dict) -> float | None:
    """The CPU the idle side used while the other was timed, in cores, over both sides'
    blocks of a case (None for files from before it was measured per case)."""
    cpu = sum(g.get("idle_cpu_seconds") or 0.0 for g in gates)
    wall = sum(g.get("timed_seconds") or 0.0 for g in gates)
    return cpu / wall if wall > 0 else None


def label(row: dict) -> str:
    """A method row's name in the verdict: the method and its threads
    (``numerical:central:naive (2 threads)``)."""
    t = row.get("threads")
    return row["method"] if t is None else f"{row['method']} ({t} thread{'s' * (t != 1)})"


def _quad_differences(ga: dict, da: list, gb: dict, db: list) -> tuple[list, list[float]]:
    """Per quad complete on both sides (two blocks each), in time order: its generation of
    workers, and head's mean log time minus base's."""
    def by_quad(g, data):
        out: dict = {}
        for q, t in zip(g["quad"], data, strict=False):
            out.setdefault(q, []).append(math.log(t))
        return out

    gen = dict(zip(ga["quad"], ga.get("generation") or [0] * len(ga["quad"]), strict=False))
    qa, qb = by_quad(ga, da), by_quad(gb, db)
    quads = sorted(q for q in qa if q in qb and len(qa[q]) == 2 and len(qb[q]) == 2)
    return [gen[q] for q in quads], [sum(qb[q]) / 2 - sum(qa[q]) / 2 for q in quads]


__all__ = ["run", "analyze", "label", "layout", "Side", "SideError", "WorkerError", "Outcome"]
