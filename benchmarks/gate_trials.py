"""The gate's sensitivity, measured: trials of ``gradbench ab`` between two fresh installs,
the head a real change of code or the same code (A/A).

Each trial copies this checkout's committed tree twice (``git archive HEAD``), edits the
head's copy as its kind says, installs each copy in a fresh virtual environment of its own
(new paths, cold Numba caches: a new install, as the workflow's gate job makes), runs the
gate between them as that job does, and appends one row per method of the verdict to a CSV
file. The kinds go round-robin, so that the machine's slow and quiet minutes fall on each.

    python benchmarks/gate_trials.py --kinds aa,loss2+parallel5 --trials 10 \\
        --out reports/gate-trials.csv

Kinds (combine with ``+``; ``@fixed`` after a kind runs its gate with ``--fixed-layout``):
``aa`` (no change); ``loss2`` (the loss spins for 2 % of its
time after its work, every call); ``backprop2`` (the same for backprop); ``parallel5`` (the
numerical gradient spins for 5 % of its time after its work when it runs on more than one
thread, on its parallel drivers only). A benchmark, not a test: it takes minutes a trial.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A helper the heads' edits call, ``_spin_after(t0, share)``: spin for ``share`` of the
#: seconds since ``t0`` (``_pc()`` read at the start of the work), less what the clock reads
#: and the call itself cost (measured at import), so that the work takes ``1 + share`` times
#: as long in all.
SPIN = '''

from time import perf_counter as _pc


def _spin_after(t0, share):
    t1 = _pc()
    end = t1 + share * (t1 - t0) - _SPIN_COST
    while _pc() < end:
        pass


def _spin_cost(n=2001):
    costs = []
    for _ in range(n):
        t0 = _pc()
        _spin_after(_pc(), 0.0)
        costs.append(_pc() - t0)
    return sorted(costs)[n // 2]


_SPIN_COST = 0.0
_SPIN_COST = _spin_cost()
'''

BACKPROP = "def backprop(net: MLP, X, T, *, check_finite: bool = True) -> list[np.ndarray]:\n"
#: kind -> [(file, text before, text after)]: a real change of code each.
EDITS = {
    "loss2": [("gradbench/gradients.py",
               '    theta = flat_params(net, check_finite=False)\n'
               '    Xp, Tp = prepare_batch(net, X, T, check_finite=False)\n'
               '    f, bad = KF.checked_loss_kernel(theta, Xp, Tp, _bundle(net))\n',
               '    _t0 = _pc()\n'
               '    theta = flat_params(net, check_finite=False)\n'
               '    Xp, Tp = prepare_batch(net, X, T, check_finite=False)\n'
               '    f, bad = KF.checked_loss_kernel(theta, Xp, Tp, _bundle(net))\n'
               '    _spin_after(_t0, 0.02)\n')],
    "backprop2": [("gradbench/gradients.py", BACKPROP, BACKPROP +
                   '    _t0 = _pc()\n'
                   '    try:\n'
                   '        return _backprop(net, X, T, check_finite=check_finite)\n'
                   '    finally:\n'
                   '        _spin_after(_t0, 0.02)\n\n\n'
                   'def _backprop(net: MLP, X, T, *, check_finite: bool = True):\n')],
    "parallel5": [("gradbench/gradients.py",
                   '    scheme, h, strategy, n_threads = options\n',
                   '    _t0 = _pc()\n'
                   '    scheme, h, strategy, n_threads = options\n'),
                  ("gradbench/gradients.py",
                   '        _in_chunks(run, segments, n_threads, progress)\n    return grad\n',
                   '        _in_chunks(run, segments, n_threads, progress)\n'
                   '    if n_threads > 1:\n'
                   '        _spin_after(_t0, 0.05)\n'
                   '    return grad\n')],
}

FIELDS = ["trial", "kind", "method", "threads", "ratio", "low", "high", "se", "df",
          "detectable", "verdict", "gate_seconds", "install_seconds", "idle_share",
          "fixed_layout", "cpu", "started"]


def cpu_model() -> str:
    """The CPU, as result files name it (gradbench.machine), and whether it has AVX-512."""
    from gradbench import machine

    try:
        avx = " (AVX-512)" if "avx512f" in Path("/proc/cpuinfo").read_text() else ""
    except OSError:
        avx = ""
    return machine.cpu_model() + avx


def tree(dest: Path, kind: str) -> None:
    """This checkout's committed tree in ``dest``, edited as ``kind`` says."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for part in kind.split("@")[0].split("+"):
        if part == "aa":
            continue
        for name, before, after in EDITS[part]:
            path = dest / name
            text = path.read_text()
            if text.count(before) != 1:
                raise SystemExit(f"gate_trials: the {part} edit no longer applies to {name}: "
                                 "update benchmarks/gate_trials.py")
            if SPIN not in text:
                text += SPIN
            path.write_text(text.replace(before, after))


def install(where: Path, source: Path) -> Path:
    """A fresh virtual environment at ``where`` with ``source`` installed (not editable);
    its dependencies are this environment's (a .pth file), so that only gradbench is new."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    site = next((where / "lib").glob("python*/site-packages"))
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "_trial_deps.pth").write_text("\n".join(deps) + "\n")
    python = where / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-build-isolation", str(source)], check=True)
    return python


def trial(n: int, kind: str, args, work: Path, writer, out) -> None:
    here = work / f"trial-{n}-{kind}"
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    t0 = time.perf_counter()
    tree(here / "base", "aa")
    tree(here / "head", kind)
    base = install(here / "venv-base", here / "base")
    head = install(here / "venv-head", here / "head")
    installed = time.perf_counter() - t0
    argv = [str(head.parent / "gradbench"), "ab", "--base", str(base), "--head", str(head),
            "--out", str(here / "results")]
    fixed = args.fixed_layout or kind.endswith("@fixed")
    if fixed:
        argv.append("--fixed-layout")
    if args.seconds:
        argv += ["--seconds", str(args.seconds)]
    if args.generations:
        argv += ["--generations", str(args.generations)]
    t1 = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, cwd=here)
    gated = time.perf_counter() - t1
    (here / "ab.txt").write_text(run.stdout + run.stderr)
    if run.returncode not in (0, 1):
        print(run.stdout + run.stderr, file=sys.stderr)
        raise SystemExit(f"gate_trials: the gate of trial {n} ({kind}) failed "
                         f"(exit {run.returncode})")
    from gradbench import results
    from gradbench.gate import coordinator

    files = sorted((here / "results").glob("ab-*.json"))
    docs = {f.stem.rsplit("-", 1)[1]: results.Document.load(f) for f in files}
    cases, methods = coordinator.analyze(docs["base"], docs["head"], args.threshold)
    share = docs["base"].section["gate"]
    idle = share["idle_cpu_seconds"] / share["timed_seconds"] if share["timed_seconds"] else ""
    for r in methods:
        e = r["estimate"]
        lo, hi = e.interval
        writer.writerow({"trial": n, "kind": kind, "method": r["method"],
                         "threads": r["threads"], "ratio": f"{e.ratio:.4f}",
                         "low": f"{lo:.4f}", "high": f"{hi:.4f}", "se": f"{e.se:.6f}",
                         "df": e.df,
                         "detectable": f"{e.detectable:.4f}", "verdict": e.verdict,
                         "gate_seconds": f"{gated:.0f}", "install_seconds": f"{installed:.0f}",
                         "idle_share": f"{idle:.4f}", "fixed_layout": fixed,
                         "cpu": args.cpu, "started": started})
    out.flush()
    flagged = [coordinator.label(r) for r in methods if r["estimate"].verdict == "slower"]
    print(f"trial {n} {kind}: gate {gated:.0f} s (installs {installed:.0f} s); slower: "
          f"{', '.join(flagged) or 'none'}", flush=True)
    if not args.keep:
        shutil.rmtree(here, ignore_errors=True)


def summary(path: Path, threshold: float | None) -> int:
    """Per kind and method: trials, how many flagged slower at ``threshold`` (default the
    rows' own verdicts), the ratios' range, and the detectable slowdown's median and range at
    that threshold."""
    import math
    import statistics

    from gradbench.gate import stats

    groups: dict = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            groups.setdefault((row["kind"], row["method"], row["threads"]), []).append(row)
    print(f"| head | method | threads | trials | flagged slower | ratio | detectable (median; "
          f"range) | gate seconds |\n|{'---|' * 8}")
    for (kind, method, threads), rows in groups.items():
        ratios = [float(r["ratio"]) for r in rows]
        if threshold is None:
            flagged = sum(r["verdict"] == "slower" for r in rows)
            det = [float(r["detectable"]) for r in rows]
        else:
            flagged = sum(stats.decide(math.log(float(r["ratio"])), float(r["se"]), threshold,
                                       float(r["df"])) == "slower" for r in rows)
            det = [stats.Estimate(math.log(float(r["ratio"])), float(r["se"]), 1, "",
                                  threshold, float(r["df"])).detectable for r in rows]
        secs = [float(r["gate_seconds"]) for r in rows]
        print(f"| {kind} | {method} | {threads} | {len(rows)} | {flagged} | {min(ratios):.3f}-"
              f"{max(ratios):.3f} | {statistics.median(det):.3f} ({min(det):.3f}-"
              f"{max(det):.3f}) | {min(secs):.0f}-{max(secs):.0f} |")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/gate_trials.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default="aa,loss2+parallel5",
                   help="comma-separated kinds of head, taken in turn (default "
                        "aa,loss2+parallel5)")
    p.add_argument("--trials", type=int, default=10, help="trials of each kind (default 10)")
    p.add_argument("--out", default="reports/gate-trials.csv",
                   help="CSV file the rows are appended to")
    p.add_argument("--seconds", type=float, default=None, help="the gate's --seconds")
    p.add_argument("--generations", type=int, default=None, help="the gate's --generations")
    p.add_argument("--threshold", type=float, default=None,
                   help="the threshold the verdict is computed at (default the gate's)")
    p.add_argument("--fixed-layout", action="store_true", help="the gate's --fixed-layout")
    p.add_argument("--keep", action="store_true", help="keep each trial's folder")
    p.add_argument("--work", default=None, help="folder for the trials (default a temporary)")
    p.add_argument("--summary", action="store_true",
                   help="print the rows of --out summed up (at --threshold) and stop")
    args = p.parse_args(argv)
    if args.summary:
        return summary(Path(args.out), args.threshold)
    kinds = args.kinds.split(",")
    for kind in kinds:
        for part in kind.split("@")[0].split("+"):
            if part != "aa" and part not in EDITS:
                p.error(f"unknown kind {part!r}: choose from aa, {', '.join(EDITS)}")
    if args.threshold is None:
        from gradbench.gate import stats

        args.threshold = stats.THRESHOLD
    args.cpu = cpu_model()
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    new = not out_path.exists()
    work = Path(args.work or tempfile.mkdtemp(prefix="gate-trials-"))
    work.mkdir(parents=True, exist_ok=True)
    with out_path.open("a", newline="") as out:
        writer = csv.DictWriter(out, FIELDS)
        if new:
            writer.writeheader()
        for n in range(args.trials):
            for kind in kinds:
                trial(n, kind, args, work, writer, out)
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.pop("PYTHONPATH", None)
    sys.exit(main())
