"""The scalar maths of the GPU kernels, per arithmetic, and the sum over a block's threads.

Real arithmetic takes CUDA's libdevice functions (``math.exp``, ``math.log``, ``math.tanh``);
the complex step's are written out from real ones, CUDA having no complex libm. The
activation, its derivative and a sample's loss are the CPU kernels' source
(:func:`gradbench.kernels.scalar.build`), compiled as CUDA device functions over these.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numba
from numba import cuda

from .. import scalar

#: Most threads a block of the per-network kernels may have (its shared reduction array).
MAX_BLOCK = 256


@cuda.jit(device=True)
def _re_real(x):
    return x


@cuda.jit(device=True)
def _re_complex(x):
    return x.real


@cuda.jit(device=True)
def _im_real(x):
    return 0.0


@cuda.jit(device=True)
def _im_complex(x):
    return x.imag


@cuda.jit(device=True)
def _exp_real(x):
    return math.exp(x)


@cuda.jit(device=True)
def _log_real(x):
    return math.log(x)


@cuda.jit(device=True)
def _tanh_real(x):
    return math.tanh(x)


@cuda.jit(device=True)
def _exp_complex(x):
    e = math.exp(x.real)
    return complex(e * math.cos(x.imag), e * math.sin(x.imag))


@cuda.jit(device=True)
def _log_complex(x):
    return complex(math.log(math.hypot(x.real, x.imag)), math.atan2(x.imag, x.real))


@cuda.jit(device=True)
def _tanh_complex(x):
    # tanh(a + ib) = (sinh 2a + i sin 2b) / (cosh 2a + cos 2b); beyond |a| = 20, tanh a is
    # +-1 to the last bit and the imaginary part 2 sin(2b) e^(-2|a|) (no overflow)
    a, b = x.real, x.imag
    if abs(a) > 20.0:
        return complex(math.copysign(1.0, a), 2.0 * math.sin(2.0 * b) * math.exp(-2.0 * abs(a)))
    den = math.cosh(2.0 * a) + math.cos(2.0 * b)
    return complex(math.sinh(2.0 * a) / den, math.sin(2.0 * b) / den)


_MATHS = {
    "real": (_re_real, _im_real, _exp_real, _log_real, _tanh_real),
    "complex": (_re_complex, _im_complex, _exp_complex, _log_complex, _tanh_complex),
}


@cuda.jit(device=True)
def block_sum(x, red):
    """The sum of every thread's x over the block, in a fixed order (the block's threads a
    power of 2; ``red`` a shared array of at least that many elements)."""
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    red[tid] = x
    cuda.syncthreads()
    s = nt // 2
    while s > 0:
        if tid < s:
            red[tid] += red[tid + s]
        cuda.syncthreads()
        s //= 2
    total = red[0]
    cuda.syncthreads()
    return total


def build(dtype: str) -> SimpleNamespace:
    """The scalar maths of one arithmetic.

    Parameters
    ----------
    dtype : str
        "float32", "float64" or "complex128" (the complex step).

    Returns
    -------
    SimpleNamespace
        ``DT`` (the arithmetic's Numba type), ``ACC`` (the losses' sums: float64, or
        complex128 for the complex step, whatever the network's dtype, as on the CPU), the
        device functions ``re``, ``im``, ``exp``, ``log``, and ``act``, ``act_grad``,
        ``row_loss`` from :func:`gradbench.kernels.scalar.build`.
    """
    re, im, exp, log, tanh = _MATHS["complex" if dtype == "complex128" else "real"]
    s = scalar.build(cuda.jit(device=True), exp, exp, log, tanh, re)
    return SimpleNamespace(
        DT=getattr(numba, dtype),
        ACC=numba.complex128 if dtype == "complex128" else numba.float64,
        re=re, im=im, exp=exp, log=log, act=s.act, act_grad=s.act_grad, row_loss=s.row_loss)
