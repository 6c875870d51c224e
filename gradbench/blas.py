"""Pinning the BLAS thread pools while our own threads run.

Kernels that spread work over Numba threads call BLAS from each of them; BLAS must then run
single-threaded, or its own pool oversubscribes the cores. threadpoolctl finds the pools; the
controllers are looked up once and reused, so pinning costs microseconds per call, not the
tens of microseconds of a fresh ``threadpool_limits``.
"""

from __future__ import annotations

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


def blas_info() -> list[dict]:
    """The BLAS libraries loaded in this process and their thread counts."""
    return [lib.info() for lib in _blas_libs()]
