"""The GPU's public entry points: a network and batch resident on the device, and the loss,
backprop and numerical gradients computed there (kernels: :mod:`gradbench.kernels.cuda`).

What a call does on the GPU and what it does not: :class:`Resident` copies the parameters and
the batch to the device once; each call then launches its kernels and waits for them
(:func:`gradbench.kernels.cuda.runtime.synchronize`), and leaves its result on the device. A
benchmark of these calls times the kernels and their launches, not the bus. This module
imports no numba.cuda: the device's arrays and waiting come from
:mod:`gradbench.kernels.cuda.runtime`.
"""

from __future__ import annotations

import numpy as np

from ..gradients import fd_options, unflatten
from ..kernels import cuda as G  # the one place that imports numba.cuda
from ..kernels.codes import ACTIVATION_CODE, LOSS_CODE, SCHEME_CODE, STEPS
from ..kernels.cuda import runtime
from ..model import MLP, flat_params, prepare_batch
from . import simulated

#: Threads per block of the element-wise kernels, and of the per-network kernels (a power of
#: two, at most gradbench.kernels.cuda.MAX_BLOCK); the simulator runs each thread as a Python
#: thread: few.
ELEMENT_THREADS = 2 if simulated() else 128
NETWORK_THREADS = 2 if simulated() else 128
#: Bytes of scratch the per-network kernels may hold at once (two buffers of rows x the
#: widest layer per perturbed network): the perturbed networks per launch follow from it.
SCRATCH_BYTES = 1 << 28

_BUILT: dict = {}


def kernels(arithmetic: str):
    """The kernels of one arithmetic ("float32", "float64", "complex128"), built once."""
    arithmetic = str(np.dtype(arithmetic))
    if arithmetic not in _BUILT:
        _BUILT[arithmetic] = G.build(str(np.dtype(arithmetic)))
    return _BUILT[arithmetic]


def _blocks(n: int, threads: int) -> int:
    return max(1, -(-n // threads))


class Resident:
    """A network's parameters and a batch, copied to the GPU once.

    Parameters
    ----------
    net : MLP
    X, T : array_like
        As for :func:`gradbench.loss`; validated (finite, shaped, labels in range).
    network_threads : int or None
        Threads per block of the numerical gradients' kernels (a power of two up to 256).

    The parameters are those of ``net`` when this is made: later changes to ``net.params``
    are not seen (make another).
    """

    def __init__(self, net: MLP, X, T, *, network_threads: int | None = None):
        self.net = net
        theta = flat_params(net)
        Xp, Tp = prepare_batch(net, X, T)
        self.rows = Xp.shape[0]
        widths = [int(r[3]) for r in net.layout]
        offs = np.concatenate([[0], np.cumsum([self.rows * w for w in widths])]).astype(np.int64)
        self.half = self.rows * max(widths)  # one scratch buffer of a perturbed network
        self.n = theta.shape[0]
        self.threads = network_threads or NETWORK_THREADS
        if not (1 <= self.threads <= G.MAX_BLOCK and self.threads & (self.threads - 1) == 0):
            raise ValueError(f"network_threads must be a power of two up to {G.MAX_BLOCK}, "
                             f"got {network_threads!r}")
        self.theta = runtime.to_device(theta)
        self.X = runtime.to_device(np.ascontiguousarray(Xp).reshape(-1))
        self.T = runtime.to_device(np.ascontiguousarray(Tp))
        self.layout = runtime.to_device(np.ascontiguousarray(net.layout, dtype=np.int64))
        self.offs = runtime.to_device(offs)
        self.Z = runtime.device_array(int(offs[-1]), net.dtype)
        self.A = runtime.device_array(int(offs[-1]), net.dtype)
        self.dz = [runtime.device_array(self.half, net.dtype) for _ in range(2)]
        self.rowloss = runtime.device_array(self.rows, np.float64)
        self.out = runtime.device_array(1, np.float64)
        self.grad = runtime.device_array(self.n, net.dtype)
        # the kernels' bundles (gradbench.kernels.cuda): the network, backprop's pass (and
        # the incremental strategy's base pass), and the loss's (A alone: z on the output
        # layer)
        self.network = (self.layout, ACTIVATION_CODE[net.activation], LOSS_CODE[net.loss],
                        ACTIVATION_CODE[net.output_activation])
        self.base = (self.Z, self.A, self.offs, self.rows)
        self.loss_pass = (self.A, self.A, self.offs, self.rows)
        self._complex = None  # theta as complex128, for the complex step
        self._steps: dict = {}
        self._scratch: dict = {}
        #: kernel launches so far, by kernel (what ran, for tests)
        self.launches: dict[str, int] = {}

    # ----------------------------------------------------------------- launches

    def _launch(self, kernel, name: str, blocks: int, threads: int, *args) -> None:
        kernel[blocks, threads](*args)
        self.launches[name] = self.launches.get(name, 0) + 1

    def _forward(self, base) -> None:
        k = kernels(self.net.dtype)
        for l, (_, _, _, n_out) in enumerate(self.net.layout.tolist()):
            self._launch(k.forward_layer, "forward_layer",
                         _blocks(self.rows * n_out, ELEMENT_THREADS), ELEMENT_THREADS,
                         self.theta, self.X, self.network, base, l)

    def _mean_loss(self, base, from_rows: bool) -> None:
        k = kernels(self.net.dtype)
        self._launch(k.mean_loss, "mean_loss", 1, self.threads, self.T, self.network, base,
                     int(from_rows), self.rowloss, self.out)

    @staticmethod
    def synchronize() -> None:
        runtime.synchronize()

    # ----------------------------------------------------------------- the methods

    def loss(self) -> float:
        """The mean loss (L + 1 launches, and the 8 bytes of the result copied back)."""
        self._forward(self.loss_pass)
        self._mean_loss(self.loss_pass, False)
        return float(self.out.copy_to_host()[0])

    def backprop(self):
        """The flat gradient by backpropagation, a device array (2 L + 2 launches, waited
        for); :meth:`last_loss` gives the loss it computed."""
        k = kernels(self.net.dtype)
        layout = self.net.layout.tolist()
        L = len(layout)
        self._forward(self.base)
        self._launch(k.output_delta, "output_delta", _blocks(self.rows, ELEMENT_THREADS),
                     ELEMENT_THREADS, self.T, self.network, self.base, self.dz[0], self.rowloss)
        for l in range(L - 1, -1, -1):
            _, _, n_in, n_out = layout[l]
            n = n_in * n_out + n_out + (self.rows * n_in if l > 0 else 0)
            cur, prev = self.dz[(L - 1 - l) % 2], self.dz[(L - l) % 2]
            self._launch(k.backward_layer, "backward_layer", _blocks(n, ELEMENT_THREADS),
                         ELEMENT_THREADS, self.theta, self.X, self.network, self.base, l, cur,
                         prev, self.grad)
        self._mean_loss(self.base, True)
        self.synchronize()
        return self.grad

    def last_loss(self) -> float:
        """The loss that the last :meth:`backprop` or :meth:`loss` computed."""
        return float(self.out.copy_to_host()[0])

    def numerical(self, scheme: str = "central", h: float | None = None,
                  strategy: str = "naive"):
        """The flat numerical gradient, a device array (waited for). ``h`` is the step
        before scaling (None: the scheme's default for the dtype), as on the CPU."""
        scheme, h, _, _ = fd_options(self.net, scheme, h, strategy, None)
        code = SCHEME_CODE[scheme]
        f0 = self.loss() if scheme == "forward" else 0.0
        arithmetic = "complex128" if scheme == "complex_step" else self.net.dtype
        theta = self.theta
        if scheme == "complex_step":
            if self._complex is None:
                self._complex = runtime.to_device(flat_params(self.net).astype(np.complex128))
            theta = self._complex
        if code not in self._steps:
            self._steps[code] = runtime.to_device(STEPS[code])
        fd = (code, self._steps[code], h, f0)
        itemsize = np.dtype(arithmetic).itemsize
        # perturbed networks per launch: what the scratch holds, whole blocks of G.NETS
        slots = int(max(1, min(self.n, SCRATCH_BYTES // (2 * self.half * itemsize))))
        slots = -(-slots // G.NETS) * G.NETS
        if arithmetic not in self._scratch or self._scratch[arithmetic].shape[0] < slots:
            self._scratch[arithmetic] = runtime.device_array(2 * slots * self.half, arithmetic)
        buf = self._scratch[arithmetic]
        k = kernels(arithmetic)
        common = (theta, self.X, self.T, self.network, fd)
        if strategy == "incremental":
            self._forward(self.base)  # the base pass
        for start in range(0, self.n, slots):
            stop = min(self.n, start + slots)
            job = (start, stop, buf, self.half)
            if strategy == "naive":
                self._launch(k.naive, "naive", -(-(stop - start) // G.NETS), self.threads,
                             *common, job, self.grad)
            else:
                self._launch(k.incremental, "incremental", stop - start, self.threads, *common,
                             self.base, job, self.grad)
        self.synchronize()
        return self.grad


# --------------------------------------------------------------------------- the public API's shape


def loss(net: MLP, X, T) -> float:
    """:func:`gradbench.loss` on the GPU."""
    return Resident(net, X, T).loss()


def backprop(net: MLP, X, T) -> list[np.ndarray]:
    """:func:`gradbench.backprop` on the GPU: host arrays shaped like ``net.params``."""
    return unflatten(net, Resident(net, X, T).backprop().copy_to_host())


def numerical_gradient(net: MLP, X, T, scheme: str = "central", h: float | None = None,
                       strategy: str = "naive") -> list[np.ndarray]:
    """:func:`gradbench.numerical_gradient` on the GPU: host arrays shaped like
    ``net.params``."""
    fd_options(net, scheme, h, strategy, None)  # bad options fail before the copy
    grad = Resident(net, X, T).numerical(scheme, h, strategy)
    return unflatten(net, grad.copy_to_host())


# --------------------------------------------------------------------------- warm-up, the device


def warm_up(net: MLP, scheme: str | None = None, strategy: str = "naive") -> float:
    """Compile the kernels ``net`` needs (on a tiny network of its dtype, activation and loss:
    the same argument types) and launch each once; returns the seconds. Timed calls that
    follow compile nothing."""
    import time

    tiny = MLP([2, 2, 2], activation=net.activation, loss=net.loss, dtype=net.dtype,
               output_activation=net.output_activation)
    X = np.zeros((2, 2), dtype=net.dtype)
    T = np.zeros((2, 2), dtype=net.dtype)
    t0 = time.perf_counter()
    on = Resident(tiny, X, T)
    on.loss()
    on.backprop()
    if scheme is not None:
        on.numerical(scheme, 1e-3, strategy)
    return time.perf_counter() - t0


def device_info() -> dict:
    """The GPU: name, memory, multiprocessors, compute capability, driver and CUDA versions
    (what the result file records beside the CPU's description)."""
    info = runtime.describe()
    return {"name": info.pop("name"), "simulated": simulated(), **info}


def calibrate(n: int = 2048, elements: int = 1 << 26, repeats: int = 5) -> dict:
    """The GPU's rates measured now: a tiled matrix product's GFLOP/s per dtype (n x n) and
    memory bandwidth in GB/s (a kernel reading and writing ``elements`` float64); each the
    best of ``repeats`` launches after one untimed, synchronised inside the timing."""
    import time
    out = {}
    n = max(G.TILE, n // G.TILE * G.TILE)
    for dtype in ("float32", "float64"):
        k = kernels(dtype)
        a = runtime.to_device(np.ones((n, n), dtype=dtype))
        b = runtime.to_device(np.ones((n, n), dtype=dtype))
        c = runtime.device_array((n, n), dtype)
        grid = (n // G.TILE, n // G.TILE)
        best = np.inf
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            k.matmul[grid, (G.TILE, G.TILE)](a, b, c)
            runtime.synchronize()
            if r:
                best = min(best, time.perf_counter() - t0)
        out[f"matmul_gflops_{dtype}"] = 2.0 * n**3 / best / 1e9
    src = runtime.to_device(np.ones(elements))
    dst = runtime.device_array(elements, np.float64)
    k, best = kernels("float64"), np.inf
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        k.stream[_blocks(elements, ELEMENT_THREADS), ELEMENT_THREADS](src, dst)
        runtime.synchronize()
        if r:
            best = min(best, time.perf_counter() - t0)
    out["memory_gbs"] = 16.0 * elements / best / 1e9
    out["matmul_n"] = n
    return out
