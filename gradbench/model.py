"""The network specification, its parameters, and validation of what users pass in."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

ACTIVATIONS = ("sigmoid", "relu", "tanh", "identity")
LOSSES = ("softmax_ce", "mse")
INITS = ("normal", "he", "xavier", "lecun")
DTYPES = ("float32", "float64")


def _choice(name: str, value, valid: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(valid)}")
    return value


def _dtype_name(dtype) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    return name


def _sizes(sizes) -> tuple[int, ...]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence | np.ndarray):
        raise TypeError(
            f"sizes must be a list of layer widths such as [784, 50, 10], got {sizes!r}"
        )
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"sizes must be whole numbers, got {s!r} in {list(sizes)!r}")
        if s < 1:
            raise ValueError(f"every size must be at least 1, got {int(s)} in {list(sizes)!r}")
        out.append(int(s))
    if len(out) < 2:
        raise ValueError(
            f"sizes needs at least two entries (inputs and outputs), got {out!r}; "
            "e.g. [784, 50, 10]"
        )
    return tuple(out)


def available_memory() -> int | None:
    """Bytes of memory available to this process (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_memory(nbytes: int, what: str) -> None:
    """A ValueError, before anything is allocated, when ``nbytes`` exceed the memory
    available; ``what`` says what would need it."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise ValueError(f"{what} would need {nbytes / 2**30:,.1f} GiB of memory and "
                         f"{free / 2**30:,.1f} GiB are available; choose smaller sizes")


class MLP:
    """A multilayer perceptron: weights, biases and how to evaluate them.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, inputs first: ``[784, 50, 10]`` has two weight layers.
    activation : {"sigmoid", "relu", "tanh", "identity"}
        Activation of the hidden layers.
    loss : {"softmax_ce", "mse"}
        Softmax cross-entropy on the logits, or half mean squared error.
    init : {"normal", "he", "xavier", "lecun"}
        Weight initialisation; biases start at zero. ``"normal"`` draws with std ``scale``.
    scale : float
        Standard deviation for ``init="normal"``.
    dtype : {"float32", "float64"}
    seed : int or None
        Seed of the initialisation.
    output_activation : {"identity", "sigmoid", "tanh", "relu"}
        Applied to the outputs before the squared error; only with ``loss="mse"``.

    Attributes
    ----------
    params : list of ndarray
        ``[W1, b1, W2, b2, ...]`` with ``W_l.shape == (sizes[l-1], sizes[l])``. They are views
        of one flat vector: writing into them changes the network.
    num_params : int
    """

    def __init__(
        self,
        sizes,
        activation: str = "sigmoid",
        loss: str = "softmax_ce",
        init: str = "normal",
        scale: float = 0.01,
        dtype="float64",
        seed: int | None = 0,
        *,
        output_activation: str = "identity",
    ):
        self.sizes = _sizes(sizes)
        self.activation = _choice("activation", activation, ACTIVATIONS)
        self.loss = _choice("loss", loss, LOSSES)
        self.init = _choice("init", init, INITS)
        self.output_activation = _choice("output_activation", output_activation, ACTIVATIONS)
        if self.loss != "mse" and self.output_activation != "identity":
            raise ValueError(
                "output_activation applies only to loss='mse'; softmax_ce works on raw logits"
            )
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"scale must be a number, got {scale!r}")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be positive and finite, got {scale!r}")
        self.scale = float(scale)
        self.dtype = np.dtype(_dtype_name(dtype))
        self.seed = seed

        n_params = sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))
        check_memory(n_params * self.dtype.itemsize,
                     f"the parameters of a {'-'.join(map(str, self.sizes))} network "
                     f"({n_params:,} of them)")
        self.layout = layout(self.sizes)
        self.num_params = int(self.layout[-1, 1] + self.layout[-1, 3])
        self._flat = np.zeros(self.num_params, dtype=self.dtype)
        #: (start, stop, shape) of each tensor in the flat vector, in params order
        self.slices = []
        for w_off, b_off, n_in, n_out in self.layout.tolist():
            self.slices.append((w_off, b_off, (n_in, n_out)))
            self.slices.append((b_off, b_off + n_out, (n_out,)))
        self._views = [self._flat[a:b].reshape(shape) for a, b, shape in self.slices]
        self.params = list(self._views)

        rng = np.random.default_rng(seed)
        for W in self.params[0::2]:
            n_in, n_out = W.shape
            std = {
                "normal": self.scale,
                "he": np.sqrt(2.0 / n_in),
                "xavier": np.sqrt(2.0 / (n_in + n_out)),
                "lecun": np.sqrt(1.0 / n_in),
            }[self.init]
            W[...] = rng.normal(0.0, std, size=W.shape)

    @property
    def depth(self) -> int:
        """Number of weight layers."""
        return len(self.sizes) - 1

    @property
    def tensor_names(self) -> list[str]:
        """``["W1", "b1", "W2", "b2", ...]``, in the order of ``params``."""
        return [f"{k}{l}" for l in range(1, self.depth + 1) for k in ("W", "b")]

    def __repr__(self) -> str:
        extra = f", output_activation={self.output_activation!r}" if self.loss == "mse" else ""
        return (
            f"MLP(sizes={list(self.sizes)}, activation={self.activation!r}, loss={self.loss!r}, "
            f"dtype={self.dtype.name!r}{extra}, num_params={self.num_params})"
        )


def layout(sizes: Sequence[int]) -> np.ndarray:
    """Where each layer lives in the flat parameter vector.

    Returns an int64 array of shape (L, 4): rows ``(w_offset, b_offset, n_in, n_out)``.
    W_l is stored row-major (n_in, n_out) at w_offset, b_l right after it.
    """
    rows, off = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        rows.append((off, off + n_in * n_out, n_in, n_out))
        off += n_in * n_out + n_out
    return np.array(rows, dtype=np.int64)


_EXPONENT = {
    np.dtype(np.float64): (np.uint64, np.uint64(0x7FF0000000000000)),
    np.dtype(np.float32): (np.uint32, np.uint32(0x7F800000)),
}


def _all_finite(a: np.ndarray) -> bool:
    """No NaN or inf in a float32/float64 array (exact; reads the bits at memory speed)."""
    from .kernels.checks import any_nonfinite

    utype, mask = _EXPONENT[a.dtype]
    flat = np.ascontiguousarray(a).reshape(-1)
    return not any_nonfinite(flat.view(utype), mask)


def flat_params(net: MLP, check_finite: bool = True) -> np.ndarray:
    """The network's parameters as one contiguous vector (no copy when possible).

    The result must be treated as read-only: it may be the network's own storage.
    ``check_finite=False`` skips the scan for NaN and inf.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"expected a gradbench.MLP, got {type(net).__name__}")
    params = net.params
    same = len(params) == len(net._views)
    if same and all(p is v for p, v in zip(params, net._views, strict=True)):
        theta = net._flat
    else:
        if len(params) != 2 * net.depth:
            raise ValueError(
                f"net.params has {len(params)} arrays, expected {2 * net.depth} ([W1, b1, ...])"
            )
        for name, p, v in zip(net.tensor_names, params, net._views, strict=True):
            if not isinstance(p, np.ndarray) or p.shape != v.shape:
                shape = getattr(p, "shape", type(p).__name__)
                raise ValueError(f"net.params {name} has shape {shape}, expected {v.shape}")
        theta = np.concatenate([np.asarray(p, dtype=net.dtype).ravel() for p in params])
    if check_finite and not _all_finite(theta):
        raise ValueError("net.params contain NaN or inf; re-initialise the network")
    return theta


def prepare_batch(net: MLP, X, T, check_finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validate a batch and return it as C-contiguous arrays of the network's dtype.

    Integer labels (softmax_ce only) become one-hot targets. The inputs are never
    modified; they are copied only when their dtype or layout differs. Shapes, dtypes and
    labels are always checked; ``check_finite=False`` skips the scan for NaN and inf.
    """
    X = _as_real_array("X", X)
    if X.ndim != 2 or X.shape[1] != net.sizes[0]:
        raise ValueError(
            f"X must have shape (batch, {net.sizes[0]}), got {X.shape}; one row per sample"
        )
    B = X.shape[0]
    if B < 1:
        raise ValueError("X holds no samples; pass at least one row")
    K = net.sizes[-1]
    T = np.asarray(T)
    labels = T.ndim == 1 and net.loss == "softmax_ce"
    if labels:
        if T.dtype.kind not in "iu":
            raise TypeError(
                f"1-D targets are class labels and must be integers, got dtype {T.dtype}"
            )
        if T.shape[0] != B:
            raise ValueError(f"labels have {T.shape[0]} entries but X has {B} rows")
        from .kernels.checks import one_hot

        onehot = np.zeros((B, K), dtype=net.dtype)
        if not one_hot(np.ascontiguousarray(T), onehot):  # one pass: checks and fills
            raise ValueError(f"labels must lie in 0..{K - 1}, got values in {T.min()}..{T.max()}")
        T = onehot
    else:
        T = _as_real_array("T", T)
        if T.shape != (B, K):
            hint = " or (batch,) integer labels" if net.loss == "softmax_ce" else ""
            raise ValueError(f"T must have shape ({B}, {K}){hint}, got {T.shape}")
    X = np.ascontiguousarray(X, dtype=net.dtype)
    T = np.ascontiguousarray(T, dtype=net.dtype)
    if check_finite and not _all_finite(X):
        raise ValueError("X contains NaN or inf; clean the inputs first")
    if check_finite and not labels and not _all_finite(T):
        raise ValueError("T contains NaN or inf; clean the targets first")
    return X, T


def _as_real_array(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":  # float, signed or unsigned int; not bool or complex
        raise TypeError(f"{name} must hold real numbers (float or int), got dtype {a.dtype}")
    return a
