"""Report: each figure on small synthetic results, the page's structure and escaping,
the error-against-step data, and `gradbench report` end to end."""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradbench import check, report, results
from gradbench.report import figures

from .conftest import cli_main
from .resultfiles import WIDTHS, accuracy, halve_times, power, write_result

PNG = b"\x89PNG\r\n\x1a\n"
CENTRAL = "numerical:central:naive"


def full_results(path, label="m1", widths=WIDTHS, **kwargs):
    """primal ~ N, backprop ~ N, central naive ~ N^2 (small sizes), one skipped case, the
    accuracy figures."""
    timings = (power("primal", 1, 1e-9, widths) + power("backprop", 1, 2.5e-9, widths)
               + power(CENTRAL, 2, 2e-9, widths[:6]))
    return write_result(path, timings, label=label, skipped=[(CENTRAL, widths[-1], 5e3)],
                        accuracy=accuracy(), **kwargs)


def is_png(path):
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


@pytest.fixture
def df(tmp_path):
    return results.load(full_results(tmp_path / "r.json"))


def test_time_figure_draws_every_method_with_its_fit(df, tmp_path):
    out = tmp_path / "time.png"
    drawn = figures.time_vs_n(df, out)
    assert is_png(out)
    assert {d.split(":")[0] for d in drawn} == {"primal", "backprop", "central (naive)"}
    central = next(d for d in drawn if d.startswith("central"))
    k = float(re.search(r"k = ([0-9.]+)", central).group(1))
    assert abs(k - 2) < 0.05  # the synthetic data are exactly N^2


def test_every_method_has_its_own_colour():
    from gradbench import methods

    # as result files name them: a GPU's methods by what they compute (its device apart)
    colours = {methods.base_name(m): figures._style(m)["color"] for m in methods.REGISTRY}
    assert len(set(colours.values())) == len(colours), colours
    assert figures.OTHER_COLOR not in colours.values()
    assert figures._style("numerical:central:incremental")["linestyle"] == "--"


def test_naive_and_incremental_are_told_apart_by_colour_in_a_figure(tmp_path, monkeypatch):
    incremental = "numerical:central:incremental"
    timings = (power(CENTRAL, 2, 2e-9, WIDTHS[:6]) + power(incremental, 2, 1e-9, WIDTHS[:6])
               + power("backprop", 1, 2.5e-9, WIDTHS))
    data = results.load(write_result(tmp_path / "r.json", timings))
    seen = {}
    finish = figures._finish

    def spy(fig, ax, path, *args, **kwargs):
        for line in ax.get_lines():
            if not line.get_label().startswith("_"):
                seen[line.get_label().split(":")[0]] = line.get_color()
        return finish(fig, ax, path, *args, **kwargs)

    monkeypatch.setattr(figures, "_finish", spy)
    figures.time_vs_n(data, tmp_path / "time.png")
    assert {"central (naive)", "central (incremental)", "backprop"} <= set(seen)
    assert len(set(seen.values())) == len(seen), seen


def test_ratio_figures_draw_the_expected_series(df, tmp_path):
    assert set(figures.ratio_to_primal(df, tmp_path / "a.png")) == {"backprop",
                                                                   "central (naive)"}
    assert figures.speed_ratio(df, tmp_path / "b.png") == ["central (naive)"]
    assert is_png(tmp_path / "a.png") and is_png(tmp_path / "b.png")


def test_gflops_figure(df, tmp_path):
    drawn = figures.gflops(df, tmp_path / "g.png")
    assert set(drawn) == {"primal", "backprop", "central (naive)"}
    assert is_png(tmp_path / "g.png")


def test_several_machines_get_a_series_each(tmp_path):
    full_results(tmp_path / "a.json", label="alpha")
    full_results(tmp_path / "b.json", label="be$ta")  # '$' would start mathtext
    d = results.load(tmp_path)
    drawn = figures.time_vs_n(d, tmp_path / "t.png")
    assert sum("[alpha]" in s for s in drawn) == 3
    assert sum(r"[be\$ta]" in s for s in drawn) == 3
    assert is_png(tmp_path / "t.png")


def test_missing_method_is_named(tmp_path):
    f = write_result(tmp_path / "r.json", power("primal", 1, 1e-9, WIDTHS))
    d = results.load(f)
    with pytest.raises(figures.MissingData, match="no backprop cases"):
        figures.speed_ratio(d, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_step_figure_on_synthetic_curves(tmp_path):
    h = np.logspace(-12, -1, 23)
    curve = pd.DataFrame([{"scheme": s, "dtype": d, "h": x, "error": x**2 + 1e-16 / x,
                           "default_h": 6e-6} for s in ("central", "forward")
                          for d in ("float32", "float64") for x in h])
    drawn = figures.step_curve(curve, tmp_path / "s.png")
    assert sorted(drawn) == ["central (float32)", "central (float64)", "forward (float32)",
                             "forward (float64)"]
    assert is_png(tmp_path / "s.png")


@pytest.fixture(scope="module")
def curve():
    return check.step_curve()


def test_step_curve_is_a_v_with_its_bottom_near_the_default_step(curve):
    assert set(map(tuple, curve[["scheme", "dtype"]].drop_duplicates().to_numpy())) == {
        ("forward", "float32"), ("forward", "float64"), ("central", "float32"),
        ("central", "float64"), ("five_point", "float32"), ("five_point", "float64"),
        ("complex_step", "float64")}
    for (scheme, dtype), g in curve.groupby(["scheme", "dtype"]):
        g = g.sort_values("h")
        # NaN only where the step cannot move a parameter: the quotient is 0/0
        assert (g.loc[g["error"].isna(), "h"] < np.finfo(dtype).eps).all(), (scheme, dtype)
        g = g[g["error"].notna()]
        h0 = g["default_h"].iloc[0]
        best = g.loc[g["error"].idxmin()]
        at_default = g.iloc[np.argmin(np.abs(np.log(g["h"] / h0)))]["error"]
        # the default step attains the threshold the gradient check applies
        assert at_default < check.threshold(scheme, dtype), (scheme, dtype)
        if scheme == "complex_step":
            # no cancellation: as accurate as float64 allows at every tiny step
            assert g[g["h"] <= 1e-8]["error"].max() < 1e-13
            continue
        # truncation on the right, round-off on the left, bottom within 1.5 decades of h0
        assert g["error"].iloc[-1] > 100 * best["error"], (scheme, dtype)
        assert g["error"].iloc[0] > 100 * best["error"], (scheme, dtype)
        assert abs(np.log10(best["h"] / h0)) <= 1.5, (scheme, dtype, best["h"], h0)


def test_build_writes_page_and_figures(tmp_path):
    f = full_results(tmp_path / "r.json")
    out = tmp_path / "rep"
    index = report.build(f, out)
    html = index.read_text()
    for section in ("figures", "fits", "check", "cases", "skipped", "compile", "machines",
                    "reproduce"):
        assert f'<section id="{section}">' in html
    srcs = re.findall(r'src="([^"]+)"', html)
    assert sorted(srcs) == sorted([name for name, _, _ in figures.FIGURES] + ["step.png"])
    assert all(is_png(out / s) for s in srcs)
    assert "central-difference gradient is" in html  # the headline
    assert "gradbench run --profile quick --budget 45 --label m1 --threads 2" in html
    assert not list(out.glob(".report-*"))  # the temporary folder is gone


def test_no_external_requests_and_hostile_strings_are_text(tmp_path):
    f = full_results(tmp_path / "r.json", label="<script>alert(1)</script>")
    data = json.loads(f.read_text())
    data["machine_info"]["cpu_model"] = '<img src="http://evil.example/x.png">'
    data["gradbench"]["skipped"][0]["reason"] = "<b>bold</b>"
    f.write_text(json.dumps(data))
    html = report.build(f, tmp_path / "rep", ).read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=\"http" not in html and "&lt;img src=&#34;http://evil" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    # nothing the page loads comes from the network
    for attr in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert "//" not in attr and not attr.startswith("data:text/html"), attr


def test_results_without_a_method_still_render(tmp_path):
    f = write_result(tmp_path / "r.json", power("primal", 1, 1e-9, WIDTHS)
                     + power("backprop", 1, 2e-9, WIDTHS))
    out = tmp_path / "rep"
    html = report.build(f, out).read_text()
    assert f"no {CENTRAL} cases in these results" in html
    assert "not drawn, no numerical-gradient cases" in html
    assert is_png(out / "time.png") and not (out / "ratio_backprop.png").exists()


def test_bad_results_leave_nothing_behind(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"benchmarks": [')
    out = tmp_path / "rep"
    with pytest.raises(ValueError, match="not valid JSON"):
        report.build(bad, out, )
    assert not out.exists()  # the folder this build made is gone too
    out.mkdir()
    with pytest.raises(ValueError, match="not valid JSON"):
        report.build(bad, out, )
    assert list(out.iterdir()) == []  # a folder that was there stays, empty
    with pytest.raises(ValueError, match="no result files"):
        report.build(tmp_path / "rep", tmp_path / "rep2", )


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write the report"):
        report.build(full_results(tmp_path / "r.json"), blocker / "sub", )


def test_cli_report_end_to_end(tmp_path, capsys):
    full_results(tmp_path / "a.json", label="alpha")
    full_results(tmp_path / "b.json", label="beta")
    out = tmp_path / "rep"
    code, _, err = cli_main(capsys, "report", tmp_path / "a.json", tmp_path / "b.json", "--out",
                            out)
    assert code == 0, err
    html = (out / "index.html").read_text()
    assert "On alpha (float64)" in html and "On beta (float64)" in html
    assert is_png(out / "step.png")
    assert "W1" in html and "on alpha PASSED" in html  # each machine's own gradient check


def test_the_check_sentence_names_the_worst_error_and_the_threshold_apart(tmp_path):
    full_results(tmp_path / "a.json", label="alpha")
    failed = accuracy(passed=False)
    failed["check"]["rows"][1]["max_rel_err"] = 3e-2
    failed["check"]["passed"] = False
    timings = power("backprop", 1, 2.5e-9, WIDTHS)
    write_result(tmp_path / "b.json", timings, label="beta", accuracy=failed)
    rs = results.load_set(tmp_path)
    _, note = report.check_tables(rs.checks.merge(rs.runs[["file", "threads"]], on="file"))
    assert ("on alpha PASSED: worst relative error 1e-07, within the threshold 6.1e-06; "
            "on beta FAILED: worst relative error 0.03, beyond the threshold 6.1e-06.") in note
    assert "at relative error" not in note


@pytest.mark.slow
def test_report_computes_and_compiles_nothing(tmp_path):
    # every Numba dispatcher refuses to compile or load a kernel: the report must not need one
    full_results(tmp_path / "a.json")
    code = ("import sys, numba.core.dispatcher as d\n"
            "def boom(*a, **k): raise SystemExit('a kernel was compiled or called')\n"
            "d.Dispatcher.compile = boom\n"
            "d.Dispatcher._compile_for_args = boom\n"
            "from gradbench.cli import main\n"
            f"sys.exit(main(['report', {str(tmp_path / 'a.json')!r}, '--out', "
            f"{str(tmp_path / 'rep')!r}]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert is_png(tmp_path / "rep" / "step.png")


def test_case_table_is_one_row_per_size_and_csv_has_every_case(tmp_path):
    f = full_results(tmp_path / "r.json")
    out = tmp_path / "rep"
    html = report.build(f, out).read_text()
    table = html.split('<section id="cases">')[1].split("</section>")[0]
    assert table.count("<tr>") == 1 + len(WIDTHS)  # header + one row per network size
    csv = pd.read_csv(out / "cases.csv")
    assert len(csv) == len(results.load(f))
    assert {"method", "provider", "kind", "median", "iqr", "rounds", "status"} <= set(csv)
    # one-round cases show no spread; five-round ones do
    one = full_results(tmp_path / "one.json", rounds=1)
    html1 = report.build(one, tmp_path / "rep1").read_text()
    table1 = html1.split('<section id="cases">')[1].split("</section>")[0]
    assert " ms ±" in table and "±" not in table1.split("</p>")[1]


def test_schema_1_files_render_and_say_what_is_missing(tmp_path):
    f = write_result(tmp_path / "old.json", power("primal", 1, 1e-9, WIDTHS)
                     + power("backprop", 1, 2e-9, WIDTHS), schema=1)
    html = report.build(f, tmp_path / "rep").read_text()
    assert "carry no accuracy figures" in html and "no error-against-step data" in html


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing.json", "no such file or folder"),
    (lambda p: p, "no result files"),
])
def test_cli_report_bad_input(tmp_path, capsys, make, words):
    code, _, err = cli_main(capsys, "report", make(tmp_path), "--out", tmp_path / "rep")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert not (tmp_path / "rep").exists()  # bad input leaves no folder behind


@pytest.mark.parametrize("seconds, text", [(5.18e-05, "51.8 µs"), (2.55e-3, "2.55 ms"),
                                           (7.59, "7.59 s"), (12345.6, "12,346 s"),
                                           (3e-8, "0.03 µs")])
def test_durations_read_at_a_glance(seconds, text):
    assert report.duration(seconds) == text


def test_several_machines_get_a_table_relative_to_the_reference(tmp_path):
    a = full_results(tmp_path / "a.json", label="slowbox")
    b = full_results(tmp_path / "b.json", label="fastbox")
    halve_times(b, {"matmul_gflops_float64": 120.0, "matmul_gflops_float32": 240.0,
                    "memory_gbs": 24.0})
    table, ref = report.machine_table(results.load_set([a, b]), "slowbox")
    assert ref == "slowbox" and set(table["machine"]) == {"fastbox"}
    assert np.allclose(table["raw"], 0.5) and np.allclose(table["normalised"], 1.0)
    html = report.build([a, b], tmp_path / "rep", reference="slowbox").read_text()
    assert "Machines relative to slowbox" in html
    with pytest.raises(ValueError, match="no machine labelled 'nope'"):
        report.build([a, b], tmp_path / "rep2", reference="nope")
    assert not (tmp_path / "rep2" / "index.html").exists()


def test_a_machine_that_cannot_be_compared_is_listed_with_the_reason(tmp_path):
    a = full_results(tmp_path / "a.json", label="slowbox")
    b = full_results(tmp_path / "b.json", label="fastbox")
    halve_times(b)
    # a third machine that timed other sizes only: nothing in common with the reference
    c = write_result(tmp_path / "c.json", power("backprop", 1, 1e-9, [3, 5, 7]),
                     label="otherbox")
    table, _ = report.machine_table(results.load_set([a, b, c]), "slowbox")
    assert set(table["machine"]) == {"fastbox", "otherbox"}
    other = table[table["machine"] == "otherbox"]
    assert len(other) == 1 and other["note"].iloc[0].startswith("left out: ")
    assert "no timed case in common" in other["note"].iloc[0]
    assert table.loc[table["machine"] == "fastbox", "note"].isna().all()
    html = report.build([a, b, c], tmp_path / "rep", reference="slowbox").read_text()
    section = html[html.index('id="machines-relative"'):]
    section = section[:section.index("</section>")]
    assert "otherbox" in section and "left out: the two sides have no timed case" in section
    assert "fastbox" in section and "nan" not in section


def test_the_page_says_when_git_failed_to_name_the_commit(tmp_path):
    f = full_results(tmp_path / "r.json")
    data = json.loads(f.read_text())
    data["gradbench"]["code"] = {"commit": None, "source": "unknown: git failed",
                                 "git_error": "git is not installed (not found on PATH)"}
    f.write_text(json.dumps(data))
    html = report.build(f, tmp_path / "rep").read_text()
    assert "no commit recorded: git failed (git is not installed (not found on PATH))" in html


def test_the_peers_paragraph_names_only_the_peers_timed(tmp_path):
    from gradbench import report

    timings = power("backprop", 1, 2.5e-9, WIDTHS[:4]) + power("numpy:backprop", 1, 3e-9,
                                                                 WIDTHS[:4])
    f = write_result(tmp_path / "a.json", timings)
    page = report.build(f, tmp_path / "rep").read_text()
    assert "the NumPy textbook&#39;s backprop" in page
    for absent in ("torch CPU autograd", "jax.jit", "approx_fprime", "numdifftools"):
        assert absent not in page.split('id="peers"')[1].split("</p>")[0], absent


def _listing(folder):
    """Every file and folder under ``folder``, with each file's bytes."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("name", ["index.html", "time.png", "step.png", "cases.csv"])
def test_a_folder_where_a_file_of_the_page_goes_leaves_the_output_as_it_was(tmp_path, capsys,
                                                                            name):
    f = full_results(tmp_path / "r.json")
    out = tmp_path / "rep"
    out.mkdir()
    for old in ("index.html", "time.png", "notes.txt"):
        (out / old).write_text(f"old {old}")
    (out / name).unlink(missing_ok=True)
    (out / name).mkdir()
    (out / name / "inside.txt").write_text("kept")
    before = _listing(out)
    with pytest.raises(ValueError, match=f"{name} is a folder, where the report's {name} goes"):
        report.build(f, out)
    assert _listing(out) == before  # not one figure moved in, no temporary folder left
    code, stdout, err = cli_main(capsys, "report", f, "--out", out)
    assert code == 2 and stdout == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "is a folder" in err, err
    assert _listing(out) == before


def test_a_move_that_fails_midway_puts_the_earlier_report_back(tmp_path, monkeypatch):
    out = tmp_path / "rep"
    report.build(full_results(tmp_path / "a.json", label="alpha"), out)
    (out / "notes.txt").write_text("mine")
    before = _listing(out)
    real = os.replace

    def replace(src, dst):  # the page's own move fails, after every figure's
        built = Path(src).parent.name
        if Path(dst).name == "index.html" and built.startswith(".report-") and not \
                built.startswith(".report-earlier-"):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(dst))
        return real(src, dst)
    monkeypatch.setattr(report.os, "replace", replace)
    with pytest.raises(ValueError, match="cannot write the report to .*Permission denied") as e:
        report.build(full_results(tmp_path / "b.json", label="beta"), out)
    assert len(str(e.value).splitlines()) == 1
    assert _listing(out) == before  # the earlier figures are back, byte for byte


def _read_only_is_enforced(folder) -> bool:
    """Whether this process is refused a file in a folder without write permission (root,
    whose euid is 0, is not: it may write anywhere, unless it gave up the capability)."""
    probe = folder / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").write_text("x")
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
        shutil.rmtree(probe)
    return False


def test_a_read_only_output_folder_is_one_line_exit_2_and_left_as_it_was(tmp_path, capsys):
    if not _read_only_is_enforced(tmp_path):
        pytest.skip(f"this process (euid {os.geteuid()}) writes into read-only folders: root "
                    "ignores permissions")
    f = full_results(tmp_path / "r.json")
    out = tmp_path / "rep"
    out.mkdir()
    (out / "index.html").write_text("old page")
    before = _listing(out)
    out.chmod(0o555)
    try:
        code, stdout, err = cli_main(capsys, "report", f, "--out", out)
        assert code == 2 and stdout == "" and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and "not writable" in err, err
        with pytest.raises(ValueError, match="cannot write the report to .*Permission denied"):
            report.build(f, out)
        assert _listing(out) == before
    finally:
        out.chmod(0o755)
