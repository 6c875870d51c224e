"""The report's figures' old home: they live in :mod:`gradbench.report.figures` now (this name
stays, as the same module)."""

import sys

from .report import figures

sys.modules[__name__] = figures
