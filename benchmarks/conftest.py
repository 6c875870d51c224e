"""`pytest benchmarks/` runs the sweep that ships inside the package (gradbench/bench/):

    pytest benchmarks --gb-profile quick --gb-out results/mine.json

It runs gradbench's own cases; the peers run through ``gradbench run``, which starts a process
for each peer provider (gradbench/bench/parts.py).
"""

from gradbench.bench.plugin import (  # noqa: F401  (hooks and fixtures of the sweep)
    gb_state,
    pytest_addoption,
    pytest_benchmark_update_json,
    pytest_benchmark_update_machine_info,
    pytest_configure,
    pytest_generate_tests,
    pytest_sessionfinish,
)
