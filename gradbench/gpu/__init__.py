"""gradbench on a GPU: the loss, backprop and numerical gradients as numba.cuda kernels.

Needs the numba-cuda package (``pip install "gradbench-fd[cuda]"``) and an NVIDIA GPU with
its driver; Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs the same kernels on the
CPU, slowly, for tests. Importing this package imports nothing heavy: numba.cuda is imported
by :mod:`gradbench.kernels.cuda` alone, when a GPU function is first called.

    from gradbench import gpu
    if gpu.available():
        on = gpu.Resident(net, X, T)   # parameters and batch copied to the GPU once
        on.backprop()                   # the gradient, left on the GPU (a device array)
        gpu.backprop(net, X, T)         # the public API's shape: a list of host arrays
"""

from __future__ import annotations

import importlib.util
import os

#: The command that installs what the GPU methods need.
INSTALL = 'pip install "gradbench-fd[cuda]"'


def simulated() -> bool:
    """Whether Numba's CUDA simulator stands in for a GPU (NUMBA_ENABLE_CUDASIM=1)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


#: Why the simulator is no GPU to time.
SIMULATOR = ("NUMBA_ENABLE_CUDASIM=1: Numba's CUDA simulator runs the GPU kernels on the CPU, "
             "for tests; there is no GPU to time")


def unavailable_reason(timing: bool = False) -> str | None:
    """None when the GPU methods can run here; else why not, and what to do. ``timing``:
    for the benchmark, which the simulator cannot stand in for."""
    if importlib.util.find_spec("numba_cuda") is None:
        return f"numba-cuda not installed: {INSTALL}"
    if simulated():
        return SIMULATOR if timing else None
    from ..kernels.cuda import runtime  # the one place that imports numba.cuda

    try:
        if runtime.gpu_count() > 0:
            return None
        return "no CUDA GPU found (the driver lists none)"
    except Exception as e:  # numba's CudaSupportError: no driver, or it failed to start
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        return f"no CUDA GPU usable: {first.strip().rstrip(':')}"


def driver_reason() -> str | None:
    """None when an NVIDIA driver (libcuda) can be loaded here; else why not. A probe that
    imports no GPU library, for the peers whose library (torch) is heavy to import; in a
    process that has imported torch already, torch's own answer."""
    import sys

    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if not torch.cuda.is_available():
            return (f"torch {torch.__version__} sees no CUDA GPU (a CPU build of torch, or "
                    "no GPU): install a CUDA build on a machine with an NVIDIA GPU")
        return None
    import ctypes

    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            ctypes.CDLL(name)
            return None
        except OSError:
            continue
    return "no NVIDIA driver here (libcuda not found): no CUDA GPU to time"


def available(timing: bool = False) -> bool:
    """Whether the GPU methods can run here (a GPU, or without ``timing`` the simulator)."""
    return unavailable_reason(timing) is None


def __getattr__(name):  # PEP 562: the kernels' module loads on first use
    if name in ("Resident", "loss", "backprop", "numerical_gradient", "device_info"):
        from . import gradients

        return getattr(gradients, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
