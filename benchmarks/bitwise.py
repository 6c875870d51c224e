"""Bit-for-bit comparison of two checkouts' gradients.

    python benchmarks/bitwise.py save DIR OUT.npz      # DIR holds a checkout's gradbench/
    python benchmarks/bitwise.py compare A.npz B.npz

``save`` computes, with DIR's gradbench (its public API only, so an older checkout works:
``git archive REV gradbench | tar -x -C DIR``), the loss, backprop and every numerical
gradient (every scheme and strategy, 1 and 2 threads) of a set of networks: every activation,
softmax cross-entropy and mse with each output activation, one to four weight layers, float32
and float64. ``compare`` says how many arrays differ in a single bit. Run ``save`` with a
NUMBA_CACHE_DIR of its own per checkout.
"""

from __future__ import annotations

import sys

import numpy as np

ACTIVATIONS = ("sigmoid", "relu", "tanh", "identity")


def networks() -> list[dict]:
    nets = []
    for act in ACTIVATIONS:
        nets.append(dict(sizes=[6, 5, 4], activation=act, loss="softmax_ce"))
        nets.append(dict(sizes=[5, 7, 3, 4, 3], activation=act, loss="softmax_ce"))
    for out_act in ACTIVATIONS:
        nets.append(dict(sizes=[4, 6, 5, 3], activation="tanh", loss="mse",
                         output_activation=out_act))
    nets.append(dict(sizes=[3, 4], activation="sigmoid", loss="mse"))
    nets.append(dict(sizes=[3, 4], activation="sigmoid", loss="softmax_ce"))
    return nets


def save(src: str, out: str) -> None:
    sys.path.insert(0, src)
    import gradbench as gb
    from gradbench import gradients
    from gradbench.data import make_batch  # the name older checkouts have too

    if not gb.__file__.startswith(src):
        sys.exit(f"imported {gb.__file__}, not the checkout in {src}")
    flat = lambda grads: np.concatenate([g.ravel() for g in grads])  # noqa: E731
    res = {}
    for k, spec in enumerate(networks()):
        for dtype in ("float32", "float64"):
            net = gb.MLP(dtype=dtype, seed=k, init="xavier", **spec)
            X, T = make_batch(net, 9, seed=k)
            key = f"{k}-{dtype}"
            res[f"{key}-loss"] = np.array(gb.loss(net, X, T))
            res[f"{key}-backprop"] = flat(gb.backprop(net, X, T))
            for scheme in gradients.SCHEMES:
                if scheme == "complex_step" and dtype == "float32":
                    continue
                for strategy in gradients.STRATEGIES:
                    for threads in (1, 2):
                        g = gb.numerical_gradient(net, X, T, scheme=scheme, strategy=strategy,
                                                  threads=threads)
                        res[f"{key}-{scheme}-{strategy}-{threads}"] = flat(g)
    np.savez(out, **res)
    print(f"{len(res)} arrays saved to {out}")


def compare(a: str, b: str) -> int:
    A, B = np.load(a), np.load(b)
    if set(A) != set(B):
        print(f"different arrays: {sorted(set(A) ^ set(B))[:10]}")
        return 1
    bad = [k for k in A if A[k].dtype != B[k].dtype or A[k].tobytes() != B[k].tobytes()]
    print(f"{len(A)} arrays compared, {len(bad)} differ" + (f": {bad[:10]}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("save", "compare"):
        sys.exit(__doc__)
    if sys.argv[1] == "save":
        save(sys.argv[2], sys.argv[3])
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
