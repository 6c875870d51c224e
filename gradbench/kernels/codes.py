"""The integer codes the kernels branch on, and the facts of each finite-difference scheme.

The one home of these facts: the CPU kernels (:mod:`gradbench.kernels`), the GPU kernels
(:mod:`gradbench.kernels.cuda`), the model, the cost model, the method registry and the
gradient check all import them from here. This module imports NumPy alone (no Numba), so the
command line's help and the cost model stay light.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------- networks

#: Activation codes (hidden layers, and the output activation of mse).
IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3
ACTIVATION_CODE = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU}

#: Loss codes.
SOFTMAX_CE, MSE = 0, 1
LOSS_CODE = {"softmax_ce": SOFTMAX_CE, "mse": MSE}

# ----------------------------------------------------------------------------- schemes

#: Scheme codes.
FORWARD, CENTRAL, FIVE_POINT, COMPLEX_STEP = 0, 1, 2, 3
#: The schemes, in the order of their codes.
SCHEMES = ("forward", "central", "five_point", "complex_step")
SCHEME_CODE = {name: code for code, name in enumerate(SCHEMES)}
#: How a numerical gradient is taken: a whole loss per perturbation, or reusing what the
#: perturbation cannot change.
STRATEGIES = ("naive", "incremental")

#: Order of accuracy of each scheme (truncation error ~ h**order).
ORDER = {"forward": 1, "central": 2, "five_point": 4, "complex_step": 2}
#: Perturbed loss evaluations per parameter (forward adds one unperturbed evaluation).
EVALS_PER_PARAM = {"forward": 1, "central": 2, "five_point": 4, "complex_step": 1}

#: Step multipliers of each scheme, in the order the loss values are stored: the loss is
#: evaluated at theta + steps[s] * h_p * e_p. The complex step moves along the imaginary axis,
#: so its losses are complex128 (``steps.dtype`` is the arithmetic of the loss values).
STEPS = {
    FORWARD: np.array([1.0]),
    CENTRAL: np.array([1.0, -1.0]),
    FIVE_POINT: np.array([1.0, -1.0, 2.0, -2.0]),
    COMPLEX_STEP: np.array([1j]),
}
#: Most steps a scheme takes (five-point: 4).
MAX_STEPS = max(len(s) for s in STEPS.values())

#: The complex step's default: it has no cancellation, so its step can be tiny.
COMPLEX_STEP_H = 1e-20


def default_step(scheme: str, dtype) -> float:
    """The scheme's step before scaling by max(1, |theta_i|), from theory.

    Round-off error ~ eps/h against truncation error ~ h**order balance at
    h ~ eps**(1/(order+1)): sqrt(eps) forward, eps**(1/3) central, eps**(1/5) five-point;
    the complex step takes :data:`COMPLEX_STEP_H`. ``scheme`` must be one of :data:`SCHEMES`
    (the public :func:`gradbench.gradients.default_step` checks it).
    """
    if scheme == "complex_step":
        return COMPLEX_STEP_H
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return eps ** (1.0 / (ORDER[scheme] + 1))


# ----------------------------------------------------------------------------- strategies

#: Perturbations pushed through the upper layers together by the incremental strategy.
INCREMENTAL_BATCH = 32
