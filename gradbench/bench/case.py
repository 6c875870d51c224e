"""The one case type: a method on one network, batch, dtype and thread count.

The sweep (:mod:`gradbench.bench.sweep`), the gate (:mod:`gradbench.gate`) and ``gradbench
check`` all describe what they time as a :class:`Case`. Its identity is the results' case key
(:data:`gradbench.results.CASE_KEY`: method, sizes, batch, dtype, threads, device), the device
being its method's (the registry's record says where it computes).

Plain Python (no pytest-benchmark here), as the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import costmodel, methods
from ..config import CLASSIC_BATCH, CLASSIC_DTYPE, CLASSIC_SIZES

#: The classic network's case parameters (784-50-10, batch 100, float64): sizes, batch, dtype.
CLASSIC = (CLASSIC_SIZES, CLASSIC_BATCH, CLASSIC_DTYPE)


@dataclass(frozen=True)
class Case:
    """One benchmark: a method on one network, batch, dtype and thread count.

    ``threads`` is None for a case whose threads are the run's, given when it runs (the
    gate's profiles: ``gradbench ab --threads``); its :attr:`id` then leaves them out.
    """

    method: str
    sizes: tuple[int, ...]
    batch: int
    dtype: str = CLASSIC_DTYPE
    threads: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))

    @property
    def record(self) -> methods.Method:
        return methods.get(self.method)

    @property
    def scheme(self) -> str | None:
        return self.record.scheme

    @property
    def strategy(self) -> str | None:
        return self.record.strategy

    @property
    def device(self) -> str:
        """Where it computes: its method's device."""
        return self.record.device

    @property
    def key(self) -> tuple:
        """Its identity, in the order of :data:`gradbench.results.CASE_KEY`."""
        from ..results.schema import CASE_KEY

        return tuple(getattr(self, k) for k in CASE_KEY)

    @property
    def n_params(self) -> int:
        return costmodel.num_params(self.sizes)

    @property
    def classic(self) -> bool:
        """The classic network's case (off the ladder: another input size and batch)."""
        return (self.sizes, self.batch, self.dtype) == CLASSIC

    @property
    def id(self) -> str:
        """A name for it (a test's id, a progress line): never what results match on."""
        out = f"{self.method}-{'x'.join(map(str, self.sizes))}-b{self.batch}-{self.dtype}"
        return out if self.threads is None else f"{out}-t{self.threads}"

    def cost(self) -> costmodel.Cost:
        return self.record.cost(self.sizes, self.batch, self.dtype)

    def predict_seconds(self, seconds_per_flop: float) -> float:
        """Predicted seconds of one call at ``seconds_per_flop`` measured for loss calls:
        :func:`gradbench.costmodel.predict_seconds` of its cost, threads and method."""
        return costmodel.predict_seconds(self.cost().flops, seconds_per_flop,
                                         self.threads or 1, self.record.threaded)

    def info(self) -> dict:
        """What every result records about its case (extra_info)."""
        from .. import results

        return results.case_info(self.record, self.sizes, self.batch, self.dtype,
                                 self.threads, self.cost(), classic=self.classic,
                                 device=self.device)

    def request(self) -> dict:
        """The case as the gate's coordinator asks a worker to prepare it: method, sizes,
        batch, dtype, and its threads when it has them (a worker times a case without them
        on its own ``--threads``)."""
        out = {"method": self.method, "sizes": list(self.sizes), "batch": self.batch,
               "dtype": self.dtype}
        return out if self.threads is None else {**out, "threads": self.threads}
