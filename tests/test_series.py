"""One series key: two thread counts and two machines reported together never merge, in the
fits, the figures, the report's tables and headlines, compare and history."""

import pandas as pd
import pytest

from gradbench import compare, report, results
from gradbench.report import figures

from .resultfiles import WIDTHS, power, write_result


@pytest.fixture
def mixed(tmp_path):
    """Machine m1 at 1 and 2 threads (the 1-thread run twice as slow, another exponent for
    backprop), machine m2 at 2 threads: the same methods and sizes everywhere."""
    files = []
    for label, threads, kb, scale in (("m1", 1, 1.3, 2.0), ("m1", 2, 1.0, 1.0),
                                      ("m2", 2, 1.0, 0.5)):
        timings = (power("primal", 1.0, 1e-8 * scale, WIDTHS)
                   + power("backprop", kb, 3e-8 * scale, WIDTHS)
                   + power("numerical:central:naive", 2.0, 2e-8 * scale, WIDTHS))
        files.append(write_result(tmp_path / f"{label}-t{threads}.json", timings, label=label,
                                  threads=threads))
    return files


def test_fits_are_one_per_series(mixed):
    rs = results.load_set(mixed)
    found = results.fits(rs.cases)
    keys = [(f.method, f.label, f.threads) for f in found]
    assert len(keys) == len(set(keys)) == 9  # 3 methods x (m1 t1, m1 t2, m2 t2)
    k = {(f.method, f.label, f.threads): f.k for f in found}
    assert k[("backprop", "m1", 1)] == pytest.approx(1.3, abs=1e-6)
    assert k[("backprop", "m1", 2)] == pytest.approx(1.0, abs=1e-6)
    assert k[("backprop", "m2", 2)] == pytest.approx(1.0, abs=1e-6)
    assert all(f.device == "cpu" for f in found)


def test_ratios_are_per_panel(mixed):
    r = results.ratio_to(results.load_set(mixed).cases, "primal")
    assert len(r.drop_duplicates(results.PANEL_KEY)) == 3
    assert set(r["threads"]) == {1, 2}


def test_report_tables_and_headlines_keep_every_series(mixed, tmp_path):
    rep = report.collect(mixed, tmp_path)
    assert len(rep.fits) == 9
    # one row per machine, threads and size: nothing chosen silently among two runs
    assert len(rep.cases) == 3 * len(WIDTHS)
    assert set(zip(rep.cases["label"], rep.cases["threads"], strict=True)) == {
        ("m1", 1), ("m1", 2), ("m2", 2)}
    t1 = rep.cases[(rep.cases["label"] == "m1") & (rep.cases["threads"] == 1)]
    t2 = rep.cases[(rep.cases["label"] == "m1") & (rep.cases["threads"] == 2)]
    assert (t1["backprop"].to_numpy() != t2["backprop"].to_numpy()).all()
    assert len(rep.headlines) == 3
    assert sum("1 thread)" in h for h in rep.headlines) == 1
    assert len(rep.compile) == 9


def test_figures_draw_a_line_per_series(mixed, tmp_path):
    cases = results.load_set(mixed).cases
    drawn = figures.time_vs_n(cases, tmp_path / "t.png")
    assert len(drawn) == 9 and len(set(drawn)) == 9
    assert any("1 thread]" in name and "m1" in name for name in drawn)
    ratios = figures.speed_ratio(cases, tmp_path / "r.png")
    assert len(ratios) == 3 and len(set(ratios)) == 3


def test_compare_never_matches_two_thread_counts(mixed):
    with pytest.raises(ValueError, match=r"other thread counts or devices \(baseline: 1 "
                                         r"threads; current: 2 threads\)"):
        compare.compare(mixed[0], mixed[1])
    c = compare.compare(mixed[1], mixed[2])  # the same thread count on two machines
    assert set(c.methods["threads"]) == {2}
    both = compare.compare(mixed[:2], [mixed[0], mixed[2]])
    # m1 t1 against itself, m1 t2 against m2 t2: two rows per method, never pooled
    assert len(both.methods) == 6
    slow = both.methods.set_index(["method", "threads"])["geomean_ratio"]
    assert slow[("backprop", 1)] == pytest.approx(1.0)
    assert slow[("backprop", 2)] == pytest.approx(0.5)


def test_repeated_runs_of_one_case_are_pooled_and_said(tmp_path):
    timings = power("backprop", 1.0, 1e-8, WIDTHS[:4])
    a = write_result(tmp_path / "a.json", timings)
    b = write_result(tmp_path / "b.json", [(m, w, 3 * t) for m, w, t in timings])
    (tmp_path / "out").mkdir()
    rep = report.collect([a, b], tmp_path / "out")
    assert len(rep.cases) == 4
    assert all("median of 2 runs" in c for c in rep.cases["backprop"])


def test_every_grouping_uses_the_schema_keys():
    assert results.SERIES_KEY == ["label", "method", "batch", "dtype", "threads", "device"]
    assert set(results.CASE_KEY) - {"sizes"} <= set(results.SERIES_KEY)
    assert "label" not in results.PANEL_KEY or "method" not in results.PANEL_KEY
    assert compare.KEY is results.CASE_KEY


def test_an_older_file_runs_on_the_cpu(tmp_path):
    path = write_result(tmp_path / "old.json", power("backprop", 1.0, 1e-8, WIDTHS[:3]),
                        schema=2)
    cases = results.load(path)
    assert (cases["device"] == "cpu").all() and cases["blas_threads"].isna().all()
    assert isinstance(cases, pd.DataFrame)


def test_a_gpu_is_one_more_machine_in_the_report(tmp_path):
    """A run with the GPU's methods beside the CPU's: recorded as the same methods on
    another device, fitted, headlined and drawn as their own series, never merged."""
    cpu = (power("primal", 1.0, 1e-8, WIDTHS) + power("backprop", 1.0, 3e-8, WIDTHS)
           + power("numerical:central:naive", 2.0, 2e-8, WIDTHS))
    gpu = (power("cuda:primal", 0.5, 1e-6, WIDTHS) + power("cuda:backprop", 0.5, 3e-6, WIDTHS)
           + power("cuda:numerical:central:naive", 1.5, 1e-9, WIDTHS))
    f = write_result(tmp_path / "gpu.json", cpu + gpu, threads=1)
    rs = results.load_set(f)
    assert set(rs.cases["device"]) == {"cpu", "cuda"}
    assert set(rs.cases["method"]) == {"primal", "backprop", "numerical:central:naive"}
    k = {(f.method, f.device): f.k for f in results.fits(rs.cases)}
    assert k[("backprop", "cpu")] == pytest.approx(1.0, abs=1e-6)
    assert k[("backprop", "cuda")] == pytest.approx(0.5, abs=1e-6)
    rep = report.collect([f], tmp_path)
    assert len(rep.headlines) == 2
    (on_gpu,) = [h for h in rep.headlines if "cuda" in h]
    assert "0.50" in on_gpu and "1.50" in on_gpu  # the GPU's own exponents
    assert len(figures.speed_ratio(rs.cases, tmp_path / "r.png")) == 2  # one line per device
