"""The main job from an installed wheel: built from this checkout, installed in a fresh virtual
environment, run from a folder that has nothing to do with the checkout.

The environment borrows the test environment's third-party packages (a .pth line) instead of
downloading them again; gradbench itself comes only from the wheel.
"""

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from gradbench import results

ROOT = Path(__file__).resolve().parent.parent
#: The installed commands run without PYTHONPATH: a checkout on it would be imported instead of
#: the wheel.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    shutil.copytree(ROOT / "gradbench", src / "gradbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                            "-w", str(dist), str(src)], capture_output=True, text=True,
                           timeout=600)
    if built.returncode != 0 and "No matching distribution" in built.stderr:
        pytest.skip("setuptools cannot be fetched to build the wheel")
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("gradbench_fd-*.whl")
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True,
                   timeout=300)
    py = env / "bin" / "python"
    purelib = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig."
                                   "get_paths()['purelib'])"], capture_output=True, text=True,
                                  check=True).stdout.strip())
    # dependencies from the test environment, after the venv's own site-packages
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "zz_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet",
                    "--no-deps", str(wheel)], check=True, timeout=600)
    return env, purelib


def test_wheel_runs_the_main_job_from_an_unrelated_folder(wheel_env, tmp_path):
    env, purelib = wheel_env
    where = subprocess.run([str(env / "bin" / "python"), "-c",
                            "import gradbench; print(gradbench.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True,
                           env=CLEAN_ENV)
    assert Path(where.stdout.strip()).is_relative_to(purelib)  # the wheel, not the checkout
    res = subprocess.run([str(env / "bin" / "gradbench"), "run", "--profile", "quick",
                          "--budget", "2", "--label", "wheel"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=900, env=CLEAN_ENV)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (f,) = (tmp_path / "results").glob("wheel-quick-*.json")
    rs = results.load_set(f)
    run = rs.runs.iloc[0]
    assert run["status"] == "complete" and run["commit"] is None  # an installed package
    assert not rs.checks.empty and not rs.step_curve.empty
    assert (tmp_path / "reports" / "index.html").is_file()
    assert (tmp_path / "reports" / "step.png").is_file()


def test_the_quick_start_says_how_to_run_the_other_verbs():
    """After the two commands of the Quick start, the other verbs are .venv/bin/gradbench:
    the README says so, and scripts/env.sh makes that command (an editable install of this
    project, whose console script is gradbench)."""
    import tomllib

    quick = (ROOT / "README.md").read_text().split("## Quick start")[1].split("\n## ")[0]
    assert ".venv/bin/gradbench check" in quick and "source .venv/bin/activate" in quick
    env = (ROOT / "scripts" / "env.sh").read_text()
    assert "-m venv .venv" in env and '-m pip install --quiet -e ".[test]"' in env
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["gradbench"] == "gradbench.cli:main"
