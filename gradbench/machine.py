"""The machine a run measured: what it is, and calibration figures from the same session."""

from __future__ import annotations

import os
import platform
import socket
import time

import llvmlite
import numba
import numpy as np

from .blas import blas_info, current_blas_threads, thread_limits
from .kernels import calibration


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(label: str | None = None) -> dict:
    """Machine description for result files (JSON-serialisable)."""
    return {
        "label": label or socket.gethostname(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "numpy": np.__version__,
        "threading_layer": _threading_layer(),
        "svml": bool(numba.config.USING_SVML),
        "blas": [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                   "threading_layer", "filepath")}
            for d in blas_info()
        ],
    }


def _threading_layer() -> str:
    """The layer Numba's parallel kernels ran on (omp, tbb, workqueue), or the configured
    choice when none has run yet in this process."""
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel launched yet
        return f"{numba.config.THREADING_LAYER} (none launched yet)"


def _best_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate(n: int = 768, megabytes: int = 64, repeats: int = 5,
              threads: int | None = None) -> dict:
    """Matrix-product GFLOP/s per dtype (the BLAS the kernels call) and memory bandwidth in
    GB/s (a copy: bytes read plus written), best of ``repeats``; measured with BLAS and Numba
    on ``threads`` (default: Numba's setting), the threads of the run's cases, and
    ``blas_threads``, the BLAS threads in effect, recorded with them."""
    threads = numba.get_num_threads() if threads is None else threads
    out = {}
    rng = np.random.default_rng(0)
    with thread_limits(threads):
        out["blas_threads"] = current_blas_threads()
        for dtype in ("float64", "float32"):
            A = rng.standard_normal((n, n)).astype(dtype)
            B = rng.standard_normal((n, n)).astype(dtype)
            C = np.empty((n, n), dtype=dtype)
            sec = _best_seconds(lambda A=A, B=B, C=C: calibration.matmul(A, B, C), repeats)
            out[f"matmul_gflops_{dtype}"] = 2.0 * n**3 / sec / 1e9
        src = np.ones(megabytes * 2**20 // 8)
        dst = np.empty_like(src)
        sec = _best_seconds(lambda: calibration.copy(src, dst), repeats)
        out["memory_gbs"] = 2.0 * src.nbytes / sec / 1e9
    return out


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (others' work distorts timings); None where the
    operating system has none (Windows) or cannot say."""
    try:
        return [float(x) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def code_info() -> dict:
    """What code a run measured: the gradbench version and, when gradbench is imported from a
    git checkout (whatever the current folder), that checkout's commit id, commit time and
    whether it had uncommitted changes. An installed package gives the version alone.

    ``source`` says which: "git checkout <folder>", "installed package" (no git repository
    above the package, or one that does not track it: a virtual environment inside some other
    project's checkout), or "unknown: git failed" when the package lies in a repository but
    git could not say more (not installed, a repository it refuses to read, a timeout); then
    ``git_error`` holds git's one-line reason, and the commit is not recorded."""
    import subprocess
    from pathlib import Path

    from . import __version__

    pkg = Path(__file__).resolve().parent
    out = {"version": __version__, "source": "installed package", "commit": None,
           "commit_time": None, "dirty": None}
    if not any((p / ".git").exists() for p in pkg.parents):
        return out  # no repository above the package: nothing to ask git

    def git(*args) -> str:
        return subprocess.run(["git", "-C", str(pkg), *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel"))
        # the package must be tracked by that repository: a virtual environment inside some
        # other project's checkout is not a gradbench checkout
        try:
            git("ls-files", "--error-unmatch", str(pkg / "__init__.py"))
        except subprocess.CalledProcessError as exc:
            if "did not match any file" in (exc.stderr or ""):
                return out  # not tracked: not a checkout
            raise
        out.update(source=f"git checkout {top}", commit=git("rev-parse", "HEAD"),
                   commit_time=git("show", "-s", "--format=%cI", "HEAD"),
                   dirty=bool(git("status", "--porcelain", "--untracked-files=no")))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        out.update(source="unknown: git failed", commit=None, commit_time=None, dirty=None,
                   git_error=_git_reason(exc))
    return out


def _git_reason(exc: Exception) -> str:
    """One line on why git failed: its own last message, or what kept it from running."""
    import subprocess

    if isinstance(exc, subprocess.CalledProcessError):
        lines = [ln.strip() for ln in (exc.stderr or "").splitlines() if ln.strip()]
        what = " ".join(str(a) for a in exc.cmd[3:5]) if isinstance(exc.cmd, list) else "git"
        msg = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))),
                   lines[-1] if lines else f"exit status {exc.returncode}")
        return f"git {what}: {msg}"[:200]
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"git did not answer within {exc.timeout:g} s"
    if isinstance(exc, FileNotFoundError):
        return "git is not installed (not found on PATH)"
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
