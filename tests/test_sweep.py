"""The benchmark suite's parametrisation and budget logic, without timing anything."""

import math

import pytest

from gradbench import costmodel, methods
from gradbench.bench import sweep


def test_profiles_and_budget_override():
    assert set(sweep.PROFILES) == {"quick", "default", "full", "gpu"}
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
    ladder = [c for c in cases if not c.classic]
    assert len(ladder) == len(p.methods) * len(p.widths) * len(p.dtypes)
    # and the classic network once per method (float64)
    assert sorted(c.method for c in cases if c.classic) == sorted(p.methods)
    assert cases[0].method == "primal"  # primal first: its times predict the others
    by_method = {}
    for c in cases:
        by_method.setdefault(c.method, []).append(c.cost().flops)
        assert c.threads == (2 if c.record.device == "cpu" else 1)  # a GPU's: the host's
        assert c.sizes == (p.inputs, c.sizes[1], p.classes) or c.classic
    for flops in by_method.values():
        assert flops == sorted(flops)  # small to large within a method
    # gradbench's cases first, then its GPU's, then each peer provider's together (a
    # process each; the torch's GPU methods in one of their own)
    providers = [c.record.part for c in cases]
    assert providers[0] == methods.OURS and providers[1:].index("gradbench@cuda") >= 0
    assert [k for i, k in enumerate(providers) if i == 0 or providers[i - 1] != k] == \
        p.providers
    assert sweep.cases(p, 2, "torch") == [c for c in cases if c.record.part == "torch"]
    assert {c.record.device for c in sweep.cases(p, 2, "torch@cuda")} == {"cuda"}
    full = sweep.cases(sweep.PROFILES["full"], 1)
    assert not [c for c in full if c.scheme == "complex_step" and c.dtype != "float64"]
    assert {c.dtype for c in full} == {"float32", "float64"}


def test_ladder_spans_the_decades_the_issue_asks_for():
    p = sweep.PROFILES["default"]
    ns = [costmodel.num_params((p.inputs, w, p.classes)) for w in p.widths]
    assert math.log10(max(ns) / min(ns)) >= 3  # backprop: three decades
    # naive central differences: two decades within their allotment of the default budget
    # by the cost model (20 GFLOP/s per thread, about what this project's machine reaches)
    groups = p.groups()
    cap = p.budget * groups[("float64", "numerical:central:naive")] / sum(groups.values())
    fits = [n for w, n in zip(p.widths, ns, strict=True)
            if sweep.predict_seconds(sweep.Case("numerical:central:naive",
                                                (p.inputs, w, p.classes), p.batch,
                                                "float64", 2), 5e-11) < cap]
    assert math.log10(max(fits) / min(fits)) >= 2


def test_case_info_records_everything():
    c = sweep.Case("numerical:five_point:incremental", (784, 50, 10), 100, "float32", 2)  # classic
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
    b = sweep.Budget(total=10.0, weights={"a": 1.0, "b": 3.0, "c": 1.0}, repeat_share=0.1)
    assert b.rounds("a", predicted=2.5) == 0  # over a's allotment, 10 * 1/5: skip
    assert b.rounds("a", predicted=0.09) == 2  # 10 % of the allotment affords 2 rounds
    assert b.rounds("a", predicted=1.9) == 1  # at least one round when it fits
    assert b.rounds("a", predicted=0.001) == 5  # capped at max_rounds
    b.charge(1.5)
    assert b.group_left == pytest.approx(0.5)
    assert b.rounds("a", predicted=1.0) == 0  # a's allotment is nearly spent
    # what a left unspent passes on: b gets 8.5 * 3/4
    assert b.rounds("b", predicted=6.3) == 1
    assert b.allotment == pytest.approx(6.375)
    b.charge(1.0)
    assert b.rounds("c", predicted=7.5) == 1  # c gets all that is left: 7.5
    assert b.rounds("c", predicted=7.6) == 0
    b.charge(50)
    assert b.left == 0.0 and b.group_left == 0.0


def test_no_group_starves_a_later_one():
    # the default profile's groups, every case predicted at 1 s: each method still runs
    p = sweep.PROFILES["default"]
    b = sweep.Budget(total=p.budget, weights=p.groups())
    ran = {}
    for c in sweep.cases(p, 2):
        if c.record.device != "cpu" and not c.record.available():
            continue  # no GPU here: the suite records these unavailable, outside the budget
        if b.rounds((c.dtype, c.method), predicted=1.0):
            b.charge(1.0)
            ran[c.method] = ran.get(c.method, 0) + 1
    assert set(ran) == {m for m in p.methods if methods.get(m).device == "cpu"
                        or methods.get(m).available()}
    assert ran["numerical:central:naive"] == max(ran.values())
    with pytest.raises(ValueError, match="not one of"):
        b.rounds(("float16", "primal"), 1.0)


def test_a_group_that_overran_cannot_starve_the_next():
    b = sweep.Budget(total=10.0, weights={"a": 1.0, "b": 1.0})
    assert b.rounds("a", predicted=4.0) == 1
    b.charge(12.0)  # three times what was predicted: the whole budget and more
    assert b.rounds("b", predicted=1.0) == 1  # b still gets a quarter of its 5 s share
    assert b.group_left == pytest.approx(0.25 * 5.0)
    assert b.rounds("b", predicted=1.3) == 0


def test_one_case_type_for_the_sweep_the_gate_and_check():
    from gradbench import results
    from gradbench.bench import case
    from gradbench.gate import profile

    assert sweep.Case is case.Case and profile.GateCase is case.Case
    assert all(isinstance(c, case.Case) for p in profile.PROFILES.values() for c in p.cases)
    c = case.Case("cuda:backprop", [256, 8, 10], 32, "float32", 1)
    assert c.sizes == (256, 8, 10)  # a list, as a worker's request holds them, made a tuple
    # its identity is the results' case key, the device its method's
    assert c.key == tuple(getattr(c, k) for k in results.CASE_KEY)
    assert c.key == ("cuda:backprop", (256, 8, 10), 32, "float32", 1, "cuda")
    # a gate profile's parallel case: the run's threads, left out of its id and its request;
    # a serial one says its one thread in both
    g = profile.PROFILES["gate"].cases[-1]
    assert g.threads is None and g.id == "numerical:central:incremental-256x128x10-b32-float64"
    assert g.request() == {"method": "numerical:central:incremental", "sizes": [256, 128, 10],
                           "batch": 32, "dtype": "float64"}
    s = profile.PROFILES["gate"].cases[0]
    assert s.id == "primal-256x4x10-b32-float64-t1" and s.request()["threads"] == 1


def test_the_classic_network_is_defined_once():
    from gradbench import config
    from gradbench.bench import suite
    from gradbench.gate import profile

    classic = (config.CLASSIC_SIZES, config.CLASSIC_BATCH, config.CLASSIC_DTYPE)
    assert classic == ((784, 50, 10), 100, "float64") == sweep.CLASSIC
    assert sweep.Case("backprop", (784, 50, 10), 100, "float64", 2).classic
    assert not sweep.Case("backprop", (784, 50, 10), 100, "float32", 2).classic
    assert suite.CLASSIC == profile.CLASSIC == classic[:2]
    assert [c.classic for c in profile.PROFILES["gate"].cases].count(True) == 2
