"""What `gradbench run` prints: one progress line per part (gradbench.bench.progress), then
the summary; pytest's letters and pytest-benchmark's tables only with --verbose; a failure's
traceback always."""

import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from gradbench import bench
from gradbench.bench import parts, progress, sweep


class Screen(io.StringIO):
    """A terminal (or not) that keeps what was written to it."""

    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def _progress(tty, provider="gradbench", left=120.0):
    budget = SimpleNamespace(left=left)
    config = SimpleNamespace(_gradbench=SimpleNamespace(provider=provider, budget=budget))
    screen = Screen(tty)
    return progress.Progress(config, out=screen), screen, budget


def _items(ids):
    return [SimpleNamespace(nodeid=f"suite.py::test_case[{i}]",
                            callspec=SimpleNamespace(params={"case": SimpleNamespace(id=i)}))
            for i in ids] + [SimpleNamespace(nodeid="suite.py::test_accuracy")]


def _case(p, nodeid, outcome, budget=None, spent=0.0):
    p.pytest_runtest_logstart(nodeid, None)
    for when in ("setup", "call", "teardown"):
        out = outcome if when == "call" else "passed"
        p.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, when=when,
                                                   failed=out == "failed",
                                                   skipped=out == "skipped"))
    if budget is not None:
        budget.left -= spent
    p.pytest_runtest_logfinish(nodeid, None)


def test_on_a_terminal_the_line_is_redrawn_in_place_per_case_and_ended_once():
    p, screen, budget = _progress(tty=True)
    p.pytest_collection_finish(SimpleNamespace(items=_items(["a", "b", "c", "d"])))
    _case(p, "suite.py::test_case[a]", "passed", budget, 30)
    _case(p, "suite.py::test_case[b]", "skipped")
    p.pytest_runtest_logstart("suite.py::test_case[c]", None)
    text = screen.getvalue()
    assert "\n" not in text  # one line, redrawn
    draws = text.split("\r")[1:]
    assert len(draws) == 3 and all(d.endswith("\x1b[K") for d in draws)
    assert draws[0].startswith("gradbench  [" + "-" * progress.BAR + "]  0/4 cases  timing a")
    assert "2/4 cases  timing c  budget left 90 s" in draws[-1]
    assert "[" + "#" * (progress.BAR // 2) + "-" * (progress.BAR // 2) + "]" in draws[-1]
    p.pytest_runtest_logreport(SimpleNamespace(nodeid="suite.py::test_case[c]", when="call",
                                               failed=True, skipped=False))
    p.pytest_runtest_logfinish("suite.py::test_case[c]", None)
    _case(p, "suite.py::test_accuracy", "passed")
    p.finish()
    last = screen.getvalue().split("\r")[-1]
    assert last.endswith("\x1b[K\n") and screen.getvalue().count("\n") == 1
    assert re.search(r"3/4 cases in \d+ s: 1 timed, 1 not timed, 1 failed \(below\); budget "
                     r"left 90 s", last), last


def test_off_a_terminal_a_part_prints_one_line_unless_it_runs_long(monkeypatch):
    p, screen, budget = _progress(tty=False, provider="torch")
    p.pytest_collection_finish(SimpleNamespace(items=_items(["a", "b"])))
    _case(p, "suite.py::test_case[a]", "passed", budget, 1)
    _case(p, "suite.py::test_case[b]", "passed", budget, 1)
    p.finish()
    (line,) = screen.getvalue().splitlines()
    assert line.startswith("torch peers  [" + "#" * progress.BAR + "]  2/2 cases in ")
    assert line.endswith(" s: 2 timed, 0 not timed; budget left 118 s")
    monkeypatch.setattr(progress, "LOG_SECONDS", 0.0)  # a long part: a line now and then
    p, screen, _ = _progress(tty=False)
    p.pytest_collection_finish(SimpleNamespace(items=_items(["a", "b"])))
    _case(p, "suite.py::test_case[a]", "passed")
    _case(p, "suite.py::test_case[b]", "passed")
    lines = screen.getvalue().splitlines()
    assert lines[0].startswith("gradbench  [") and "0/2 cases  timing a" in lines[0]
    assert "\r" not in screen.getvalue()


def test_the_line_fits_the_terminal(monkeypatch):
    p, screen, _ = _progress(tty=True)
    p.pytest_collection_finish(SimpleNamespace(items=_items(["x" * 300])))
    monkeypatch.setattr(progress.shutil, "get_terminal_size", lambda: SimpleNamespace(
        columns=60, lines=24))
    p.pytest_runtest_logstart(f"suite.py::test_case[{'x' * 300}]", None)
    drawn = screen.getvalue().split("\r")[-1].removesuffix("\x1b[K")
    assert len(drawn) == 59 and drawn.endswith("...")


@pytest.mark.parametrize("provider, only, name", [
    ("gradbench", None, "gradbench"), ("gradbench@cuda", None, "gradbench on cuda"),
    ("torch", None, "torch peers"), (None, None, "gradbench"),
    ("torch", ("torch:backprop", "torch:numerical"),
     "torch peers (torch:backprop, torch:numerical)")])
def test_parts_are_named(provider, only, name):
    assert progress.part_name(provider, only) == name


def test_bar():
    assert progress.bar(0, 0, 4) == "[####]"  # nothing to do is done
    assert progress.bar(1, 3, 6) == "[##----]"
    assert progress.bar(5, 3, 4) == "[####]"


def test_the_parts_are_quiet_unless_verbose(tmp_path):
    here = Path(bench.__file__).parent
    prof = sweep.profile("quick", 2.0)
    quiet = parts.pytest_args(here, prof, "m", 1, tmp_path / "r.json", str(tmp_path))
    loud = parts.pytest_args(here, prof, "m", 1, tmp_path / "r.json", str(tmp_path),
                             verbose=True)
    assert "gradbench.bench.progress" in quiet and "gradbench.bench.progress" in loud
    assert "--benchmark-quiet" in quiet and quiet.count("-q") == 2
    assert "--gb-verbose" in loud and "--benchmark-quiet" not in loud and loud.count("-q") == 1


def _session(tmp_path, capsys, *extra):
    """gradbench's part with two methods, in this process: what it printed."""
    here = Path(bench.__file__).parent
    argv = parts.pytest_args(here, sweep.profile("quick", 1.0), "m", 1, tmp_path / "r.json",
                             str(tmp_path / "storage"), *extra)
    code = pytest.main([*argv, "--gb-provider", "gradbench", "--gb-methods", "primal",
                        "-k", "test_case and 256x1x10 or test_case and 256x2x10"])
    assert code == pytest.ExitCode.OK
    return capsys.readouterr().out


@pytest.mark.slow
def test_a_part_prints_its_progress_line_and_with_verbose_pytest_benchmark_tables(tmp_path,
                                                                                  capsys):
    # the first case always fits the budget; whether the second does depends on the machine
    out = _session(tmp_path, capsys)
    lines = [s for s in out.splitlines() if s.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("gradbench  [" + "#" * progress.BAR + "]  2/2 cases in ")
    timed, not_timed = map(int, re.search(r": (\d) timed, (\d) not timed", lines[0]).groups())
    assert timed >= 1 and timed + not_timed == 2
    assert "benchmark:" not in out and "Name (time in" not in out and "passed" not in out
    out = _session(tmp_path, capsys, True)
    assert "benchmark: " in out and "Name (time in" in out and " passed" in out
    assert "cases in" not in out  # pytest's own output, as before
