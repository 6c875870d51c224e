"""The registry of methods: every record runs, costs what the cost model says, and is named
consistently; unavailable methods say how to install what they need."""

import dataclasses

import numpy as np
import pytest

from gradbench import methods
from gradbench.datasets import make_batch

from .conftest import make_net

#: gradbench's own methods on the CPU (the peers' records are tested in test_peers.py, the
#: GPU's kernels in test_gpu.py).
OURS = [n for n, m in methods.REGISTRY.items()
        if m.provider == methods.OURS and m.device == "cpu"]
GPU = [n for n, m in methods.REGISTRY.items() if m.provider == methods.OURS and m.device != "cpu"]


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


# The classic network, 784-50-10 at batch 100, worked out by hand from DESIGN.md's math.
N = 784 * 50 + 50 + 50 * 10 + 10  # 39,760 parameters
# one loss: the two products (2 flops a multiply-add), bias and activation per unit, three
# flops per loss term (exp, log-sum, target)
LOSS_FLOPS = 2 * 100 * (784 * 50 + 50 * 10) + 2 * 100 * (50 + 10) + 3 * 100 * 10  # 7,955,000
# the backward pass: dW1, db1; dW2, db2; da1 (W2's product) and the activation's derivative
BACKWARD_FLOPS = (2 * 100 * 784 * 50 + 100 * 50) + (2 * 100 * 50 * 10 + 100 * 10) + (
    2 * 100 * 50 * 10 + 2 * 100 * 50)  # 8,056,000
# incremental: per perturbed W1/b1 entry the moved column of z1 (2B), its activation (B), the
# rank-1 update of the logits (2BK) and the loss rows (3BK); per W2/b2 entry the column (2B)
# and the loss rows; plus one base loss
PER_STEP_INCREMENTAL = (784 * 50 + 50) * (2 + 1 + 20 + 30) * 100 + (50 * 10 + 10) * (
    2 + 30) * 100
#: Loss evaluations per gradient: forward differences N + 1 (the base point once), central 2N,
#: five-point 4N, the complex step N; whatever the strategy.
EVALS = {"forward": N + 1, "central": 2 * N, "five_point": 4 * N, "complex_step": N}
def test_every_record_is_named_for_what_it_computes_and_every_kernel_scheme_has_one():
    from gradbench.kernels.codes import SCHEMES, STRATEGIES

    for name in OURS:
        m = methods.get(name)
        assert name == {"loss": "primal", "analytic": "backprop",
                        "numerical": f"numerical:{m.scheme}:{m.strategy}"}[m.kind]
    kinds = [methods.get(n).kind for n in OURS]
    assert kinds.count("loss") == kinds.count("analytic") == 1
    numerical = [n for n in OURS if methods.get(n).kind == "numerical"]
    assert sorted(numerical) == sorted(f"numerical:{s}:{t}" for s in SCHEMES
                                       for t in STRATEGIES)
    # the same methods on the GPU: each recorded as what it computes, and where
    assert sorted(GPU) == sorted(f"cuda:{n}" for n in OURS)
    for name in GPU:
        m = methods.get(name)
        assert m.part == "gradbench@cuda" and methods.base_name(name) == name[5:]
        assert m.cost((256, 8, 10), 32, "float64") == methods.get(name[5:]).cost(
            (256, 8, 10), 32, "float64")


@pytest.mark.parametrize("name", OURS)
def test_cost_of_the_classic_network_by_hand(name):
    cost = methods.get(name).cost((784, 50, 10), 100, "float64")
    if name == "primal":
        assert (cost.flops, cost.loss_evals) == (LOSS_FLOPS, 1) == (7_955_000, 1)
        assert cost.bytes == 8 * (N + 100 * (784 + 50 + 10) + 100 * 10)  # in, params, acts
        return
    if name == "backprop":  # one forward pass and a backward pass about as long
        assert (cost.flops, cost.loss_evals) == (LOSS_FLOPS + BACKWARD_FLOPS, 1)
        return
    _, scheme, strategy = name.split(":")
    evals = EVALS[scheme]
    assert cost.loss_evals == evals
    arithmetic = 4 if scheme == "complex_step" else 1  # a complex multiply-add: 4 real ones
    if strategy == "naive":  # every evaluation a whole loss
        assert cost.flops == arithmetic * evals * LOSS_FLOPS
    else:
        steps = evals // N  # perturbations per parameter
        assert cost.flops == arithmetic * (LOSS_FLOPS + steps * PER_STEP_INCREMENTAL)
        assert cost.flops < arithmetic * evals * LOSS_FLOPS / 500  # what it exists for


def test_numerical_records_carry_scheme_and_strategy():
    for name in OURS:
        m = methods.get(name)
        if m.kind != "numerical":
            continue
        _, scheme, strategy = name.split(":")
        assert (m.kind, m.scheme, m.strategy, m.threaded) == ("numerical", scheme, strategy,
                                                              True)
        # the complex step needs complex arithmetic of float64's precision
        assert m.dtypes == (("float64",) if scheme == "complex_step" else ("float32",
                                                                          "float64"))
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


def test_schemes_come_from_the_kernels_codes_and_the_headline_scheme_is_listed_first():
    from gradbench.kernels import codes

    assert methods.SCHEMES is codes.SCHEMES and methods.STRATEGIES is codes.STRATEGIES
    assert methods.SHOWN_SCHEMES[0] == methods.HEADLINE_SCHEME == "central"
    assert sorted(methods.SHOWN_SCHEMES) == sorted(codes.SCHEMES)
    assert set(methods.SCHEME_COLOURS) == set(codes.SCHEMES)


def test_every_record_has_its_colour_and_marker():
    # gradbench's methods one colour each, the same on every device; circles; each peer
    # provider a marker of its own
    for name, m in methods.REGISTRY.items():
        assert m.colour.startswith("#") and m.marker
        if m.device != "cpu" and methods.base_name(name) in methods.REGISTRY:
            cpu = methods.get(methods.base_name(name))
            assert (m.colour, m.marker) == (cpu.colour, cpu.marker)
    ours = {m.marker for m in methods.REGISTRY.values() if m.provider == methods.OURS}
    assert ours == {methods.OURS_MARKER}
    peers = {m.provider: m.marker for m in methods.REGISTRY.values()
             if m.provider != methods.OURS}
    assert len(set(peers.values())) == len(peers) and methods.OURS_MARKER not in peers.values()


def test_a_plugin_that_names_no_colour_gets_one_from_the_cycle():
    ours = methods.get("backprop")
    plugin = methods.Method("myplugin:backprop", "myplugin", "analytic", "mine", ours.build,
                            ours.warm)
    assert plugin.colour in methods.PLUGIN_COLOURS and plugin.marker in methods.PLUGIN_MARKERS
    again = methods.Method("myplugin:backprop", "myplugin", "analytic", "mine", ours.build,
                           ours.warm)
    assert (again.colour, again.marker) == (plugin.colour, plugin.marker)  # by its name
    built_in = {m.colour for m in methods.REGISTRY.values()}
    assert not built_in & set(methods.PLUGIN_COLOURS)
    assert dataclasses.replace(ours, name="x").colour == ours.colour
    assert methods.recorded("torch:central") is methods.get("cuda:torch:central")
    assert methods.recorded("from-a-newer-version") is None
