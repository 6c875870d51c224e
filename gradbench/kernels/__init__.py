"""Numba kernels: the loss, backpropagation and numerical gradients of an MLP.

One module per algorithm: :mod:`.forward` (the forward pass and the loss), :mod:`.backprop`,
:mod:`.naive` and :mod:`.incremental` (finite differences, sharing :mod:`.quotient`),
:mod:`.calibration` (what the machine's calibration times) and :mod:`.checks` (input checks);
:mod:`.codes` holds the codes and the schemes' facts (no Numba), :mod:`.scalar` the scalar
math that :mod:`.cuda`, the numba.cuda kernels, compiles from the same source. Importing this
package imports none of them: ``gradbench.kernels.codes`` stays light.

Every kernel works on the flat parameter vector ``theta`` and a ``layout`` array
(rows ``w_offset, b_offset, n_in, n_out``; see :func:`gradbench.model.layout`).
Arrays are C-contiguous float32 or float64 (complex128 for the complex step);
``X`` and ``T`` have the dtype of ``theta`` unless said otherwise. Layer l of the code is
layer l + 1 of the math: ``z_l = a_prev @ W_l + b_l``, ``a_l = act(z_l)``, with
``a_prev = X`` for l = 0 and no activation on the output layer.

Arguments come in one order everywhere, each kernel taking the ones it needs, and the
drivers' arguments come in bundles (tuples, which Numba types natively):

1. ``theta, X, T``, then the network ``net = (layout, act, loss, out_act)``;
2. the finite-difference scheme ``fd = (scheme, steps, h, f0)``;
3. the incremental strategy's base pass ``base = (Z, A, offs, rows)``;
4. the work, ``job``: which parameters, on how many threads, how many perturbed networks at
   a time (``(start, stop, n_threads, wide)`` naive, ``(l, start, stop, n_threads, batch)``
   incremental);
5. outputs and caller-given buffers, last.

Helpers for one layer take its parts in the same places: weights (``W_next``) where theta
goes, the layer's input ``a_prev`` (or outputs ``z``) where X goes, the base pass's views
``z, a, z_next`` with the base pass.

Three layers, as in stumpy: serial workers that write only their own slice of the
result, ``prange`` drivers over threads (each thread has its own scratch, results
do not depend on the thread count), and the public wrappers in
:mod:`gradbench.gradients` that validate, allocate and call.
"""
