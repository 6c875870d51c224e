"""numba.cuda kernels: the loss, backpropagation and numerical gradients on a GPU.

The math is the CPU kernels' (:mod:`gradbench.kernels`, DESIGN.md), on the same flat
parameter vector ``theta`` and ``layout`` (rows ``w_offset, b_offset, n_in, n_out``). Every
array is one-dimensional and C-contiguous on the device except ``T`` (rows, classes); the
batch ``X`` is flattened row-major. This package is the only place in gradbench that imports
numba.cuda; its codes and schemes come from :mod:`gradbench.kernels.codes`, and it imports
none of the CPU kernels.

    a_0 = X;  z_l = a_{l-1} @ W_l + b_l;  a_l = act(z_l) (hidden layers), a_L = z_L
    softmax_ce: loss = (1/B) sum_i (logsumexp(z_L[i]) sum_k T_ik - T_i . z_L[i])
    mse:        loss = (1/(2B)) sum_i |out_act(z_L[i]) - T_i|^2
    numerical:  g_p = the scheme's quotient of loss(theta + steps[s] h_p e_p),
                h_p = h max(1, |theta_p|)

Modules: :mod:`.maths` (the scalar maths per arithmetic, the activation and a sample's loss
from :mod:`gradbench.kernels.scalar`, a block's sum), :mod:`.layers` (loss and backprop, one
thread per output element, a launch per layer), :mod:`.networks` (the numerical gradients,
one block per perturbed network or a few), :mod:`.calibration` (a tiled matrix product and a
memory stream) and :mod:`.runtime` (copies, allocations, waiting, the device's description,
for the wrappers in :mod:`gradbench.gpu`).

Arguments come in one order, as the CPU kernels', and in bundles (tuples, which numba.cuda
takes as kernel and device-function arguments):

1. ``theta, X, T``, then the network ``net = (layout, act, loss, out_act)`` (the layout
   array and the activation, loss and output-activation codes);
2. the finite-difference scheme ``fd = (scheme, steps, h, f0)`` (its code, the step
   multipliers, the step before scaling, the unperturbed loss for forward differences);
3. a pass's arrays ``base = (Z, A, offs, rows)``: layer l's z and a at ``offs[l]`` (the
   incremental strategy's base pass; the loss alone may pass one array as both Z and A);
4. the work: a layer ``l``, or ``job = (start, stop, buf, half)``: parameters start..stop-1,
   and the scratch of their blocks (two buffers of ``half`` = rows x widest layer elements
   per perturbed network);
5. outputs last.

The kernels are built per arithmetic (:func:`build`): float32 and float64 for real networks,
complex128 for the complex step (theta complex; the batch and the base pass real).
"""

from __future__ import annotations

from types import SimpleNamespace

from . import calibration, layers, maths, networks, runtime
from .calibration import TILE
from .maths import MAX_BLOCK
from .networks import NETS

__all__ = ["MAX_BLOCK", "NETS", "TILE", "build", "runtime"]


def build(dtype: str) -> SimpleNamespace:
    """The kernels of one arithmetic.

    Parameters
    ----------
    dtype : str
        "float32", "float64" or "complex128" (the complex step: theta complex, the batch
        and the base pass real).

    Returns
    -------
    SimpleNamespace
        ``forward_layer``, ``output_delta``, ``backward_layer``, ``mean_loss``
        (:mod:`.layers`), ``naive``, ``incremental`` (:mod:`.networks`), ``matmul`` and
        ``stream`` (:mod:`.calibration`).
    """
    sm = maths.build(dtype)
    return SimpleNamespace(**vars(layers.build(sm)), **vars(networks.build(sm)),
                           **vars(calibration.build(sm)))
