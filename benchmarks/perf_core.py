"""Core performance figures on one network: our kernels against NumPy and torch.

    python benchmarks/perf_core.py [--sizes 784,50,10] [--batch 100] [--threads 2]

Each contender runs in a process of its own, and the processes alternate over several
rounds: numpy's OpenBLAS, the OpenBLAS that Numba calls (scipy's) and torch's OpenMP pool all
keep their threads spinning for a while after a call, and on a small machine two such pools in
one process starve each other (we measured 5-20x slowdowns). Within a process a method is timed
in loops long enough to be above timer noise; the figure is the median over loops, then over
rounds. The numerical gradients run once per round. Ratios come from one run of this script.
Nothing here asserts: timing belongs to benchmarks, not tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

FAST = ["loss", "backprop", "loss_1blas", "numpy_loss", "numpy_backprop", "torch_backprop",
        "backprop_nocheck", "backprop_kernel"]
SLOW = ["naive", "incremental", "numpy_loop"]


def _per_call(fn, min_seconds=0.05) -> float:
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return elapsed / n
        n *= 2


def worker(method: str, sizes, batch: int, threads: int, ref_params: int) -> dict:
    """Time one method in this process; returns {"seconds": ..., extra figures}."""
    import numba
    from threadpoolctl import threadpool_limits

    import gradbench as gb
    from gradbench import gradients as G
    from gradbench import kernels as K
    from gradbench import reference as R
    from gradbench.check import warm_up
    from gradbench.data import make_batch
    from gradbench.model import prepare_batch

    numba.set_num_threads(threads)
    net = gb.MLP(sizes, activation="sigmoid", loss="softmax_ce", seed=0)
    X, y = make_batch(net, batch, seed=0)
    Xp, Tp = prepare_batch(net, X, y)
    theta, codes = net._flat, G._codes(net)
    out = {}
    if method == "torch_backprop":
        try:
            import torch
        except ImportError:
            return {"seconds": None}
        torch.set_num_threads(threads)
        params = [torch.tensor(p, requires_grad=True) for p in net.params]
        Xt, yt = torch.tensor(X), torch.tensor(y)

        def fn():
            for p in params:
                p.grad = None
            a = Xt
            for l in range(net.depth):
                a = a @ params[2 * l] + params[2 * l + 1]
                if l < net.depth - 1:
                    a = torch.sigmoid(a)
            torch.nn.functional.cross_entropy(a, yt).backward()
            return [p.grad.numpy() for p in params]

        diffs = [np.abs(a - b).max() for a, b in zip(fn(), gb.backprop(net, X, y), strict=True)]
        out["max_abs_diff_vs_ours"] = float(max(diffs))
        out["torch"] = torch.__version__
    elif method in ("naive", "incremental"):
        warm_up(net, "central", method, threads)
        t0 = time.perf_counter()
        g = gb.numerical_gradient(net, X, y, "central", strategy=method, threads=threads)
        out["seconds"] = time.perf_counter() - t0
        flat = np.concatenate([a.ravel() for a in g])
        bp = np.concatenate([a.ravel() for a in gb.backprop(net, X, y)])
        out["max_abs_err_vs_backprop"] = float(np.abs(flat - bp).max())
        np.save(f"/tmp/gradbench_perf_{method}.npy", flat)
        return out
    elif method == "numpy_loop":
        m = ref_params or net.num_params
        h = gb.default_step("central", net.dtype)
        t0 = time.perf_counter()
        R.numerical_gradient(net, net.params, Xp, Tp, h, count=m)
        out["seconds"] = (time.perf_counter() - t0) * net.num_params / m
        out["timed_params"] = m
        return out
    else:
        fn = {
            "loss": lambda: gb.loss(net, X, y),
            "backprop": lambda: gb.backprop(net, X, y),
            "loss_1blas": lambda: gb.loss(net, X, y),
            "numpy_loss": lambda: R.loss(net, net.params, Xp, Tp),
            "numpy_backprop": lambda: R.backprop(net, net.params, Xp, Tp),
            # kernels alone, on validated inputs: what the wrapper's checks cost
            "backprop_nocheck": lambda: gb.backprop(net, X, y, check_finite=False),
            "backprop_kernel": lambda: K.backprop_kernel(
                theta, net.layout, Xp, Tp, *codes, np.empty_like(theta)),
        }[method]
    if method == "loss_1blas":
        with threadpool_limits(1, user_api="blas"):
            fn()
            out["seconds"] = float(np.median([_per_call(fn) for _ in range(9)]))
    else:
        fn()
        out["seconds"] = float(np.median([_per_call(fn) for _ in range(9)]))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="784,50,10")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reference-params", type=int, default=0,
                    help="time the NumPy loop on this many parameters and scale to N "
                         "(0, the default: all of them)")
    ap.add_argument("--fast-only", action="store_true",
                    help="only the single-gradient methods (skip the numerical gradients)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker, sizes, args.batch, args.threads,
                                args.reference_params)))
        return

    import gradbench as gb

    N = gb.MLP(sizes).num_params
    print(f"sizes {sizes}, batch {args.batch}, N = {N}, {args.threads} threads, "
          f"{args.rounds} rounds, each method in its own process")
    res = {m: [] for m in FAST + SLOW}
    extra = {}
    for r in range(args.rounds):
        for m in FAST + ([] if args.fast_only else SLOW):
            if m == "numpy_loop" and r > 0:
                continue  # long: once
            cmd = [sys.executable, __file__, "--worker", m, "--sizes", args.sizes,
                   "--batch", str(args.batch), "--threads", str(args.threads),
                   "--reference-params", str(args.reference_params)]
            d = json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                          check=True).stdout.strip().splitlines()[-1])
            if d.get("seconds") is not None:
                res[m].append(d.pop("seconds"))
            extra.setdefault(m, {}).update(d)
        print(f"  round {r + 1}: " + ", ".join(f"{m} {v[-1]:.4g}s" for m, v in res.items() if v))
    t = {m: float(np.median(v)) for m, v in res.items() if v}

    print("\nmedian seconds")
    for m, sec in t.items():
        print(f"  {m:16s} {sec * 1e3:12.3f} ms")
    if "torch_backprop" in extra and "torch" in extra["torch_backprop"]:
        e = extra["torch_backprop"]
        print(f"  (torch {e['torch']}; max |ours - torch| = {e['max_abs_diff_vs_ours']:.1e})")
    if args.fast_only:
        for m in ("backprop", "backprop_nocheck", "backprop_kernel"):
            print(f"  {m} / numpy backprop: {t[m] / t['numpy_backprop']:.3f}"
                  + (f", / torch: {t[m] / t['torch_backprop']:.3f}" if "torch_backprop" in t
                     else ""))
        return
    naive = np.load("/tmp/gradbench_perf_naive.npy")
    incr = np.load("/tmp/gradbench_perf_incremental.npy")
    agree = float(np.abs(naive - incr).max() / np.abs(naive).max())
    ideal = 2 * N * t["loss"] / args.threads
    ideal1 = 2 * N * t["loss_1blas"] / args.threads

    def row(name, value, target=""):
        print(f"  {name:44s} {value:10.3g}  {target}")

    print("\nratios (targets of the core issue in brackets)")
    row("backprop / loss", t["backprop"] / t["loss"], "[<= 2.2]")
    row("backprop / numpy backprop", t["backprop"] / t["numpy_backprop"], "[<= 0.75]")
    row("  the same, check_finite=False (NumPy checks nothing)",
        t["backprop_nocheck"] / t["numpy_backprop"], "[<= 0.75]")
    row("  the kernel alone, on validated inputs", t["backprop_kernel"] / t["numpy_backprop"])
    if "torch_backprop" in t:
        row("backprop / torch autograd", t["backprop"] / t["torch_backprop"], "[<= 0.5]")
        row("  the same, check_finite=False", t["backprop_nocheck"] / t["torch_backprop"],
            "[<= 0.5]")
    row("numpy reference loop / naive central", t["numpy_loop"] / t["naive"], "[>= 2]")
    row("naive / (2N loss / threads)", t["naive"] / ideal, "[<= 1.3]")
    row("naive / (2N loss with 1 BLAS thread / threads)", t["naive"] / ideal1)
    row("naive / incremental", t["naive"] / t["incremental"], "[>= 20]")
    row("max|incr - naive| / max|naive|", agree, "[<= 1e-9]")
    row("max|naive - backprop| / max|backprop|",
        extra["naive"]["max_abs_err_vs_backprop"] / np.abs(naive).max())
    row("max|incr - backprop| / max|backprop|",
        extra["incremental"]["max_abs_err_vs_backprop"] / np.abs(naive).max())
    row("naive central / backprop", t["naive"] / t["backprop"])


if __name__ == "__main__":
    main()
