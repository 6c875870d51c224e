"""The OpenBLAS kernels for this CPU, chosen before any BLAS library loads.

OpenBLAS picks its kernels by CPU model. The releases that NumPy and SciPy ship do not know
AMD's Zen 4 and Zen 5 as AVX-512 machines and fall back to their Haswell (AVX2) kernels, which
leave half of these cores' floating-point width unused. Measured on a 2-core AMD EPYC Zen 5,
float64 (100 x 784) @ (784 x 50): 50 GFLOP/s on one thread with the Haswell kernels, 72 with
SkylakeX's; 91 and 127 on two threads. On such a machine gradbench asks OpenBLAS for its
SkylakeX kernels (``OPENBLAS_CORETYPE``), the ones written for the same AVX-512 instructions.

The choice is made once, on import of gradbench and before NumPy loads OpenBLAS: it applies
to every BLAS in the process and is inherited by the processes gradbench starts (the peers
too: every contender gets the same BLAS). It is never made when NumPy is already loaded (it
could no longer apply here, and children would differ from this process), when the user has
set ``OPENBLAS_CORETYPE`` themselves, or when ``GRADBENCH_OPENBLAS_CORETYPE=auto-off``. Which
kernels each library really runs is recorded in every result file (machine_info "blas").
This module imports nothing heavy.
"""

from __future__ import annotations

import os
import sys

#: What the CPU must support for OpenBLAS's SkylakeX kernels.
AVX512 = {"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"}
#: Set to this to keep OpenBLAS's own choice.
OFF = "auto-off"


def _cpuinfo() -> tuple[str, set[str]]:
    """(vendor, flags) of the first CPU in /proc/cpuinfo; empty when unreadable."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read(1 << 16)
    except OSError:
        return "", set()
    vendor, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "flags":
            flags = set(value.split())
            break
    return vendor, flags


def openblas_coretype(vendor: str, flags: set[str]) -> str | None:
    """The OpenBLAS core type to ask for on this CPU, or None to keep OpenBLAS's choice:
    SkylakeX on AMD CPUs with AVX-512 (Zen 4, Zen 5), which OpenBLAS runs with AVX2 kernels.
    Intel's AVX-512 CPUs are recognised by OpenBLAS itself."""
    if vendor == "AuthenticAMD" and AVX512 <= flags:
        return "SKYLAKEX"
    return None


def choose_openblas_coretype() -> str | None:
    """Set ``OPENBLAS_CORETYPE`` for this CPU when nothing has decided it yet; returns what
    was set, or None."""
    if "numpy" in sys.modules or "OPENBLAS_CORETYPE" in os.environ:
        return None
    if os.environ.get("GRADBENCH_OPENBLAS_CORETYPE") == OFF:
        return None
    if not sys.platform.startswith("linux"):
        return None
    choice = openblas_coretype(*_cpuinfo())
    if choice is not None:
        os.environ["OPENBLAS_CORETYPE"] = choice
    return choice
