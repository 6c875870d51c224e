import pathlib
import re

PKG = pathlib.Path(__file__).resolve().parent.parent / "gradbench"


def test_fastmath_only_in_config():
    offenders = [p.name for p in PKG.rglob("*.py")
                 if p.name != "config.py" and re.search(r"fastmath\s*=", p.read_text())]
    assert offenders == []


def test_finite_difference_kernels_are_not_fastmath():
    from gradbench.config import JIT, PARALLEL_JIT
    assert JIT.get("fastmath", False) is False
    assert PARALLEL_JIT.get("fastmath", False) is False
