import os
import signal

# numba.cuda runs on Numba's simulator in the tests (tests/test_gpu.py), unless a GPU machine's
# check (scripts/gpu-check) says otherwise: set before anything imports numba.cuda. Commands
# the tests start inherit it, so a benchmark run records the GPU's methods as unavailable.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np
import pytest
from hypothesis import settings

import gradbench as gb
from gradbench.datasets import make_batch
from gradbench.model import prepare_batch

# A shell starts a background job (`bash scripts/test &`, a CI step run in the background)
# with Ctrl-C ignored, and every process inherits that through exec: the tests that send
# Ctrl-C to a command would wait for ever. Python's own handler here is reset to the default
# in every child at exec, so they get Ctrl-C as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def make_net(sizes, activation="tanh", loss="softmax_ce", dtype="float64", seed=0,
             scale=0.5, output_activation="identity"):
    """A small network with weights large enough that every layer matters."""
    return gb.MLP(sizes, activation=activation, loss=loss, init="normal", scale=scale,
                  dtype=dtype, seed=seed, output_activation=output_activation)


def batch_for(net, B=4, seed=1):
    X, T = make_batch(net, B, seed=seed)
    return X, T


def prepared(net, X, T):
    return prepare_batch(net, X, T)


def rounding_tol(net, B):
    """Forward-error bound of the kernels against NumPy: dot products of length n lose
    about n * eps relative; the loss sums B * K terms. Relative to the result's scale."""
    eps = np.finfo(net.dtype).eps
    n = max(max(net.sizes), B * net.sizes[-1])
    return 4 * net.depth * n * eps


def one_thread_for(dtype) -> int | None:
    """Threads for a test's float32 gradients: one. The parallel drivers are thin prange
    wrappers around the same workers for every dtype, tested against the serial ones in
    float64 (test_result_does_not_depend_on_thread_count); compiling them for float32 as well
    would add about 11 s to a first run (a fresh clone's empty Numba cache) and test nothing
    more. None (every thread) for float64."""
    return 1 if str(dtype) == "float32" else None


def cli_main(capsys, *args) -> tuple[int, str, str]:
    """``gradbench ARGS`` run in this process: (exit status, stdout, stderr). A process costs
    seconds of imports; the tests that need one (the exit status of ``python -m gradbench.cli``,
    no traceback) keep a case that starts it."""
    from gradbench.cli import main

    capsys.readouterr()  # what came before is not this command's output
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def classic_small():
    net = make_net([12, 7, 5, 3], activation="sigmoid")
    X, T = batch_for(net, B=6)
    return net, X, T


# Deterministic by default (CI must not turn red by chance); `--hypothesis-profile=explore`
# searches afresh with many more examples.
settings.register_profile("default", max_examples=40, derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=400, derandomize=False, print_blob=True)
settings.load_profile("default")


class ThreadWatch:
    """Wraps functions to note, at every call, the BLAS threads in effect (threadpoolctl's
    own view, not gradbench.blas's cached one) and Numba's."""

    def __init__(self):
        from threadpoolctl import ThreadpoolController

        self.libs = ThreadpoolController().select(user_api="blas").lib_controllers
        assert self.libs, "threadpoolctl finds no BLAS library"
        self.seen = []  # (name, BLAS threads, Numba threads) per call

    def wrap(self, fn, name: str):
        import numba

        def call(*args, **kwargs):
            self.seen.append((name, max(lib.num_threads for lib in self.libs),
                              numba.get_num_threads()))
            return fn(*args, **kwargs)

        return call

    def names(self) -> set:
        return {name for name, _, _ in self.seen}

    def threads(self) -> set:
        """The (BLAS, Numba) thread counts seen."""
        return {(b, n) for _, b, n in self.seen}


def run_until_cases(tmp_path, label: str, cases: int):
    """``gradbench run --profile default`` started as a process in a session of its own,
    returned once its result file holds ``cases`` completed cases (or it ended, or 10 min
    passed): (the process, the output folder)."""
    import json
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "gradbench.cli", "run", "--profile",
                             "default", "--label", label, "--out", str(out), "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(out.glob(f"{label}-default-*.json")) if out.exists() else []
        if files and len(json.loads(files[0].read_text())["benchmarks"]) >= cases:
            break
        time.sleep(0.2)
    return proc, out
