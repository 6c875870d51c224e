"""`gradbench run` and the benchmark suite, end to end on a tiny budget."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradbench import results

ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gradbench.cli", "run", *args],
                          capture_output=True, text=True, timeout=900, cwd=cwd)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--profile", "fast"], "choose one of quick, default, full"),
        (["--budget", "0"], "positive number of seconds"),
        (["--budget", "-5"], "positive number of seconds"),
        (["--budget", "soon"], "invalid float value"),
        (["--label", "a/b"], "path separators"),
        (["--label", ".."], "path separators"),
    ],
)
def test_bad_usage(tmp_path, args, words):
    res = run("--out", str(tmp_path / "out"), *args, cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], res.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = run("--out", str(blocker / "sub"), cwd=tmp_path)
    assert res.returncode == 2 and "cannot write to" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_unwritable_report_folder_fails_before_running(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = run("--out", str(tmp_path / "out"), "--report", str(blocker / "rep"), cwd=tmp_path)
    assert res.returncode == 2 and "cannot write to" in res.stderr
    assert not list((tmp_path / "out").glob("*.json"))


def test_quick_run_end_to_end(tmp_path):
    out = tmp_path / "out"
    rep = tmp_path / "rep"
    res = run("--profile", "quick", "--budget", "4", "--label", "ci-box", "--out", str(out),
              "--report", str(rep), cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "ci-box" in (rep / "index.html").read_text()  # the report of this run
    assert not (tmp_path / "reports").exists()
    files = list(out.glob("ci-box-quick-*.json"))
    assert len(files) == 1 and not list(out.glob(".*partial"))
    df = results.load(files[0])
    assert set(df["label"]) == {"ci-box"}
    assert {"primal", "backprop"} <= set(df.loc[df["status"] == "ok", "method"])
    assert (df["status"] == "skipped").any()  # 4 s cannot hold the naive sweep
    for word in ("exponent k", "primal", "backprop", "skipped by the budget"):
        assert word in res.stdout
    # the file is plain pytest-benchmark JSON
    cmp = subprocess.run([sys.executable, "-m", "pytest_benchmark.cli", "compare", str(files[0])],
                         capture_output=True, text=True, timeout=300)
    assert cmp.returncode == 0, cmp.stderr


def test_suite_collects_with_benchmarks_disabled(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "benchmarks"), "-q", "-p", "no:cacheprovider",
         "--benchmark-disable", "--gb-profile", "quick", "--gb-budget", "1", "--collect-only"],
        capture_output=True, text=True, timeout=300, env={**os.environ})
    assert res.returncode == 0, res.stdout[-2000:]
    assert "test_case[primal-256x1x10-b32-float64" in res.stdout
    assert "numerical:central:incremental" in res.stdout
