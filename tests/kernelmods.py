"""The CPU kernels' modules, and every kernel swapped for its Python body."""

import importlib
import pkgutil

import gradbench.kernels


def kernel_modules() -> list:
    """Every module of gradbench.kernels that compiles with Numba's CPU target (not cuda/)."""
    out = []
    for info in pkgutil.iter_modules(gradbench.kernels.__path__):
        if info.name in ("cuda", "codes", "scalar"):
            continue
        out.append(importlib.import_module(f"gradbench.kernels.{info.name}"))
    return out


def as_python(monkeypatch) -> None:
    """Every kernel as its Python body, in every module that names it, so that module
    attributes (SERIES_LIMIT, a kernel swapped for another) are read at call time."""
    for module in kernel_modules():
        for name, fn in vars(module).items():
            if hasattr(fn, "py_func"):
                monkeypatch.setattr(module, name, fn.py_func)
