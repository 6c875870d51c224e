"""SIGTERM and SIGHUP stop `gradbench run` and `gradbench train` as Ctrl-C does (what finished
is kept, the file says "interrupted" and names the signal, exit status 128 + the signal's
number, temporary folders removed), and a file still "running" whose writer is gone reads as
"abandoned". Real signals, sent to this process or to a child: no timing is asserted."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

if sys.platform == "win32":  # no SIGHUP, no process groups
    pytest.skip("POSIX signals", allow_module_level=True)

from gradbench import interrupt, methods, results

from .conftest import cases_in, cli_main, run_until_cases, wait_until
from .resultfiles import document, power
from .test_train import fake, saved

SIGNALS = [(signal.SIGTERM, 143), (signal.SIGHUP, 129)]


def test_install_raises_keyboard_interrupt_and_restores(monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    previous = interrupt.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)  # the handler runs before this ends
        assert interrupt.received() == "SIGHUP" and interrupt.exit_status() == 129
        assert interrupt.by() == " by SIGHUP"
    finally:
        interrupt.restore(previous)
    assert signal.getsignal(signal.SIGTERM) is before
    interrupt.install()  # a new command forgets the last one's signal
    interrupt.restore(previous)
    assert interrupt.received() is None and interrupt.exit_status() == 130


# ----------------------------------------------------------------------------- train


def signalling(sig, after: int):
    """A method whose gradient sends ``sig`` to this process on call number ``after`` + 1."""
    calls = {"n": 0}

    def gradient(net, threads):
        from gradbench import gradients

        def fn(X, T):
            calls["n"] += 1
            if calls["n"] == after + 1:
                os.kill(os.getpid(), sig)
            return gradients.backprop(net, X, T)
        return fn

    return fake("peer:signal", gradient)


def train(capsys, *args):
    from gradbench.cli import main

    rc = main(["train", "--data", "synthetic", "--sizes", "4,3,2", "--batch", "200",
               "--method", "peer:signal", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def _swallowed(sig):
    """A signal that arrives inside a callback from native code, as LLVM's callbacks are
    while Numba compiles: ctypes swallows the KeyboardInterrupt it raises there."""
    import ctypes

    def callback():
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler runs before this ends

    ctypes.CFUNCTYPE(None)(callback)()


@pytest.mark.parametrize("then_raises", [True, False])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_swallowed_by_native_code_still_interrupts(capsys, sig, then_raises):
    previous = interrupt.install()
    try:
        with pytest.raises(KeyboardInterrupt), interrupt.native():
            _swallowed(sig)
            if then_raises:  # what Numba's compile then does
                raise RuntimeError("no compiled object yet")
        assert interrupt.exit_status() == 128 + sig
    finally:
        interrupt.restore(previous)
    # the swallowed one is not printed ("Exception ignored on calling ctypes callback")
    assert "Exception ignored" not in capsys.readouterr().err


def test_a_stretch_that_returns_has_handled_its_signal():
    # the command line's stretch: a verb that caught the Ctrl-C and saved its work returns
    previous = interrupt.install()
    try:
        with interrupt.native(returns=True):
            _swallowed(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt), interrupt.native(returns=True):
            _swallowed(signal.SIGTERM)
            raise RuntimeError("no compiled object yet")
    finally:
        interrupt.restore(previous)


def test_native_leaves_other_errors_and_ignored_signals_alone(capsys):
    with pytest.raises(RuntimeError, match="not a signal"), interrupt.native():
        raise RuntimeError("not a signal")
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job
    try:
        with interrupt.native():
            # ignored: the kernel discards it; a handler would run before the next line
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("sig, code", SIGNALS)
def test_train_keeps_the_finished_epochs_on_a_signal(tmp_path, capsys, monkeypatch, sig, code):
    monkeypatch.setitem(methods.REGISTRY, "peer:signal", signalling(sig, after=25))
    before = signal.getsignal(sig)
    out = tmp_path / "results"
    rc, _, err = train(capsys, "--epochs", "5", "--out", str(out))
    assert rc == code, err
    (doc,), (path,) = saved(out)
    name = signal.Signals(sig).name
    assert doc["status"] == "interrupted" and doc["note"] == f"interrupted by {name}"
    assert [e["epoch"] for e in doc["epochs"]] == [0, 1, 2]  # 10 steps an epoch
    assert err.count("interrupted") == 1 and f"interrupted by {name}; the 2" in err
    assert "Traceback" not in err
    assert signal.getsignal(sig) is before  # the command's handlers are gone after it


def test_train_signal_before_an_epoch_finished_leaves_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(methods.REGISTRY, "peer:signal", signalling(signal.SIGTERM, after=3))
    rc, _, err = train(capsys, "--out", str(tmp_path / "new" / "results"))
    assert rc == 143 and "interrupted by SIGTERM before the first epoch" in err
    assert not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------- run


def _temp_folders() -> set:
    return set(Path(tempfile.gettempdir()).glob("gradbench-pytest-benchmark-*"))


@pytest.mark.parametrize("sig, code", SIGNALS)
def test_run_signal_during_start_up_saves_nothing_and_removes_the_temp_folder(
        tmp_path, monkeypatch, capsys, sig, code):
    # the signal arrives while the plugin calibrates the machine, before any case
    from gradbench.bench import plugin

    def calibrate(threads):
        os.kill(os.getpid(), sig)
        time.sleep(5)
        raise AssertionError("the signal did not interrupt")

    monkeypatch.setattr(plugin, "calibrate", calibrate)
    before, temp = signal.getsignal(sig), _temp_folders()
    out = tmp_path / "new" / "out"
    rc, _, err = cli_main(capsys, "run", "--profile", "quick", "--label", "s", "--out", out,
                          "--no-report")
    name = signal.Signals(sig).name
    assert rc == code, err
    assert f"interrupted by {name} before any case completed; nothing to save" in err
    assert err.count("interrupted") == 1 and "Traceback" not in err
    assert not (tmp_path / "new").exists() and _temp_folders() <= temp
    assert signal.getsignal(sig) is before


def test_run_signal_before_pytest_starts_removes_the_temp_folder(tmp_path, monkeypatch,
                                                                  capsys):
    from gradbench.bench import parts

    seen = []

    def run(prof, label, threads, out, storage, prog, case_timeout, verbose=False):
        seen.append(Path(storage))
        assert Path(storage).is_dir()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(parts, "run", run)
    rc, _, err = cli_main(capsys, "run", "--profile", "quick", "--out", tmp_path / "new",
                          "--no-report")
    assert rc == 143 and "nothing to save" in err and err.count("interrupted") == 1
    assert not seen[0].exists() and not (tmp_path / "new").exists()


CHILD = textwrap.dedent("""
    import pathlib, sys, time
    from gradbench import interrupt
    interrupt.install()
    folder = pathlib.Path(sys.argv[1])
    (folder / "ready").write_text("")
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        (folder / "got").write_text(interrupt.received() or "SIGINT")
        sys.exit(2)
""")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_peer_part_gets_the_signal_its_driver_got(tmp_path, sig):
    from gradbench.bench import parts

    def send():
        wait_until((tmp_path / "ready").exists, "the child to be ready")
        os.kill(os.getpid(), sig)

    previous = interrupt.install()
    try:
        threading.Thread(target=send, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            parts._run_child([sys.executable, "-c", CHILD, str(tmp_path)])
    finally:
        interrupt.restore(previous)
    assert (tmp_path / "got").read_text() == signal.Signals(sig).name


@pytest.mark.slow
def test_run_sigterm_keeps_completed_cases_and_names_the_signal(tmp_path):
    proc, out = run_until_cases(tmp_path, "term", 2)
    proc.send_signal(signal.SIGTERM)  # to the driver only, as kill does
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stdout[-2000:] + stderr[-2000:]
    (f,) = out.glob("term-default-*.json")
    rs = results.load_set(f)
    assert rs.runs["status"].tolist() == ["interrupted"]
    assert rs.runs["signal"].tolist() == ["SIGTERM"]
    assert (rs.cases["status"] == "ok").sum() >= 2
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- abandoned


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def _running(path, host, pid, label="m1"):
    doc = document(power("backprop", 1, 2.5e-9, [16, 32, 64]), label=label)
    doc["gradbench"].update(status="running", writer={"host": host, "pid": pid})
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("host, pid, status", [
    (socket.gethostname(), "dead", "abandoned"),
    (socket.gethostname(), "me", "running"),  # alive: a live run (this process; resolved in
    # the test, so that every test process collects the same ids)
    ("another-host", "dead", "running"),  # cannot be seen from here
    (None, None, "running"),  # a file from before the writer was recorded
])
def test_a_running_file_whose_writer_is_gone_is_abandoned(tmp_path, host, pid, status):
    pid = _dead_pid() if pid == "dead" else os.getpid() if pid == "me" else pid
    rs = results.load_set(_running(tmp_path / "r.json", host, pid))
    assert rs.runs["status"].tolist() == [status]


def test_report_and_compare_show_an_abandoned_run(tmp_path):
    from gradbench import compare, report

    pid = _dead_pid()
    f = _running(tmp_path / "r.json", socket.gethostname(), pid)
    page = report.build(f, tmp_path / "rep").read_text()
    assert "(abandoned: the file says running, but its process" in page
    base = tmp_path / "b.json"
    base.write_text(json.dumps(document(power("backprop", 1, 2.5e-9, [16, 32, 64]))))
    c = compare.compare(base, f)
    assert any(n.startswith("current: 1 run abandoned") for n in c.notes), c.notes
    assert not any(n.startswith("baseline:") for n in c.notes)


def test_a_new_document_records_its_writer():
    doc = results.Document.create(machine_info={}, code={}, label="m", profile="quick",
                                  budget=1.0, threads=1, version="0", pytest_benchmark="0")
    assert doc.section["writer"] == {"host": socket.gethostname(), "pid": os.getpid()}


@pytest.mark.parametrize("change, words", [
    ({"writer": {"host": "h", "pid": -3}}, "gradbench.writer.pid must be at least 1"),
    ({"writer": "me"}, "gradbench.writer must be an object"),
    ({"signal": 15}, "gradbench.signal must be a string"),
])
def test_bad_writer_or_signal_fields_are_refused(tmp_path, change, words):
    doc = document(power("backprop", 1, 2.5e-9, [16, 32]))
    doc["gradbench"].update(change)
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=words):
        results.load_set(tmp_path / "r.json")


def test_a_later_command_in_the_process_does_not_inherit_the_signal(monkeypatch, capsys):
    from gradbench.cli import report as cli_report

    previous = interrupt.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    finally:
        interrupt.restore(previous)

    def ctrl_c(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_report, "main", ctrl_c)
    code, _, err = cli_main(capsys, "report", "x")
    assert code == 130 and err.strip() == "gradbench: interrupted"


@pytest.mark.slow
def test_a_part_process_saves_interrupted_on_sigterm(tmp_path):
    # a part as gradbench run starts one for a peer provider: pytest with the plugin, whose
    # own handler turns SIGTERM into pytest's interruption, saved as such
    from gradbench import bench
    from gradbench.bench import parts, sweep

    out = tmp_path / "part.json"
    argv = parts.pytest_args(Path(bench.__file__).parent, sweep.profile("quick", 60.0), "p",
                             1, out, str(tmp_path / "storage"))
    proc = subprocess.Popen([sys.executable, "-P", "-m", "pytest", *argv, "--gb-provider",
                             "gradbench", "--gb-methods", "primal,backprop"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=parts._child_env(), cwd=tmp_path)
    assert wait_until(lambda: cases_in(tmp_path, out.name) >= 1, f"a completed case in {out}",
                      proc), proc.communicate()[0][-2000:]
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text[-2000:]
    rs = results.load_set(out)
    assert rs.runs["status"].tolist() == ["interrupted"]
    assert rs.runs["signal"].tolist() == ["SIGTERM"]
    assert (rs.cases["status"] == "ok").sum() >= 1


@pytest.mark.parametrize("pid, status", [("dead", "abandoned"), ("me", "running")])
def test_a_training_record_whose_writer_is_gone_is_abandoned(tmp_path, capsys, pid, status):
    from gradbench import report
    from gradbench.results import training

    out = tmp_path / "r"
    code, _, err = cli_main(capsys, "train", "--data", "synthetic", "--sizes", "4,3,2",
                            "--steps", "3", "--out", out)
    assert code == 0, err
    (path,) = out.glob("train-*.json")
    doc = json.loads(path.read_text())
    assert doc["writer"] == {"host": socket.gethostname(), "pid": os.getpid()}
    doc.update(status="running", writer={"host": socket.gethostname(),
                                         "pid": _dead_pid() if pid == "dead" else os.getpid()})
    path.write_text(json.dumps(doc))
    assert training.load(out).runs["status"].tolist() == [status]
    page = report.build(out, tmp_path / "rep").read_text()
    assert f">{status}</td>" in page
