"""The sweep: every case of the profile, timed by pytest-benchmark within the budget."""

from __future__ import annotations

import time

import pytest

import gradbench as gb
from gradbench import sweep
from gradbench.check import warm_up
from gradbench.data import make_batch

#: Below this predicted time a case is left to pytest-benchmark's own calibration.
FAST_SECONDS = 0.02
#: Untimed calls before a fast case is timed: the first calls on a new network touch fresh
#: memory, and the warm-up's parallel region leaves its threads spinning for a moment,
#: competing with BLAS for the cores (measured: the first two backprop calls at w=1024 took
#: 4x the median). Slow cases need none: these effects are small beside one call.
SETTLE_CALLS = 3
SETTLE_SECONDS = 0.02


def _callable(case: sweep.Case, net, X, T):
    if case.method == "primal":
        return lambda: gb.loss(net, X, T)
    if case.method == "backprop":
        return lambda: gb.backprop(net, X, T)
    return lambda: gb.numerical_gradient(net, X, T, case.scheme, strategy=case.strategy,
                                         threads=case.threads)


def _settle(fn) -> None:
    end = time.perf_counter() + SETTLE_SECONDS
    calls = 0
    while calls < SETTLE_CALLS or time.perf_counter() < end:
        fn()
        calls += 1


def _drop_unfinished(config, benchmark) -> None:
    """Ctrl-C inside a case: forget it, so the results file holds only completed cases
    (pytest-benchmark would otherwise fail to write a case with no rounds at all)."""
    session = getattr(config, "_benchmarksession", None)
    stats = getattr(benchmark, "stats", None)
    if session is not None and stats is not None and stats in session.benchmarks:
        session.benchmarks.remove(stats)


def _predict(state, case: sweep.Case) -> float:
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


def test_case(benchmark, case, gb_state, request):
    state = gb_state
    net = gb.MLP(list(case.sizes), activation="sigmoid", loss="softmax_ce", dtype=case.dtype,
                 seed=0)
    X, T = make_batch(net, case.batch, seed=0)
    compile_seconds = warm_up(net, case.scheme or "central", case.strategy or "naive",
                              case.threads)
    predicted = _predict(state, case)
    info = case.info()
    info.update(compile_seconds=compile_seconds, predicted_seconds=predicted)

    rounds = state.budget.rounds((case.dtype, case.method), predicted)
    if rounds == 0:
        room = state.budget.group_left
        state.budget.skipped.append({**info,
                                     "reason": f"predicted {predicted:.3g} s > {room:.3g} s"})
        pytest.skip(f"predicted {predicted:.3g} s exceeds the {room:.3g} s this case may take")

    fn = _callable(case, net, X, T)
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
    if case.method == "primal" and benchmark.stats is not None:
        state.primal[(case.dtype, case.sizes)] = benchmark.stats.stats.median
