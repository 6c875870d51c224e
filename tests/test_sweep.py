"""The benchmark suite's parametrisation and budget logic, without timing anything."""

import math

import pytest

from gradbench import costmodel, sweep


def test_profiles_and_budget_override():
    assert set(sweep.PROFILES) == {"quick", "default", "full"}
    p = sweep.profile("quick", budget=12.5)
    assert p.budget == 12.5 and p.widths == sweep.PROFILES["quick"].widths
    with pytest.raises(ValueError, match="choose one of quick, default, full"):
        sweep.profile("fast")
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive number of seconds"):
            sweep.profile("quick", budget=bad)


def test_cases_order_and_content():
    p = sweep.PROFILES["default"]
    cases = sweep.cases(p, threads=2)
    assert len(cases) == len(p.methods) * len(p.widths) * len(p.dtypes)
    assert cases[0].method == "primal"  # primal first: its times predict the others
    by_method = {}
    for c in cases:
        by_method.setdefault(c.method, []).append(c.n_params)
        assert c.sizes == (p.inputs, c.sizes[1], p.classes) and c.threads == 2
    for ns in by_method.values():
        assert ns == sorted(ns)  # small to large within a method
    full = sweep.cases(sweep.PROFILES["full"], 1)
    assert not [c for c in full if c.scheme == "complex_step" and c.dtype != "float64"]
    assert {c.dtype for c in full} == {"float32", "float64"}


def test_ladder_spans_the_decades_the_issue_asks_for():
    p = sweep.PROFILES["default"]
    ns = [costmodel.num_params((p.inputs, w, p.classes)) for w in p.widths]
    assert math.log10(max(ns) / min(ns)) >= 3  # backprop: three decades
    # naive central differences: two decades within their cap of the default budget, by the
    # cost model    # (20 GFLOP/s per thread, about what this project's 2-core machine reaches)
    cap = p.budget * p.share("numerical:central:naive")
    fits = [n for w, n in zip(p.widths, ns, strict=True)
            if sweep.predict_seconds(sweep.Case("numerical:central:naive",
                                                (p.inputs, w, p.classes), p.batch,
                                                "float64", 2), 5e-11) < cap]
    assert math.log10(max(fits) / min(fits)) >= 2


def test_case_info_records_everything():
    c = sweep.Case("numerical:five_point:incremental", (784, 50, 10), 100, "float32", 2)
    info = c.info()
    for key in ("n_params", "batch", "sizes", "depth", "width", "method", "scheme", "strategy",
                "dtype", "threads", "predicted_flops", "loss_evals", "gradbench_schema"):
        assert key in info
    assert (info["scheme"], info["strategy"], info["n_params"], info["loss_evals"]) == \
        ("five_point", "incremental", 39760, 4 * 39760)
    assert c.id == "numerical:five_point:incremental-784x50x10-b100-float32-t2"


def test_prediction_scales_with_flops_and_threads():
    naive1 = sweep.Case("numerical:central:naive", (784, 50, 10), 100, "float64", 1)
    naive2 = sweep.Case("numerical:central:naive", (784, 50, 10), 100, "float64", 2)
    primal = sweep.Case("primal", (784, 50, 10), 100, "float64", 2)
    spf = 1e-3 / primal.cost().flops  # a primal call of 1 ms
    assert sweep.predict_seconds(primal, spf) == pytest.approx(1e-3)
    assert sweep.predict_seconds(naive1, spf) == pytest.approx(2 * 39760 * 1e-3)
    assert sweep.predict_seconds(naive2, spf) == pytest.approx(39760 * 1e-3)


def test_budget_rounds_and_skips():
    b = sweep.Budget(total=10.0)
    assert b.rounds(predicted=20.0, cases_left=1) == 0  # does not fit: skip
    assert b.rounds(predicted=1.0, cases_left=1) == 5  # capped at max_rounds
    assert b.rounds(predicted=1.0, cases_left=4) == 2  # share 2.5 s
    assert b.rounds(predicted=4.0, cases_left=10) == 1  # at least one round when it fits
    assert b.rounds(predicted=4.0, cases_left=1, cap=3.0) == 0  # over the method's cap
    b.charge(9.5)
    assert b.left == pytest.approx(0.5)
    assert b.rounds(predicted=1.0, cases_left=1) == 0
    b.charge(5)
    assert b.left == 0.0
