"""The sweep: every case of the profile, timed by pytest-benchmark within the budget, then the
accuracy figures the report shows (computed here, on the machine measured, and saved with the
results).

Run by ``gradbench run`` (it ships inside the package), or by developers as
``pytest benchmarks/`` (benchmarks/test_sweep.py imports these tests).

A peer's gradient is checked against gradbench's backprop on the network it is timed on
(gradbench.peers.agreement gives the bound) before it is timed, or, when one call is
expensive, on the output of its first timed call; a peer that fails is recorded as rejected,
with the reason, and its timing is not kept.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import gradbench as gb
from gradbench import interrupt, methods, results
from gradbench.bench import sweep
from gradbench.blas import current_blas_threads, thread_limits
from gradbench.config import CASE_TIMEOUT_FACTOR, CLASSIC_BATCH, CLASSIC_SIZES
from gradbench.data import make_batch
from gradbench.peers import agreement

#: Below this predicted time a case is left to pytest-benchmark's own calibration.
FAST_SECONDS = 0.02
#: Untimed calls before a fast case is timed: the first calls on a new network touch fresh
#: memory, and the warm-up's parallel region leaves its threads spinning for a moment,
#: competing with BLAS for the cores (measured: the first two backprop calls at w=1024 took
#: 4x the median). Slow cases need none: these effects are small beside one call.
SETTLE_CALLS = 3
SETTLE_SECONDS = 0.02

#: The classic network of the accuracy check: 784-50-10 sigmoid, batch 100.
CLASSIC = (CLASSIC_SIZES, CLASSIC_BATCH)
#: A peer predicted to take less than this is checked by a call of its own before it is
#: timed; a slower one on the output of its first timed call (a second whole numerical
#: gradient would double its cost).
CHECK_AHEAD_SECONDS = 1.0


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
    """From the primal time at the same size on the same device if measured, else from the
    largest measured there."""
    device = case.record.device
    key = (case.dtype, case.sizes, case.batch, device)
    if key in state.primal:
        ref = sweep.Case("primal", case.sizes, case.batch, case.dtype, case.threads)
        return sweep.predict_seconds(case, state.primal[key] / ref.cost().flops)
    known = [(sweep.Case("primal", s, b, d, case.threads).cost().flops, t)
             for (d, s, b, dev), t in state.primal.items() if d == case.dtype and dev == device]
    if known:
        flops, t = max(known)
        return sweep.predict_seconds(case, t / flops)
    rate = state.calibration[f"matmul_gflops_{case.dtype}"] * 1e9 * 0.25
    return sweep.predict_seconds(case, 1.0 / rate)


def _skip(state, info: dict, reason: str, why: str = "budget"):
    """Record a case that was not timed: ``why`` is "budget" (its predicted time did not fit),
    "unavailable" (not installed here) or "rejected" (its gradient failed the check)."""
    state.not_timed(info, why, reason)
    pytest.skip(reason)


def _first_output(fn):
    """``fn``, keeping the output of its first call (to check it after the timing)."""
    kept = []

    def timed():
        out = fn()
        if not kept:
            kept.append(out)
        return out

    return timed, kept


def test_case(benchmark, case, gb_state, request):
    # BLAS and Numba on the case's threads, gradbench's methods as every peer's library
    # (BLAS's default is every core); the naive strategy still pins BLAS to one thread inside
    # its parallel loop
    # (and a Ctrl-C that lands in a Numba compile's callback stops the run, see native(); it
    # would fail the case and the run would go on)
    with thread_limits(case.threads), interrupt.native():
        try:
            gb_state.watch(case)
            _run_case(benchmark, case, gb_state, request)
        except Exception as exc:
            method = case.record
            if method.plugin is None:
                raise
            # a plugin never takes a run down: its case is recorded, the run goes on
            info = {**case.info(), "pid": os.getpid(), **gb_state.peer,
                    "predicted_seconds": 0.0}
            _skip(gb_state, info, f"rejected: plugin {method.plugin}'s {case.id} raised "
                                  f"{methods.raised(exc)}", "rejected")
        finally:
            gb_state.watch(None)


def _run_case(benchmark, case, state, request):
    method = case.record
    info = {**case.info(), "pid": os.getpid(), **state.peer}
    if not method.available():
        _skip(state, {**info, "predicted_seconds": 0.0}, method.unavailable_reason(),
              "unavailable")
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

    # a watched case (a plugin's) may run its timing's seconds, ten times over, beyond its
    # case timeout
    state.watch(case, CASE_TIMEOUT_FACTOR * max(predicted * (rounds + 2), state.profile.max_time))
    # what compiles per input shape (jax traces and compiles for this batch), for a case that
    # runs: before anything is timed, and counted with the compile time
    info["compile_seconds"] += method.warm(net, case.threads, case.batch)
    checked = kept = None
    given = agreement.inputs(net, X, T) if method.tolerance is not None else None
    fn = method.build(net, X, T, case.threads)
    who = case.method if method.plugin is None else f"plugin {method.plugin}'s {case.id}"
    if method.tolerance is not None:  # a peer: a wrong gradient is not a result
        if predicted < CHECK_AHEAD_SECONDS:
            checked = agreement.check(method, net, X, T, fn(), fn, given)
            if not checked.passed:
                _skip(state, info, checked.reason(who), "rejected")
            timed = fn
        else:
            timed, kept = _first_output(fn)
    else:
        timed = fn
    benchmark.extra_info.update(info, blas_threads=current_blas_threads())
    t0 = time.perf_counter()
    try:
        if predicted < FAST_SECONDS:
            benchmark.extra_info["mode"] = "calibrated"
            _settle(timed)
            benchmark(timed)
        else:
            benchmark.extra_info["mode"] = "pedantic"
            benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=0)
    except KeyboardInterrupt:
        _drop_unfinished(request.config, benchmark)
        raise
    state.budget.charge(time.perf_counter() - t0)
    if kept:  # checked on the output of its first timed call
        checked = agreement.check(method, net, X, T, kept[0], fn, given)
    elif given is not None and (changed := agreement.changed(net, X, T, given)) is not None:
        checked = agreement.Agreement(np.inf, np.inf, f"changed {changed} it was given "
                                                      "while it was timed")
    if checked is not None and not checked.passed:
        _drop_unfinished(request.config, benchmark)
        _skip(state, info, checked.reason(who), "rejected")
    if checked is not None:
        benchmark.extra_info.update(check_max_abs_err=checked.max_abs_err,
                                    check_ratio=checked.ratio)
    if benchmark.stats is None:  # --benchmark-disable: nothing was timed
        return
    if method.kind == "loss" and method.provider == methods.OURS:  # primal, on its device
        state.primal[(case.dtype, case.sizes, case.batch, method.device)] = \
            benchmark.stats.stats.median
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
    if gb_state.provider != methods.OURS:
        pytest.skip("the accuracy figures are computed by gradbench's own part of the run")
    sizes, batch = CLASSIC
    net = gb.MLP(list(sizes), activation="sigmoid", loss="softmax_ce", seed=0)
    X, T = make_batch(net, batch, seed=0)
    check = gb.gradient_check(net, X, T, "central", strategy="incremental",
                              threads=gb_state.threads)
    curve = gb.check.step_curve()
    network = (f"{'-'.join(map(str, sizes))} sigmoid, softmax cross-entropy, batch {batch}, "
               "float64, seed 0")
    gb_state.document().set_accuracy(results.accuracy_record(curve, check, network))
