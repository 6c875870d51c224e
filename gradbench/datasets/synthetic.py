"""Synthetic data, deterministic by seed, no download: class clusters to train on
(:func:`synthetic`), and a batch for a network (:func:`make_batch`), which the benchmarks,
the gradient check and the command line time and check gradients on."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from .base import Dataset

if TYPE_CHECKING:
    from ..model import MLP

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


def make_batch(net: MLP, batch: int, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """A batch for ``net``: standard normal inputs; uniform class labels for softmax_ce,
    targets in [0, 1) for mse.

    Parameters
    ----------
    net : gradbench.MLP
        The network the batch is for (its sizes, loss and dtype).
    batch : int
        Samples in the batch, at least 1.
    seed : int or None
        Seed of the generator: the same seed gives the same batch.

    Returns
    -------
    X, T : numpy.ndarray
        Inputs (batch, sizes[0]) in the network's dtype; labels (batch,) as int64 for
        softmax_ce, targets (batch, sizes[-1]) in the network's dtype for mse.
    """
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise ValueError(f"batch must be a whole number of at least 1, got {batch!r}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, net.sizes[0])).astype(net.dtype)
    if net.loss == "softmax_ce":
        T = rng.integers(0, net.sizes[-1], size=batch)
    else:
        T = rng.random((batch, net.sizes[-1])).astype(net.dtype)
    return X, T
