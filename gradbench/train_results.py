"""The training record's old home: it lives in :mod:`gradbench.results.training` now, with
the benchmark results (this name stays, as the same module)."""

import sys

from .results import training

sys.modules[__name__] = training
