"""The handwritten digits scikit-learn ships (UCI optical digits, test part): 1797 images of
8x8 pixels, no download. Needs scikit-learn: ``pip install "gradbench-fd[digits]"``."""

from __future__ import annotations

import importlib.util

import numpy as np

from .base import Dataset

#: Share of the samples held out for testing, and the seed of the split. The split is fixed
#: (it does not follow the training seed), so test accuracies of different runs compare.
TEST_FRACTION = 0.2
SPLIT_SEED = 0
#: Pixels of load_digits are counts 0..16 (of a 4x4 block of the original 32x32 bitmap).
PIXEL_MAX = 16.0
INSTALL = 'pip install "gradbench-fd[digits]" (or pip install scikit-learn)'


def digits_available() -> bool:
    """Whether scikit-learn is installed."""
    return importlib.util.find_spec("sklearn") is not None


def digits() -> Dataset:
    """The 1797 8x8 digits, split 80/20 by a fixed seeded permutation (1438 training, 359
    test samples), pixels scaled to ``pixel / 16`` in [0, 1] (float64).

    Raises
    ------
    ValueError
        When scikit-learn is not installed (the message says how to install it).
    """
    if not digits_available():
        raise ValueError(f"the digits data set needs scikit-learn: {INSTALL}; or use "
                         "--data synthetic")
    from sklearn.datasets import load_digits

    d = load_digits()
    X = np.asarray(d.data, dtype=np.float64) / PIXEL_MAX
    y = np.asarray(d.target, dtype=np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_test = int(round(TEST_FRACTION * len(y)))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", X[train], y[train], X[test], y[test], 10,
                   source=f"scikit-learn load_digits (1797 8x8 images), fixed 80/20 split, "
                          f"seed {SPLIT_SEED}",
                   scaling="pixel / 16, in [0, 1]")
