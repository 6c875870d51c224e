"""gradbench history: change points on a known step and on pure noise, the command line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gradbench.compare import changepoints as cp
from gradbench.compare import history as H

from .conftest import cli_main
from .resultfiles import WIDTHS, power, write_result

METHODS = [("primal", 1, 1e-9), ("backprop", 1, 2.5e-9)]


def storage(tmp_path, n=20, noise=0.08, step=None, seed=0, steps=()):
    """n runs of two methods with multiplicative noise like this project's machines (8 % per
    case and run); ``step`` = (method, run, factor) from that run (1-based) on; ``steps``,
    several such steps, applied one after the other."""
    steps = [*steps, *([step] if step else [])]
    rng = np.random.default_rng(seed)
    folder = tmp_path / "storage"
    (folder / "sub").mkdir(parents=True)
    for i in range(n):
        timings = []
        for m, k, c in METHODS:
            for method, w, t in power(m, k, c, WIDTHS[:5]):
                t *= float(np.exp(noise * rng.standard_normal()))
                for m_step, at, factor in steps:
                    if method == m_step and i + 1 >= at:
                        t *= factor
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
    assert h.changes["standing"].all() and len(H.standing_slowdowns(h)) == 5
    text = H.describe(h.changes.iloc[0].to_dict())
    assert "from commit 11aaaaaaaa (2026-10-12): 1.3x slower [standing]" in text


def test_a_fixed_slowdown_is_listed_as_fixed_and_does_not_stand(tmp_path):
    # 1.5x slower from run 8, back to the old time from run 15
    h = H.history(storage(tmp_path, steps=[("backprop", 8, 1.5), ("backprop", 15, 1 / 1.5)]))
    assert len(h.changes) == 10 and set(h.changes["method"]) == {"backprop"}
    slower = h.changes[h.changes["ratio"] > 1]
    faster = h.changes[h.changes["ratio"] < 1]
    assert (slower["position"] + 1 == 8).all() and (faster["position"] + 1 == 15).all()
    assert not slower["standing"].any() and (slower["until_position"] + 1 == 15).all()
    assert faster["standing"].all()  # the fix itself is still in effect
    assert H.standing_slowdowns(h).empty
    text = H.describe(slower.iloc[0].to_dict())
    assert text.endswith("1.5x slower [fixed from commit 14aaaaaaaa (2026-10-15)]"), text


@pytest.mark.parametrize("steps, standing", [
    # 2x slower, then only partly recovered (1.25x faster): still 1.6x slower than before
    ([("backprop", 6, 2.0), ("backprop", 14, 1 / 1.25)], [True]),
    # slower, fixed, slower again: the first is fixed, the second stands
    ([("backprop", 5, 1.4), ("backprop", 10, 1 / 1.4), ("backprop", 15, 1.4)],
     [False, True]),
])
def test_a_slowdown_stands_while_the_newest_runs_are_still_slower(tmp_path, steps, standing):
    h = H.history(storage(tmp_path, steps=steps))
    slower = h.changes[h.changes["ratio"] > 1]
    for (position, g), want in zip(slower.groupby("position"), standing, strict=True):
        assert g["standing"].tolist() == [want] * 5, (position, g)
    assert len(H.standing_slowdowns(h)) == 5


@pytest.mark.parametrize("seed", range(3))
def test_pure_noise_finds_nothing(tmp_path, seed):
    h = H.history(storage(tmp_path, seed=seed))
    assert h.changes.empty
    assert 0.05 < h.noise["m1"] < 0.12  # the 8 % put in, measured


def test_noise_is_stated_only_where_it_was_measured(tmp_path, capsys):
    folder = storage(tmp_path, n=3)
    one = folder / "one"
    one.mkdir()
    timings = power("primal", 1, 1e-9, WIDTHS[:3])
    write_result(one / "lonely.json", timings, label="lonely", cpu="Other CPU")
    h = H.history(folder)
    assert h.unmeasured == {"lonely": "one run"} and "m1" not in h.unmeasured
    assert h.noise_text("lonely") == "noise not measured (one run)"
    assert h.noise_text("m1").startswith("noise ") and "% per run" in h.noise_text("m1")
    code, out, err = cli_main(capsys, "history", folder, "--out", tmp_path / "page")
    assert code == 0, out + err
    assert "lonely: noise not measured (one run)" in out
    page = (tmp_path / "page" / "index.html").read_text()
    assert "lonely (noise not measured (one run))" in page
    assert "m1 (noise " in page and "lonely (noise 1.0 %" not in page


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


def test_cli_prints_changes_and_writes_a_page(tmp_path, capsys):
    folder = storage(tmp_path, step=("backprop", 12, 1.3))
    code, out, err = cli_main(capsys, "history", folder, "--out", tmp_path / "page")
    assert code == 1, err  # a case became slower, and still is: a finding
    assert "20 runs" in out and "1.3x slower [standing]" in out
    assert "5 slowdown(s) still standing" in out
    page = (tmp_path / "page" / "index.html").read_text()
    assert "trend-backprop.png" in page and (tmp_path / "page" / "trend-backprop.png").is_file()
    assert 'class="slower standing"' in page
    code, out, err = cli_main(capsys, "history", storage(tmp_path / "q", seed=1), "--out",
                              tmp_path / "page2")
    assert code == 0 and "0 change(s)" in out, err


@pytest.mark.slow
def test_cli_exit_status_of_the_process(tmp_path):
    res = run(storage(tmp_path, step=("backprop", 12, 1.3)), "--out", tmp_path / "page")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "5 slowdown(s) still standing" in res.stdout


def test_cli_passes_when_every_slowdown_was_fixed_and_still_lists_it(tmp_path, capsys):
    folder = storage(tmp_path, steps=[("backprop", 8, 1.5), ("backprop", 15, 1 / 1.5)])
    code, out, err = cli_main(capsys, "history", folder, "--out", tmp_path / "page")
    assert code == 0, out + err
    assert "10 change(s), 0 slowdown(s) still standing" in out
    assert out.count("x slower [fixed from commit 14aaaaaaaa (2026-10-15)]") == 5
    assert out.count("x faster [standing]") == 5
    page = (tmp_path / "page" / "index.html").read_text()
    assert page.count('class="slower fixed"') == 5 and "[fixed from commit" in page


@pytest.mark.parametrize("make, words", [
    (lambda t: t / "missing", "is not a folder"),
    (lambda t: t / "empty", "no result files"),
])
def test_cli_bad_input(tmp_path, capsys, make, words):
    (tmp_path / "empty").mkdir()
    code, _, err = cli_main(capsys, "history", make(tmp_path), "--out", tmp_path / "page")
    assert code == 2 and words in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "page").exists()
