"""Hostile and broken result files (issue 14): too large, nested too deeply, a key twice.
Each is refused by ``results.document.parse`` with one ValueError line, and by report,
compare and history with one line, exit status 2 and no traceback; nothing is written."""

import json

import pytest

from gradbench import report, results
from gradbench.results import document
from tests.conftest import cli_main
from tests.resultfiles import write_result

GOOD = [("primal", w, 1e-6 * w) for w in (8, 16, 32)]


def deep(path, levels=100_000):
    path.write_text("[" * levels + "]" * levels)
    return path


def twice(path):
    """A valid result file whose top object holds "benchmarks" twice (the last is empty)."""
    text = json.dumps(json.loads(write_result(path, GOOD).read_text()))
    path.write_text(text[:-1] + ',"benchmarks":[]}')
    return path


def large(path, monkeypatch):
    write_result(path, GOOD)
    monkeypatch.setattr(document, "MAX_FILE_BYTES", 100)
    return path


def test_a_file_nested_deeper_than_the_limit_is_refused(tmp_path):
    for levels in (100_000, document.MAX_DEPTH + 1):
        with pytest.raises(ValueError, match=f"nested more than {document.MAX_DEPTH}") as e:
            document.parse(deep(tmp_path / "deep.json", levels))
        assert len(str(e.value).splitlines()) == 1
    assert document.parse(deep(tmp_path / "ok.json", document.MAX_DEPTH)) == \
        json.loads(deep(tmp_path / "ok.json", document.MAX_DEPTH).read_text())
    # brackets inside strings are not nesting
    (tmp_path / "s.json").write_text(json.dumps({"a": "[" * 1000}))
    assert document.parse(tmp_path / "s.json") == {"a": "[" * 1000}
    assert document.parse(write_result(tmp_path / "r.json", GOOD))["benchmarks"]


def test_a_key_twice_in_one_object_is_refused_naming_it(tmp_path):
    with pytest.raises(ValueError, match="'benchmarks' appears twice"):
        document.parse(twice(tmp_path / "r.json"))
    (tmp_path / "n.json").write_text('{"a": {"b": 1, "b": 2}}')
    with pytest.raises(ValueError, match="'b' appears twice"):
        results.Document.load(tmp_path / "n.json")
    (tmp_path / "ok.json").write_text('[{"b": 1}, {"b": 2}]')  # the same key, two objects
    assert document.parse(tmp_path / "ok.json") == [{"b": 1}, {"b": 2}]


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = large(tmp_path / "r.json", monkeypatch)
    monkeypatch.setattr(type(path), "read_text", lambda *a, **k: pytest.fail("read"))
    with pytest.raises(ValueError, match="larger than any result file"):
        document.parse(path)


@pytest.mark.parametrize("make, words", [
    (lambda p, mp: deep(p), "nested more than"),
    (lambda p, mp: twice(p), "appears twice"),
    (large, "larger than any result file"),
])
@pytest.mark.parametrize("verb", ["report", "compare", "history"])
def test_the_cli_refuses_hostile_files_in_one_line(tmp_path, capsys, monkeypatch, make,
                                                   words, verb):
    runs = tmp_path / "runs"
    runs.mkdir()
    good = write_result(runs / "a.json", GOOD)
    bad = make(runs / "b.json", monkeypatch)
    if verb == "history":
        args = [runs, "--out", tmp_path / "page"]
    elif verb == "compare":
        args = [good, bad] if make is not large else [bad, bad]
    else:
        args = [bad, "--out", tmp_path / "page"]
    code, out, err = cli_main(capsys, verb, *args)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err
    assert not (tmp_path / "page").exists()


def test_report_build_refuses_them_too(tmp_path):
    with pytest.raises(ValueError, match="nested more than"):
        report.build(deep(tmp_path / "d.json"), tmp_path / "page")
    assert not (tmp_path / "page").exists()


def dangling(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    return link


@pytest.mark.parametrize("verb", ["run", "run --report", "train", "report", "history"])
@pytest.mark.parametrize("below", [False, True])
def test_an_output_folder_that_is_a_dangling_link_is_refused_before_any_work(
        tmp_path, capsys, monkeypatch, verb, below):
    from gradbench import train
    from gradbench.bench import parts

    monkeypatch.setattr(parts, "run", lambda *a: pytest.fail("the run started"))
    monkeypatch.setattr(train, "gradient_method", lambda *a: pytest.fail("training started"))
    runs = tmp_path / "runs"
    runs.mkdir()
    good = write_result(runs / "a.json", GOOD)
    link = dangling(tmp_path)
    target = link / "sub" if below else link
    args = {"run": ["run", "--out", target, "--no-report"],
            "run --report": ["run", "--out", tmp_path / "res", "--report", target],
            "train": ["train", "--out", target],
            "report": ["report", good, "--out", target],
            "history": ["history", runs, "--out", target]}[verb]
    code, out, err = cli_main(capsys, *args)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{link} is a symbolic link to" in lines[0], err
    assert "does not exist" in lines[0] and "Traceback" not in err
    assert link.is_symlink() and not (tmp_path / "gone").exists()
    assert not (tmp_path / "res").exists()


def test_train_never_writes_its_record_through_a_dangling_link(tmp_path):
    from gradbench.results import names

    link = tmp_path / "train-m1-backprop-1.json"
    link.symlink_to(tmp_path / "gone.json")
    path, lock = names.claim(tmp_path, "train-m1-backprop-1")
    assert path == tmp_path / "train-m1-backprop-1-2.json"
    names.release(lock)


@pytest.mark.slow
def test_a_deep_file_as_a_process_is_one_line_and_no_traceback(tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "gradbench.cli", "report",
                          deep(tmp_path / "d.json"), "--out", tmp_path / "page"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 2 and res.stdout == "" and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "nested more than" in res.stderr
    assert not (tmp_path / "page").exists()
