"""The host's side of the GPU: copies, allocations, waiting, and what the device is.

The GPU wrappers (:mod:`gradbench.gpu`) reach numba.cuda's runtime through these functions
alone, so that :mod:`gradbench.kernels.cuda` stays the one place that imports numba.cuda.
"""

from __future__ import annotations

from numba import cuda


def to_device(a):
    """A device copy of the host array ``a``."""
    return cuda.to_device(a)


def device_array(shape, dtype):
    """An uninitialised device array."""
    return cuda.device_array(shape, dtype=dtype)


def synchronize() -> None:
    """Wait for every kernel launched so far."""
    cuda.synchronize()


def gpu_count() -> int:
    """The GPUs the driver lists; raises numba's CudaSupportError when there is no driver,
    or it failed to start."""
    return len(cuda.gpus)


def describe() -> dict:
    """The current device: name, memory, multiprocessors, clock, compute capability, driver
    and CUDA runtime versions and numba-cuda's version (None for what it cannot tell: the
    simulator has no memory, clock or driver to report)."""
    dev = cuda.get_current_device()
    name = getattr(dev, "name", "Numba's CUDA simulator")
    info = {"name": name.decode() if isinstance(name, bytes) else str(name)}
    try:
        free, total = cuda.current_context().get_memory_info()
        info["memory_bytes"] = int(total)
    except Exception:  # the simulator has no memory to report
        info["memory_bytes"] = None
    for key, attr in (("multiprocessors", "MULTIPROCESSOR_COUNT"),
                      ("clock_khz", "CLOCK_RATE")):
        try:
            info[key] = int(getattr(dev, attr))
        except Exception:
            info[key] = None
    try:
        info["compute_capability"] = ".".join(map(str, dev.compute_capability))
    except Exception:
        info["compute_capability"] = None
    try:
        from numba.cuda.cudadrv import driver
        from numba.cuda.cudadrv import runtime as cudart

        info["driver_version"] = ".".join(map(str, driver.driver.get_version()))
        info["cuda_runtime_version"] = ".".join(map(str, cudart.runtime.get_version()))
    except Exception:
        info["driver_version"] = info["cuda_runtime_version"] = None
    import numba_cuda

    info["numba_cuda"] = getattr(numba_cuda, "__version__", None)
    return info
