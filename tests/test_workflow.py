"""The GitHub Actions workflows: valid against GitHub's workflow schema, free of zizmor findings
of medium severity or above, every action pinned to a commit, and the test commands they run
select tests by markers the suite defines."""

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
IDS = [w.name for w in WORKFLOWS]


def tool(name):
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.skip(f"{name} not installed (pip install -e '.[test]')")
    return path


def load(workflow):
    import yaml

    return yaml.safe_load(workflow.read_text())


def steps(workflow):
    for job in load(workflow)["jobs"].values():
        yield from job["steps"]


def test_there_are_workflows():
    assert {"benchmarks.yml", "tests.yml"} <= set(IDS)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=IDS)
def test_valid_against_the_github_workflow_schema(workflow):
    res = subprocess.run([tool("check-jsonschema"), "--builtin-schema",
                          "vendor.github-workflows", str(workflow)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=IDS)
def test_no_zizmor_findings_of_medium_severity_or_above(workflow):
    res = subprocess.run([tool("zizmor"), "--offline", "--min-severity", "medium",
                          str(workflow)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=IDS)
def test_every_action_is_pinned_to_a_commit_and_every_job_has_a_timeout(workflow):
    for name, job in load(workflow)["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), name
    for s in steps(workflow):
        if "uses" in s:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", s["uses"]), s["uses"]


def markers_in(expr: str) -> set:
    """The marker names a `-m` expression tests (an expression pytest can parse)."""
    from _pytest.mark.expression import Expression

    Expression.compile(expr)  # raises on a malformed one
    return set(re.findall(r"[\w:+\-.\[\]\\/]+", expr)) - {"and", "or", "not"}


def test_scripts_test_is_run_whole_and_as_the_fast_lane_with_known_markers():
    """Every `bash scripts/test -m EXPR` in a workflow names only markers the suite registers
    (pytest would select nothing, silently, for a misspelt one); the fast lane runs on every
    runner the benchmarks do, the whole suite on one at least."""
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    registered = {m.split(":")[0].strip() for m in ini["markers"]}
    runs = {}  # the marker expression (None: the whole suite) -> the runners
    for workflow in WORKFLOWS:
        for job in load(workflow)["jobs"].values():
            oses = job.get("strategy", {}).get("matrix", {}).get("os") or [job["runs-on"]]
            for s in job["steps"]:
                for line in s.get("run", "").replace("\\\n", " ").splitlines():
                    if "scripts/test" not in line:
                        continue
                    words = shlex.split(line, comments=True)
                    if words[:2] != ["bash", "scripts/test"]:
                        continue
                    expr = words[words.index("-m") + 1] if "-m" in words else None
                    if expr is not None:
                        assert markers_in(expr) <= registered, (workflow.name, expr)
                    runs.setdefault(expr, set()).update(oses)
    quick = load(ROOT / ".github" / "workflows" / "benchmarks.yml")["jobs"]["quick"]
    assert runs.get("not slow", set()) >= set(quick["strategy"]["matrix"]["os"])
    assert runs.get(None)


def test_the_audit_would_catch_a_bad_workflow(tmp_path):
    bad = tmp_path / "bad.yml"  # a positive control: the checks above can fail
    bad.write_text("on: pull_request_target\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
                   "    steps:\n      - uses: actions/checkout@v4\n"
                   "      - run: echo \"${{ github.event.pull_request.title }}\"\n")
    res = subprocess.run([tool("zizmor"), "--offline", "--min-severity", "medium", str(bad)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "template-injection" in res.stdout + res.stderr
