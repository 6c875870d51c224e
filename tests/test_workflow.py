"""The GitHub Actions workflow: valid against GitHub's workflow schema, free of zizmor findings
of medium severity or above, and shaped as the README says."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "benchmarks.yml"


def tool(name):
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.skip(f"{name} not installed (pip install -e '.[test]')")
    return path


def test_valid_against_the_github_workflow_schema():
    res = subprocess.run([tool("check-jsonschema"), "--builtin-schema",
                          "vendor.github-workflows", str(WORKFLOW)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_no_zizmor_findings_of_medium_severity_or_above():
    res = subprocess.run([tool("zizmor"), "--offline", "--min-severity", "medium",
                          str(WORKFLOW)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_shape():
    import yaml

    wf = yaml.safe_load(WORKFLOW.read_text())
    jobs = wf["jobs"]
    matrix = jobs["quick"]["strategy"]["matrix"]
    assert set(matrix["os"]) == {"ubuntu-24.04", "ubuntu-24.04-arm", "macos-14",
                                 "windows-2022"}
    assert matrix["python"] == ["3.11", "3.12", "3.13"]
    assert jobs["report"]["needs"] == "quick"
    steps = "\n".join(s.get("run", "") for s in jobs["gate"]["steps"])
    # interleaved case by case on the same runner: gradbench ab with both environments
    assert ("venv-head/bin/gradbench ab --base venv-base/bin/python --head "
            "venv-head/bin/python") in steps
    assert '--summary gate.md || status=$?' in steps and 'exit "$status"' in steps
    # a base older than the gate: whole runs interleaved, compare decides
    assert steps.index("venv-base/bin/gradbench run") < steps.index("venv-head/bin/gradbench run")
    assert jobs["gate"]["if"] == "github.event_name == 'pull_request'"
    for job in jobs.values():
        for s in job["steps"]:
            uses = s.get("uses", "")
            if uses:
                assert len(uses.split("@")[1]) == 40  # pinned to a commit


def test_the_audit_would_catch_a_bad_workflow(tmp_path):
    bad = tmp_path / "bad.yml"  # a positive control: the checks above can fail
    bad.write_text("on: pull_request_target\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
                   "    steps:\n      - uses: actions/checkout@v4\n"
                   "      - run: echo \"${{ github.event.pull_request.title }}\"\n")
    res = subprocess.run([tool("zizmor"), "--offline", "--min-severity", "medium", str(bad)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "template-injection" in res.stdout + res.stderr
