"""Result file names claimed exclusively: two runs or trainings started in the same second
with the same label and folder never write the same file, and the claim is never read as a
result."""

import datetime
import json
import os
import threading
from types import SimpleNamespace

import pytest

from gradbench import results
from gradbench.results import names

from .conftest import cli_main
from .resultfiles import power, write_result

STEM = "box-quick-20260101-000000"


def test_the_first_free_name_is_claimed_with_a_hidden_lock(tmp_path):
    path, lock = names.claim(tmp_path, STEM)
    assert path == tmp_path / f"{STEM}.json" and not path.exists()
    assert lock == tmp_path / f".{STEM}.json.lock"
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    names.release(lock)
    assert list(tmp_path.iterdir()) == []
    names.release(lock)  # twice: nothing to do


def test_a_held_name_and_a_written_name_are_both_passed_over(tmp_path):
    held, held_lock = names.claim(tmp_path, STEM)  # a live run, nothing written yet
    (tmp_path / f"{STEM}-2.json").write_text("{}")  # a finished run
    path, lock = names.claim(tmp_path, STEM)
    assert path == tmp_path / f"{STEM}-3.json"
    assert held_lock.exists() and lock.exists()
    assert not (tmp_path / f".{STEM}-2.json.lock").exists()  # its try left nothing
    names.release(held_lock)  # the live run ends without a file: its name is free again
    assert names.claim(tmp_path, STEM)[0] == held


def test_names_claimed_at_the_same_moment_differ(tmp_path):
    n = 16
    barrier, got = threading.Barrier(n), []

    def claim():
        barrier.wait()
        got.append(names.claim(tmp_path, STEM)[0])

    workers = [threading.Thread(target=claim) for _ in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(set(got)) == n
    assert {p.name for p in got} == {f"{STEM}{'' if i == 1 else f'-{i}'}.json"
                                     for i in range(1, n + 1)}


def test_a_lock_is_never_taken_for_a_result(tmp_path):
    from gradbench import report

    f = write_result(tmp_path / "box-quick-1.json", power("backprop", 1, 2.5e-9, [16, 32, 64]))
    names.claim(tmp_path, "box-quick-2")  # a run that has not written yet
    assert results.load_set(tmp_path).runs["file"].tolist() == [str(f)]
    assert "box-quick-2" not in report.build(tmp_path, tmp_path / "rep").read_text()


def _fixed_clock(monkeypatch, module):
    when = datetime.datetime(2026, 1, 1)
    monkeypatch.setattr(module, "datetime", SimpleNamespace(
        datetime=SimpleNamespace(now=lambda: when)))


@pytest.mark.slow
def test_runs_in_the_same_second_write_files_of_their_own(tmp_path, monkeypatch, capsys):
    from gradbench.cli import run as cli_run

    _fixed_clock(monkeypatch, cli_run)
    out = tmp_path / "out"
    out.mkdir()
    _, held = names.claim(out, STEM)  # a run started the same second, still in start-up
    (out / f"{STEM}-2.json").write_text("{}")  # and one that has written its file
    code, text, err = cli_main(capsys, "run", "--profile", "quick", "--budget", "1e-9",
                               "--label", "box", "--threads", "1", "--out", out,
                               "--no-report")
    assert code == 0, err[-2000:]
    mine = out / f"{STEM}-3.json"
    assert f"results to {mine}" in text
    rs = results.load_set(mine)
    assert rs.runs["status"].tolist() == ["complete"]
    assert (out / f"{STEM}-2.json").read_text() == "{}"  # the other's untouched
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [held.name]


def test_trainings_in_the_same_second_write_records_of_their_own(tmp_path, monkeypatch,
                                                                  capsys):
    from gradbench.cli import train as cli_train

    _fixed_clock(monkeypatch, cli_train)
    out = tmp_path / "r"
    for _ in range(2):
        code, _, err = cli_main(capsys, "train", "--data", "synthetic", "--sizes", "4,3,2",
                                "--steps", "3", "--label", "box", "--out", out)
        assert code == 0, err
    stem = "train-box-backprop-20260101-000000"
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}-2.json", f"{stem}.json"]
