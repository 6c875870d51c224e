"""What every finite-difference kernel shares: the step of a parameter, its perturbed
values, and the quotient from the perturbed losses.

``fd = (scheme, steps, h, f0)`` is the scheme bundle (see :mod:`gradbench.kernels`).
"""

from numba import njit

from ..config import JIT
from .codes import CENTRAL, FIVE_POINT, FORWARD


@njit(**JIT)
def _step(t, h):
    """The scheme's step for a parameter of value t: h * max(1, |t|)."""
    return h * max(1.0, abs(t.real))


@njit(**JIT)
def _perturbations(theta, steps, h, p, moved, d):
    """Parameter p moved by each of the scheme's steps; returns its step h_p.

    moved[s] = theta[p] + steps[s] * h_p, rounded to the dtype of ``moved`` (theta's: the value
    the perturbed network really holds); d[s] = moved[s] - theta[p] (real parts), the step
    actually applied, exact.
    """
    t = theta[p]
    hp = _step(t, h)
    for s in range(steps.shape[0]):
        moved[s] = t + steps[s] * hp
        d[s] = moved[s].real - t.real
    return hp


@njit(**JIT)
def _combine(scheme, hp, f0, f, d):
    """The finite-difference quotient from the loss values f at the realised steps d.

    f[s] = loss(theta + d[s] e_p) for the multipliers of ``codes.STEPS[scheme]``; d[s] is the
    step that was actually applied ((t + c h) - t in the parameter's dtype), so the
    divisor is exact. For the complex step f holds complex values and hp is the step.
    """
    if scheme == FORWARD:
        return (f[0].real - f0) / d[0]
    if scheme == CENTRAL:
        return (f[0].real - f[1].real) / (d[0] - d[1])
    if scheme == FIVE_POINT:
        hh = 0.5 * (d[0] - d[1])
        return (8.0 * (f[0].real - f[1].real) - (f[2].real - f[3].real)) / (12.0 * hh)
    return f[0].imag / hp
