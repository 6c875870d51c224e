"""Pinning the BLAS thread pools while our own threads run.

Kernels that spread work over Numba threads call BLAS from each of them; BLAS must then run
single-threaded, or its own pool oversubscribes the cores. threadpoolctl finds the pools; the
controllers are looked up once and reused, so pinning costs microseconds per call, not the
tens of microseconds of a fresh ``threadpool_limits``.

A case timed on T threads runs with BLAS and Numba both on T (:class:`thread_limits`), as
every peer's library is limited to T: otherwise BLAS runs at its default (all cores) under
gradbench's loss and backprop alone.
"""

from __future__ import annotations

import numbers

import numba
import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS that Numba's np.dot calls)
from threadpoolctl import ThreadpoolController

_controllers = None


def _blas_libs():
    global _controllers
    if _controllers is None:
        _controllers = ThreadpoolController().select(user_api="blas").lib_controllers
    return _controllers


class blas_threads:
    """Context manager: every BLAS library runs on ``n`` threads inside, as before outside
    (microseconds, where a fresh ``threadpool_limits`` takes about a millisecond)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self._saved = [(lib, lib.num_threads) for lib in _blas_libs()]
        for lib, n in self._saved:
            if n != self.n:
                lib.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        for lib, n in self._saved:
            if n != self.n:
                lib.set_num_threads(n)
        return False


class single_threaded_blas(blas_threads):
    """Context manager: every BLAS library runs on one thread inside, as before outside."""

    def __init__(self):
        super().__init__(1)


def check_threads(threads) -> int:
    """A thread count checked against Numba's limit; None means Numba's current setting.

    The one check of every ``threads`` a user passes (API, command line, suite).

    Raises
    ------
    TypeError
        For a value that is not a whole number or None.
    ValueError
        For a count outside 1..NUMBA_NUM_THREADS.
    """
    limit = numba.config.NUMBA_NUM_THREADS
    if threads is None:
        return numba.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be a whole number or None, got {threads!r}")
    if not 1 <= threads <= limit:
        raise ValueError(
            f"threads must lie in 1..{limit} (NUMBA_NUM_THREADS), got {threads}"
        )
    return int(threads)


class numba_threads:
    """Context manager: Numba's parallel kernels run on ``n`` threads inside, as before
    outside (Numba's setting is this thread's). The one place that saves and restores it."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self._saved = numba.get_num_threads()
        numba.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        numba.set_num_threads(self._saved)
        return False


class thread_limits(blas_threads):
    """Context manager: every BLAS library and Numba's parallel kernels run on ``n``
    threads inside, as before outside (Numba's setting is this thread's)."""

    def __enter__(self):
        self._numba = numba_threads(self.n).__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self._numba.__exit__(*exc)
        return False


def current_blas_threads() -> int | None:
    """The threads BLAS runs on now: the most of any BLAS library loaded in this process
    (None when threadpoolctl finds none)."""
    counts = [lib.num_threads for lib in _blas_libs()]
    return max(counts) if counts else None


def blas_info() -> list[dict]:
    """The BLAS libraries loaded in this process and their thread counts."""
    return [lib.info() for lib in _blas_libs()]
