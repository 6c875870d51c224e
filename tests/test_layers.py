"""The layer rules of DESIGN.md, as import-linter contracts (pyproject.toml): kept by the
tree, and broken by a planted import of each kind, so that they can fail."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def lint_imports(cwd: pathlib.Path) -> subprocess.CompletedProcess:
    """lint-imports run in ``cwd`` (where pyproject.toml and the gradbench package are)."""
    exe = pathlib.Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail(f"lint-imports is not installed beside {sys.executable}: "
                    "pip install -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # this tree's gradbench, not an install
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_tree_keeps_every_contract():
    res = lint_imports(ROOT)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " 0 broken" in res.stdout, res.stdout[-4000:]


#: (module, the line planted at its end, the contract that must break)
PLANTED = [
    ("gradbench/kernels/forward.py", "import gradbench.cli", "The layers"),
    ("gradbench/model.py", "from gradbench import report", "The layers"),
    ("gradbench/model.py", "from numba import cuda", "Only kernels/cuda imports numba.cuda"),
    ("gradbench/gpu/__init__.py", "import numba.cuda.random",
     "Only kernels/cuda imports numba.cuda"),
    ("gradbench/check.py", "from scipy import optimize", "Only peers/ imports scipy.optimize"),
    ("gradbench/methods.py", "import torch", "Only peers/ imports torch"),
    ("gradbench/results/frames.py", "import matplotlib.pyplot",
     "Only report/ imports matplotlib"),
    ("gradbench/gate/worker.py", "import pytest_benchmark.stats",
     "Only bench/ imports pytest_benchmark"),
    ("gradbench/kernels/cuda/__init__.py", "from .. import naive",
     "The GPU kernels compile from the shared scalar math"),
]


@pytest.mark.parametrize(("module", "line", "contract"), PLANTED,
                         ids=[f"{m}:{line}" for m, line, _ in PLANTED])
def test_a_planted_import_breaks_its_contract(tmp_path, module, line, contract):
    shutil.copytree(ROOT / "gradbench", tmp_path / "gradbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "importlinter_contracts.py", tmp_path / "tests")
    (tmp_path / "tests" / "__init__.py").touch()
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # planted\n")
    res = lint_imports(tmp_path)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-2000:]
    broken = res.stdout.split("Broken contracts")[-1]
    assert contract in broken, res.stdout[-3000:]
    assert module.removesuffix(".py").removesuffix("/__init__").replace("/", ".") in broken
