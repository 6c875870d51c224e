"""The terminal line of each part of ``gradbench run``: a pytest plugin.

Loaded by every part (``-p gradbench.bench.progress``, gradbench.bench.parts): gradbench's
own in its process and each peer provider's in a process of its own. Unless ``--gb-verbose``
is given it replaces pytest's letter per case with one line per part: a bar of the part's
cases done, the case being timed and the run's budget left, redrawn in place on a terminal;
when the part ends the line says what it did. Off a terminal (a log, CI) the line is printed
when the part ends, and while it runs at most once every :data:`LOG_SECONDS`. Letters are
hidden by blanking them in ``pytest_report_teststatus``, so pytest still counts every outcome
and still prints a failure's traceback and the short summary at the end; ``gradbench run``
(gradbench.bench.parts) hides the rest: pytest's percentages (``console_output_style``
classic), its count of outcomes (a second ``-q``) and pytest-benchmark's tables
(``--benchmark-quiet``).

Nothing here touches what is timed or saved: the line is drawn between cases, from what
pytest reports and the run's budget (``config._gradbench``, gradbench.bench.plugin).
"""

from __future__ import annotations

import shutil
import sys
import time

import pytest

#: Off a terminal, fewest seconds between two lines of a part still running.
LOG_SECONDS = 60.0
#: Width of the bar, in characters.
BAR = 24


def pytest_addoption(parser):
    parser.getgroup("gradbench").addoption(
        "--gb-verbose", action="store_true",
        help="pytest's own output, a letter per case, instead of gradbench's progress line")


def pytest_configure(config):
    if not config.getoption("--gb-verbose"):
        config.pluginmanager.register(Progress(config), "gradbench-progress")


def bar(done: int, total: int, width: int = BAR) -> str:
    """``[#########---------]``: ``done`` of ``total``."""
    full = width if total <= 0 else min(width, done * width // total)
    return "[" + "#" * full + "-" * (width - full) + "]"


def part_name(provider: str | None, only: tuple | None = None) -> str:
    """What a part is called on its line: "gradbench", "gradbench on cuda", "torch peers
    (torch:backprop, torch:numerical)" (a peer's or a plugin's part: its methods, ``only``)."""
    from .. import methods as registry

    if provider is None or provider == registry.OURS:
        return "gradbench"
    if provider.startswith(f"{registry.OURS}@"):
        return f"gradbench on {provider.split('@', 1)[1]}"
    return f"{provider} peers" + (f" ({', '.join(only)})" if only else "")


def minutes(seconds: float) -> str:
    """Elapsed time for a sentence: "48 s", "5 min 33 s"."""
    s = int(round(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


class Progress:
    """One part's line: counts what pytest reports, draws between cases."""

    def __init__(self, config, out=None):
        self.config = config
        self._out = out  # default: sys.stdout as it is when the line is drawn (between cases,
        # pytest's capture is suspended: the terminal, or the file or pipe the run writes to)
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.cases: dict[str, str] = {}  # nodeid -> case id
        self.total = self.done = self.timed = self.not_timed = self.failed = 0
        self.current: str | None = None
        self.started = time.perf_counter()
        self.logged = 0.0

    @property
    def out(self):
        return self._out if self._out is not None else sys.stdout

    @property
    def name(self) -> str:
        state = getattr(self.config, "_gradbench", None)
        return part_name(getattr(state, "provider", None), getattr(state, "only", None))

    def budget_left(self) -> float | None:
        budget = getattr(getattr(self.config, "_gradbench", None), "budget", None)
        return None if budget is None else budget.left

    # ----------------------------------------------------------------------- pytest hooks

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report, config):
        """pytest's outcome for the report with its letter blanked: counted, not shown as it
        happens (its word stays, for the short summary of failures at the end)."""
        category, _, word = yield
        return category, "", word

    def pytest_collection_finish(self, session):
        for item in session.items:
            case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
            if case is not None:
                self.cases[item.nodeid] = getattr(case, "id", str(case))
        self.total = len(self.cases)
        self.started = time.perf_counter()

    def pytest_runtest_logstart(self, nodeid, location):
        if nodeid in self.cases:
            self.current = f"timing {self.cases[nodeid]}"
        else:  # the accuracy figures, after gradbench's cases
            self.current = ("computing the accuracy figures" if "accuracy" in nodeid
                            else nodeid.rpartition("::")[2])
        self.draw()

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed += 1
        elif report.nodeid in self.cases:
            if report.skipped:  # by the budget, not installed or rejected
                self.not_timed += 1
            elif report.when == "call":
                self.timed += 1

    def pytest_runtest_logfinish(self, nodeid, location):
        if nodeid in self.cases:
            self.done += 1
        self.current = None  # drawn with the next case, or the part's last line

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session):
        try:
            return (yield)
        finally:  # the part's last line, also when Ctrl-C or a failure ended it
            self.finish()

    # ------------------------------------------------------------------------ the line

    def line(self) -> str:
        """The line while the part runs."""
        left = self.budget_left()
        parts = [self.name, bar(self.done, self.total), f"{self.done}/{self.total} cases"]
        if self.current:
            parts.append(self.current)
        if left is not None:
            parts.append(f"budget left {left:,.0f} s")
        return "  ".join(parts)

    def summary(self) -> str:
        """The line when the part has ended."""
        left = self.budget_left()
        what = [f"{self.timed} timed", f"{self.not_timed} not timed"]
        if self.failed:
            what.append(f"{self.failed} failed (below)")
        end = "" if left is None else f"; budget left {left:,.0f} s"
        return (f"{self.name}  {bar(self.done, self.total)}  {self.done}/{self.total} cases in "
                f"{minutes(time.perf_counter() - self.started)}: {', '.join(what)}{end}")

    def draw(self) -> None:
        """The line redrawn as a case starts (on a terminal: a hundred characters, however
        fast the cases come)."""
        now = time.perf_counter()
        if self.tty:
            self.write("\r" + self.fit(self.line()) + "\x1b[K")
        elif now - self.started >= LOG_SECONDS and now - self.logged >= LOG_SECONDS:
            self.write(self.line() + "\n")
            self.logged = now

    def finish(self) -> None:
        text = self.summary()
        # whole, even where it wraps: it is never redrawn
        self.write(("\r" + text + "\x1b[K\n") if self.tty else text + "\n")

    def fit(self, text: str) -> str:
        """``text`` cut to the terminal's width (a line that wraps cannot be redrawn)."""
        width = max(20, shutil.get_terminal_size().columns - 1)
        return text if len(text) <= width else text[:width - 3] + "..."

    def write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):  # a closed or broken terminal: the run goes on
            pass
