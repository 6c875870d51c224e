"""The sweep: every case of the profile, timed by pytest-benchmark within the budget, then the
accuracy figures the report shows (computed here, on the machine measured, and saved with the
results).

Run by ``gradbench run`` (it ships inside the package), or by developers as
``pytest benchmarks/`` (benchmarks/test_sweep.py imports these tests).
"""

from __future__ import annotations

import time

import pytest

import gradbench as gb
from gradbench import results
from gradbench.bench import sweep
from gradbench.data import make_batch

#: Below this predicted time a case is left to pytest-benchmark's own calibration.
FAST_SECONDS = 0.02
#: Untimed calls before a fast case is timed: the first calls on a new network touch fresh
#: memory, and the warm-up's parallel region leaves its threads spinning for a moment,
#: competing with BLAS for the cores (measured: the first two backprop calls at w=1024 took
#: 4x the median). Slow cases need none: these effects are small beside one call.
SETTLE_CALLS = 3
SETTLE_SECONDS = 0.02

#: The classic network of the accuracy check: 784-50-10 sigmoid, batch 100.
CLASSIC = ([784, 50, 10], 100)


def _settle(fn) -> None:
    end = time.perf_counter() + SETTLE_SECONDS
    calls = 0
    while calls < SETTLE_CALLS or time.perf_counter() < end:
        fn()
        calls += 1


def _drop_unfinished(config, benchmark) -> None:
    """Ctrl-C inside a case: forget it, so that pytest-benchmark's own JSON, if asked for,
    holds only completed cases (it would fail to write a case with no rounds at all)."""
    session = getattr(config, "_benchmarksession", None)
    stats = getattr(benchmark, "stats", None)
    if session is not None and stats is not None and stats in session.benchmarks:
        session.benchmarks.remove(stats)


def _predict(state, case: sweep.Case) -> float:
    """The cost model's time, corrected by how far off it was for this method's last case."""
    return _model_seconds(state, case) * state.correction.get((case.dtype, case.method), 1.0)


def _model_seconds(state, case: sweep.Case) -> float:
    """From the primal time at the same size if measured, else from the largest measured."""
    key = (case.dtype, case.sizes)
    if key in state.primal:
        ref = sweep.Case("primal", case.sizes, case.batch, case.dtype, case.threads)
        return sweep.predict_seconds(case, state.primal[key] / ref.cost().flops)
    known = [(sweep.Case("primal", s, case.batch, d, case.threads).cost().flops, t)
             for (d, s), t in state.primal.items() if d == case.dtype]
    if known:
        flops, t = max(known)
        return sweep.predict_seconds(case, t / flops)
    rate = state.calibration[f"matmul_gflops_{case.dtype}"] * 1e9 * 0.25
    return sweep.predict_seconds(case, 1.0 / rate)


def _skip(state, info: dict, reason: str):
    state.budget.skipped.append({**info, "reason": reason})
    state.checkpoint()
    pytest.skip(reason)


def test_case(benchmark, case, gb_state, request):
    state = gb_state
    method = case.record
    info = case.info()
    if not method.available():
        _skip(state, {**info, "predicted_seconds": 0.0}, method.unavailable_reason())
    net = gb.MLP(list(case.sizes), activation="sigmoid", loss="softmax_ce", dtype=case.dtype,
                 seed=0)
    X, T = make_batch(net, case.batch, seed=0)
    compile_seconds = method.warm(net, case.threads)
    predicted = _predict(state, case)
    info.update(compile_seconds=compile_seconds, predicted_seconds=predicted)

    rounds = state.budget.rounds((case.dtype, case.method), predicted)
    if rounds == 0:
        room = state.budget.group_left
        _skip(state, info, f"predicted {predicted:.3g} s exceeds the {room:.3g} s left for "
                           "this method")

    fn = method.build(net, X, T, case.threads)
    benchmark.extra_info.update(info)
    t0 = time.perf_counter()
    try:
        if predicted < FAST_SECONDS:
            benchmark.extra_info["mode"] = "calibrated"
            _settle(fn)
            benchmark(fn)
        else:
            benchmark.extra_info["mode"] = "pedantic"
            benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    except KeyboardInterrupt:
        _drop_unfinished(request.config, benchmark)
        raise
    state.budget.charge(time.perf_counter() - t0)
    if benchmark.stats is None:  # --benchmark-disable: nothing was timed
        return
    if case.method == "primal":
        state.primal[(case.dtype, case.sizes)] = benchmark.stats.stats.median
    # the cost model's error on this case corrects the next prediction (measured: naive
    # central differences took 1.5x what it predicted at the largest sizes)
    state.correction[(case.dtype, case.method)] = (benchmark.stats.stats.median
                                                   / _model_seconds(state, case))
    state.add(benchmark.stats, case)


def test_accuracy(gb_state, request):
    """The error-against-step curve and the classic network's gradient check, computed on
    this machine and saved with the timings (arithmetic, not timing: nothing is timed)."""
    if request.config.getoption("benchmark_disable", False):
        pytest.skip("benchmarks disabled")
    sizes, batch = CLASSIC
    net = gb.MLP(sizes, activation="sigmoid", loss="softmax_ce", seed=0)
    X, T = make_batch(net, batch, seed=0)
    check = gb.gradient_check(net, X, T, "central", strategy="incremental",
                              threads=gb_state.threads)
    curve = gb.check.step_curve()
    network = (f"{'-'.join(map(str, sizes))} sigmoid, softmax cross-entropy, batch {batch}, "
               "float64, seed 0")
    gb_state.accuracy = results.accuracy_record(curve, check, network)
