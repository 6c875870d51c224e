import pathlib
import re

PKG = pathlib.Path(__file__).resolve().parent.parent / "gradbench"


def test_fastmath_only_in_config():
    offenders = [p.name for p in PKG.rglob("*.py")
                 if p.name != "config.py" and re.search(r"fastmath\s*=", p.read_text())]
    assert offenders == []


def _dispatchers():
    """Every Numba-compiled function defined in gradbench's modules (the peers, which import
    other libraries, left out), with its module."""
    import importlib
    import pkgutil

    import numba.core.dispatcher

    import gradbench

    found = {}
    for info in pkgutil.walk_packages(gradbench.__path__, "gradbench."):
        if info.name.startswith(("gradbench.peers", "gradbench.cli.__main__",
                                 "gradbench.__main__")):  # runs the command when imported
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if isinstance(obj, numba.core.dispatcher.Dispatcher):
                found[f"{obj.py_func.__module__}.{obj.py_func.__qualname__}"] = obj
    return found


def test_finite_difference_kernels_are_not_fastmath():
    # what each kernel was built with, whatever the config says: fastmath would let LLVM
    # reassociate f(x + h) - f(x - h) and lose the cancellation finite differences rely on
    from gradbench.kernels import naive

    found = _dispatchers()
    if not found:  # NUMBA_DISABLE_JIT=1: there are no compiled kernels to inspect
        assert not hasattr(naive.fd_naive_serial, "targetoptions")
        return
    for name in ("naive.fd_naive_serial", "naive.fd_naive_parallel",
                 "incremental.fd_incremental_serial", "incremental.fd_incremental_parallel",
                 "forward.loss_kernel", "backprop.backprop_kernel"):
        assert f"gradbench.kernels.{name}" in found
    fast = [n for n, d in found.items() if d.targetoptions.get("fastmath")]
    assert fast == []


#: Most parameters a function of gradbench may take (issue 21: drivers take bundles).
MAX_PARAMETERS = 8


def test_no_function_takes_more_than_eight_parameters():
    # positional, keyword-only, *args and **kwargs, self and cls left out
    import ast

    over = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                a = node.args
                names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                n = len(names) + bool(a.vararg) + bool(a.kwarg) - (names[:1] in (["self"],
                                                                                   ["cls"]))
                if n > MAX_PARAMETERS:
                    over.append(f"{path.relative_to(PKG)}:{node.lineno} ({n})")
    assert over == []
