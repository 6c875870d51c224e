"""The data set record every loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """A classification data set split into training and test samples.

    Attributes
    ----------
    name : str
        "digits", "mnist" or "synthetic".
    X_train, X_test : ndarray, shape (n, inputs)
        Inputs, float32 or float64, scaled as ``scaling`` says. Batches are converted to the
        network's dtype when they are used.
    y_train, y_test : ndarray, shape (n,)
        Class labels in 0..classes-1 (int64).
    classes : int
    source : str
        Where the data came from (a folder, a package, a generator and its seed).
    scaling : str
        How raw values became inputs, e.g. "pixel / 16, in [0, 1]".
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: int
    source: str
    scaling: str

    @property
    def inputs(self) -> int:
        """Number of input features (the network's first size)."""
        return int(self.X_train.shape[1])

    def describe(self) -> dict:
        """What a training record says about the data (JSON-serialisable)."""
        return {"name": self.name, "source": self.source, "scaling": self.scaling,
                "inputs": self.inputs, "classes": self.classes,
                "n_train": int(self.X_train.shape[0]), "n_test": int(self.X_test.shape[0])}
