"""gradbench: what a gradient costs, by finite differences and by backpropagation."""

from ._cpu import choose_openblas_coretype

choose_openblas_coretype()  # before NumPy loads OpenBLAS: see gradbench._cpu

from . import data
from .check import directional_check, gradient_check
from .gradients import backprop, default_step, loss, numerical_gradient
from .model import MLP

__all__ = [
    "MLP",
    "data",
    "backprop",
    "default_step",
    "directional_check",
    "gradient_check",
    "loss",
    "numerical_gradient",
]
__version__ = "0.1.0"
