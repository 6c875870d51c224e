"""Data sets for training: the handwritten digits scikit-learn ships, MNIST from IDX files the
user already has, and synthetic class clusters; and synthetic batches for a network
(:func:`make_batch`, also ``gradbench.make_batch``). Nothing is downloaded.

Each loader returns a :class:`Dataset`: training and test inputs as float arrays, one row per
sample, with integer class labels, and a sentence saying where the data came from and how the
inputs were scaled (it goes into the training record).
"""

from __future__ import annotations

from .base import Dataset
from .digits import INSTALL as DIGITS_INSTALL
from .digits import digits, digits_available
from .idx import MNIST_FILES, load_mnist, read_idx
from .synthetic import make_batch, synthetic

__all__ = ["DIGITS_INSTALL", "Dataset", "MNIST_FILES", "digits", "digits_available",
           "load_mnist", "make_batch", "read_idx", "synthetic"]
