"""Core performance figures on one network: our kernels against NumPy and torch.

    python benchmarks/perf_core.py [--sizes 784,50,10] [--batch 100] [--threads 2]
    python benchmarks/perf_core.py --before DIR [--methods loss,backprop,naive,incremental]

The second form times the kernels of another checkout (DIR holds its ``gradbench`` package,
e.g. ``git archive main | tar -x -C /tmp/before``) against this one's: for each method the
two run in processes of their own, back to back in an order that alternates between rounds,
and the script prints after/before ratios and whether the numerical gradients agree bit for
bit.

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
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FAST = ["loss", "backprop", "loss_1blas", "numpy_loss", "numpy_backprop", "torch_backprop",
        "jax_backprop", "backprop_nocheck", "backprop_kernel", "loss_nocheck", "floor",
        "floor_1thread"]
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


#: This checkout: the package whose kernels the "after" side of --before times.
HERE = Path(__file__).resolve().parent.parent


def _saved(tag: str, method: str) -> str:
    return f"/tmp/gradbench_perf_{tag}{method}.npy"


def _backprop_kernel(net, theta, Xp, Tp):
    """The backprop kernel alone, called as this checkout's kernels or an older checkout's
    (one kernels module, positional arguments) take it."""
    from gradbench import gradients as G

    grad = np.empty_like(theta)
    try:
        from gradbench.kernels import backprop as KB
    except ImportError:  # before kernels/ was a package
        from gradbench import kernels as K

        codes = G._codes(net)
        return lambda: K.backprop_kernel(theta, net.layout, Xp, Tp, *codes, grad)
    bundle = G._bundle(net)
    return lambda: KB.backprop_kernel(theta, Xp, Tp, bundle, grad)


def worker(method: str, sizes, batch: int, threads: int, ref_params: int, tag: str = "") -> dict:
    """Time one method in this process; returns {"seconds": ..., extra figures}."""
    import numba
    from threadpoolctl import threadpool_limits

    import gradbench as gb
    from gradbench import reference as R
    from gradbench.check import warm_up  # also in gradbench.gradients; the old home for --before
    from gradbench.data import make_batch  # also in older checkouts, for --before
    from gradbench.model import prepare_batch

    numba.set_num_threads(threads)
    net = gb.MLP(sizes, activation="sigmoid", loss="softmax_ce", seed=0)
    X, y = make_batch(net, batch, seed=0)
    Xp, Tp = prepare_batch(net, X, y)
    theta = net._flat
    out = {"gradbench": gb.__file__}
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
    elif method == "jax_backprop":
        try:
            os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true "
                                  f"intra_op_parallelism_threads={threads}")
            import jax
        except ImportError:
            return {"seconds": None}
        jax.config.update("jax_enable_x64", True)
        jnp = jax.numpy

        def jloss(params, x, t):
            a = x
            for l in range(net.depth):
                a = a @ params[2 * l] + params[2 * l + 1]
                if l < net.depth - 1:
                    a = jax.nn.sigmoid(a)
            return -jnp.mean(jnp.sum(t * jax.nn.log_softmax(a), axis=1))

        g = jax.jit(jax.grad(jloss))
        jp = [jnp.asarray(p) for p in net.params]
        Xj, Tj = jnp.asarray(Xp), jnp.asarray(Tp)

        def fn():
            return [np.asarray(a) for a in g(jp, Xj, Tj)]

        diffs = [np.abs(a - b).max() for a, b in zip(fn(), gb.backprop(net, X, y), strict=True)]
        out["max_abs_diff_vs_ours"] = float(max(diffs))
        out["jax"] = jax.__version__
    elif method == "floor":
        # the two products backprop cannot avoid, X @ W1 and X^T dz1, with numpy's BLAS at
        # the case's threads (numpy.dot into preallocated outputs)
        W1 = net.params[0]
        z1 = np.empty((Xp.shape[0], W1.shape[1]))
        dW = np.empty_like(W1)
        dz = np.random.default_rng(0).standard_normal(z1.shape)

        def fn():
            np.dot(Xp, W1, z1)
            np.dot(Xp.T, dz, dW)
    elif method == "floor_1thread":
        # what every loss evaluation of the naive strategy must do, X @ W1, on one BLAS
        # thread (each of its threads evaluates its own perturbations)
        W1 = net.params[0]
        z1 = np.empty((Xp.shape[0], W1.shape[1]))
        with threadpool_limits(1, user_api="blas"):
            np.dot(Xp, W1, z1)
            out["seconds"] = float(np.median([_per_call(lambda: np.dot(Xp, W1, z1))
                                              for _ in range(9)]))
        return out
    elif method in ("naive", "incremental"):
        warm_up(net, "central", method, threads)
        t0 = time.perf_counter()
        g = gb.numerical_gradient(net, X, y, "central", strategy=method, threads=threads)
        out["seconds"] = time.perf_counter() - t0
        flat = np.concatenate([a.ravel() for a in g])
        bp = np.concatenate([a.ravel() for a in gb.backprop(net, X, y)])
        out["max_abs_err_vs_backprop"] = float(np.abs(flat - bp).max())
        np.save(_saved(tag, method), flat)
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
            "loss_nocheck": lambda: gb.loss(net, X, y, check_finite=False),
            "numpy_loss": lambda: R.loss(net, net.params, Xp, Tp),
            "numpy_backprop": lambda: R.backprop(net, net.params, Xp, Tp),
            # kernels alone, on validated inputs: what the wrapper's checks cost
            "backprop_nocheck": lambda: gb.backprop(net, X, y, check_finite=False),
            "backprop_kernel": _backprop_kernel(net, theta, Xp, Tp),
        }[method] if method != "floor" else fn
    if method == "loss_1blas":
        with threadpool_limits(1, user_api="blas"):
            fn()
            out["seconds"] = float(np.median([_per_call(fn) for _ in range(9)]))
    else:
        fn()
        out["seconds"] = float(np.median([_per_call(fn) for _ in range(9)]))
    return out


def _run_worker(method: str, args, tag: str = "", pythonpath: str | None = None) -> dict:
    """One worker process; its JSON result."""
    cmd = [sys.executable, __file__, "--worker", method, "--sizes", args.sizes,
           "--batch", str(args.batch), "--threads", str(args.threads),
           "--reference-params", str(args.reference_params), "--tag", tag]
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(args) -> None:
    """Before/after: the same methods from two checkouts, alternating processes."""
    sides = {"before": str(Path(args.before).resolve()), "after": str(HERE)}
    methods = args.methods.split(",")
    print(f"sizes {args.sizes}, batch {args.batch}, {args.threads} threads, {args.rounds} "
          f"rounds; before = {sides['before']}, after = {sides['after']}")
    res = {(side, m): [] for side in sides for m in methods}
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for m in methods:
            for side in order:
                d = _run_worker(m, args, tag=side + "_", pythonpath=sides[side])
                if not d["gradbench"].startswith(sides[side]):
                    sys.exit(f"{side} imported {d['gradbench']}, not from {sides[side]}")
                res[(side, m)].append(d["seconds"])
        print(f"  round {r + 1}: " + ", ".join(
            f"{m} {res[('before', m)][-1]:.4g}/{res[('after', m)][-1]:.4g}s" for m in methods))
    print(f"\n  {'method':12s} {'before ms':>12s} {'after ms':>12s} {'after/before':>13s}"
          "   (medians; per-round ratios)")
    for m in methods:
        b, a = np.median(res[("before", m)]), np.median(res[("after", m)])
        per_round = [x / y for x, y in zip(res[("after", m)], res[("before", m)], strict=True)]
        print(f"  {m:12s} {b * 1e3:12.3f} {a * 1e3:12.3f} {a / b:13.3f}   "
              + " ".join(f"{x:.3f}" for x in per_round))
    for m in ("naive", "incremental"):
        if m in methods:
            same = np.array_equal(np.load(_saved("before_", m)), np.load(_saved("after_", m)))
            print(f"  {m} gradients identical before and after: {same}")


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
    ap.add_argument("--before", metavar="DIR",
                    help="time another checkout's kernels (DIR holds its gradbench package) "
                         "against this one's")
    ap.add_argument("--methods", default="loss,backprop,naive,incremental",
                    help="with --before: the methods to compare (default: %(default)s)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--tag", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker, sizes, args.batch, args.threads,
                                args.reference_params, args.tag)))
        return
    if args.before:
        compare(args)
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
            d = _run_worker(m, args)
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
    naive = np.load(_saved("", "naive"))
    incr = np.load(_saved("", "incremental"))
    agree = float(np.abs(naive - incr).max() / np.abs(naive).max())
    ideal = 2 * N * t["loss"] / args.threads
    ideal1 = 2 * N * t["loss_1blas"] / args.threads

    def row(name, value, target=""):
        print(f"  {name:44s} {value:10.3g}  {target}")

    print("\nratios (targets of issue 9 in brackets)")
    if "torch_backprop" in t:
        row("backprop / torch autograd", t["backprop"] / t["torch_backprop"], "[<= 0.8]")
    if "jax_backprop" in t:
        row("backprop / jax.jit(grad)", t["backprop"] / t["jax_backprop"], "[<= 0.7]")
    row("backprop / its two big products (floor)", t["backprop"] / t["floor"], "[<= 1.2]")
    row("  the kernel alone / floor", t["backprop_kernel"] / t["floor"])
    row("loss / numpy forward", t["loss"] / t["numpy_loss"], "[<= 1.0]")
    row("naive central / numpy loop", t["numpy_loop"] and t["naive"] / t["numpy_loop"],
        "[<= 0.6]")
    bound = 2 * N * t["floor_1thread"] / args.threads
    row("  its bound: 2N X@W1 on 1 BLAS thread / threads, / numpy loop",
        bound / t["numpy_loop"])
    row("naive / incremental", t["naive"] / t["incremental"], "[>= 50]")
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
