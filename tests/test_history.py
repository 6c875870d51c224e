"""gradbench history: change points on a known step and on pure noise, the command line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gradbench.compare import changepoints as cp
from gradbench.compare import history as H

from .resultfiles import WIDTHS, power, write_result

METHODS = [("primal", 1, 1e-9), ("backprop", 1, 2.5e-9)]


def storage(tmp_path, n=20, noise=0.08, step=None, seed=0):
    """n runs of two methods with multiplicative noise like this project's machines (8 % per
    case and run); ``step`` = (method, run, factor) from that run (1-based) on."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / "storage"
    (folder / "sub").mkdir(parents=True)
    for i in range(n):
        timings = []
        for m, k, c in METHODS:
            for method, w, t in power(m, k, c, WIDTHS[:5]):
                t *= float(np.exp(noise * rng.standard_normal()))
                if step and method == step[0] and i + 1 >= step[1]:
                    t *= step[2]
                timings.append((method, w, t))
        f = write_result(folder / ("sub" if i % 2 else "") / f"run{i:02d}.json", timings)
        data = json.loads(f.read_text())
        data["gradbench"]["code"] = {"commit": f"{i:02d}" + "a" * 38,
                                     "commit_time": f"2026-10-{i + 1:02d}T12:00:00+00:00",
                                     "dirty": False}
        data["datetime"] = f"2026-11-{(n - i) % 28 + 1:02d}T00:00:00"  # not the order
        f.write_text(json.dumps(data))
    return folder


def test_a_step_is_found_at_its_run_and_nothing_else(tmp_path):
    h = H.history(storage(tmp_path, step=("backprop", 12, 1.3)))
    assert set(h.changes["method"]) == {"backprop"}
    assert len(h.changes) == 5  # one per backprop case
    assert (h.changes["position"] + 1 == 12).all(), h.changes[["sizes", "position"]]
    assert np.allclose(h.changes["ratio"], 1.3, rtol=0.1)
    text = H.describe(h.changes.iloc[0].to_dict())
    assert "from commit 11aaaaaaaa (2026-10-12): 1.3x slower" in text


@pytest.mark.parametrize("seed", range(3))
def test_pure_noise_finds_nothing(tmp_path, seed):
    h = H.history(storage(tmp_path, seed=seed))
    assert h.changes.empty
    assert 0.05 < h.noise["m1"] < 0.12  # the 8 % put in, measured


def test_segments_on_exact_steps():
    y = [0.0] * 6 + [1.0] * 6 + [0.0] * 6
    assert cp.segments(y, cp.penalty(0.1, len(y))) == [6, 12]
    assert cp.segments([0.0] * 10, 1.0) == []
    wild = [0.0] * 12
    wild[6] = 0.5  # one run 5 sd off, mid-series: an outlier, not two changes
    assert cp.segments(wild, cp.penalty(0.1, len(wild))) == []


def run(*args):
    return subprocess.run([sys.executable, "-m", "gradbench.cli", "history", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_prints_changes_and_writes_a_page(tmp_path):
    folder = storage(tmp_path, step=("backprop", 12, 1.3))
    res = run(folder, "--out", tmp_path / "page")
    assert res.returncode == 1, res.stderr  # a case became slower: a finding
    assert "20 runs" in res.stdout and "1.3x slower" in res.stdout
    page = (tmp_path / "page" / "index.html").read_text()
    assert "trend-backprop.png" in page and (tmp_path / "page" / "trend-backprop.png").is_file()
    quiet = run(storage(tmp_path / "q", seed=1), "--out", tmp_path / "page2")
    assert quiet.returncode == 0 and "0 change(s)" in quiet.stdout


@pytest.mark.parametrize("make, words", [
    (lambda t: t / "missing", "is not a folder"),
    (lambda t: t / "empty", "no result files"),
])
def test_cli_bad_input(tmp_path, make, words):
    (tmp_path / "empty").mkdir()
    res = run(make(tmp_path), "--out", tmp_path / "page")
    assert res.returncode == 2 and words in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "page").exists()
