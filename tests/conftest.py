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


def wait_until(done, what: str, proc=None, failsafe: float = 600.0) -> bool:
    """Poll ``done()`` until it is true (True) or ``proc`` has ended (False). ``failsafe``
    seconds is no speed asserted but a bound on a test that would otherwise wait for ever:
    past it the test fails, saying what it waited for."""
    import subprocess
    import threading
    import time

    deadline = time.monotonic() + failsafe
    pause = threading.Event()  # never set: its wait is the interval between two looks
    while not done():
        if proc is not None and proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting, after the failsafe {failsafe:g} s, for {what}")
        if proc is None:
            pause.wait(0.05)
        else:
            try:  # returns at once when the process ends
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
    return True


def cases_in(out, pattern: str) -> int:
    """Completed cases in the result file ``out/pattern`` (0 while there is none)."""
    import json

    files = list(out.glob(pattern)) if out.exists() else []
    if not files:
        return 0
    try:
        return len(json.loads(files[0].read_text())["benchmarks"])
    except (ValueError, OSError):  # written atomically; a file being replaced reads as none
        return 0


def run_until_cases(tmp_path, label: str, cases: int):
    """``gradbench run --profile default`` started as a process in a session of its own,
    returned once its result file holds ``cases`` completed cases (the test fails if that
    never happens): (the process, the output folder)."""
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "gradbench.cli", "run", "--profile",
                             "default", "--label", label, "--out", str(out), "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    pattern = f"{label}-default-*.json"
    if not wait_until(lambda: cases_in(out, pattern) >= cases,
                      f"{cases} completed cases in {out / pattern}", proc):
        stdout, stderr = proc.communicate()
        pytest.fail(f"the run ended (exit status {proc.returncode}) before {cases} cases: "
                    + stdout[-2000:] + stderr[-2000:])
    return proc, out


# ----------------------------------------------------------------------------- the tiers
# `bash scripts/test -m "not slow"` is the fast lane: every kernel against the reference, the
# file formats, the statistics, every verb in this process. Slow (the whole suite, CI on
# Linux): whatever starts a command that runs gradbench or compiles a lot, and the GPU's.

#: Fixtures that start a run: a test that uses one is slow.
SLOW_FIXTURES = {"quick_run", "skipped_run"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("gpu") or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """The main job, once, for the tests that read what it leaves: a wheel built from this
    checkout, installed in a fresh virtual environment (which borrows the test environment's
    third-party packages through a .pth line; gradbench comes only from the wheel), running
    ``gradbench run --profile quick --budget 2 --label ci-box`` from a folder that has
    nothing to do with the checkout and pytest settings of its own (which must not leak into
    the suite). Its kernels compile cold: the wheel's files are new to Numba's cache."""
    import os
    import shutil
    import site
    import subprocess
    import sys
    import sysconfig
    from pathlib import Path
    from types import SimpleNamespace

    root = Path(__file__).resolve().parent.parent
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    shutil.copytree(root / "gradbench", src / "gradbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    dist = tmp / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                            "-w", str(dist), str(src)], capture_output=True, text=True,
                           timeout=600)
    if built.returncode != 0 and "No matching distribution" in built.stderr:
        pytest.skip("setuptools cannot be fetched to build the wheel")
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("gradbench_fd-*.whl")
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True,
                   timeout=300)
    py = env / "bin" / "python"
    purelib = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig."
                                   "get_paths()['purelib'])"], capture_output=True, text=True,
                                  check=True).stdout.strip())
    # dependencies from the test environment, after the venv's own site-packages
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "zz_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet",
                    "--no-deps", str(wheel)], check=True, timeout=600)
    # the installed commands run without PYTHONPATH: a checkout on it would be imported
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = tmp / "elsewhere"
    where.mkdir()
    (where / "pytest.ini").write_text("[pytest]\naddopts = --this-option-does-not-exist\n")
    res = subprocess.run([str(env / "bin" / "gradbench"), "run", "--profile", "quick",
                          "--budget", "2", "--label", "ci-box"], capture_output=True,
                         text=True, cwd=where, timeout=900, env=clean)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (f,) = (where / "results").glob("ci-box-quick-*.json")
    return SimpleNamespace(file=f, res=res, folder=where, env=env, purelib=purelib, clean=clean)
