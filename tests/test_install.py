"""The main job from an installed wheel: built from this checkout, installed in a fresh virtual
environment, run from a folder that has nothing to do with the checkout (tests/conftest.py's
quick_run, which tests/test_cli_run.py reads too)."""

import subprocess
from pathlib import Path

from gradbench import results


def test_wheel_runs_the_main_job_from_an_unrelated_folder(quick_run):
    where = subprocess.run([str(quick_run.env / "bin" / "python"), "-c",
                            "import gradbench; print(gradbench.__file__)"],
                           capture_output=True, text=True, cwd=quick_run.folder, check=True,
                           env=quick_run.clean)
    # the wheel, not the checkout
    assert Path(where.stdout.strip()).is_relative_to(quick_run.purelib)
    rs = results.load_set(quick_run.file)
    run = rs.runs.iloc[0]
    assert run["status"] == "complete" and run["commit"] is None  # an installed package
    assert not rs.checks.empty and not rs.step_curve.empty
    assert (quick_run.folder / "reports" / "index.html").is_file()
    assert (quick_run.folder / "reports" / "step.png").is_file()


def test_this_environment_has_the_gradbench_command():
    """The Quick start's other verbs are .venv/bin/gradbench: the distribution installed here
    (scripts/env.sh installs this project, editable) provides that console script, and it is
    the command line's main."""
    from importlib.metadata import entry_points

    from gradbench.cli import main

    (script,) = entry_points(group="console_scripts", name="gradbench")
    assert script.load() is main
