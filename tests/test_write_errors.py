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


def quick_run(capsys, monkeypatch, out, good_writes, checkpoint=True):
    """``gradbench run`` in this process, every case skipped by the budget and saved as it is
    (with ``checkpoint``: no wait between checkpoints), on a disk that fills after
    ``good_writes`` writes; no peer part may start. (exit status, stderr, the JSON of the
    last good write or None)."""
    import json

    from gradbench.bench import parts, plugin
    from gradbench.cli import run as run_cli
    from gradbench.results import document

    good = []
    real = document.write

    def write(path, data):
        if len(good) >= good_writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)
        good.append(json.loads(json.dumps(data, default=str)))
        return path
    monkeypatch.setattr(document, "write", write)
    if checkpoint:
        monkeypatch.setattr(plugin, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(parts, "_run_child", lambda argv: pytest.fail("a peer part started"))
    monkeypatch.setattr(run_cli, "_warn_if_busy", lambda: None)
    code, _, err = cli_main(capsys, "run", "--profile", "quick", "--budget", "1e-9",
                            "--threads", "1", "--label", "full", "--out", out, "--no-report")
    return code, err, (good[-1] if good else None)


def test_a_run_on_a_full_disk_stops_at_the_first_failed_write_and_keeps_the_last(
        tmp_path, capsys, monkeypatch):
    import json

    out = tmp_path / "out"
    code, err, last = quick_run(capsys, monkeypatch, out, good_writes=2)
    assert code == 3 and "Traceback" not in err, err[-3000:]
    (f,) = out.glob("full-quick-*.json")
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{f}: [Errno 28] No space left on device" in lines[0]
    assert "the cases completed up to its last good write are kept in it" in lines[0]
    assert json.loads(f.read_text()) == last  # the second write, untouched after it
    assert last["gradbench"]["status"] == "running" and len(last["gradbench"]["skipped"]) == 2


def test_a_run_whose_only_write_at_the_end_fails_says_so_in_one_line(tmp_path, capsys,
                                                                   monkeypatch):
    # no checkpoint during the session: its one write, at its end, fails
    monkeypatch.setattr(plugin_module(), "CHECKPOINT_SECONDS", 1e12)
    out = tmp_path / "out"
    code, err, last = quick_run(capsys, monkeypatch, out, good_writes=0, checkpoint=False)
    assert code == 3 and "Traceback" not in err and last is None, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], err
    assert "nothing was saved" in lines[0] and not out.exists()


def plugin_module():
    from gradbench.bench import plugin

    return plugin


def test_a_run_whose_first_write_fails_saves_nothing_and_leaves_no_folder(
        tmp_path, capsys, monkeypatch):
    out = tmp_path / "new" / "out"
    code, err, _ = quick_run(capsys, monkeypatch, out, good_writes=0)
    assert code == 3 and "Traceback" not in err, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0]
    assert "nothing was saved" in lines[0]
    assert not (tmp_path / "new").exists()


def test_a_peer_part_that_cannot_write_ends_the_run_and_no_later_part_starts(tmp_path,
                                                                            monkeypatch):
    from gradbench.bench import parts, plugin, sweep

    out = write_result(tmp_path / "r.json", GOOD)  # as gradbench's part left it
    monkeypatch.setattr(pytest, "main", lambda *a, **k: pytest.ExitCode.OK)
    started = []

    def peer_part(provider, *args):
        started.append(provider)
        return plugin.EXIT_UNWRITABLE
    monkeypatch.setattr(parts, "_peer_part", peer_part)
    monkeypatch.setattr(parts, "_finish", lambda *a: pytest.fail("the final write was tried"))
    outcome = parts.run(sweep.profile("quick", 1.0), "m1", 1, out, str(tmp_path))
    # the first part after gradbench's CPU part: its GPU part
    assert started == ["gradbench@cuda"] and outcome.status == "failed"
    assert outcome.write_error.startswith(f"{out}: the gradbench@cuda part could not write it")


def test_a_final_write_that_fails_is_a_write_error(tmp_path, monkeypatch):
    from gradbench.bench import parts, sweep

    out = write_result(tmp_path / "r.json", GOOD)
    monkeypatch.setattr(pytest, "main", lambda *a, **k: pytest.ExitCode.OK)
    monkeypatch.setattr(parts, "_peer_part", lambda *a: None)
    monkeypatch.setattr(parts.results.document, "write", full_after(0, None))
    outcome = parts.run(sweep.profile("quick", 1.0), "m1", 1, out, str(tmp_path))
    assert outcome.status == "failed" and outcome.document is None
    assert outcome.write_error == f"{out}: [Errno 28] No space left on device"


def test_cli_compare_on_a_full_disk_keeps_the_old_file_and_no_temporary(tmp_path, capsys,
                                                                        monkeypatch):
    a = write_result(tmp_path / "a.json", GOOD)
    (tmp_path / "x.md").write_text("old")
    monkeypatch.setattr(os, "replace", full_after(0, os.replace))
    code, out, err = cli_main(capsys, "compare", a, a, "--out", tmp_path / "x.md")
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], err
    assert (tmp_path / "x.md").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "x.md"]
