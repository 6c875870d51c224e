"""How far a peer's gradient may lie from gradbench's backprop and still be the gradient.

A peer is timed only if its gradient, on the network it is timed on, lies within a bound of
ours; a fast wrong gradient is not a result. The bounds follow from the dtype and, for finite
differences, from the scheme and its steps. Nothing here is tuned to make a peer pass.

**Rounding.** A loss evaluation (or a gradient entry) in dtype with machine epsilon eps is off
by at most ``eps_L * S``, with ``S = max(1, |L|)`` and ``eps_L = 4 * depth * n * eps``,
``n = max(max(sizes), B * K)``: a dot product of length n loses at most about n eps of the
sum of its terms' magnitudes, per layer, forward and back (the bound tests/conftest.py holds
the kernels to against NumPy). Two analytic gradients therefore differ by at most
``2 * eps_L * S``.

**Finite differences.** A difference quotient of order p with step h (absolute, per
parameter), ``sum_k w_k f(theta + c_k h e_i) / h``, is off by

- truncation ``c_p * D * h**p``: c_p is the scheme's leading coefficient (1/2 forward,
  1/6 central) and D bounds the loss's (p+1)-th derivative; as in gradbench.check, D is taken
  as ``DERIVATIVE_ALLOWANCE * S`` (the default steps assume derivatives of the size of the
  loss; ten times that is allowed);
- rounding ``sum_k |w_k| * eps_L * S / h`` (1 for central differences, 2 for forward);
- the divisor, for libraries that divide by the nominal step h instead of the step actually
  applied, ``(theta + h) - theta``: a relative error of ``eps * (|theta| + h) / h``;
- and the rounding of our own backprop, ``eps_L * S``.

numdifftools extrapolates its quotients (Richardson, then Wynn's epsilon algorithm): see
gradbench.peers.numdifftools_peer for its bound.

**The check** (:func:`check`), as the suite and the gate make it before a peer's or a
plugin's method is timed: the output of one call against gradbench's backprop on the same
network and batch, and nothing the method was given (the network's tensors, the batch)
replaced or written into (:func:`inputs` copies them first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..blas import single_threaded_blas
from ..check import DERIVATIVE_ALLOWANCE
from ..gradients import backprop_flat
from ..kernels.codes import ORDER
from ..model import flat_params, prepare_batch

#: Per scheme: the leading truncation coefficient c_p (of h**p, p its order in
#: kernels.codes.ORDER), and the sum of the |weights| of the loss values in the quotient.
TRUNCATION = {"forward": (0.5, 2.0), "central": (1.0 / 6.0, 1.0)}


def loss_rounding(net, batch: int) -> float:
    """Relative rounding bound ``eps_L`` of one loss evaluation or gradient entry."""
    eps = float(np.finfo(net.dtype).eps)
    n = max(max(net.sizes), batch * net.sizes[-1])
    return 4 * net.depth * n * eps


def analytic(net, batch: int, loss: float) -> float:
    """Largest distance between two correct analytic gradients: rounding on both sides."""
    return 2 * loss_rounding(net, batch) * max(1.0, abs(loss))


def finite_difference(net, batch: int, ours, scheme: str, steps, exact_divisor: bool,
                      truncation: bool = True) -> np.ndarray:
    """Per-parameter bound of a finite-difference gradient's distance from the exact one,
    for ``scheme`` ("forward" or "central") with absolute steps ``steps`` (a number or one
    per parameter), at the point ``ours = (loss, theta, grad)``: the loss, the flat
    parameters and our gradient there (exact to rounding).

    ``exact_divisor``: the library divides by the step actually applied (scipy, gradbench's
    reference) rather than by the nominal one (torch, numdifftools). ``truncation=False``
    leaves the truncation term out (for a caller that bounds it otherwise).
    """
    loss, theta, grad = ours
    order, (coef, weights) = ORDER[scheme], TRUNCATION[scheme]
    S = max(1.0, abs(loss))
    eps = float(np.finfo(net.dtype).eps)
    eps_L = loss_rounding(net, batch)
    h = np.asarray(steps, dtype=np.float64)
    bound = weights * eps_L * S / h
    if truncation:
        bound = bound + coef * DERIVATIVE_ALLOWANCE * S * h**order
    if not exact_divisor:
        bound = bound + np.abs(grad) * eps * (np.abs(theta) + h) / h
    return bound + eps_L * S


@dataclass(frozen=True)
class Agreement:
    """A peer's gradient against ours: the largest distance, and the largest ratio of a
    distance to its bound (at most 1 passes)."""

    max_abs_err: float
    ratio: float
    problem: str | None = None  # wrong shapes, dtype or non-finite values

    @property
    def passed(self) -> bool:
        return self.problem is None and self.ratio <= 1.0

    def reason(self, what: str) -> str:
        """Why the peer is rejected, for the result file."""
        if self.problem is not None:
            return f"rejected: {what} {self.problem}"
        return (f"rejected: {what}'s gradient lies up to {self.max_abs_err:.3g} from "
                f"gradbench's backprop, {self.ratio:.3g} times the bound of its scheme and "
                "dtype (gradbench.peers.agreement)")


def _host(g):
    if hasattr(g, "detach"):  # a torch tensor, on any device
        return g.detach().cpu().numpy()
    if hasattr(g, "copy_to_host"):  # a numba.cuda device array
        return g.copy_to_host()
    return g


def compare(net, theirs, ours: np.ndarray, tolerance) -> Agreement:
    """``theirs`` (a list shaped like net.params) against ``ours`` (flat, float64) with a
    tolerance (a number or one per parameter)."""
    if isinstance(theirs, list):  # a GPU's arrays (torch's, numba's) to the host
        theirs = [_host(g) for g in theirs]
    shapes = [getattr(g, "shape", None) for g in theirs] if isinstance(theirs, list) else None
    want = [p.shape for p in net.params]
    if shapes != want:
        return Agreement(np.inf, np.inf, f"returned shapes {shapes}, expected {want}")
    dtypes = {np.asarray(g).dtype for g in theirs}
    if dtypes != {net.dtype}:
        return Agreement(np.inf, np.inf, f"returned dtypes {sorted(map(str, dtypes))}, "
                                         f"expected {net.dtype}")
    flat = np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in theirs])
    if not np.all(np.isfinite(flat)):
        return Agreement(np.inf, np.inf, "returned NaN or inf")
    err = np.abs(flat - ours)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), err.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / tol)
    return Agreement(float(err.max(initial=0.0)), float(ratio.max(initial=0.0)))


def ours(net, X, T) -> tuple[float, np.ndarray]:
    """gradbench's loss and backprop (flat, float64), BLAS on one thread: in a peer's
    process no other library's thread pool may start."""
    with single_threaded_blas():
        Xp, Tp = prepare_batch(net, X, T)
        loss, grad = backprop_flat(net, flat_params(net), Xp, Tp)
    return loss, grad.astype(np.float64)


def inputs(net, X, T) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """What a case hands a method, each with a copy: (what it is, the array, its copy), the
    network's tensors by name, then the batch."""
    named = [*(f"the network's {n}" for n in net.tensor_names), "the batch's inputs X",
             "the batch's targets T"]
    return [(what, a, a.copy()) for what, a in zip(named, [*net.params, X, T], strict=True)]


def changed(net, X, T, given) -> str | None:
    """What of ``given`` (:func:`inputs`) a method changed, replaced or wrote into; None."""
    if len(net.params) != len(given) - 2:
        return "the network's parameter list"
    for (what, a, copy), b in zip(given, [*net.params, X, T], strict=True):
        if b is not a or a.shape != copy.shape or a.tobytes() != copy.tobytes():
            return what
    return None


def check(method, net, X, T, out, fn, given) -> Agreement:
    """The output ``out`` of one call of ``fn``, ``method``'s callable (a peer's or a
    plugin's) on ``net``, ``X``, ``T``, against gradbench's backprop, within the bound the
    method's ``tolerance`` gives; a method that changed what it was ``given``
    (:func:`inputs`) fails."""
    what = changed(net, X, T, given)
    if what is not None:
        return Agreement(np.inf, np.inf, f"changed {what} it was given")
    loss, grad = ours(net, X, T)
    return compare(net, out, grad, method.tolerance(net, X, T, loss, grad, fn))
