"""The one place where Numba compilation flags are set.

Finite-difference kernels rely on cancellation (f(x+h) - f(x-h)), so no kernel
here is compiled with fastmath: the loss kernel is shared by the forward pass
and every finite-difference scheme, and must round the same way in both.
"""

#: Flags for every serial kernel. ``cache=True`` stores machine code on disk,
#: so a second process compiles nothing. ``error_model="numpy"`` drops the
#: Python-style division-by-zero checks from inner loops.
JIT = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

#: Flags for drivers that spread work over threads with ``prange``.
PARALLEL_JIT = {**JIT, "parallel": True}

#: Small helpers called from inner loops are inlined at the Numba IR level: a call that passes
#: an array updates its reference count atomically, and threads calling with the same shared
#: array (the targets T) in their inner loops would contend for that one cache line.
INLINE_JIT = {**JIT, "inline": "always"}
