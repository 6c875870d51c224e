"""Synthetic batches, under the name ``gradbench.data`` that users call
(``gb.data.make_batch``): the function lives in :mod:`gradbench.datasets.synthetic` and is
also ``gradbench.make_batch``; this module keeps the documented path."""

from .datasets.synthetic import make_batch

__all__ = ["make_batch"]
