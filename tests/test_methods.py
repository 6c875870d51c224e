"""The registry of methods: every record runs, costs what the cost model says, and is named
consistently; unavailable methods say how to install what they need."""

import dataclasses

import numpy as np
import pytest

from gradbench import costmodel, methods
from gradbench.data import make_batch

from .conftest import make_net

#: gradbench's own methods (the peers' records are tested in test_peers.py).
OURS = [n for n, m in methods.REGISTRY.items() if m.provider == methods.OURS]


@pytest.mark.parametrize("name", OURS)
def test_every_method_builds_warms_and_runs(name):
    m = methods.get(name)
    assert m.name == name and m.kind in methods.KINDS and m.provider == "gradbench"
    net = make_net([5, 4, 3], activation="sigmoid")
    X, T = make_batch(net, 6, seed=1)
    assert m.warm(net, 1) >= 0
    out = m.build(net, X, T, 1)()
    if m.kind == "loss":
        assert np.isfinite(out)
    else:
        assert [g.shape for g in out] == [p.shape for p in net.params]
    assert m.available() and m.unavailable_reason() is None


@pytest.mark.parametrize("name", OURS)
def test_cost_matches_the_cost_model(name):
    m = methods.get(name)
    sizes, B = (784, 50, 10), 100
    if m.kind == "numerical":
        want = costmodel.predict("numerical", sizes, B, "float64", m.scheme, m.strategy)
        assert m.threaded
    else:
        want = costmodel.predict("primal" if m.kind == "loss" else "backprop", sizes, B)
    assert m.cost(sizes, B, "float64") == want


def test_numerical_records_carry_scheme_and_strategy():
    numerical = [methods.get(n) for n in OURS if methods.get(n).kind == "numerical"]
    assert {(m.scheme, m.strategy) for m in numerical} == {
        (s, t) for s in methods.SCHEMES for t in methods.STRATEGIES}
    assert methods.get("numerical:complex_step:naive").dtypes == ("float64",)
    assert len({m.title for m in methods.REGISTRY.values()}) == len(methods.REGISTRY)


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="unknown method 'magic': choose one of primal"):
        methods.get("magic")
    assert methods.title("from-a-newer-version") == "from-a-newer-version"
    assert methods.order("from-a-newer-version") == len(methods.REGISTRY)


def test_missing_requirement_gives_the_install_command():
    m = dataclasses.replace(methods.get("backprop"), requires=("no_such_module_xyz",),
                            install='pip install "gradbench-fd[xyz]"')
    assert not m.available()
    assert m.unavailable_reason() == ('no_such_module_xyz not installed: '
                                      'pip install "gradbench-fd[xyz]"')
