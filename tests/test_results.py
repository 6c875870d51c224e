"""Result files into DataFrames, and power-law fits, on JSON the tests make."""

import numpy as np
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
