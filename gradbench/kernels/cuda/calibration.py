"""What the GPU's calibration times: a tiled matrix product and a memory stream."""

from __future__ import annotations

from types import SimpleNamespace

from numba import cuda

#: Side of the calibration's matrix-product tiles.
TILE = 16


def build(sm: SimpleNamespace) -> SimpleNamespace:
    """``matmul`` and ``stream`` in the arithmetic ``sm.DT``
    (:func:`gradbench.kernels.cuda.maths.build`)."""
    DT = sm.DT

    @cuda.jit
    def matmul(a, b, c):
        """c = a @ b (square, n a multiple of TILE), shared-memory tiles of TILE x TILE: the
        calibration's matrix-product rate."""
        sa = cuda.shared.array((TILE, TILE), DT)
        sb = cuda.shared.array((TILE, TILE), DT)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        n = a.shape[0]
        acc = 0.0 * a[0, 0]
        for t in range(n // TILE):
            sa[ty, tx] = a[row, t * TILE + tx]
            sb[ty, tx] = b[t * TILE + ty, col]
            cuda.syncthreads()
            for k in range(TILE):
                acc += sa[ty, k] * sb[k, tx]
            cuda.syncthreads()
        c[row, col] = acc

    @cuda.jit
    def stream(src, dst):
        """dst = 2 src: the calibration's memory bandwidth (two passes over the bytes)."""
        i = cuda.grid(1)
        if i < src.shape[0]:
            dst[i] = 2.0 * src[i]

    return SimpleNamespace(matmul=matmul, stream=stream)
