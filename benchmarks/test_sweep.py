"""The sweep's tests, from the package (gradbench/bench/suite.py)."""

from gradbench.bench.suite import test_accuracy, test_case  # noqa: F401
