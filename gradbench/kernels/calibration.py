"""The calibration's kernels: a matrix product through the BLAS the kernels call, and a copy
that streams memory (:func:`gradbench.machine.calibrate` times them)."""

import numpy as np
from numba import njit

from ..config import JIT


@njit(**JIT)
def matmul(A, B, C):
    """C = A @ B, through the BLAS that Numba's np.dot calls."""
    np.dot(A, B, C)


@njit(**JIT)
def copy(src, dst):
    """dst[:] = src, element by element (one read and one write per element)."""
    for i in range(src.shape[0]):
        dst[i] = src[i]
