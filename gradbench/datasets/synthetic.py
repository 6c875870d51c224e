"""Synthetic class clusters: deterministic by seed, learnable, no download."""

from __future__ import annotations

import numbers

import numpy as np

from .base import Dataset

#: Distance between two class centres, in units of the clusters' standard deviation (1), on
#: average: two classes overlap with probability Phi(-SEPARATION / 2) = 0.6 %, so a good
#: classifier reaches about 95-99 % with 10 classes, a constant one 1 / classes.
SEPARATION = 5.0


def _count(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be at least {lo}, got {value}")
    return int(value)


def synthetic(inputs: int = 64, classes: int = 10, n_train: int = 2000, n_test: int = 500,
              seed: int = 0) -> Dataset:
    """Gaussian class clusters: one centre per class, samples around it.

    Centres are drawn from a normal distribution of standard deviation
    ``SEPARATION / sqrt(2 * inputs)`` per coordinate, so two centres lie about ``SEPARATION``
    apart whatever the number of inputs; each sample is its class centre plus standard normal
    noise. Labels are uniform over the classes. The same arguments give the same data.

    Parameters
    ----------
    inputs, classes : int
        Features per sample (the network's first size) and classes (its last).
    n_train, n_test : int
        Samples in each part.
    seed : int
        Seed of the generator (centres, labels and noise).

    Returns
    -------
    Dataset
        Inputs in float64.
    """
    inputs = _count("inputs", inputs, 1)
    classes = _count("classes", classes, 2)
    n_train = _count("n_train", n_train, 1)
    n_test = _count("n_test", n_test, 1)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, SEPARATION / np.sqrt(2.0 * inputs), size=(classes, inputs))

    def part(n):
        y = rng.integers(0, classes, size=n)
        return centres[y] + rng.standard_normal((n, inputs)), y.astype(np.int64)

    X_train, y_train = part(n_train)
    X_test, y_test = part(n_test)
    return Dataset("synthetic", X_train, y_train, X_test, y_test, classes,
                   source=f"Gaussian class clusters, seed {seed}",
                   scaling="none: class centre (about 5 apart) plus standard normal noise")
