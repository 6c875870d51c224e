"""Write errors (issue 14): a full disk while a report, a history page or a run's result file
is written. One line, no traceback; the report and page leave nothing half-written, the run
stops at the first failed write and keeps what was written before it."""

import errno
import os
from pathlib import Path

import pytest

from gradbench import report
from tests.conftest import cli_main
from tests.resultfiles import write_result

GOOD = [(m, w, f * w) for m, f in (("primal", 1e-8), ("backprop", 3e-8)) for w in (8, 16, 32)]


def full_after(n, real):
    """``real`` that works ``n`` times, then fails as a full disk does."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(args)
        if len(calls) > n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[-1]))
        return real(*args, **kwargs)
    return fake


def test_report_build_on_a_full_disk_leaves_the_old_page_and_no_temporary(tmp_path,
                                                                           monkeypatch):
    runs = write_result(tmp_path / "r.json", GOOD)
    out = tmp_path / "rep"
    out.mkdir()
    (out / "index.html").write_text("old page")
    monkeypatch.setattr(report.os, "replace", full_after(1, os.replace))
    with pytest.raises(ValueError, match="cannot write the report to .*No space left") as e:
        report.build(runs, out)
    assert len(str(e.value).splitlines()) == 1
    assert (out / "index.html").read_text() == "old page"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folder
    fresh = tmp_path / "new" / "rep"
    with pytest.raises(ValueError, match="No space left"):
        report.build(runs, fresh)
    assert not (tmp_path / "new").exists()  # the folders this build made are gone


def test_cli_report_on_a_full_disk_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    runs = write_result(tmp_path / "r.json", GOOD)
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == "index.html":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", write_text)
    code, out, err = cli_main(capsys, "report", runs, "--out", tmp_path / "rep")
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], err
    assert not (tmp_path / "rep").exists()


def test_cli_history_on_a_full_disk_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    write_result(runs / "a.json", GOOD)
    write_result(runs / "b.json", GOOD)
    monkeypatch.setattr(os, "replace", full_after(0, os.replace))
    code, out, err = cli_main(capsys, "history", runs, "--out", tmp_path / "page")
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], err
    assert [p.name for p in (tmp_path / "page").iterdir()] == []
