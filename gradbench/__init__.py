"""gradbench: what a gradient costs, by finite differences and by backpropagation.

The public names load on first use (PEP 562): ``import gradbench`` itself imports nothing
heavy, so the command line starts at once and a Ctrl-C while NumPy and Numba load is a
Ctrl-C inside ``gradbench``'s own handling (one line), not a traceback from an import.
"""

from ._cpu import choose_openblas_coretype

choose_openblas_coretype()  # before NumPy loads OpenBLAS: see gradbench._cpu

#: Each public name and the module that defines it.
_PUBLIC = {
    "MLP": "model",
    "Method": "methods",  # the method protocol's record (plugins)
    "PROTOCOL_VERSION": "methods",
    "data": None,  # a module of its own
    "backprop": "gradients",
    "default_step": "gradients",
    "directional_check": "check",
    "gradient_check": "check",
    "loss": "gradients",
    "make_batch": "datasets",
    "numerical_gradient": "gradients",
}

__all__ = list(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str):
    import importlib

    if name in _PUBLIC:
        module = _PUBLIC[name]
        value = importlib.import_module(f".{module or name}", __name__)
        if module is not None:
            value = getattr(value, name)
    else:  # a submodule, as ``gb.gradients`` (an eager import made them all attributes)
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value  # found directly from now on
    return value


def __dir__():
    return sorted({*globals(), *_PUBLIC})
