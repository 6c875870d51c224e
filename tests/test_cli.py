"""`gradbench check` end to end, through the installed console script's entry point."""

import re
import subprocess
import sys

import pytest

from gradbench.cli import main

from .conftest import cli_main


def run(*args):
    return subprocess.run([sys.executable, "-m", "gradbench.cli", *args],
                          capture_output=True, text=True, timeout=600)


def test_check_small_network_passes(capsys):
    rc = main(["check", "--sizes", "10,6,3", "--batch", "8", "--activation", "tanh"])
    out = capsys.readouterr().out
    assert rc == 0
    assert re.search(r"PASSED: worst relative error \S+, within the threshold \S+", out)
    for word in ("analytic (backprop)", "numerical / analytic", "W1", "b2", "max_rel_err"):
        assert word in out


@pytest.mark.parametrize("extra", [["--strategy", "incremental", "--scheme", "five_point"],
                                   ["--scheme", "complex_step", "--threads", "1"],
                                   ["--dtype", "float32", "--loss", "mse", "--threads", "1"]])
def test_check_options(capsys, extra):
    assert main(["check", "--sizes", "6,4,2", "--batch", "3", *extra]) == 0
    assert "PASSED" in capsys.readouterr().out


@pytest.mark.parametrize("load, warned", [([64.0, 1.0, 1.0], True), ([0.0, 0.0, 0.0], False),
                                          (None, False)])
def test_check_warns_on_a_busy_machine_as_run_does(capsys, monkeypatch, load, warned):
    from gradbench import machine

    monkeypatch.setattr(machine, "load_average", lambda: load)
    assert main(["check", "--sizes", "6,4,2", "--batch", "3"]) == 0
    out, err = capsys.readouterr()
    busy = "gradbench check: warning: this machine is busy (load average 64.0"
    assert (busy in err) == warned and "PASSED" in out


def test_relu_shows_kinks(capsys):
    assert main(["check", "--sizes", "6,4,2", "--batch", "3", "--activation", "relu"]) == 0
    assert "near_kink" in capsys.readouterr().out


def test_failed_check_exits_1(capsys):
    # forward differences with an absurd step cannot match backprop
    rc = main(["check", "--sizes", "6,4,2", "--batch", "3", "--scheme", "forward", "--h", "0.5"])
    assert rc == 1
    assert "beyond the threshold" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, words",
    [
        (["check", "--sizes", "784"], "at least two"),
        (["check", "--sizes", "784,0,10"], "at least 1"),
        (["check", "--sizes", "784,x"], "comma-separated whole numbers"),
        (["check", "--sizes", "4,2", "--activation", "gelu"], "choose one of sigmoid"),
        (["check", "--sizes", "4,2", "--loss", "hinge"], "choose one of softmax_ce, mse"),
        (["check", "--sizes", "4,2", "--scheme", "backward"], "choose one of forward"),
        (["check", "--sizes", "4,2", "--strategy", "smart"], "naive, incremental"),
        (["check", "--sizes", "4,2", "--dtype", "float16"], "float32, float64"),
        (["check", "--sizes", "4,2", "--dtype", "float32", "--scheme", "complex_step"],
         "needs a float64 network"),
        (["check", "--sizes", "4,2", "--h", "-1"], "positive and finite"),
        (["check", "--sizes", "4,2", "--h", "nan"], "positive and finite"),
        (["check", "--sizes", "4,2", "--batch", "0"], "batch must be"),
        (["check", "--sizes", "4,2", "--threads", "0"], "threads must lie"),
        (["check", "--bogus"], "unrecognized arguments"),
        (["check", "--sizes", "200000,200000,10"], "GiB of memory"),
        (["check", "--sizes", "784,50,10", "--batch", "2000000000"], "GiB of memory"),
        (["check", "--sizes", "4,2", "--threads", "-1"], "--threads must lie in 1.."),
        (["frobnicate"], "invalid choice"),
        ([], "missing command"),
    ],
)
def test_bad_usage_is_one_line_exit_2(capsys, args, words):
    code, out, err = cli_main(capsys, *args)
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err


@pytest.mark.slow
@pytest.mark.parametrize("args, words", [(["check", "--sizes", "4,2", "--h", "nan"],
                                          "positive and finite"), ([], "missing command")])
def test_bad_usage_as_a_process_is_one_line_exit_2(args, words):
    res = run(*args)
    assert res.returncode == 2, res.stderr
    assert res.stdout == "" and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], res.stderr


@pytest.mark.slow
def test_help_and_version():
    assert run("--help").returncode == 0
    res = run("--version")
    assert res.returncode == 0 and res.stdout.startswith("gradbench ")


@pytest.mark.slow
def test_output_into_a_closed_pipe_is_quiet():
    proc = subprocess.Popen([sys.executable, "-m", "gradbench.cli", "check", "--sizes", "6,4,2",
                             "--batch", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    proc.wait(timeout=600)
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.slow
def test_long_check_shows_progress_and_stops_on_ctrl_c(tmp_path):
    import os
    import re
    import select
    import signal

    # naive central differences of 784-300-10 on one thread: 2 x 238,510 loss evaluations,
    # minutes on any machine; the check announces it, shows a bar, and Ctrl-C stops it
    proc = subprocess.Popen([sys.executable, "-m", "gradbench.cli", "check", "--sizes",
                             "784,300,10", "--threads", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    line = proc.stdout.readline().decode()
    assert "the numerical gradient will take about" in line, line
    # wait (generously: no speed is asserted) until the bar counts parameters done, i.e. the
    # kernels are compiled and the gradient is under way; then Ctrl-C as a terminal sends it
    err, fd = b"", proc.stderr.fileno()
    counted = re.compile(rb"numerical gradient:.*\| *[1-9][0-9.]*[kM]?/")
    while not counted.search(err) and proc.poll() is None:
        if select.select([fd], [], [], 600)[0]:
            err += os.read(fd, 65536)
        else:
            break
    assert counted.search(err), err.decode(errors="replace")[-2000:]
    os.killpg(proc.pid, signal.SIGINT)
    out, rest = proc.communicate(timeout=600)
    err = (err + rest).decode(errors="replace")
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
    # stopped within the gradient: neither the check's table nor its verdict was printed
    assert "PASSED" not in out.decode() and "FAILED" not in out.decode()


@pytest.mark.slow
def test_python_dash_m_gradbench_is_the_command():
    res = subprocess.run([sys.executable, "-m", "gradbench", "--version"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("gradbench "), res.stderr
