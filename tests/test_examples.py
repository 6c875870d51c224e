"""Golden files: every result file committed under reports/example/ (benchmark runs of both
schemas, training records) loads through the checked loaders, with the counts it holds.

When the example is rebuilt, update the counts here: they are what the page shows."""

from pathlib import Path

import numpy as np
import pytest

from gradbench import methods, results
from gradbench.results import training

EXAMPLE = Path(__file__).resolve().parent.parent / "reports" / "example"

#: file -> (schema, machine label, timed cases, cases skipped by the budget, peer providers)
RUNS = {
    "vm-2core-default-20261123-013605.json": (1, "vm-2core", 141, 41, set()),
    "zen5-2core-default-20261123-090501.json": (2, "zen5-2core", 141, 41, set()),
    "zen5-peers-default-20261123-134538.json": (2, "zen5-peers", 280, 98,
                                                {"numpy", "torch", "jax", "scipy",
                                                 "numdifftools"}),
}
#: file -> (data set, sizes, method, steps, epochs)
TRAINING = {
    "train-zen5-backprop-20261123-131018.json": ("synthetic", "784-50-10", "backprop", 1000,
                                                 50),
    "train-zen5-backprop-20261123-135254.json": ("digits", "64-50-10", "backprop", 880, 20),
    "train-zen5-numerical-central-incremental-20261123-131024.json": (
        "synthetic", "784-50-10", "numerical:central:incremental", 1000, 50),
    "train-zen5-numerical-central-incremental-20261123-135256.json": (
        "digits", "64-50-10", "numerical:central:incremental", 880, 20),
}


def test_every_committed_file_is_a_run_or_a_training_record():
    bench, train = training.split(EXAMPLE)
    assert sorted(doc.path.name for doc in bench) == sorted(RUNS)  # parsed once, as documents
    assert sorted(f.name for f, _ in train) == sorted(TRAINING)
    assert sorted(p.name for p in EXAMPLE.glob("*.json")) == sorted([*RUNS, *TRAINING])


@pytest.mark.parametrize("name", sorted(RUNS))
def test_each_run_loads_with_its_counts(name):
    schema, label, timed, skipped, peers = RUNS[name]
    rs = results.load_set(EXAMPLE / name)
    (run,) = rs.runs.to_dict("records")
    assert (run["schema"], run["label"], run["status"]) == (schema, label, "complete")
    assert (run["n_cases"], run["n_skipped"]) == (timed, skipped)
    c = rs.cases
    assert c["status"].value_counts().to_dict() == {"ok": timed, "skipped": skipped}
    ok = c[c["status"] == "ok"]
    assert (ok["median"] > 0).all() and np.isfinite(ok["median"]).all()
    assert (ok["n_params"] > 0).all() and (c.loc[c["status"] == "skipped",
                                                 "predicted_seconds"] > 0).all()
    assert set(c["method"]) <= set(methods.REGISTRY)
    assert set(c["provider"]) == {methods.OURS, *peers}
    assert {methods.ANALYTIC, methods.NUMERICAL, methods.LOSS} <= set(ok["method"])
    if schema >= 2:  # the run's accuracy section and the code it measured
        assert not rs.step_curve.empty and not rs.checks.empty
        assert isinstance(run["commit"], str) and len(run["commit"]) == 40
    else:
        assert rs.step_curve.empty and run["gradbench_version"] is None


def test_the_example_folder_loads_as_one_set():
    rs = results.load_set(EXAMPLE)  # training records beside the runs are left alone
    assert sorted(rs.runs["label"]) == sorted(label for _, label, *_ in RUNS.values())
    assert len(rs.cases) == sum(t + s for _, _, t, s, _ in RUNS.values())


def test_each_training_record_loads_with_its_counts():
    ts = training.load(sorted(EXAMPLE / name for name in TRAINING))
    assert len(ts.runs) == len(TRAINING)
    for r in ts.runs.to_dict("records"):
        data, sizes, method, steps, epochs = TRAINING[Path(r["file"]).name]
        assert (r["status"], r["data"], r["sizes"], r["method"]) == ("complete", data, sizes,
                                                                      method)
        assert (r["steps"], r["epochs"], r["optimizer"]) == (steps, epochs, "sgd")
        assert 0 < r["final_test_accuracy"] <= 1 and r["train_seconds"] > 0
        assert methods.get(r["method"]).kind in ("analytic", "numerical")
        # one evaluation before training and one after each epoch
        assert (ts.epochs["file"] == r["file"]).sum() == epochs + 1


def test_cost_laws_on_the_committed_runs():
    """On real runs: the numerical peers the budget stops at small N (per-evaluation overhead
    still 26-64 % of their time there) are no cost laws, nor are the two five-point sweeps
    (stopped by the budget at N = 48,337) whose intervals lie wholly below N^2; every other
    gradbench method and every analytic peer reached its law, the naive gradients' N^2."""
    found = results.fits(results.load_set(EXAMPLE).cases)
    ranges = {(f.label, f.method) for f in found if not f.asymptotic}
    assert ranges == {("zen5-peers", m) for m in ("numpy:central", "scipy:approx_fprime",
                                                  "numdifftools:gradient", "torch:numerical")
                      } | {(m, "numerical:five_point:naive") for m in ("vm-2core", "zen5-2core")}
    naive = [f for f in found if f.method.endswith(":naive")]
    assert len(naive) == 12 and all(abs(f.k - 2) < 0.4 for f in naive)
    assert all(f.k_low < 2.0 < f.k_high for f in naive if f.asymptotic)
