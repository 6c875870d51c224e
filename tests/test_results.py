"""Result files into DataFrames, and power-law fits, on JSON the tests make."""

import json

import numpy as np
import pandas as pd
import pytest

from gradbench import results

from .resultfiles import WIDTHS, power, write_result


def test_load_makes_one_row_per_case_and_run(tmp_path):
    a = write_result(tmp_path / "a.json", power("primal", 1, 1e-8, WIDTHS), label="alpha")
    write_result(tmp_path / "b.json", power("primal", 1, 2e-8, WIDTHS), label="beta",
                 skipped=[("numerical:central:naive", 512, 3600.0)])
    df = results.load([a, tmp_path / "b.json"])
    assert len(df) == 2 * len(WIDTHS) + 1
    assert set(df["label"]) == {"alpha", "beta"}
    skipped = df[df["status"] == "skipped"].iloc[0]
    assert skipped["method"] == "numerical:central:naive" and skipped["predicted_seconds"] == 3600
    assert np.isnan(skipped["median"])
    ok = df[df["status"] == "ok"]
    np.testing.assert_allclose(ok["gflops"], ok["predicted_flops"] / ok["median"] / 1e9)
    assert len(results.load(tmp_path)) == len(df)  # a folder reads its *.json


@pytest.mark.parametrize("k", [1.0, 2.0])
def test_fit_recovers_known_exponents(tmp_path, k):
    f = write_result(tmp_path / "r.json", power("backprop", k, 3e-9, WIDTHS, noise=0.03))
    (fit,) = results.fits(results.load(f))
    assert fit.k_low <= k <= fit.k_high
    assert abs(fit.k - k) < 0.1
    assert fit.k_high - fit.k_low < 0.5


def test_fit_ignores_the_overhead_regime():
    # t = 20 us + c N: flat at small N, linear at large N; the top decade sees the slope
    n = np.array([800 * 2**i for i in range(12)], dtype=float)
    t = 20e-6 + 1e-9 * n
    k, lo, hi, c, m = results.fit_power_law(n, t)
    assert 0.9 < k <= 1.0 and m >= 3
    assert n[-m] >= n[-1] / 10


def test_ratio_to_primal(tmp_path):
    f = write_result(tmp_path / "r.json", power("primal", 1, 1e-8, WIDTHS)
                     + power("backprop", 1, 2.5e-8, WIDTHS))
    r = results.ratio_to(results.load(f), "primal")
    np.testing.assert_allclose(r["backprop"], 2.5)


@pytest.mark.parametrize(
    "content, words",
    [
        ("{", "not valid JSON"),
        ('{"benchmarks": [{"name": "x"', "not valid JSON"),  # cut short (interrupted write)
        ("[1, 2]", "not a pytest-benchmark result file"),
        ('{"benchmarks": []}', "not written by a gradbench run"),
        (b"\xff\xfe\x00".decode("latin-1"), "not valid JSON"),
    ],
)
def test_bad_files_are_named_with_the_problem(tmp_path, content, words):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(ValueError, match=words) as e:
        results.load(f)
    assert str(f) in str(e.value)


def test_other_schema_versions_are_refused(tmp_path):
    f = write_result(tmp_path / "old.json", power("primal", 1, 1e-8, WIDTHS), schema=0)
    with pytest.raises(ValueError, match="schema 0.*re-run"):
        results.load(f)


def test_missing_and_empty(tmp_path):
    with pytest.raises(ValueError, match="no result files"):
        results.load(tmp_path)
    with pytest.raises(ValueError, match="no such file or folder"):
        results.load(tmp_path / "nope.json")
    f = write_result(tmp_path / "empty.json", [])
    with pytest.raises(ValueError, match="no gradbench cases"):
        results.load(f)


def _doc(**kwargs):
    from .resultfiles import document

    return document(power("primal", 1, 1e-8, WIDTHS[:3]), **kwargs)


def _set(d, path, value):
    """Set a field by a path of keys and indices; a value of ... deletes it."""
    *head, last = path
    for k in head:
        d = d[k]
    if value is ...:
        del d[last]
    else:
        d[last] = value


@pytest.mark.parametrize(
    "path, value, field",
    [
        (["benchmarks", 0], "oops", "benchmarks[0] must be an object"),
        (["benchmarks", 0, "stats"], [1, 2], "benchmarks[0].stats must be an object"),
        (["benchmarks", 0, "extra_info"], "x", "benchmarks[0].extra_info must be an object"),
        (["benchmarks", 0, "extra_info", "sizes"], None, "benchmarks[0].extra_info.sizes is "
                                                         "missing"),
        (["benchmarks", 0, "extra_info", "sizes"], [784], "extra_info.sizes must list two"),
        (["benchmarks", 0, "extra_info", "sizes"], [784, -3, 10], "extra_info.sizes must list"),
        (["benchmarks", 0, "extra_info", "sizes"], "784-1-10", "extra_info.sizes must be a list"),
        (["benchmarks", 0, "extra_info", "method"], ..., "extra_info.method is missing"),
        (["benchmarks", 0, "extra_info", "kind"], "magic", "extra_info.kind must be one of"),
        (["benchmarks", 0, "extra_info", "batch"], 0, "extra_info.batch must be at least 1"),
        (["benchmarks", 0, "extra_info", "batch"], 3.5, "extra_info.batch must be a whole"),
        (["benchmarks", 0, "extra_info", "threads"], True, "extra_info.threads must be a whole"),
        (["benchmarks", 0, "extra_info", "dtype"], "float16", "extra_info.dtype must be one of"),
        (["benchmarks", 0, "extra_info", "blas_threads"], 0,
         "extra_info.blas_threads must be at least 1"),
        (["benchmarks", 0, "extra_info", "blas_threads"], "one",
         "extra_info.blas_threads must be a whole"),
        (["benchmarks", 0, "stats", "median"], -1.0, "stats.median must be a positive finite"),
        (["benchmarks", 0, "stats", "median"], 0, "stats.median must be a positive finite"),
        (["benchmarks", 0, "stats", "median"], float("nan"), "stats.median must be a positive"),
        (["benchmarks", 0, "stats", "mean"], float("inf"), "stats.mean must be a positive"),
        (["benchmarks", 0, "stats", "median"], "fast", "stats.median must be a number"),
        (["benchmarks", 0, "stats", "median"], 1e3, "stats.median must lie between min and"),
        (["benchmarks", 0, "stats", "rounds"], 0, "stats.rounds must be at least 1"),
        (["benchmarks", 0, "stats", "data", 1], -2e-9, "stats.data[1] must be a positive"),
        (["benchmarks", 0, "stats", "data"], [1e-8], "stats.data holds 1 rounds"),
        (["machine_info", "label"], 5, "machine_info.label must be a string"),
        (["machine_info", "label"], "", "machine_info.label must be a string of 1 to"),
        (["machine_info", "calibration"], 3, "machine_info.calibration must be an object"),
        (["machine_info", "calibration", "matmul_gflops_float64"], -60,
         "calibration.matmul_gflops_float64 must be a positive"),
        (["gradbench", "skipped"], {"a": 1}, "gradbench.skipped must be a list"),
        (["gradbench", "skipped"], [[1, 2]], "gradbench.skipped[0] must be an object"),
        (["gradbench", "skipped"], [{"method": "primal"}], "gradbench.skipped[0].sizes is"),
        (["gradbench", "budget_seconds"], "lots", "gradbench.budget_seconds must be a number"),
        (["gradbench", "status"], "done", "gradbench.status must be one of"),
        (["gradbench", "code"], "abc", "gradbench.code must be an object"),
        (["gradbench", "code", "git_error"], 128, "gradbench.code.git_error must be a string"),
        (["gradbench", "accuracy"], {"step_curve": 1}, "accuracy.step_curve must be a list"),
    ],
)
def test_malformed_fields_are_refused_naming_file_and_field(tmp_path, path, value, field):
    d = _doc()
    _set(d, path, value)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(d))
    with pytest.raises(ValueError) as e:
        results.load_set(f)
    msg = str(e.value)
    assert str(f) in msg and field in msg, msg
    assert "\n" not in msg


def test_blas_threads_are_read_and_older_files_without_them_too(tmp_path):
    d = _doc()
    d["benchmarks"][0]["extra_info"]["blas_threads"] = 1
    d["machine_info"]["load_average"] = None  # where the system has none (Windows)
    f = tmp_path / "new.json"
    f.write_text(json.dumps(d))
    assert results.load_set(f).cases["blas_threads"].iloc[0] == 1
    old = write_result(tmp_path / "old.json", power("backprop", 1, 2e-9, WIDTHS))
    assert results.load_set(old).cases["blas_threads"].isna().all()


def test_schema_1_files_still_load_with_registry_columns(tmp_path):
    f = write_result(tmp_path / "old.json", power("numerical:central:naive", 2, 1e-9, WIDTHS),
                     schema=1)
    rs = results.load_set(f)
    assert set(rs.cases["provider"]) == {"gradbench"} and set(rs.cases["kind"]) == {"numerical"}
    assert set(rs.cases["scheme"]) == {"central"} and set(rs.cases["strategy"]) == {"naive"}
    assert rs.runs["schema"].tolist() == [1] and rs.step_curve.empty


def test_schema_1_file_with_an_unknown_method_is_refused(tmp_path):
    d = _doc(schema=1)
    d["benchmarks"][0]["extra_info"]["method"] = "numerical:magic:naive"
    f = tmp_path / "old.json"
    f.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="extra_info.method names no method"):
        results.load(f)


def test_frames_runs_cases_rounds(tmp_path):
    f = write_result(tmp_path / "r.json", power("backprop", 1, 1e-8, WIDTHS[:4]), rounds=7)
    rs = results.load_set(f)
    assert len(rs.runs) == 1 and len(rs.cases) == 4 and len(rs.rounds) == 4 * 7
    run = rs.runs.iloc[0]
    assert (run["commit"], run["dirty"], run["status"]) == ("abc123", False, "complete")
    assert set(rs.cases["provider"]) == {"gradbench"} and set(rs.cases["kind"]) == {"analytic"}
    for _, g in rs.rounds.groupby("sizes"):
        assert sorted(g["round"]) == list(range(7))


def test_labels_of_different_types_across_files(tmp_path):
    write_result(tmp_path / "a.json", power("primal", 1, 1e-8, WIDTHS), label="alpha")
    d = _doc()
    d["machine_info"]["label"] = 42
    (tmp_path / "b.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"b\.json: field machine_info\.label must be a string"):
        results.load(tmp_path)


def test_write_is_atomic_and_strict(tmp_path):
    f = tmp_path / "r.json"
    results.write(f, {"a": 1})
    with pytest.raises(ValueError):
        results.write(f, {"a": float("nan")})  # never written as invalid JSON
    assert json.loads(f.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind


def test_hidden_files_in_a_folder_are_not_results(tmp_path):
    write_result(tmp_path / "a.json", power("primal", 1, 1e-8, WIDTHS))
    (tmp_path / ".a.json.x1.tmp").write_text("{")
    (tmp_path / ".half.json").write_text("{")
    assert results.result_files(tmp_path) == [tmp_path / "a.json"]


def test_fit_refuses_nonpositive_times():
    with pytest.raises(ValueError, match="positive, finite"):
        results.fit_power_law([1, 2, 3, 4], [1.0, 0.0, 2.0, 3.0])


def test_a_git_failure_is_read_apart_from_an_installed_package(tmp_path):
    d = _doc()
    d["gradbench"]["code"] = {"commit": None, "commit_time": None, "dirty": None,
                              "source": "unknown: git failed",
                              "git_error": "git rev-parse --show-toplevel: fatal: detected "
                                           "dubious ownership in repository at '/src'"}
    (tmp_path / "failed.json").write_text(json.dumps(d))
    d["gradbench"]["code"] = {"commit": None, "source": "installed package"}
    (tmp_path / "wheel.json").write_text(json.dumps(d))
    runs = results.load_set(tmp_path).runs
    runs.index = [f.split("/")[-1] for f in runs["file"]]
    assert sorted(runs.index) == ["failed.json", "wheel.json"]
    assert runs.loc["failed.json", "git_error"].endswith("dubious ownership in repository at "
                                                         "'/src'")
    assert pd.isna(runs.loc["wheel.json", "git_error"])  # not a failure: no checkout
    assert runs["commit"].isna().all()
