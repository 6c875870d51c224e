"""Numerical gradients in chunks: progress, Ctrl-C, and results independent of the chunking."""

import signal
import threading

import numba
import numpy as np
import pytest

import gradbench as gb
from gradbench import gradients as G
from gradbench.gradients import SCHEMES, STRATEGIES
from gradbench.kernels import incremental as KI
from gradbench.kernels import naive as KN

from .conftest import batch_for, make_net, prepared

THREADS = [1, 2] if numba.config.NUMBA_NUM_THREADS >= 2 else [1]
#: Each strategy's kernel module and drivers' name, and where (start, stop) sit in its job.
DRIVERS = {"naive": (KN, "fd_naive", slice(0, 2)),
           "incremental": (KI, "fd_incremental", slice(1, 3))}


@pytest.fixture
def smallest_chunks(monkeypatch):
    """Every chunk one item per thread: as many kernel calls as there can be."""
    monkeypatch.setattr(G, "CHUNK_SECONDS", 0.0)
    monkeypatch.setattr(G, "CHUNK_FLOOR", 0.0)


def _unchunked(run, segments, n_threads, progress):
    """One kernel call per segment (the whole naive gradient; a whole layer, incremental)."""
    for k, (n_items, _) in enumerate(segments):
        run(k, 0, n_items)


def _counting(monkeypatch, strategy, n_threads):
    """Wrap the driver the wrapper will call; returns the list of its calls' ranges."""
    module, prefix, span = DRIVERS[strategy]
    name = f"{prefix}_{'parallel' if n_threads > 1 else 'serial'}"
    real, calls = getattr(module, name), []

    def driver(*args):
        calls.append(args[-2][span])  # (start, stop), from the job bundle
        return real(*args)

    monkeypatch.setattr(module, name, driver)
    return calls


def _flat(grads):
    return np.concatenate([g.ravel() for g in grads])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_progress_counts_parameters_up_to_the_total(strategy, smallest_chunks):
    net = make_net([5, 4, 3, 2], activation="tanh")
    X, T = batch_for(net, 3)
    seen = []
    gb.numerical_gradient(net, X, T, strategy=strategy, threads=1,
                          progress=lambda done, total: seen.append((done, total)))
    done = [d for d, _ in seen]
    assert len(seen) > 3
    assert all(total == net.num_params for _, total in seen)
    assert done == sorted(set(done)) and done[0] > 0 and done[-1] == net.num_params


def test_gradient_check_passes_progress_on(smallest_chunks):
    net = make_net([4, 3, 2])
    X, T = batch_for(net, 2)
    seen = []
    df = gb.gradient_check(net, X, T, progress=lambda done, total: seen.append(done))
    assert df.attrs["passed"] and seen[-1] == net.num_params and len(seen) > 1


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_chunks_change_nothing_bit_for_bit(scheme, strategy, monkeypatch):
    # four weight layers: the incremental strategy's three regimes all run; five-point steps
    # of a 7-input layer are 32 perturbations, more than one stacked batch of the deep regime
    net = make_net([7, 6, 5, 4, 3], activation="sigmoid")
    X, T = prepared(net, *batch_for(net, 5))
    h = gb.default_step(scheme, net.dtype)

    def gradient(n_threads):
        return G.numerical_gradient_flat(net, net._flat, X, T,
                                         G.FDOptions(scheme, h, strategy, n_threads))

    with monkeypatch.context() as m:
        m.setattr(G, "_in_chunks", _unchunked)
        whole = gradient(1)
    results = [gradient(n) for n in THREADS]  # default chunking
    with monkeypatch.context() as m:
        m.setattr(G, "CHUNK_SECONDS", 0.0)
        m.setattr(G, "CHUNK_FLOOR", 0.0)
        results += [gradient(n) for n in THREADS]
    for g in results:
        assert g.dtype == whole.dtype and np.array_equal(g, whole)


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_interrupt_from_progress_stops_at_once(strategy, n_threads, smallest_chunks,
                                               monkeypatch):
    net = make_net([6, 5, 4, 3], activation="relu")
    X, T = batch_for(net, 4)
    saved = [p.copy() for p in net.params], X.copy(), T.copy()
    calls = _counting(monkeypatch, strategy, n_threads)
    seen = []

    def progress(done, total):
        seen.append(done)
        raise KeyboardInterrupt

    threads_before = numba.get_num_threads()
    with pytest.raises(KeyboardInterrupt):
        gb.numerical_gradient(net, X, T, "five_point", strategy=strategy, threads=n_threads,
                              progress=progress)
    assert len(calls) == 1 and len(seen) == 1 and seen[0] < net.num_params
    assert numba.get_num_threads() == threads_before
    assert all(np.array_equal(a, b) for a, b in zip(saved[0], net.params, strict=True))
    assert np.array_equal(saved[1], X) and np.array_equal(saved[2], T)


@pytest.mark.parametrize("n_threads", THREADS)
def test_ctrl_c_during_a_kernel_call_stops_the_gradient_after_that_call(n_threads,
                                                                        smallest_chunks,
                                                                        monkeypatch):
    # a real SIGINT, sent from another thread while a kernel call runs (as Ctrl-C reaches a
    # process whose main thread is inside a nogil kernel): KeyboardInterrupt is raised when
    # that call returns, and no other call starts. Chunks last at most CHUNK_SECONDS
    # (test_chunks_grow_to_the_target_duration), so this is prompt; events, not timings, order
    # the signal and the calls, so nothing here depends on the machine's speed.
    net = make_net([20, 10, 5], activation="tanh")
    X, T = batch_for(net, 8)
    saved_params = [p.copy() for p in net.params]
    name = f"fd_naive_{'parallel' if n_threads > 1 else 'serial'}"
    real, calls = getattr(KN, name), []
    inside, sent, cancelled = threading.Event(), threading.Event(), threading.Event()

    def driver(*args):
        calls.append(args[-2][:2])  # (start, stop), from the job bundle
        if len(calls) != 3:
            return real(*args)
        inside.set()  # the signal is sent while this call runs, or just after
        out = real(*args)
        sent.wait(timeout=600)
        return out

    def ctrl_c():
        if inside.wait(timeout=600) and not cancelled.is_set():
            signal.raise_signal(signal.SIGINT)
        sent.set()

    monkeypatch.setattr(KN, name, driver)
    threads_before = numba.get_num_threads()
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    sender = threading.Thread(target=ctrl_c, daemon=True)
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            gb.numerical_gradient(net, X, T, threads=n_threads)
    finally:
        cancelled.set()  # a gradient that ran to the end gets no stray signal afterwards
        inside.set()
        sender.join(timeout=600)
        signal.signal(signal.SIGINT, saved)
    assert len(calls) == 3 and calls[-1][1] < net.num_params  # stopped mid-gradient
    assert numba.get_num_threads() == threads_before
    assert all(np.array_equal(a, b) for a, b in zip(saved_params, net.params, strict=True))


class _Clock:
    """A stand-in for the time module: the kernel "runs" by advancing it."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_chunks_grow_to_the_target_duration(n_threads, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(G, "time", clock)
    # naive on a big network: 1 ms per parameter, 3000 parameters
    chunks = []

    def run(k, start, stop):
        chunks.append((k, start, stop, 1e-3 * (stop - start) / n_threads))
        clock.now += chunks[-1][3]

    G._in_chunks(run, [(3000, 1)], n_threads, None)
    assert [c[1] for c in chunks[1:]] == [c[2] for c in chunks[:-1]]  # in order, no gaps
    assert chunks[0][1:3] == (0, n_threads) and chunks[-1][2] == 3000
    assert all((stop - start) % n_threads == 0 for _, start, stop, _ in chunks[:-1])
    durations = [c[3] for c in chunks]
    assert max(durations) <= G.CHUNK_SECONDS * (1 + 1e-9)
    assert max(durations) >= G.CHUNK_SECONDS * 0.9  # grown to the target


def test_a_fast_gradient_takes_few_calls(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(G, "time", clock)
    chunks = []

    def run(k, start, stop):  # 20 us per call, 1 us per parameter
        chunks.append((k, start, stop))
        clock.now += 2e-5 + 1e-6 * (stop - start) * per_item[k]

    # naive: one probe, then the rest
    per_item = [1]
    G._in_chunks(run, [(500, 1)], 2, None)
    assert len(chunks) == 2
    # incremental, three layers: one probe, then one call per layer
    chunks.clear()
    per_item = [8, 7, 6]
    G._in_chunks(run, [(6, 8), (5, 7), (3, 6)], 2, None)
    assert len(chunks) == 4

