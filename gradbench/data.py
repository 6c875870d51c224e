"""Synthetic batches: the benchmarks and the CLI make their data, nothing is downloaded."""

from __future__ import annotations

import numpy as np

from .model import MLP


def make_batch(net: MLP, batch: int, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """A batch for ``net``: standard normal inputs; uniform class labels for softmax_ce,
    targets in [0, 1) for mse. Returns (X, T) in the network's dtype (labels as int64)."""
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise ValueError(f"batch must be a whole number of at least 1, got {batch!r}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, net.sizes[0])).astype(net.dtype)
    if net.loss == "softmax_ce":
        T = rng.integers(0, net.sizes[-1], size=batch)
    else:
        T = rng.random((batch, net.sizes[-1])).astype(net.dtype)
    return X, T
