"""Cross-machine normalisation: a case's time in units of its machine's speed at the resource
that bounds it.

A case is compute-bound when its arithmetic intensity (predicted flops per byte) reaches the
machine's balance (calibrated matrix-product GFLOP/s over memory GB/s); it is then measured in
matrix-product flop-times (time x GFLOP/s of its dtype), else in memory byte-times (time x GB/s).
The ratio of two machines' normalised times is 1 when each runs the case at the same fraction
of its own peak. Kernels bound by neither (scalar code: exponentials, loop overhead) keep a
ratio away from 1, and the comparison says so per method.
"""

from __future__ import annotations

import math

MODES = ("none", "auto", "flops", "memory")


def bottleneck(flops: float | None, nbytes: float | None, gflops: float, gbs: float,
               mode: str) -> str:
    """"flops" or "memory" (the resource a case is measured against), or "none"."""
    if mode == "none":
        return "none"
    if mode in ("flops", "memory"):
        return mode
    if not nbytes or not flops:
        return "flops"
    return "flops" if flops / nbytes >= gflops / gbs else "memory"


def factor(resource: str, gflops: float | None, gbs: float | None) -> float:
    """What a time is multiplied by: the machine's rate at the resource (1 for "none")."""
    rate = {"none": 1.0, "flops": gflops, "memory": gbs}[resource]
    if rate is None or not (isinstance(rate, float | int) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"normalising by {resource} needs the machines' calibration; a "
                         "result file lacks it (re-run the benchmarks with this version)")
    return float(rate)
