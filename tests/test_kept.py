"""Which rounds a result file keeps (schema 4): every round of a short case, the quantiles of
a long one's; the statistics gradbench computes from them equal those of every round; older
files still load; a bad quantiles field is refused naming it."""

import json

import numpy as np
import pytest

from gradbench import compare, results
from gradbench.bench import sweep
from gradbench.compare import rule
from gradbench.results import kept

from .resultfiles import document, power


def _rounds(n, seed=0, median=1e-4):
    """Rounds as timers give them: lognormal about a median, a slow tail of outliers."""
    rng = np.random.default_rng(seed)
    t = median * np.exp(0.03 * rng.standard_normal(n))
    t[rng.random(n) < 0.02] *= 3.0
    return t


def _record(case: sweep.Case, data) -> dict:
    data = [float(x) for x in data]
    q1, med, q3 = np.percentile(data, [25, 50, 75])
    return {"name": f"test_case[{case.id}]", "extra_info": case.info(),
            "stats": {"median": float(med), "iqr": float(q3 - q1), "q1": float(q1),
                      "q3": float(q3), "mean": float(np.mean(data)), "min": min(data),
                      "max": max(data), "stddev": float(np.std(data, ddof=1)),
                      "rounds": len(data), "data": data}}


def _saved(tmp_path, cases, label="m1", name="r.json"):
    doc = results.Document.create(
        machine_info={"label": label, "cpu_model": "Test CPU", "cores": 2,
                      "calibration": {"matmul_gflops_float64": 50.0}},
        code={"commit": None, "commit_time": None, "dirty": None}, label=label,
        profile="quick", budget=45.0, threads=2, version="0.1.0", pytest_benchmark="5.3.1")
    for case, data in cases:
        doc.add_case(_record(case, data))
    doc.set_status("complete")
    return doc.save(tmp_path / name)


def test_a_short_case_keeps_every_round_in_time_order():
    data = list(_rounds(kept.KEPT))
    out = kept.keep(data)
    assert list(out) == ["data"] and out["data"] == [kept.rounded(t) for t in data]


@pytest.mark.parametrize("n", [kept.KEPT + 1, 1000, 19_579])
def test_a_long_case_keeps_quantiles_whose_percentiles_are_every_rounds(n):
    data = _rounds(n, seed=n)
    out = kept.keep(data)
    assert list(out) == ["quantiles"]
    q = np.asarray(out["quantiles"])
    assert len(q) == kept.KEPT and np.all(np.diff(q) >= 0)
    assert q[0] == kept.rounded(data.min()) and q[-1] == kept.rounded(data.max())
    # every whole percentile (the median and quartiles among them) is the full sample's, to
    # the figures kept
    for p in (1, 5, 25, 50, 75, 95, 99):
        full = np.percentile(data, p)
        assert np.percentile(q, p) == pytest.approx(full, rel=5e-4), p
    # compare's standard error of the median: the IQR from the quantiles, n every round
    full_se = rule.median_se(np.log(data))
    assert rule.median_se(np.log(q), n) == pytest.approx(full_se, rel=1e-2)
    if n >= 4 * kept.KEPT:  # the count matters: n, not 201
        assert rule.median_se(np.log(q)) > 2 * full_se


def test_a_saved_long_case_loads_with_its_statistics_and_quantiles(tmp_path):
    long = sweep.Case("backprop", (256, 8, 10), 32, "float64", 2)
    short = sweep.Case("backprop", (256, 16, 10), 32, "float64", 2)
    full = _rounds(5000)
    path = _saved(tmp_path, [(long, full), (short, _rounds(40, seed=1))])
    stats = [b["stats"] for b in json.loads(path.read_text())["benchmarks"]]
    assert "data" not in stats[0] and len(stats[0]["quantiles"]) == kept.KEPT
    assert "quantiles" not in stats[1] and len(stats[1]["data"]) == 40
    assert stats[0]["median"] == float(np.median(full))  # statistics from every round
    assert stats[0]["rounds"] == 5000
    rs = results.load_set(results.Document.load(path))
    by = rs.rounds.groupby("sizes")
    g = by.get_group("256-8-10")
    assert len(g) == kept.KEPT and set(g["kept"]) == {"quantiles"}
    assert set(g["rounds"]) == {5000} and list(g["round"]) == list(range(kept.KEPT))
    g = by.get_group("256-16-10")
    assert len(g) == 40 and set(g["kept"]) == {"all"} and set(g["rounds"]) == {40}


def test_compare_on_kept_rounds_gives_the_verdicts_of_every_round(tmp_path):
    """The same pair of runs, once with every round and once as schema 4 keeps them: the
    same standard errors (to 1 %) and the same verdicts."""
    widths = (1, 2, 4, 8, 16, 32, 64, 128)
    pairs = {}
    seed = 0
    for side, factor in (("base", 1.0), ("head", 1.6)):
        cases = []
        for w in widths:
            for m, t in (("primal", 1e-5), ("backprop", 3e-5)):
                slow = factor if m == "backprop" else 1.0
                c = sweep.Case(m, (256, w, 10), 32, "float64", 2)
                seed += 1
                cases.append((c, _rounds(3000, seed=seed, median=t * w * slow)))
        pairs[side] = cases
    every, keep = {}, {}
    for side, cases in pairs.items():
        keep[side] = _saved(tmp_path, cases, name=f"{side}-kept.json")
        d = json.loads(keep[side].read_text())  # the same file with every round
        for b, (_, data) in zip(d["benchmarks"], cases, strict=True):
            del b["stats"]["quantiles"]
            b["stats"]["data"] = [float(x) for x in data]
        every[side] = tmp_path / f"{side}-every.json"
        every[side].write_text(json.dumps(d))
    a = compare.compare(every["base"], every["head"])
    b = compare.compare(keep["base"], keep["head"])
    assert list(a.cases["verdict"]) == list(b.cases["verdict"])
    assert set(a.cases.loc[a.cases["method"] == "backprop", "verdict"]) == {"slower"}
    np.testing.assert_allclose(b.cases["ratio"], a.cases["ratio"], rtol=1e-12)
    assert a.failed and b.failed


def test_older_files_keep_every_round_and_still_load(tmp_path):
    for schema in (1, 2, 3):
        d = document(power("primal", 1, 1e-8, [1, 2, 4]), schema=schema)
        for b in d["benchmarks"]:  # more rounds than schema 4 keeps
            data = _rounds(300, median=b["stats"]["median"])
            b["stats"].update(data=list(data), rounds=300, min=data.min(), max=data.max(),
                              median=float(np.median(data)))
        f = tmp_path / f"s{schema}.json"
        f.write_text(json.dumps(d))
        rs = results.load_set(f)
        assert len(rs.rounds) == 3 * 300 and set(rs.rounds["kept"]) == {"all"}
        assert set(rs.rounds["rounds"]) == {300}


def _quantile_doc(values, rounds=500, schema=results.SCHEMA_VERSION, keep_data=False):
    d = document(power("primal", 1, 1e-8, [1, 2]), rounds=5, schema=schema)
    st = d["benchmarks"][0]["stats"]
    st["rounds"] = rounds
    st["quantiles"] = values
    if not keep_data:
        del st["data"]
    return d


@pytest.mark.parametrize(
    "values, kwargs, words",
    [
        ([2e-8, 1e-8], {}, "stats.quantiles must be in ascending order"),
        ([1e-8, -1.0], {}, "stats.quantiles[1] must be a positive finite number"),
        ([1e-8, "x"], {}, "stats.quantiles[1] must be a positive finite number"),
        ("1e-8", {}, "stats.quantiles must be a list"),
        ([1e-8], {}, "stats.quantiles holds 1 values, must hold 2 to stats.rounds"),
        ([1e-8] * 600, {}, "stats.quantiles holds 600 values"),
        ([1e-8, 2e-8], {"keep_data": True}, "must not stand beside stats.data"),
    ],
)
def test_bad_quantiles_are_refused_naming_the_field(tmp_path, values, kwargs, words):
    f = tmp_path / "bad.json"
    d = _quantile_doc(values, **kwargs)
    if kwargs.get("keep_data"):
        d["benchmarks"][0]["stats"]["rounds"] = 5
    f.write_text(json.dumps(d))
    with pytest.raises(ValueError) as e:
        results.load_set(f)
    msg = str(e.value)
    assert str(f) in msg and words in msg and "\n" not in msg, msg


def test_quantiles_in_an_older_schema_are_not_read(tmp_path):
    f = tmp_path / "old.json"
    f.write_text(json.dumps(_quantile_doc([2e-8, 1e-8], schema=3)))
    rs = results.load_set(f)
    assert "784-1-10" not in set(rs.rounds["sizes"]) and "784-2-10" in set(rs.rounds["sizes"])
