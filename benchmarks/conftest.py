"""pytest-benchmark plumbing for the gradbench sweep: options, cases, machine info, budget.

Run by `gradbench run`, or directly:

    pytest benchmarks --gb-profile quick --benchmark-json out.json
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numba
import pytest

from gradbench import sweep
from gradbench.machine import calibrate, describe


def pytest_addoption(parser):
    g = parser.getgroup("gradbench")
    g.addoption("--gb-profile", default="quick", help="quick, default or full")
    g.addoption("--gb-budget", type=float, default=None, help="seconds; overrides the profile's")
    g.addoption("--gb-label", default=None, help="machine label (default: host name)")
    g.addoption("--gb-threads", type=int, default=None, help="threads (default: all cores)")


@dataclass
class State:
    """What the session knows while it runs: the profile, the budget, measured primal times."""

    profile: sweep.Profile
    threads: int
    label: str | None
    budget: sweep.Budget
    calibration: dict
    primal: dict = field(default_factory=dict)  # (dtype, sizes) -> seconds per call
    started: float = field(default_factory=time.perf_counter)


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("benchmark"):
        return
    p = sweep.profile(config.getoption("--gb-profile"), config.getoption("--gb-budget"))
    threads = config.getoption("--gb-threads") or numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(threads)
    config._gradbench = State(p, threads, config.getoption("--gb-label"),
                              sweep.Budget(p.budget, p.groups()), calibrate())


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        state = metafunc.config._gradbench
        cases = sweep.cases(state.profile, state.threads)
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.fixture
def gb_state(request):
    return request.config._gradbench


def pytest_benchmark_update_machine_info(config, machine_info):
    state = getattr(config, "_gradbench", None)
    if state is not None:
        machine_info.update(describe(state.label))
        machine_info["calibration"] = state.calibration


def pytest_benchmark_update_json(config, benchmarks, output_json):
    state = getattr(config, "_gradbench", None)
    if state is None:
        return
    p = state.profile
    output_json["gradbench"] = {
        "schema_version": sweep.SCHEMA_VERSION,
        "profile": p.name,
        "budget_seconds": p.budget,
        "spent_seconds": state.budget.spent,
        "wall_seconds": time.perf_counter() - state.started,
        "threads": state.threads,
        "skipped": state.budget.skipped,
    }
