"""gradbench compare: the decision rule on synthetic runs, matching, normalisation, exponent
changes, the command line and its exit codes, escaping."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gradbench import compare
from gradbench.bench import sweep
from gradbench.compare import normalize, render, rule

from .conftest import cli_main
from .resultfiles import WIDTHS, halve_times, power, write_result

METHODS = [("primal", 1, 1e-9), ("backprop", 1, 2.5e-9), ("numerical:central:naive", 2, 2e-9)]


def run_file(path, seed, noise=0.0, slow=None, factor=1.0, rounds=5, grow=None, **kwargs):
    """A run of three methods over WIDTHS with multiplicative noise per case; ``slow`` is a
    method made ``factor`` times slower; ``grow`` a method whose time grows by (N/N0)^0.3."""
    timings = []
    for i, (m, k, c) in enumerate(METHODS):
        for method, w, t in power(m, k, c, WIDTHS, noise=noise, seed=seed * 10 + i):
            if method == slow:
                t *= factor
            if method == grow:
                t *= (w / WIDTHS[0]) ** 0.3 * 1.0
            timings.append((method, w, t))
    return write_result(path, timings, rounds=rounds, **kwargs)


def test_a_run_compared_with_itself_is_unchanged(tmp_path):
    f = run_file(tmp_path / "a.json", 0, noise=0.05)
    c = compare.compare(f, f)
    assert set(c.cases["verdict"]) == {"unchanged"} and not c.failed
    assert len(c.cases) == 3 * len(WIDTHS) and c.unmatched.empty
    # one run a side: block drift assumed; no spread at all: the floor
    assert c.drift == rule.BLOCK_DRIFT_PRIOR and c.spread == rule.DRIFT_FLOOR
    se = rule.median_se(np.log([1 + 0.02 * (i - 2) for i in range(5)]))  # resultfiles' rounds
    sd = np.sqrt(2 * rule.BLOCK_DRIFT_PRIOR**2 + rule.DRIFT_FLOOR**2 + 2 * se**2)
    assert c.detectable == pytest.approx(max(1.1, np.exp(rule.Z * sd)))


@pytest.mark.parametrize("seed", range(5))
def test_drift_alone_is_never_a_regression(tmp_path, seed):
    # independent 8 % noise per case and run: ratios up to ~1.3x, none of them evidence
    a = run_file(tmp_path / "a.json", 2 * seed, noise=0.08)
    b = run_file(tmp_path / "b.json", 2 * seed + 1, noise=0.08)
    c = compare.compare(a, b)
    assert not c.failed, c.regressions[["method", "sizes", "ratio"]]
    # the spread of d is 8 % x sqrt 2 = 0.11: measured from 27 cases, roughly
    assert 0.06 < c.spread < 0.2
    assert c.detectable > 1.3


def test_bursts_that_move_one_case_are_not_regressions(tmp_path):
    # the shape measured on this project's machine: one case 1.6x, its method unmoved
    a = run_file(tmp_path / "a.json", 0, noise=0.02)
    b = run_file(tmp_path / "b.json", 1, noise=0.02)
    data = json.loads(b.read_text())
    st = data["benchmarks"][4]["stats"]
    for k in ("median", "mean", "min", "max"):
        st[k] *= 1.6
    st["data"] = [t * 1.6 for t in st["data"]]
    b.write_text(json.dumps(data))
    c = compare.compare(a, b)
    burst = c.cases[c.cases["ratio"] > 1.5]
    assert len(burst) == 1 and burst["verdict"].iloc[0] == "inconclusive" and not c.failed


@pytest.mark.parametrize("factor, slower", [(1.5, True), (0.6, False)])
def test_one_method_changed_is_named_alone(tmp_path, factor, slower):
    a = run_file(tmp_path / "a.json", 0, noise=0.03)
    b = run_file(tmp_path / "b.json", 1, noise=0.03, slow="backprop", factor=factor)
    c = compare.compare(a, b)
    verdict = "slower" if slower else "faster"
    flagged = c.cases[c.cases["verdict"] == verdict]
    assert set(flagged["method"]) == {"backprop"} and len(flagged) >= len(WIDTHS) - 1
    assert c.failed == slower
    others = c.cases[c.cases["method"] != "backprop"]
    assert set(others["verdict"]) == {"unchanged"}


def test_too_few_rounds_is_inconclusive_and_never_fails(tmp_path):
    a = run_file(tmp_path / "a.json", 0, rounds=2)
    b = run_file(tmp_path / "b.json", 0, rounds=2, slow="backprop", factor=3.0)
    c = compare.compare(a, b)
    assert set(c.cases["verdict"]) == {"inconclusive"}  # even the 3x slower backprop
    assert not c.failed and np.isnan(c.detectable)


def test_repeated_runs_are_pooled_and_measure_drift(tmp_path):
    base = [run_file(tmp_path / f"b{i}.json", i, noise=0.06) for i in range(3)]
    cur = [run_file(tmp_path / f"c{i}.json", 10 + i, noise=0.06) for i in range(3)]
    c = compare.compare(base, cur)
    assert set(c.cases["runs_baseline"]) == {3} and set(c.cases["runs_current"]) == {3}
    assert c.drift_source.startswith("measured from repeated runs")
    assert rule.DRIFT_FLOOR <= c.drift < 0.1 and not c.failed


def test_matching_is_on_parameters_and_unmatched_cases_are_listed(tmp_path):
    a = run_file(tmp_path / "a.json", 0)
    data = json.loads(a.read_text())
    data["benchmarks"].reverse()
    for b in data["benchmarks"]:
        b["name"] = "renamed"  # names play no part
    extra = json.loads(json.dumps(data["benchmarks"][0]))
    extra["extra_info"]["threads"] = 1  # a case the baseline does not have
    data["benchmarks"].append(extra)
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    c = compare.compare(a, b)
    assert len(c.cases) == 3 * len(WIDTHS) and set(c.cases["verdict"]) == {"unchanged"}
    assert len(c.unmatched) == 1
    row = c.unmatched.iloc[0]
    assert (row["side"], row["threads"], row["why"]) == ("current", 1,
                                                          "absent in the baseline results")


def test_normalisation_arithmetic():
    assert normalize.bottleneck(1e9, 1e6, 60.0, 12.0, "auto") == "flops"  # 1000 flop/byte
    assert normalize.bottleneck(1e6, 1e6, 60.0, 12.0, "auto") == "memory"  # 1 < 5
    assert normalize.bottleneck(1e6, 1e6, 60.0, 12.0, "flops") == "flops"
    assert normalize.factor("flops", 60.0, 12.0) == 60.0
    assert normalize.factor("memory", 60.0, 12.0) == 12.0
    assert normalize.factor("none", None, None) == 1.0
    with pytest.raises(ValueError, match="calibration"):
        normalize.factor("flops", None, 12.0)


def test_normalised_machines_twice_as_fast_compare_equal(tmp_path):
    # machine B has twice A's matmul rate and bandwidth and runs everything in half the time
    a = run_file(tmp_path / "a.json", 0, label="slowbox", cpu="CPU A")
    b = run_file(tmp_path / "b.json", 0, label="fastbox", cpu="CPU B", slow="primal",
                 factor=1.0, calibration={"matmul_gflops_float64": 120.0,
                                          "matmul_gflops_float32": 240.0, "memory_gbs": 24.0})
    halve_times(b)
    raw = compare.compare(a, b)
    assert not raw.same_machine and "different machines" in raw.notes[0]
    assert np.allclose(raw.cases["ratio"], 0.5)
    auto = compare.compare(a, b, normalize="auto")
    assert np.allclose(auto.cases["ratio"], 1.0) and not auto.notes
    assert set(auto.cases["normalized_by"]) <= {"flops", "memory"}


def test_an_exponent_that_grows_is_a_finding(tmp_path):
    a = run_file(tmp_path / "a.json", 0, noise=0.02)
    b = run_file(tmp_path / "b.json", 1, noise=0.02, grow="backprop")
    c = compare.compare(a, b)
    (row,) = c.scaling_regressions.itertuples()
    assert row.method == "backprop"
    assert 0.2 < row.k_current - row.k_baseline < 0.4 and c.failed
    assert any("backprop (float64) went from N^" in line for line in render.headline(c))


def test_exponents_rule():
    assert rule.exponent_changed(1.0, 0.9, 1.1, 1.3, 1.2, 1.4)
    assert not rule.exponent_changed(1.0, 0.9, 1.1, 1.08, 0.98, 1.18)  # within the other's


def test_verdict_rule():
    slow = np.log(1.5)
    assert rule.verdict(slow, 0.05, slow, 0.05, 1.1, True) == "slower"
    assert rule.verdict(slow, 0.2, slow, 0.05, 1.1, True) == "inconclusive"  # inside 3 sd
    assert rule.verdict(slow, 0.05, 0.0, 0.05, 1.1, True) == "inconclusive"  # method unmoved
    assert rule.verdict(np.log(1.05), 0.01, 0.0, 0.01, 1.1, True) == "unchanged"  # in band
    assert rule.verdict(np.log(0.5), 0.05, np.log(0.5), 0.05, 1.1, True) == "faster"
    assert rule.verdict(np.log(3.0), 0.01, np.log(3.0), 0.01, 1.1, False) == "inconclusive"
    assert rule.detectable(0.05, 1.1) == pytest.approx(np.exp(0.15))
    assert rule.detectable(0.01, 1.1) == 1.1


def test_spread_is_a_tail_measure_over_methods():
    quiet = [[0.01, -0.01] * 10] * 3
    assert rule.case_spread(quiet) == rule.DRIFT_FLOOR
    bursty = [[0.0] * 9 + [0.5]] * 3  # one case in ten far off, in every method
    assert rule.case_spread(bursty) == pytest.approx(0.05 / 1.645)
    trend = [list(np.linspace(-0.4, 0.4, 9))] + [[0.0] * 9] * 2  # one method's trend
    assert rule.case_spread(trend) == rule.DRIFT_FLOOR
    assert rule.case_spread([[0.1, 0.2]]) == rule.CASE_SPREAD_PRIOR  # too few


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "gradbench.cli", "compare", *map(str, args)],
                          capture_output=True, text=True, timeout=300, **kwargs)


def test_cli_exit_codes_and_formats(tmp_path, capsys):
    a = run_file(tmp_path / "a.json", 0, noise=0.03)
    b = run_file(tmp_path / "b.json", 1, noise=0.03, slow="backprop", factor=1.5)
    # the exit statuses (as a process: test_cli_bad_input_as_a_process)
    code, stdout, _ = cli_main(capsys, "compare", a, a)
    assert code == 0 and "no regression" in stdout
    assert "smallest slowdown this comparison could have detected" in stdout
    code, stdout, _ = cli_main(capsys, "compare", a, b)
    assert code == 1 and "REGRESSION" in stdout
    # the formats and pooling
    for fmt in render.FORMATS:
        out = tmp_path / f"c.{fmt}"
        code, stdout, _ = cli_main(capsys, "compare", a, b, "--format", fmt, "--out", out)
        assert code == 1 and out.is_file() and stdout.count("\n") == 1
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["regression"] and {r["method"] for r in doc["regressions"]} == {"backprop"}
    assert (tmp_path / "c.html").read_text().startswith("<!DOCTYPE html>")
    code, stdout, _ = cli_main(capsys, "compare", f"{a},{a}", b)  # two runs on a side
    assert code == 1 and "2 runs" in stdout


@pytest.mark.parametrize("make_args, words", [
    (lambda a, t: [a, t / "empty"], "no result files"),
    (lambda a, t: [a, t / "missing.json"], "no such file or folder"),
    (lambda a, t: [a, t / "old.json"], "schema 99"),
    (lambda a, t: [a, t / "other.json"], "no timed case in common"),
    (lambda a, t: [a, a, "--threshold", "0.9"], "--threshold must be a factor of at least 1"),
    (lambda a, t: [a, a, "--threshold", "nan"], "--threshold must be a factor"),
    (lambda a, t: [a, a, "--threshold", "lots"], "invalid float value"),
    (lambda a, t: [a, a, "--normalize", "gpu"], "choose one of none, auto, flops, memory"),
    (lambda a, t: [a, a, "--format", "pdf"], "choose one of text, markdown, json, html"),
    (lambda a, t: [a, a, "--out", t / "nofolder" / "x.md"], "cannot write to"),
    (lambda a, t: [a, a, "--out", t], "is a folder"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, make_args, words):
    a = run_file(tmp_path / "a.json", 0)
    (tmp_path / "empty").mkdir()
    old = json.loads(a.read_text())
    old["gradbench"]["schema_version"] = 99
    (tmp_path / "old.json").write_text(json.dumps(old))
    write_result(tmp_path / "other.json", [("primal", 3, 1e-6)])
    before = set(tmp_path.rglob("*"))
    code, out, err = cli_main(capsys, "compare", *make_args(a, tmp_path))
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert out == "" and set(tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.slow
def test_cli_bad_input_as_a_process(tmp_path):
    a = run_file(tmp_path / "a.json", 0)
    res = cli(a, tmp_path / "missing.json")
    assert res.returncode == 2 and res.stdout == "" and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "no such file or folder" in res.stderr


def test_hostile_labels_are_escaped(tmp_path):
    a = run_file(tmp_path / "a.json", 0, label="a|b<script>alert(1)</script>")
    b = run_file(tmp_path / "b.json", 0, label="c`d\nnew")
    c = compare.compare(a, b)
    md = render.render(c, "markdown")
    assert "<script>" not in md and "a\\|b&lt;script&gt;" in md and "c\\`d new" in md
    for table in md.split("\n\n"):  # every row has as many cells as its table's header
        rows = [r for r in table.splitlines() if r.startswith("|")]
        cells = {len(r.replace("\\|", "").split("|")) for r in rows}
        assert len(cells) <= 1, table
    page = render.render(c, "html")
    assert "<script>" not in page and "a|b&lt;script&gt;alert(1)&lt;/script&gt;" in page


def _not_timed(path, why, method="torch:backprop", widths=(64, 128)):
    """Adds cases of ``method`` that were not timed (``why``: budget or unavailable)."""
    data = json.loads(path.read_text())
    skipped = json.loads(json.dumps(data["gradbench"]["skipped"]))
    for w in widths:
        info = sweep.Case(method, (784, w, 10), 32, "float64", 2).info()
        skipped.append({**info, "predicted_seconds": 1.0, "why": why,
                        **({"reason": "pip install torch"} if why == "unavailable" else {})})
    data["gradbench"]["skipped"] = skipped
    path.write_text(json.dumps(data))
    return path


def test_cases_unavailable_on_both_sides_are_counted_not_listed(tmp_path):
    # a file compared with itself: peers not installed there were timed on neither side
    f = _not_timed(run_file(tmp_path / "a.json", 0), "unavailable")
    c = compare.compare(f, f)
    assert c.unmatched.empty and c.both_unavailable == 2 and c.both_skipped == 0
    head = " ".join(render.headline(c))
    assert "0 timed on one side only" in head
    assert "2 unavailable on both sides" in head
    assert json.loads(render.as_json(c))["both_unavailable"] == 2


def test_cases_timed_on_neither_side_for_different_reasons_are_not_timed_on_one(tmp_path):
    a = _not_timed(run_file(tmp_path / "a.json", 0), "budget")
    b = _not_timed(run_file(tmp_path / "b.json", 0), "unavailable")
    c = compare.compare(a, b)
    assert set(c.unmatched["side"]) == {"neither"} and len(c.unmatched) == 2
    assert c.unmatched["why"].iloc[0] == ("skipped by the budget in the baseline results, "
                                          "unavailable in the current results")
    head = " ".join(render.headline(c))
    assert "0 timed on one side only; 2 timed on neither side" in head
    assert "timed in" in render.text(c) and "neither" in render.text(c)


def test_same_machine_is_decided_on_its_description_not_its_label(tmp_path):
    a = run_file(tmp_path / "a.json", 0, label="box-morning")
    b = run_file(tmp_path / "b.json", 1, label="box-evening")
    c = compare.compare(a, b)
    assert c.same_machine and not c.notes
    other = run_file(tmp_path / "c.json", 1, label="box-morning", cpu="Another CPU")
    c = compare.compare(a, other)
    assert not c.same_machine and "different machines" in c.notes[0]
    assert c.baseline["machines"] == ["Test CPU, 2 cores"]


@pytest.mark.parametrize("change", [{"cpu": "Another CPU"}, {"cores": 8}])
def test_runs_of_several_machines_on_one_side_are_refused(tmp_path, capsys, change):
    a = run_file(tmp_path / "a.json", 0)
    b = run_file(tmp_path / "b.json", 1, cpu=change.get("cpu", "Test CPU"))
    if "cores" in change:
        data = json.loads(b.read_text())
        data["machine_info"]["cores"] = change["cores"]
        b.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="the current pools runs from 2 machines") as e:
        compare.compare(a, [a, b])
    assert "Test CPU, 2 cores" in str(e.value)
    code, out, err = cli_main(capsys, "compare", a, f"{a},{b}")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "2 machines" in err


def gpu_file(path, gflops, scale):
    """A GPU's run (its methods recorded on device cuda), its GPU calibrated at ``gflops``
    (float64; float32 twice that, bandwidth a tenth) and every time scaled by ``scale``."""
    timings = [(f"cuda:{m}", w, t * scale) for m, k, c in METHODS
               for _, w, t in power(m, k, c, WIDTHS)]
    write_result(path, timings, threads=1)
    data = json.loads(path.read_text())
    data["gradbench"]["devices"] = {"cuda": {
        "description": {"name": f"GPU {gflops:g}"},
        "calibration": {"matmul_gflops_float64": gflops, "matmul_gflops_float32": 2 * gflops,
                        "memory_gbs": gflops / 10}}}
    path.write_text(json.dumps(data))
    return path


def test_two_gpus_are_normalised_by_their_own_calibration(tmp_path):
    # GPU B has three times GPU A's rates and runs everything in a third of the time; the
    # CPU's calibration (the same in both files) must not enter
    a = gpu_file(tmp_path / "a.json", 5000.0, 1.0)
    b = gpu_file(tmp_path / "b.json", 15000.0, 1 / 3)
    assert set(compare.compare(a, b).cases["device"]) == {"cuda"}
    raw = compare.compare(a, b)
    assert np.allclose(raw.cases["ratio"], 1 / 3)
    auto = compare.compare(a, b, normalize="auto")
    assert np.allclose(auto.cases["ratio"], 1.0)
    from gradbench import results

    runs = results.load_set([a, b]).runs
    assert list(runs["gpu"]) == ["GPU 5000", "GPU 15000"]
    assert list(runs["cuda_matmul_gflops_float64"]) == [5000.0, 15000.0]
