"""The result document: its one writer (create, add, not timed, status, save) and its checked
loader; the driver's final document reused by the summary and the report, not read again."""

import json
from types import SimpleNamespace

import pytest

from gradbench import results
from gradbench.bench import parts, sweep
from gradbench.cli import run as run_cli
from gradbench.results import document as document_module


def _record(case: sweep.Case, seconds: float, rounds: int = 3) -> dict:
    data = [seconds * (1 + 0.123456 * i) for i in range(rounds)]
    return {"name": f"test_case[{case.id}]", "extra_info": case.info(),
            "stats": {"median": data[rounds // 2], "iqr": 0.0, "mean": seconds,
                      "min": min(data), "max": max(data), "stddev": 0.0, "rounds": rounds,
                      "data": data}}


def _new() -> results.Document:
    return results.Document.create(
        machine_info={"label": "m1", "cpu_model": "Test CPU", "cores": 2,
                      "calibration": {"matmul_gflops_float64": 50.0}},
        code={"commit": None, "commit_time": None, "dirty": None}, label="m1",
        profile="quick", budget=45.0, threads=2, version="0.1.0", pytest_benchmark="5.1.0")


def test_a_document_round_trips_through_its_checked_loader(tmp_path):
    doc = _new()
    timed = sweep.Case("backprop", (256, 8, 10), 32, "float64", 2)
    skipped = sweep.Case("numerical:central:naive", (256, 8192, 10), 32, "float64", 2)
    doc.add_case(_record(timed, 1e-4))
    doc.add_not_timed(skipped.info(), "budget", "predicted 900 s", predicted_seconds=900.0)
    doc.add_not_timed(sweep.Case("torch:backprop", (256, 8, 10), 32, "float64", 2).info(),
                      "unavailable", 'pip install "torch"')
    doc.set_status("complete", spent=1.5, wall=2.5)
    path = doc.save(tmp_path / "r.json")

    back = results.Document.load(path)
    assert back.status == "complete" and back.spent_seconds == 1.5
    assert back.wall_seconds == 2.5 and back.n_cases == 1
    assert back.calibration == {"matmul_gflops_float64": 50.0}
    cases = results.load_set(back).cases
    assert sorted(cases["status"]) == ["ok", "skipped", "unavailable"]
    assert set(cases["device"]) == {"cpu"}
    # raw rounds kept to four significant figures
    assert json.loads(path.read_text())["benchmarks"][0]["stats"]["data"][1] == 1.123e-4
    assert back.primal_times() == {}


def test_the_document_refuses_what_the_format_cannot_hold():
    doc = _new()
    with pytest.raises(ValueError, match="why must be one of budget, unavailable, rejected"):
        doc.add_not_timed({}, "forgotten", "?")
    with pytest.raises(ValueError, match="status must be one of"):
        doc.set_status("done")
    with pytest.raises(ValueError, match="case_info"):
        doc.add_case({"extra_info": {}, "stats": {}})
    with pytest.raises(ValueError, match="no path yet"):
        doc.save()


def test_load_checks_every_field(tmp_path):
    doc = _new()
    rec = _record(sweep.Case("backprop", (256, 8, 10), 32, "float64", 2), 1e-4)
    rec["extra_info"]["threads"] = 0
    doc.add_case(rec)
    path = doc.save(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"bad.json: field benchmarks\[0\].extra_info.threads"):
        results.Document.load(path)


def test_the_run_summary_and_report_reuse_the_final_document(tmp_path, monkeypatch):
    """After the driver's final write, `gradbench run` prints its summary and builds its
    report from the document in memory: the file is not parsed again."""
    doc = _new()
    for w in (1, 2, 4, 8):
        for m, t in (("primal", 1e-5), ("backprop", 3e-5)):
            doc.add_case(_record(sweep.Case(m, (256, w, 10), 32, "float64", 2), t * w))
    doc.set_status("complete")
    final = doc.save(tmp_path / "r.json")
    loaded = results.Document.load(final)

    def no_parse(path):
        raise AssertionError(f"{path} parsed again")

    monkeypatch.setattr(document_module, "parse", no_parse)
    outcome = parts.Outcome("complete", {"gradbench": 0}, loaded)
    args = SimpleNamespace(no_report=False, report=str(tmp_path / "report"))
    assert run_cli._after(args, final, outcome) == 0
    assert (tmp_path / "report" / "index.html").is_file()
