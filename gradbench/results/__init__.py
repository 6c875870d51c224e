"""The result formats and their one owner: benchmark results and training records.

- :mod:`.schema`: versions, statuses, the case and series keys, the frames' columns;
- :mod:`.document`: the result document, its one writer (create, add a case, add a case not
  timed, set the status, save atomically) and checked loader, and the listing of a folder;
- :mod:`.fields`: the checks of every field of a result document, which the loader and the
  frames share;
- :mod:`.kept`: which of a case's rounds a file keeps (every one, or their quantiles), and
  to what precision;
- :mod:`.frames`: result files as tidy frames (runs, cases, rounds, accuracy);
- :mod:`.fits`: power laws per series;
- :mod:`.training`: the training records `gradbench train` writes.
"""

from .document import (
    Document,
    accuracy_record,
    case_info,
    read,
    result_files,
    timing_record,
    write,
    write_text,
)
from .fields import check
from .fits import (
    DRIFT,
    FIT_DECADES,
    MIN_POINTS,
    OVERHEAD_MAX,
    PowerLaw,
    drift_tilt,
    fit_power_law,
    fits,
    fits_frame,
    ladder,
    ratio_to,
)
from .frames import ResultSet, load, load_all, load_set, rounds, runs, subset
from .kept import KEPT, ROUND_DIGITS
from .schema import (
    CASE_COLUMNS,
    CASE_KEY,
    CASE_ON_MACHINE,
    CHECK_COLUMNS,
    DEFAULT_DEVICE,
    DTYPES,
    MACHINE_KEY,
    METHOD_KEY,
    NOT_TIMED,
    PANEL_KEY,
    RATES,
    READABLE,
    ROUND_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    SERIES_KEY,
    STATUSES,
    STEP_COLUMNS,
    TRAINING_FORMAT,
    TRAINING_KEY,
    TrainingRecord,
    check_version,
    rate_column,
    series,
)

__all__ = [
    "CASE_COLUMNS", "CASE_KEY", "CASE_ON_MACHINE", "CHECK_COLUMNS", "DEFAULT_DEVICE", "DRIFT",
    "DTYPES", "Document", "FIT_DECADES", "KEPT", "MACHINE_KEY", "METHOD_KEY", "MIN_POINTS",
    "NOT_TIMED",    "OVERHEAD_MAX", "PANEL_KEY", "PowerLaw", "RATES", "READABLE", "ROUND_COLUMNS",
    "ROUND_DIGITS", "RUN_COLUMNS", "ResultSet", "SCHEMA_VERSION", "SERIES_KEY", "STATUSES",
    "STEP_COLUMNS", "TRAINING_FORMAT", "TRAINING_KEY", "TrainingRecord", "accuracy_record",
    "case_info", "check", "check_version", "drift_tilt", "fit_power_law", "fits", "fits_frame",
    "ladder", "load", "load_all", "load_set", "rate_column", "ratio_to", "read", "result_files",
    "rounds", "runs", "series", "subset", "timing_record", "write", "write_text",
]
