"""`gradbench ab` end to end: the worker's protocol, the coordinator with two sides (this
environment twice: an A/A run), the result files, bad sides, a worker that dies or hangs, and
Ctrl-C. Never a verdict that depends on timing: where a gate runs to its verdict, its workers
report seconds of the test's (the calls are made, their times replaced), and the exit status
follows from those. Hangs and Ctrl-C come on a handshake (a file the worker writes), not after a
while.
"""

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numba
import pytest

from gradbench import results
from gradbench.gate import coordinator, profile, stats, worker
from gradbench.gate.worker import PROTOCOL

from .conftest import cli_main, wait_until

PY = sys.executable
TINY = ["--profile", "tiny", "--seconds", "0.3", "--seed", "1"]
#: Two threads for the parallel cases, where Numba may run them (one core: every case on one).
THREADS = 2 if numba.config.NUMBA_NUM_THREADS >= 2 else 1
#: The time requests each worker of a first generation gets before its first block: one per
#: case of the tiny profile (on the run's threads: all cores by default), its calls timed.
CALIBRATIONS = len(profile.at_threads(profile.PROFILES["tiny"].cases,
                                      numba.config.NUMBA_NUM_THREADS))


def gate(capsys, tmp_path, *args, base=PY, head=PY):
    return cli_main(capsys, "ab", "--base", base, "--head", head, "--out", tmp_path / "r",
                    *args)


def documents(tmp_path) -> dict:
    files = sorted((tmp_path / "r").glob("ab-*.json"))
    return {f.stem.rsplit("-", 1)[1]: results.Document.load(f) for f in files}


def wrapper(tmp_path, name: str, code: str) -> str:
    """A side's "python": the coordinator's arguments (-P -m gradbench.gate.worker) replaced
    by a program of the test's, which gets the worker's own options."""
    program = tmp_path / f"{name}.py"
    program.write_text(code)
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\nshift 3\nexec {PY} -P {program} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def patched_worker(patch: str) -> str:
    """The real worker with Worker.time preceded by ``patch`` (statements that see
    ``calls``, the number of time requests so far, this one included, the first
    :data:`CALIBRATIONS` of them before any block)."""
    body = textwrap.indent(textwrap.dedent(patch).strip(), " " * 4)
    return ("import os, sys, time\n"
            "import gradbench.gate.worker as w\n"
            "orig = w.Worker.time\n"
            "calls = 0\n"
            "def patched(self, case, n):\n"
            "    global calls\n"
            "    calls += 1\n"
            f"{body}\n"
            "    return orig(self, case, n)\n"
            "w.Worker.time = patched\n"
            "sys.exit(w.main(sys.argv[1:]))\n")


def synthetic_worker(jitter: str) -> str:
    """The real worker, whose blocks report made-up seconds: a case's block of n calls takes
    n * 1e-5 * (case + 1) seconds, times 1 + jitter / 400, where ``jitter`` (an expression of
    k, this case's k-th block on this side) lies within [-1, 1]. Within 0.25 %, the ratio of
    two such sides never exceeds 1.0025 / 0.9975 = 1.0050, under any threshold above that
    (the gate's is 1.01 or more): no method is slower, whatever the machine."""
    return ("import sys\n"
            "import gradbench.gate.worker as w\n"
            "orig = w.Worker.time\n"
            "blocks = {}\n"
            "def synthetic(self, case, n):\n"
            "    reply = orig(self, case, n)\n"
            "    k = blocks[case] = blocks.get(case, 0) + 1\n"
            f"    reply['seconds'] = n * 1e-5 * (case + 1) * (1 + ({jitter}) / 400)\n"
            "    return reply\n"
            "w.Worker.time = synthetic\n"
            "sys.exit(w.main(sys.argv[1:]))\n")


@pytest.mark.slow
def test_the_worker_speaks_its_protocol():
    proc = subprocess.Popen([PY, "-P", "-m", "gradbench.gate.worker", "--threads", "1",
                             "--label", "x"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    hello = json.loads(proc.stdout.readline())
    assert hello["protocol"] == PROTOCOL and hello["pid"] == proc.pid
    assert {"gradbench", "code", "machine", "executable", "package"} <= set(hello)
    assert hello["machine"]["label"] == "x"
    assert set(worker.FEATURES) <= set(hello["features"])
    assert hello["layout"]["seed"] is None  # no GRADBENCH_GATE_LAYOUT: left as it is

    def ask(message):
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    ready = ask({"op": "prepare", "case": {"method": "backprop", "sizes": [5, 3, 2],
                                           "batch": 4, "dtype": "float64"}})
    assert ready["ok"] and ready["call_seconds"] > 0 and ready["compile_seconds"] >= 0
    assert ready["case_info"]["method"] == "backprop" and ready["case_info"]["threads"] == 1
    missing = ask({"op": "prepare", "case": {"method": "no-such", "sizes": [5, 3, 2],
                                             "batch": 4, "dtype": "float64"}})
    assert missing["ok"] and "not a method" in missing["unavailable"]
    timed = ask({"op": "time", "case": 0, "calls": 7})
    assert timed["ok"] and timed["seconds"] > 0
    assert timed["settle_seconds"] >= 0 and timed["spin_seconds"] >= 0
    # a case's own threads: its case_info says them (an older worker's says its own)
    wide = ask({"op": "prepare", "case": {"method": "numerical:central:incremental",
                                          "sizes": [5, 3, 2], "batch": 4, "dtype": "float64",
                                          "threads": THREADS}})
    assert wide["ok"] and wide["case_info"]["threads"] == THREADS
    assert ask({"op": "time", "case": 2, "calls": 2})["ok"]
    too_many = ask({"op": "prepare", "case": {"method": "backprop", "sizes": [5, 3, 2],
                                              "batch": 4, "dtype": "float64", "threads": 10**4}})
    assert not too_many["ok"] and "threads must lie in 1.." in too_many["error"]
    bad = ask({"op": "time", "case": 5, "calls": 1})
    assert not bad["ok"] and "IndexError" in bad["error"]
    assert not ask({"op": "fly"})["ok"]
    proc.stdin.write('{"op": "quit"}\n')
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0


@pytest.mark.slow
def test_a_worker_applies_the_layout_it_is_given():
    env = {**os.environ, **coordinator.layout(__import__("random").Random(4))}
    proc = subprocess.Popen([PY, "-P", "-m", "gradbench.gate.worker", "--threads", "1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    hello = json.loads(proc.stdout.readline())
    proc.stdin.write('{"op": "quit"}\n')
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0
    layout = hello["layout"]
    assert layout["seed"] == int(env[worker.LAYOUT_VARIABLE])
    assert layout["hash_seed"] == env["PYTHONHASHSEED"]
    assert layout["heap_offset_bytes"] == worker.Layout(layout["seed"]).start_bytes
    assert layout["environment_bytes"] >= len(env[coordinator.PAD_VARIABLE])


@pytest.mark.slow
def test_an_a_a_gate_times_both_sides_and_saves_both(tmp_path, capsys):
    # the same gradbench on both sides, its blocks' seconds the test's: within 0.5 % of each
    # other, so no method is slower (exit 0)
    base = wrapper(tmp_path, "base", synthetic_worker("(7 * k) % 3 - 1"))
    head = wrapper(tmp_path, "head", synthetic_worker("(5 * k + 1) % 3 - 1"))
    code, out, err = gate(capsys, tmp_path, *TINY, "--generations", "3", "--threads",
                          str(THREADS), "--summary", tmp_path / "summary.md", base=base,
                          head=head)
    assert code == 0, out + err
    assert "import the same gradbench" in err and "an A/A run" in err
    assert "in 3 generations of workers" in err
    docs = documents(tmp_path)
    assert set(docs) == {"base", "head"}
    for side, doc in docs.items():
        assert doc.status == "complete" and doc.section["profile"] == "gate"
        g = doc.section["gate"]
        assert g["side"] == side and g["seed"] == 1 and g["same_environment"]
        assert g["pair"] == docs["head" if side == "base" else "base"].path.name
        assert g["timed_seconds"] > 0 and g["idle_cpu_seconds"] >= 0
        assert g["coordinator_cpu_seconds"] >= 0
        # every worker of every generation started with a layout of its own
        assert g["perturbed"] and len(g["layouts"]) == 3
        seeds = [gen[s]["seed"] for gen in g["layouts"] for s in ("base", "head")]
        hashes = [gen[s]["hash_seed"] for gen in g["layouts"] for s in ("base", "head")]
        assert None not in seeds and len(set(seeds)) == 6 and len(set(hashes)) == 6
        # the tiny profile's cases, its incremental one on one thread and on the run's
        want = profile.at_threads(profile.PROFILES["tiny"].cases, THREADS)
        assert doc.n_cases == len(want) == (6 if THREADS > 1 else 5)
        assert ({(b["extra_info"]["method"], b["extra_info"]["threads"])
                 for b in doc.data["benchmarks"]} == {(c.method, c.threads) for c in want})
    # the same quads on both sides, two blocks each, the same calls per block
    for b, h in zip(docs["base"].data["benchmarks"], docs["head"].data["benchmarks"],
                    strict=True):
        gb, gh = b["extra_info"]["gate"], h["extra_info"]["gate"]
        assert gb["calls"] == gh["calls"] >= 1
        for g in (gb, gh):  # the idle side measured while each side was timed, per case
            assert g["timed_seconds"] > 0 and g["idle_cpu_seconds"] >= 0
            assert g["settle_seconds"] >= 0 and g["spin_seconds"] >= 0
        quads = sorted(set(gb["quad"]))
        assert len(quads) >= stats.MIN_QUADS and sorted(set(gh["quad"])) == quads
        assert all(gb["quad"].count(q) == 2 == gh["quad"].count(q) for q in quads)
        assert set(gb["order"]) <= set(stats.ORDERS)
        assert not set(gb["seq"]) & set(gh["seq"])  # one side at a time
        # three generations of workers, each timing whole quads
        assert set(gb["generation"]) == {0, 1, 2} and gb["generation"] == sorted(gb["generation"])
        assert all(len({g for g, x in zip(gb["generation"], gb["quad"], strict=True) if x == q})
                   == 1 for q in quads)
    # the verdict table: every method and case, and the file readers take the files
    for method in ("primal (1 thread)", "backprop (1 thread)",
                   "numerical:central:incremental (1 thread)"):
        assert method in out
    if THREADS > 1:
        assert f"numerical:central:incremental ({THREADS} threads)" in out
    assert "detectable" in out and "idle side used" in out and "idle side's CPU" in out
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("## gradbench ab: ") and "| method |" in md
    rs = results.load_set([docs["base"], docs["head"]])
    assert set(rs.cases["label"]) == {"base", "head"}
    code, out, err = cli_main(capsys, "compare", docs["base"].path, docs["head"].path)
    assert code == 0 and f"{doc.n_cases} cases matched" in out, out + err  # within 0.5 %

    # the verdict is computed from the files alone: head's blocks made base's times 1.5
    for b, h in zip(docs["base"].data["benchmarks"], docs["head"].data["benchmarks"],
                    strict=True):
        h["stats"]["data"] = [1.5 * t for t in b["stats"]["data"]]
    cases, methods = coordinator.analyze(docs["base"], docs["head"])
    assert len(cases) == doc.n_cases and {(m["method"], m["threads"]) for m in methods} == {
        ("primal", 1), ("backprop", 1), ("numerical:central:incremental", 1),
        ("numerical:central:incremental", THREADS)}
    assert all(r["idle_share"] is not None and r["idle_share"] >= 0 for r in cases)
    for m in cases + methods:
        assert m["estimate"].verdict == "slower"
        assert m["estimate"].ratio == pytest.approx(1.5)


@pytest.mark.parametrize("side, words", [
    ("/no/such/python", "no such file"),
    (".", "is a folder"),
])
def test_a_side_that_is_not_a_python_is_refused(tmp_path, capsys, side, words):
    code, out, err = gate(capsys, tmp_path, *TINY, base=side)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def bare_python() -> str:
    """The Python this environment was made from, which has no gradbench (skip if it has)."""
    bare = Path(sys.base_prefix) / "bin" / "python3"
    if not bare.exists() or subprocess.run([bare, "-P", "-c", "import gradbench"],
                                           capture_output=True).returncode == 0:
        pytest.skip("no Python without gradbench here")
    return str(bare)


def test_a_python_without_gradbench_is_refused(tmp_path, capsys):
    code, out, err = gate(capsys, tmp_path, *TINY, base=bare_python())
    assert code == 2 and "gradbench is not installed in that Python" in err
    assert len(err.strip().splitlines()) == 1


def fake_gradbench(tmp_path, worker: str | None) -> str:
    """A "python" whose gradbench is a stub: without gradbench.gate (too old), or with a
    worker of the test's."""
    bare = bare_python()
    pkg = tmp_path / "fake" / "gradbench"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '0.0.1'\n")
    if worker is not None:
        (pkg / "gate").mkdir()
        (pkg / "gate" / "__init__.py").write_text("")
        (pkg / "gate" / "worker.py").write_text(worker)
    path = tmp_path / "old-python"
    path.write_text(f"#!/bin/sh\nPYTHONPATH={tmp_path / 'fake'} exec {bare} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_gradbench_too_old_for_the_gate_is_refused(tmp_path, capsys):
    code, out, err = gate(capsys, tmp_path, *TINY, base=fake_gradbench(tmp_path, None))
    assert code == 2 and "older than `gradbench ab`" in err and "--base" in err


def test_a_worker_of_another_protocol_is_refused(tmp_path, capsys):
    other = 'import json; print(json.dumps({"protocol": 99, "gradbench": "9.0"}), flush=True)\n'
    code, out, err = gate(capsys, tmp_path, *TINY, head=fake_gradbench(tmp_path, other))
    assert code == 2 and "speaks gate protocol 99" in err and "--head" in err


@pytest.mark.slow
def test_a_worker_that_dies_mid_run(tmp_path, capsys):
    dies = wrapper(tmp_path, "dies", patched_worker("""
        if calls > 6 + CALIBRATIONS:
            print("simulated crash", file=sys.stderr, flush=True)
            os._exit(7)
    """.replace("CALIBRATIONS", str(CALIBRATIONS))))
    code, out, err = gate(capsys, tmp_path, *TINY, head=dies)
    assert code == 3
    assert "the head worker died (exit status 7) while timing" in err and "simulated" in err
    docs = documents(tmp_path)
    assert docs["base"].status == docs["head"].status == "failed"
    assert sum(len(b["stats"]["data"]) for b in docs["head"].data["benchmarks"]) == 6


@pytest.mark.slow
def test_a_worker_that_hangs_is_stopped(tmp_path, capsys, monkeypatch):
    # the base worker hangs at its fifth block, after saying so in a file; the coordinator,
    # which would wait a minute at least, waits 1 s for that block once the file is there
    hanging = tmp_path / "hanging"
    hangs = wrapper(tmp_path, "hangs", patched_worker(f"""
        if calls > 4 + {CALIBRATIONS}:
            open({str(hanging)!r}, "w").close()
            time.sleep(600)
    """))
    receive, blocks = coordinator.Side.receive, []

    def impatient(self, timeout, what):
        if self.name == "base" and what.startswith("timing"):
            blocks.append(what)
            if len(blocks) > 4:
                wait_until(hanging.exists, "the base worker to hang")
                timeout = 1.0
        return receive(self, timeout, what)

    monkeypatch.setattr(coordinator.Side, "receive", impatient)
    code, out, err = gate(capsys, tmp_path, *TINY, base=hangs)
    assert code == 3 and "the base worker gave no answer in 1 s while timing" in err, err
    assert documents(tmp_path)["base"].status == "failed"


@pytest.mark.slow
def test_ctrl_c_keeps_the_quads_timed(tmp_path):
    # Ctrl-C once the head worker is asked for its second block: its first is recorded
    asked = tmp_path / "asked"
    head = wrapper(tmp_path, "head", patched_worker(f"""
        if calls == 2 + {CALIBRATIONS}:
            open({str(asked)!r}, "w").close()
    """))
    proc = subprocess.Popen([PY, "-m", "gradbench.cli", "ab", "--base", PY, "--head", head,
                             "--profile", "tiny", "--seconds", "600", "--out",
                             str(tmp_path / "r")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert wait_until(asked.exists, "the head worker's second block", proc), proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    out, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert "interrupted; the quads timed until then are kept" in rest
    assert "Traceback" not in rest
    docs = documents(tmp_path)
    assert docs["head"].status == "interrupted" and docs["head"].n_cases >= 1
    assert not list(Path(tmp_path / "r").glob(".*.lock")), "the name claims are released"


@pytest.mark.slow
def test_ctrl_c_while_the_workers_start_saves_nothing(tmp_path, capsys, monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(coordinator.Side, "greet", interrupted)
    # the workers' logs in a folder of this test's own: other runs write theirs to /tmp
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    code, out, err = gate(capsys, tmp_path, *TINY)
    assert code == 130 and "before the workers were ready; nothing to save" in err
    assert not (tmp_path / "r").exists()  # the folder it made is removed
    assert list(private.iterdir()) == []  # and so are the workers' logs


@pytest.mark.parametrize("args, words", [
    (["--threshold", "0.9"], "--threshold must be a factor of at least 1"),
    (["--threshold", "nan"], "--threshold must be a factor of at least 1"),
    (["--seconds", "0"], "--seconds must be a positive number of seconds"),
    (["--seconds", "1e9"], "--seconds must be a positive number of seconds up to a day"),
    (["--generations", "0"], "--generations must lie in 1..100"),
    (["--generations", "101"], "--generations must lie in 1..100"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
    (["--profile", "huge"], "gradbench ab: --profile:"),
    (["--threads", "0"], "--threads must lie in 1.."),
    (["--generations", "many"], "invalid int value"),
])
def test_bad_gate_options_are_refused_before_any_worker_starts(tmp_path, capsys, args, words):
    code, out, err = gate(capsys, tmp_path, *args)
    assert code == 2 and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert not (tmp_path / "r").exists()


def test_the_help_names_every_option(capsys):
    from gradbench.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["ab", "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0
    for option in ("--base", "--head", "--profile", "--seconds", "--generations", "--threads",
                   "--threshold", "--seed", "--out", "--summary"):
        assert option in text


def _side_with_plugins(tmp_path, name: str, plugins) -> str:
    """A side's "python" (the synthetic worker, its blocks within 0.5 % of the other side's)
    that loads ``plugins`` (files) as --plugin would, and no others."""
    program = tmp_path / f"{name}.py"
    program.write_text(synthetic_worker("(7 * k) % 3 - 1"))
    path = tmp_path / name
    spec = os.pathsep.join(map(str, plugins))
    path.write_text(f"#!/bin/sh\nshift 3\nGRADBENCH_PLUGINS='{spec}' exec {PY} -P {program} "
                    "\"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.slow
def test_the_gate_times_a_plugin_method_both_sides_have(tmp_path, capsys, monkeypatch):
    from .test_plugins import source

    monkeypatch.delenv("GRADBENCH_PLUGINS", raising=False)
    files = {}
    for name, line in (("mine", None), ("raising", "    raise RuntimeError('build broke')"),
                       ("onlybase", None)):
        body = source(f"{name}:backprop", provider=name)
        if line is not None:
            body = body.replace("    return lambda: gb.backprop(net, X, T)", line, 1)
        files[name] = tmp_path / f"{name}_plugin.py"
        files[name].write_text(body)
    base = _side_with_plugins(tmp_path, "base", files.values())
    head = _side_with_plugins(tmp_path, "head", [files["mine"], files["raising"]])
    code, out, err = gate(capsys, tmp_path, *TINY, base=base, head=head)
    assert code == 0, out + err
    assert (f"plugin method mine:backprop on both sides (base: {files['mine']}, head: "
            f"{files['mine']}): timed on mine:backprop-784x50x10-b100-float64-t1") in err
    assert f"plugin method onlybase:backprop ({files['onlybase']}) only on base; not timed" in err
    assert (f"raising:backprop-784x50x10-b100-float64-t1: not on base (rejected: plugin "
            f"{files['raising']}'s raising:backprop raised RuntimeError: build broke)") in err
    docs = documents(tmp_path)
    for doc in docs.values():
        (info,) = [b["extra_info"] for b in doc.data["benchmarks"]
                   if b["extra_info"]["method"] == "mine:backprop"]
        assert info["plugin"] == str(files["mine"]) and info["sizes"] == [784, 50, 10]
    assert "mine:backprop" in out  # in the verdict, as every method the gate times


@pytest.mark.slow
@pytest.mark.skipif(THREADS < 2, reason="a parallel case needs two threads")
def test_an_older_worker_without_per_case_threads_times_the_serial_cases_only(tmp_path, capsys):
    # a base whose worker ignores a case's threads (as before they existed) times every case
    # on its own one: its parallel case is not timed, and says why; --fixed-layout starts
    # every worker alike
    old = wrapper(tmp_path, "old", "import sys\n"
                  "import gradbench.gate.worker as w\n"
                  "orig = w.Worker.prepare\n"
                  "def prepare(self, case):\n"
                  "    return orig(self, {k: v for k, v in case.items() if k != 'threads'})\n"
                  "w.Worker.prepare = prepare\n"
                  "sys.exit(w.main(sys.argv[1:]))\n")
    code, out, err = gate(capsys, tmp_path, *TINY, "--threads", "2", "--fixed-layout",
                          base=old)
    assert code in (0, 1), out + err  # real blocks: the verdict is the machine's, not tested
    assert ("numerical:central:incremental-256x2x10-b32-float64-t2: not on base (its gate "
            "worker timed it on 1 thread(s), not 2: a gradbench older than the gate's "
            "per-case threads); not timed") in err
    docs = documents(tmp_path)
    assert {b["extra_info"]["threads"] for b in docs["head"].data["benchmarks"]} == {1}
    (skipped,) = docs["base"].not_timed
    assert skipped["threads"] == 2 and skipped["why"] == "unavailable"
    g = docs["base"].section["gate"]
    assert not g["perturbed"] and {gen[s]["seed"] for gen in g["layouts"]
                                   for s in ("base", "head")} == {None}


def test_settle_waits_until_the_other_threads_stop_running(monkeypatch):
    # the other threads' CPU as polls find it: running flat out for four polls, then asleep
    readings = iter([0.0, 1e-3, 2e-3, 3e-3, 4e-3, 4e-3, 4e-3])
    monkeypatch.setattr(worker, "pool_cpu", lambda: next(readings))
    waited, spun = worker.settle(poll=1e-4, patience=60)
    assert spun == pytest.approx(4e-3) and waited > 0
    assert next(readings) == 4e-3  # it stopped at the first quiet poll
    # where /proc cannot say, at once
    monkeypatch.setattr(worker, "pool_cpu", lambda: None)
    assert worker.settle() == (0.0, 0.0)


def test_pool_cpu_counts_the_other_threads_and_not_the_callers():
    import threading
    import time

    if worker.pool_cpu() is None:
        pytest.skip("no /proc here")
    done, stop, ran = threading.Event(), threading.Event(), []

    def work():
        t0 = time.thread_time()
        sum(i * i for i in range(300_000))
        ran.append(time.thread_time() - t0)
        done.set()
        stop.wait()

    before = worker.pool_cpu()
    t = threading.Thread(target=work)
    t.start()
    done.wait(60)
    mine = time.thread_time()
    sum(i * i for i in range(300_000))  # the caller's own work is not counted
    mine = time.thread_time() - mine
    after = worker.pool_cpu()
    stop.set()
    t.join()
    # schedstat counts the thread's CPU in ns, thread_time in the clock's resolution
    assert after - before >= 0.9 * ran[0] - 0.01
    assert after - before < ran[0] + 0.5 * mine + 0.01


def test_a_layout_is_drawn_at_random_and_made_from_its_seed(monkeypatch):
    import random

    rng = random.Random(3)
    drawn = [coordinator.layout(rng) for _ in range(20)]
    for env in drawn:
        assert set(env) == {worker.LAYOUT_VARIABLE, "PYTHONHASHSEED", coordinator.PAD_VARIABLE}
        assert len(env[coordinator.PAD_VARIABLE]) <= coordinator.PAD_CHARACTERS
        assert 1 <= int(env["PYTHONHASHSEED"]) < 2**32  # Python's own range (0 = off)
    assert len({e[worker.LAYOUT_VARIABLE] for e in drawn}) == 20
    assert len({len(e[coordinator.PAD_VARIABLE]) for e in drawn}) > 10
    # the worker's heap offset follows its seed; none without one
    a, b, c = worker.Layout(7), worker.Layout(7), worker.Layout(8)
    assert a.start_bytes == b.start_bytes and a.describe()["seed"] == 7
    assert worker.Layout(None).start_bytes == 0 and worker.Layout(None).describe()["seed"] is None
    assert len({worker.Layout(s).start_bytes for s in range(10)}) > 5
    a.offset()
    assert len(a._kept) == len(b._kept) + 1
    del c


@pytest.mark.parametrize("name", sorted(profile.PROFILES))
def test_every_profile_case_is_a_case_its_method_runs(name):
    from gradbench import methods

    cases = profile.PROFILES[name].cases
    for c in cases:
        m = methods.get(c.method)
        assert c.dtype in m.dtypes and c.threads in (profile.SERIAL, None)
        assert c.threads == profile.SERIAL or m.threaded  # a parallel case has a parallel path
    # each numerical ladder on one thread and on the run's: the serial and parallel drivers
    for method in {c.method for c in cases if methods.get(c.method).threaded}:
        mine = [c for c in cases if c.method == method]
        assert {c.threads for c in mine} == {profile.SERIAL, None}
    resolved = profile.at_threads(cases, 4)
    assert {c.threads for c in resolved} <= {1, 4} and len(set(resolved)) == len(resolved)
    assert profile.at_threads(cases, 1) == list(dict.fromkeys(
        dataclasses.replace(c, threads=1) for c in cases))
