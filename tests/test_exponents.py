"""Honest exponents: a slope is called the cost law only where the range reached the
asymptotic regime; elsewhere the report, the summary and compare say what the range shows."""

import numpy as np
import pytest

from gradbench import compare, results
from gradbench.bench import sweep
from gradbench.cli.run import summary
from gradbench.compare import rule

from .resultfiles import write_result

LADDER = [1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362]


def n_of(w):
    return sweep.Case("primal", (784, w, 10), 32, "float64", 2).n_params


def per_eval(method, widths, overhead, work, seed=0, noise=0.02):
    """An O(N^2) method with a fixed cost per loss evaluation: t = 2N (overhead + work N)."""
    rng = np.random.default_rng(seed)
    return [(method, w, 2 * n_of(w) * (overhead + work * n_of(w))
             * float(np.exp(noise * rng.standard_normal()))) for w in widths]


def per_call(method, widths, overhead, work, seed=0, noise=0.02):
    """An O(N) method with a fixed cost per call: t = overhead + work N."""
    rng = np.random.default_rng(seed)
    return [(method, w, (overhead + work * n_of(w)) * float(np.exp(noise * rng.standard_normal())))
            for w in widths]


def fit_of(path, method):
    return next(f for f in results.fits(results.load(path)) if f.method == method)


def test_a_numerical_peer_in_its_overhead_regime_is_not_a_law(tmp_path):
    # numpy:central's shape: per-evaluation overhead dominating at the small N the budget
    # allows (widths up to 16: N up to 12,730)
    path = write_result(tmp_path / "a.json", per_eval("numpy:central", LADDER[:8], 2e-5,
                                                      1e-10))
    f = fit_of(path, "numpy:central")
    assert 1.0 < f.k < 1.7  # what the range shows
    assert not f.asymptotic
    assert f.overhead_share > results.OVERHEAD_MAX
    assert f.p == pytest.approx(2.0, abs=0.15)  # the law the curve tends to
    assert "overhead" in f.note and f"{f.n_max:,}" in f.note


def test_the_same_method_far_enough_is_a_law(tmp_path):
    path = write_result(tmp_path / "a.json", per_eval("numpy:central", LADDER, 2e-7, 1e-10))
    f = fit_of(path, "numpy:central")
    assert f.asymptotic and f.note == ""
    assert f.k == pytest.approx(2.0, abs=0.12) and f.k_low < 2.0 < f.k_high


def test_a_fixed_cost_per_call_flattens_backprop(tmp_path):
    # the 16-core quick run: backprop 0.51, thread start-up dominating
    flat = write_result(tmp_path / "flat.json", per_call("backprop", LADDER, 2e-4, 1e-9))
    f = fit_of(flat, "backprop")
    assert f.k < 0.8 and not f.asymptotic and f.overhead_share > results.OVERHEAD_MAX
    steep = write_result(tmp_path / "steep.json", per_call("backprop", LADDER, 1e-6, 1e-9))
    g = fit_of(steep, "backprop")
    assert g.asymptotic and g.k == pytest.approx(1.0, abs=0.1)


def test_less_than_a_decade_is_not_a_law(tmp_path):
    path = write_result(tmp_path / "a.json", per_call("backprop", [64, 91, 128, 181, 256],
                                                      0.0, 1e-9, noise=0.0))
    f = fit_of(path, "backprop")
    assert f.k == pytest.approx(1.0, abs=1e-6) and not f.asymptotic
    assert "decades" in f.note


def test_the_interval_holds_drift(tmp_path):
    # a perfect line: the fit's own interval is nil, the reported one is the drift's
    path = write_result(tmp_path / "a.json", per_call("backprop", LADDER, 0.0, 1e-9,
                                                      noise=0.0))
    f = fit_of(path, "backprop")
    assert f.fit_half == pytest.approx(0.0, abs=1e-9)
    assert f.k_high - f.k == pytest.approx(1.96 * results.drift_tilt(f.n_min, f.n_max))
    assert f.k_high - f.k > 0.1


def test_summary_says_which_slopes_are_laws(tmp_path):
    timings = (per_eval("numpy:central", LADDER[:8], 2e-5, 1e-10)
               + per_call("backprop", LADDER, 1e-6, 1e-9))
    text = summary(results.load(write_result(tmp_path / "a.json", timings)))
    rows = {line.split()[0]: line for line in text.splitlines()[:3]}
    assert rows["backprop"].endswith("yes")
    assert rows["numpy:central"].endswith("no, see below")
    assert "numpy:central: " in text and "overhead" in text


def test_compare_judges_exponents_only_between_laws(tmp_path):
    # A/A of a numerical peer in its overhead regime: the overhead drifted by 3x between the
    # runs, which moves the slope (1.2 -> 1.5 here) without any change of the code
    a = write_result(tmp_path / "a.json", per_eval("numpy:central", LADDER[:8], 6e-6, 3e-10))
    b = write_result(tmp_path / "b.json", per_eval("numpy:central", LADDER[:8], 2e-6, 3e-10,
                                                   seed=1))
    ka, kb = fit_of(a, "numpy:central").k, fit_of(b, "numpy:central").k
    assert kb - ka > 0.2
    c = compare.compare(a, b, threshold=100)  # no case judged slower: only the exponent
    row = c.scaling.iloc[0]
    assert not row["asymptotic"] and not row["changed"] and not c.failed
    # the intervals alone would have called it a change: the gate is what holds
    assert rule.exponent_changed(*row[["k_baseline", "k_baseline_low", "k_baseline_high",
                                       "k_current", "k_current_low", "k_current_high"]])
    # a real change of law between two fits that are laws is still a finding
    lin = write_result(tmp_path / "lin.json", per_call("backprop", LADDER, 1e-6, 1e-9))
    quad = write_result(tmp_path / "quad.json",
                        [(m, w, t * n_of(w) / 100) for m, w, t in
                         per_call("backprop", LADDER, 1e-6, 1e-9)])
    c = compare.compare(lin, quad, threshold=1e9)
    row = c.scaling.iloc[0]
    assert row["asymptotic"] and row["changed"] and c.failed


def test_a_slope_wholly_below_its_law_is_not_the_law(tmp_path):
    # a slope of 0.6 where the cost model says N^1, with little overhead fitted: the interval
    # below N^1 refuses it
    path = write_result(tmp_path / "a.json", [("backprop", w, 1e-8 * n_of(w) ** 0.6)
                                              for w in LADDER])
    f = fit_of(path, "backprop")
    assert f.overhead_share <= results.OVERHEAD_MAX  # not what refuses it
    assert f.k_high < 1 and not f.asymptotic and "below the cost model's N^1" in f.note
