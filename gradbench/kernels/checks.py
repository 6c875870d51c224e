"""Kernels that check what users pass in, at memory speed."""

from numba import njit

from ..config import JIT


@njit(**JIT)
def any_nonfinite(u, mask):
    """True when some float, read as its bits u (uint64 or uint32), is NaN or inf.

    An exponent of all ones (``mask``) marks NaN and inf. The integer OR-reduction
    vectorises, so this runs at memory speed, unlike a floating-point reduction.
    """
    bad = False
    for i in range(u.shape[0]):
        bad |= (u[i] & mask) == mask
    return bad


@njit(**JIT)
def one_hot(labels, out):
    """out[i, labels[i]] = 1 for integer labels in 0..K-1 (out zeroed, (B, K)); False, with
    out partly filled, when a label lies outside that range."""
    K = out.shape[1]
    for i in range(labels.shape[0]):
        c = labels[i]
        if c < 0 or c >= K:
            return False
        out[i, c] = 1
    return True
