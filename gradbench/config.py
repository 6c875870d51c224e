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


# The classic experiment (DESIGN.md): a 784-50-10 network (sigmoid, softmax cross-entropy) at
# batch 100 in float64, N = 39,760 parameters. The sweep and the gate time it beside their
# ladders, and it is ``gradbench check``'s default. Here (NumPy-free), so that the command
# line's help can show it; everything else imports it from here too.
CLASSIC_SIZES = (784, 50, 10)
CLASSIC_BATCH = 100
CLASSIC_DTYPE = "float64"


# The two slowdown thresholds (here, NumPy-free, so that the command line's help states them):
#: ``gradbench compare``'s: a case is ``slower`` beyond 10 %, more than the rule's drift
#: allows on these machines (gradbench.compare.rule.THRESHOLD).
COMPARE_THRESHOLD = 1.10
#: ``gradbench ab``'s: a method is slower beyond 1 %. Set from A/A trials between two fresh
#: installs, each worker's memory layout perturbed (AMD EPYC, 2 cores: 8 trials, every method
#: within 0.987-1.011x, none flagged) and from the 2 % head (loss 1.019-1.024x, flagged in 9
#: of 9); reports/gate-trials/ (gradbench.gate.stats.THRESHOLD).
GATE_THRESHOLD = 1.01


# gradbench train's defaults and limits (here, not in gradbench.train, so that the command
# line's help needs no NumPy; gradbench.train has the same names)
OPTIMIZERS = ("sgd", "momentum")
#: Its defaults: on the digits, a 64-50-10 sigmoid network trained by
#: backprop reaches about 96 % test accuracy with them (seed 0), in well under a second.
DEFAULT_EPOCHS = 20
DEFAULT_BATCH = 32
#: The default learning rate of each optimizer: momentum 0.9 multiplies the step of a steady
#: gradient by 1 / (1 - 0.9) = 10, so its lr is a tenth of plain SGD's.
DEFAULT_LR = {"sgd": 1.0, "momentum": 0.1}
DEFAULT_MOMENTUM = 0.9

#: At most this many training steps (whatever the method) run without ``--yes`` on the
#: command line: beyond it a run takes hours even at backprop's microseconds a step.
MAX_STEPS = 10_000_000


#: A plugin's case may take this many seconds beyond what its predicted time allows (its
#: compile, its check) before ``gradbench run`` stops it with its process and records it as
#: rejected (``gradbench run --case-timeout``): a plugin that never returns costs a run this
#: long, not the run.
CASE_TIMEOUT_SECONDS = 120.0
#: ... and, as its predicted time allows, this many times the seconds of its timed calls.
CASE_TIMEOUT_FACTOR = 10.0
