"""``gradbench check``: the gradient check and analytic-vs-numerical timing of one network."""

from __future__ import annotations

import math
import time

from ..config import CLASSIC_BATCH, CLASSIC_SIZES
from .common import (
    CLASSIC_ARG,
    EXIT_FINDING,
    EXIT_OK,
    UsageError,
    add_plugin_option,
    add_verb,
    check_threads,
    int_list,
)

PROG = "gradbench check"
#: A numerical gradient predicted to take longer than this shows a progress bar.
PROGRESS_SECONDS = 3.0


def add_parser(sub) -> None:
    p = add_verb(
        sub, "check", help="gradient check and analytic-vs-numerical timing of one network",
        description="Time the analytic (backprop) and numerical gradient of one network and "
        "compare them tensor by tensor. Exit 1 when the check fails. A numerical gradient "
        "that will take more than a few seconds shows its progress; Ctrl-C stops it.")
    p.add_argument("--sizes", type=int_list, default=list(CLASSIC_SIZES),
                   help=f"layer widths, inputs first (default {CLASSIC_ARG}: the classic "
                        "network)")
    p.add_argument("--activation", default="sigmoid", help="sigmoid, relu, tanh or identity")
    p.add_argument("--loss", default="softmax_ce", help="softmax_ce or mse")
    p.add_argument("--batch", type=int, default=CLASSIC_BATCH,
                   help=f"samples in the batch (default {CLASSIC_BATCH})")
    p.add_argument("--dtype", default="float64", help="float64 or float32")
    p.add_argument("--scheme", default="central",
                   help="forward, central, five_point or complex_step (default central)")
    p.add_argument("--strategy", default="naive", help="naive (default) or incremental")
    p.add_argument("--h", type=float, default=None, help="step before scaling (default: theory)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and data (default 0)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    add_plugin_option(p)
    p.set_defaults(func=main)


def _predicted_seconds(net, X, T, scheme: str, strategy: str, threads: int) -> float:
    """The numerical gradient's time: the cost model's one prediction
    (:meth:`gradbench.bench.case.Case.predict_seconds`) at the rate of one measured loss
    evaluation."""
    import gradbench as gb

    from .. import costmodel
    from ..bench.case import Case
    from ..blas import thread_limits

    with thread_limits(threads):  # as the check will run
        gb.loss(net, X, T)  # compiled or loaded
        t0 = time.perf_counter()
        gb.loss(net, X, T)
        t_loss = time.perf_counter() - t0
    case = Case(f"numerical:{scheme}:{strategy}", net.sizes, X.shape[0], net.dtype.name,
                threads)
    return case.predict_seconds(costmodel.seconds_per_flop(t_loss, case.sizes, case.batch,
                                                           case.dtype))


def main(args) -> int:
    import numba

    import gradbench as gb

    from .. import costmodel
    from ..datasets import make_batch
    from ..model import check_memory
    from .run import _warn_if_busy

    threads = check_threads(args.threads, PROG) or numba.get_num_threads()
    if args.h is not None and not (math.isfinite(args.h) and args.h > 0):
        raise UsageError(f"{PROG}: --h must be positive and finite, got {args.h!r}; leave it "
                         "out for the scheme's default step")
    if args.batch < 1:
        raise UsageError(f"{PROG}: --batch must be a whole number of at least 1, got "
                         f"{args.batch}")
    try:
        net = gb.MLP(args.sizes, activation=args.activation, loss=args.loss, dtype=args.dtype,
                     seed=args.seed)
        if isinstance(args.batch, int) and args.batch >= 1:
            check_memory(costmodel.memory_bytes(net.sizes, args.batch, net.dtype, threads),
                         f"a gradient check of {'-'.join(map(str, net.sizes))} at batch "
                         f"{args.batch} on {threads} thread(s)")
        X, T = make_batch(net, args.batch, seed=args.seed)
        gb.gradients.fd_options(net, args.scheme, args.h, args.strategy, threads)
        _warn_if_busy(PROG)  # its times are measured too
        predicted = _predicted_seconds(net, X, T, args.scheme, args.strategy, threads)
        bar = None
        if predicted > PROGRESS_SECONDS:
            from tqdm import tqdm

            print(f"{PROG}: the numerical gradient will take about {predicted:,.0f} s "
                  "(Ctrl-C stops it)", flush=True)
            bar = tqdm(total=net.num_params, unit="param", unit_scale=True,
                       desc="numerical gradient", leave=False)

        def progress(done, total):
            bar.update(done - bar.n)

        try:
            df = gb.gradient_check(net, X, T, scheme=args.scheme, h=args.h,
                                   strategy=args.strategy, threads=threads,
                                   progress=progress if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{PROG}: {exc}") from None
    _print(net, args, df)
    thr, worst = df["threshold"].iloc[0], df["max_rel_err"].max()
    if df.attrs["passed"]:
        print(f"PASSED: worst relative error {worst:.2g}, within the threshold {thr:.2g}")
        return EXIT_OK
    bad = ", ".join(df.loc[~df["passed"], "tensor"])
    print(f"FAILED: {bad} beyond the threshold {thr:.2g} (worst relative error {worst:.2g})")
    return EXIT_FINDING


def _print(net, args, df) -> None:
    a = df.attrs
    h = df["h"].iloc[0]
    print(f"{net!r}, batch {args.batch}")
    print(f"numerical gradient: {args.scheme} differences, {a['strategy']}, h = {h:.3g}, "
          f"{a['threads']} thread(s)")
    print(f"  analytic (backprop)   {a['analytic_seconds']:12.6f} s  (median of repeated calls)")
    print(f"  numerical             {a['numerical_seconds']:12.6f} s")
    print(f"  numerical / analytic  {a['ratio']:14,.1f} x")
    print(f"  (compiling or loading the kernels took {a['compile_seconds']:.2f} s, not timed)")
    print()
    cols = ["tensor", "shape", "max_rel_err", "median_rel_err", "max_abs_err", "n_over",
            "passed"]
    if net.activation == "relu":
        cols.append("near_kink")
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.2e}"))
    print()
