"""Compile every GPU kernel to PTX for an H100/H200 (sm_90), without a GPU: what the CUDA
simulator cannot check, the typing and lowering of the kernels for the real CUDA target.

Run as a script (tests/test_gpu.py does, in a process of its own: the tests' own numba.cuda
is the simulator). Needs NVVM and NVRTC, from the nvidia-cuda-nvcc-cu12 and
nvidia-cuda-nvrtc-cu12 wheels (the test extras on Linux). Prints one line per kernel and
arithmetic; exit status 1 if any failed.
"""

import os
import sys

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"

import numba.cuda.dispatcher as dispatcher  # noqa: E402
from numba import cuda, types  # noqa: E402

from gradbench.kernels import cuda as G  # noqa: E402


class _Device:
    """No GPU here: device functions are compiled for sm_90, as the kernels are."""

    compute_capability = (9, 0)


dispatcher.get_current_device = lambda: _Device()


def A1(t):
    return types.Array(t, 1, "C")


def A2(t):
    return types.Array(t, 2, "C")


def signatures(arithmetic: str) -> dict:
    """Each kernel's argument types, as gradbench.gpu.gradients launches it: the bundles
    (net, fd, base, job) as tuples."""
    i8, f8 = types.int64, types.float64
    DT = getattr(types, arithmetic)
    R = f8 if arithmetic == "complex128" else DT  # the network's: batch, base pass, gradient
    S = types.complex128 if arithmetic == "complex128" else f8  # the scheme's steps
    net = types.Tuple((A2(i8), i8, i8, i8))
    fd = types.Tuple((i8, A1(S), f8, f8))
    base = types.Tuple((A1(R), A1(R), A1(i8), i8))
    job = types.Tuple((i8, i8, A1(DT), i8))
    sigs = {
        "naive": (A1(DT), A1(R), A2(R), net, fd, job, A1(R)),
        "incremental": (A1(DT), A1(R), A2(R), net, fd, base, job, A1(R)),
    }
    if arithmetic != "complex128":
        sigs.update({
            "forward_layer": (A1(DT), A1(DT), net, base, i8),
            "output_delta": (A2(DT), net, base, A1(DT), A1(f8)),
            "backward_layer": (A1(DT), A1(DT), net, base, i8, A1(DT), A1(DT), A1(DT)),
            "mean_loss": (A2(DT), net, base, i8, A1(f8), A1(f8)),
            "matmul": (A2(DT), A2(DT), A2(DT)),
            "stream": (A1(DT), A1(DT)),
        })
    return sigs


def main() -> int:
    failed = 0
    for arithmetic in ("float32", "float64", "complex128"):
        k = G.build(arithmetic)
        for name, sig in signatures(arithmetic).items():
            try:
                ptx, _ = cuda.compile_ptx(getattr(k, name).py_func, sig, device=False,
                                          cc=(9, 0))
                print(f"{arithmetic} {name} ok {len(ptx)}")
            except Exception as e:  # one line per failure, then the next kernel
                failed += 1
                print(f"{arithmetic} {name} FAILED {type(e).__name__}: "
                      f"{' '.join(str(e).split())[:500]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
