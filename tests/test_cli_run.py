"""`gradbench run` and the benchmark suite, end to end on tiny budgets.

No test here depends on the machine's speed: budgets are either so small that no case can fit
(1e-9 s: every case is skipped, whatever the machine) or the assertions hold whether a case ran
or was skipped.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gradbench import results

from .conftest import cli_main, run_until_cases

ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "gradbench.cli", "run", *args],
                          capture_output=True, text=True, timeout=900, cwd=cwd, **kwargs)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--profile", "fast"], "choose one of quick, default, full"),
        (["--budget", "0"], "positive number of seconds"),
        (["--budget", "-5"], "positive number of seconds"),
        (["--budget", "nan"], "positive number of seconds"),
        (["--budget", "inf"], "positive number of seconds"),
        (["--budget", "1e9"], "up to 2592000"),
        (["--budget", "soon"], "invalid float value"),
        (["--label", "a/b"], "no path separators"),
        (["--label", ".."], "starting with a letter or digit"),
        (["--label", "x" * 250], "1 to 64"),
        (["--label", "has space"], "1 to 64"),
        (["--label", ""], "1 to 64"),
        (["--threads", "-1"], "--threads must lie in 1.."),
        (["--threads", "0"], "--threads must lie in 1.."),
        (["--threads", "100000"], "--threads must lie in 1.."),
    ],
)
def test_bad_usage(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli_main(capsys, "run", "--out", tmp_path / "out", *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert out == "" and list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.slow
def test_bad_usage_as_a_process(tmp_path):
    res = run("--out", str(tmp_path / "out"), "--budget", "nan", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "positive number of seconds" in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_label_that_is_not_utf8_is_refused(tmp_path):
    label = b"caf\xe9"  # latin-1 bytes: not valid UTF-8
    res = subprocess.run([sys.executable, "-m", "gradbench.cli", "run", "--label", label,
                          "--out", str(tmp_path / "out")], capture_output=True, timeout=300,
                         cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.decode("ascii").strip().splitlines()  # the message itself is ASCII
    assert len(lines) == 1 and "label 'caf\\udce9'" in lines[0], lines


@pytest.mark.slow
def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = run("--out", str(blocker / "sub"), cwd=tmp_path)
    assert res.returncode == 2 and "cannot write to" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_unwritable_report_folder_fails_before_running(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = run("--out", str(tmp_path / "out"), "--report", str(blocker / "rep"), cwd=tmp_path)
    assert res.returncode == 2 and "cannot write to" in res.stderr
    assert not list((tmp_path / "out").glob("*.json"))


def test_a_quick_run_records_every_case_and_builds_its_report(quick_run):
    # the budget (2 s) times the small cases and skips the rest with their predictions, on
    # any machine; the peers whose library is missing (as in CI: torch, jax) are recorded
    # as unavailable instead
    from gradbench import methods

    f, res = quick_run.file, quick_run.res
    rs = results.load_set(f)
    c = rs.cases
    installed = c.apply(
        lambda r: methods.get(methods.on_device(r["method"], r["device"])).available(), axis=1)
    assert set(c.loc[installed, "status"]) <= {"ok", "skipped"}
    assert (c.loc[c["status"] == "ok", "median"] > 0).all()
    assert (c.loc[c["status"] == "skipped", "predicted_seconds"] > 0).all()
    assert (c.loc[~installed, "status"] == "unavailable").all()
    # no GPU here (the tests' numba.cuda is the simulator): the GPU's cases say why
    on_gpu = c[c["device"] == "cuda"]
    assert len(on_gpu) and (on_gpu["status"] == "unavailable").all()
    assert "gradbench on the cuda device: not run here" in res.stdout
    assert rs.runs["status"].tolist() == ["complete"]
    assert not rs.step_curve.empty and not rs.checks.empty  # measured on this machine
    assert "ci-box" in (quick_run.folder / "reports" / "index.html").read_text()
    assert not [p for p in f.parent.iterdir() if p.name.startswith(".")]  # no temporary files


def test_quick_run_end_to_end_from_another_folder(quick_run):
    # run from a folder that is not the checkout, with its own pytest settings that must not
    # leak into the suite (tests/conftest.py's quick_run)
    f, res = quick_run.file, quick_run.res
    rs = results.load_set(f)
    assert set(rs.cases["label"]) == {"ci-box"}
    assert rs.runs["gradbench_version"].tolist() == [__import__("gradbench").__version__]
    ok = rs.cases[rs.cases["status"] == "ok"]
    assert len(ok)  # the first sizes fit any machine's 2 s
    for word in ("exponent k", "results to"):
        assert word in res.stdout
    # gradbench's output first: one progress line per part, then the summary; no pytest
    # letters, no pytest-benchmark tables
    head = res.stdout[:res.stdout.index("exponent k")]
    lines = [s for s in head.splitlines() if s.strip()]
    assert lines[0].startswith("gradbench run: profile quick")
    assert lines[1].startswith("gradbench  [") and " timed, " in lines[1], head
    assert any(s.startswith("numpy peers (numpy:") and "  [" in s for s in lines), head
    assert len(lines) <= 2 + 5, head  # one line per part at most
    assert "Name (time in" not in res.stdout and "passed" not in head
    # every timed case carries its rounds: every one, or for a case of many, their quantiles
    counts = rs.rounds.groupby(["method", "sizes"]).size()
    for r in ok.itertuples():
        assert counts[(r.method, r.sizes)] == min(r.rounds, results.KEPT)
    assert all(float(f"{t:.4g}") == t for t in rs.rounds["seconds"])  # kept to 4 figures
    # plain pytest-benchmark JSON
    cmp = subprocess.run([sys.executable, "-m", "pytest_benchmark.cli", "compare", str(f)],
                         capture_output=True, text=True, timeout=300)
    assert cmp.returncode == 0, cmp.stderr


@pytest.mark.slow
def test_code_measured_is_the_checkout_not_the_current_folder(tmp_path):
    from gradbench.machine import code_info

    info = code_info()
    inside = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                            text=True)
    if inside.returncode != 0:
        assert info["commit"] is None and info["source"] == "installed package"
        return
    assert info["commit"] == inside.stdout.strip()
    assert isinstance(info["dirty"], bool) and info["commit_time"]
    # the same from a folder outside any checkout
    code = "from gradbench.machine import code_info; print(code_info()['commit'])"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert res.stdout.strip() == info["commit"]


@pytest.mark.slow
def test_ctrl_c_keeps_completed_cases_in_a_visible_file(tmp_path):
    # wait until the file shows some completed cases, then interrupt as a terminal would
    proc, out = run_until_cases(tmp_path, "intr", 3)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    (f,) = out.glob("intr-default-*.json")
    rs = results.load_set(f)
    assert rs.runs["status"].tolist() == ["interrupted"]
    assert (rs.cases["status"] == "ok").sum() >= 3
    assert f"gradbench report {f}" in stderr  # interruption notices go to stderr
    assert "Traceback" not in stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_suite_collects_from_the_checkout(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "benchmarks"), "-q", "-p", "no:cacheprovider",
         "--benchmark-disable", "--gb-profile", "quick", "--gb-budget", "1", "--collect-only"],
        capture_output=True, text=True, timeout=300, env={**os.environ})
    assert res.returncode == 0, res.stdout[-2000:]
    assert "test_case[primal-256x1x10-b32-float64" in res.stdout
    assert "numerical:central:incremental" in res.stdout
    assert "test_accuracy" in res.stdout


@pytest.mark.slow
def test_a_crashing_case_is_exit_3_and_the_file_says_failed(tmp_path):
    # a method whose warm-up raises stands for a bug in gradbench: not a finding, not usage
    code = ("import dataclasses, sys\n"
            "from gradbench import methods\n"
            "def broken(net, threads): raise RuntimeError('simulated bug')\n"
            "methods.REGISTRY['backprop'] = dataclasses.replace(methods.REGISTRY['backprop'], "
            "warm=broken)\n"
            "from gradbench.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-c", code, "run", "--profile", "quick", "--budget",
                          "1e-9", "--label", "crash", "--out", str(out), "--no-report"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert res.returncode == 3, res.stdout[-2000:] + res.stderr[-2000:]
    assert "the suite itself failed" in res.stderr and "bug in gradbench" in res.stderr
    # the progress line says so, and pytest's failure output follows it, traceback and all
    line = next(s for s in res.stdout.splitlines() if s.startswith("gradbench  ["))
    assert "failed (below)" in line
    assert "RuntimeError: simulated bug" in res.stdout
    assert re.search(r"^FAILED \S*suite\.py::test_case\[backprop-", res.stdout, re.M)
    assert "Name (time in" not in res.stdout  # no pytest-benchmark table
    (f,) = out.glob("crash-quick-*.json")
    rs = results.load_set(f)
    assert rs.runs["status"].tolist() == ["failed"]
    cpu = rs.cases[rs.cases["device"] == "cpu"]
    assert "backprop" not in set(cpu["method"])  # the failed cases are not results
    assert (rs.cases["method"] == "primal").any()


@pytest.mark.slow
def test_threads_1_runs_blas_and_numba_on_one_thread_and_records_it(tmp_path, monkeypatch):
    # --gb-threads 1: BLAS (by default on every core) runs on one thread under gradbench's
    # loss and backprop, as a peer's library does, and under the calibration; seen during
    # each call, and recorded with each case
    from gradbench import bench, gradients
    from gradbench.bench import parts, sweep
    from gradbench.kernels import calibration

    from .conftest import ThreadWatch

    watch = ThreadWatch()
    for name in ("loss", "backprop"):
        monkeypatch.setattr(gradients, name, watch.wrap(getattr(gradients, name), name))
    monkeypatch.setattr(calibration, "matmul", watch.wrap(calibration.matmul, "calibration"))
    out = tmp_path / "t1.json"
    argv = parts.pytest_args(Path(bench.__file__).parent, sweep.profile("quick", 2.0), "t1", 1,
                             out, str(tmp_path / "storage"))
    code = pytest.main([*argv, "--gb-provider", "gradbench", "--gb-methods", "primal,backprop",
                        "-k", "test_case"])
    assert code == pytest.ExitCode.OK
    assert watch.names() == {"loss", "backprop", "calibration"}
    assert watch.threads() == {(1, 1)}
    rs = results.load_set(out)
    ok = rs.cases[rs.cases["status"] == "ok"]
    assert set(ok["method"]) == {"primal", "backprop"}  # the first sizes fit any machine
    assert ok["blas_threads"].tolist() == [1] * len(ok)
    doc = json.loads(out.read_text())
    assert doc["machine_info"]["calibration"]["blas_threads"] == 1
    # the machine's description says what the cases ran with, not BLAS's default
    assert {b["num_threads"] for b in doc["machine_info"]["blas"]} == {1}


@pytest.mark.slow
def test_no_load_average_on_this_system_is_recorded_as_null(tmp_path, monkeypatch, capsys):
    # as on Windows, where os.getloadavg does not exist
    from gradbench.cli import main

    monkeypatch.delattr(os, "getloadavg")
    out = tmp_path / "out"
    rc = main(["run", "--profile", "quick", "--budget", "1e-9", "--label", "win",
               "--threads", "1", "--out", str(out), "--no-report"])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    (f,) = out.glob("win-quick-*.json")
    assert json.loads(f.read_text())["machine_info"]["load_average"] is None
    assert results.load_set(f).runs["status"].tolist() == ["complete"]


def test_plugin_machine_info_without_a_load_average(monkeypatch):
    from types import SimpleNamespace

    from gradbench.bench import plugin

    monkeypatch.delattr(os, "getloadavg")
    config = SimpleNamespace(_gradbench=SimpleNamespace(label="win", calibration={}, threads=1))
    info = {}
    plugin.pytest_benchmark_update_machine_info(config, info)
    assert info["load_average"] is None and info["label"] == "win"


@pytest.mark.parametrize("error, words", [
    (ValueError("no case to draw"), "(no case to draw)"),
    (RuntimeError("simulated bug"), "(RuntimeError: simulated bug)"),
])
def test_a_report_that_fails_after_a_good_run_is_exit_3_and_keeps_the_results(
        tmp_path, monkeypatch, capsys, error, words):
    # not bad usage (2): the options were fine and the results are saved; say how to rebuild
    import argparse

    from gradbench import report
    from gradbench.bench.parts import Outcome
    from gradbench.cli import run as cli_run

    from .resultfiles import power, write_result

    final = write_result(tmp_path / "box-quick-1.json", power("backprop", 1, 2.5e-9, [1, 2, 4]))

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(report, "build", broken)
    args = argparse.Namespace(no_report=False, report=str(tmp_path / "rep"))
    code = cli_run._after(args, final, Outcome(status="complete", codes={"gradbench": 0},
                                               document=results.Document.load(final)))
    err = capsys.readouterr().err
    assert code == 3, err
    assert words in err and f"the results are saved in {final}" in err
    assert f"gradbench report {final} --out {tmp_path / 'rep'}" in err
    assert len(err.strip().splitlines()) == 1 and final.is_file()


def _package_at(monkeypatch, folder):
    """code_info as if gradbench lay in ``folder`` (it looks at its own file's place)."""
    from gradbench import machine

    (folder / "gradbench").mkdir(parents=True)
    (folder / "gradbench" / "__init__.py").write_text("")
    monkeypatch.setattr(machine, "__file__", str(folder / "gradbench" / "machine.py"))
    return machine.code_info


def test_code_outside_any_repository_is_an_installed_package(tmp_path, monkeypatch):
    code_info = _package_at(monkeypatch, tmp_path / "site-packages")
    monkeypatch.setenv("PATH", "")  # no repository above: git is not even asked
    info = code_info()
    assert info["source"] == "installed package" and info["commit"] is None
    assert "git_error" not in info


def test_code_in_someone_elses_checkout_is_an_installed_package(tmp_path, monkeypatch):
    # a virtual environment inside another project's repository: git answers, but the package
    # is not tracked there
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    code_info = _package_at(monkeypatch, tmp_path / "venv" / "site-packages")
    info = code_info()
    assert info["source"] == "installed package" and "git_error" not in info


@pytest.mark.parametrize("git, words", [
    (None, "git is not installed (not found on PATH)"),
    ("echo \"fatal: detected dubious ownership in repository at '/src'\" >&2\nexit 128",
     "git rev-parse --show-toplevel: fatal: detected dubious ownership in repository at "
     "'/src'"),
])
def test_a_git_that_fails_in_a_checkout_is_recorded_as_such(tmp_path, monkeypatch, git, words):
    (tmp_path / "src" / ".git").mkdir(parents=True)  # a checkout, as far as one can see
    code_info = _package_at(monkeypatch, tmp_path / "src")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    if git is not None:
        (bin_ / "git").write_text("#!/bin/sh\n" + git + "\n")
        (bin_ / "git").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_))
    info = code_info()
    assert info["source"] == "unknown: git failed" and info["git_error"] == words
    assert info["commit"] is None and info["dirty"] is None


def test_the_summary_counts_what_was_not_timed_by_why(tmp_path):
    import pandas as pd

    from gradbench.cli.run import summary

    from .resultfiles import power, write_result

    f = write_result(tmp_path / "a.json", power("backprop", 1, 2.5e-9, [1, 2, 4, 8]),
                     skipped=[("backprop", 16, 9.0), ("backprop", 32, 9.0)])
    df = results.load(f)
    gone = df.iloc[[0]].assign(status="unavailable", method="torch:backprop",
                               provider="torch", median=float("nan"))
    text = summary(pd.concat([df, gone], ignore_index=True))
    assert ("cases not timed: 2 skipped by the budget (predicted times kept); 1 of peers not "
            "installed") in text


def test_a_run_says_when_it_replaces_an_earlier_report(tmp_path, capsys):
    import argparse

    from gradbench.bench.parts import Outcome
    from gradbench.cli import run as cli_run

    from .resultfiles import power, write_result

    final = write_result(tmp_path / "box-quick-1.json", power("backprop", 1, 2.5e-9, [1, 2, 4]))
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "index.html").write_text("an earlier run's report")
    args = argparse.Namespace(no_report=False, report=str(tmp_path / "rep"))
    code = cli_run._after(args, final, Outcome(status="complete", codes={"gradbench": 0},
                                               document=results.Document.load(final)))
    out = capsys.readouterr().out
    assert code == 0 and "replacing the earlier report in" in out
    assert f"gradbench report {tmp_path}" in out
