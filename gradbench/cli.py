"""The ``gradbench`` command. Thin: parse, call the library, print, set the exit status.

Exit status: 0 success, 1 a finding (a failed check), 2 bad usage or bad input
(one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or bad input: one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _int_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers such as 784,50,10, got {text!r}"
        ) from None


def _add_check(sub) -> None:
    p = sub.add_parser(
        "check",
        help="gradient check and analytic-vs-numerical timing of one network",
        description="Time the analytic (backprop) and numerical gradient of one network and "
        "compare them tensor by tensor. Exit 1 when the check fails.",
    )
    p.add_argument("--sizes", type=_int_list, default=[784, 50, 10],
                   help="layer widths, inputs first (default 784,50,10)")
    p.add_argument("--activation", default="sigmoid", help="sigmoid, relu, tanh or identity")
    p.add_argument("--loss", default="softmax_ce", help="softmax_ce or mse")
    p.add_argument("--batch", type=int, default=100, help="samples in the batch (default 100)")
    p.add_argument("--dtype", default="float64", help="float64 or float32")
    p.add_argument("--scheme", default="central",
                   help="forward, central, five_point or complex_step (default central)")
    p.add_argument("--strategy", default="naive", help="naive (default) or incremental")
    p.add_argument("--h", type=float, default=None, help="step before scaling (default: theory)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and data (default 0)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args) -> int:
    from .check import gradient_check
    from .data import make_batch
    from .model import MLP

    try:
        net = MLP(args.sizes, activation=args.activation, loss=args.loss, dtype=args.dtype,
                  seed=args.seed)
        X, T = make_batch(net, args.batch, seed=args.seed)
        df = gradient_check(net, X, T, scheme=args.scheme, h=args.h, strategy=args.strategy,
                            threads=args.threads)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"gradbench check: {exc}") from None
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
    thr = df["threshold"].iloc[0]
    if a["passed"]:
        print(f"PASSED: every entry within relative error {thr:.2g}")
        return EXIT_OK
    bad = ", ".join(df.loc[~df["passed"], "tensor"])
    print(f"FAILED: {bad} exceed relative error {thr:.2g}")
    return EXIT_FINDING


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the benchmark suite, save the results and print a summary",
        description="Time loss, backprop and numerical gradients across network sizes with "
        "pytest-benchmark, within a time budget; save the JSON and summarise the power laws.",
    )
    p.add_argument("--profile", default="default",
                   help="quick (about a minute), default (a few minutes) or full (hours)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds the timed cases may take (default: the profile's)")
    p.add_argument("--out", default="results", help="folder for the result files (default "
                   "results/)")
    p.add_argument("--label", default=None, help="machine label (default: the host name)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--report", default="reports", metavar="DIR",
                   help="folder for the report built from this run (default reports/)")
    p.add_argument("--no-report", action="store_true", help="do not build the report")
    p.set_defaults(func=_cmd_run)


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="HTML + PNG report from saved results",
        description="Build index.html and PNG figures from result files or folders of them "
        "(several machines or runs may be given together).",
    )
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result files (JSON from gradbench run) or folders of them")
    p.add_argument("--out", default="reports", help="folder for the report (default reports/)")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from . import report

    try:
        index = report.build(args.results, args.out)
    except ValueError as exc:
        raise UsageError(f"gradbench report: {exc}") from None
    print(f"gradbench report: {index}")
    return EXIT_OK


def _writable_folder(folder: str, prog: str):
    """The folder as a Path, created if need be; a UsageError if it cannot be written."""
    import pathlib
    import tempfile

    path = pathlib.Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".gradbench-check-"):
            pass
    except OSError as exc:
        raise UsageError(f"{prog}: cannot write to {path}: {exc.strerror}") from None
    return path


def _cmd_run(args) -> int:
    import datetime
    import pathlib
    import socket

    from . import results, sweep

    try:
        prof = sweep.profile(args.profile, args.budget)
    except ValueError as exc:
        raise UsageError(f"gradbench run: {exc}") from None
    if args.label is not None and (not args.label or any(c in args.label for c in "/\\")
                                   or args.label in (".", "..")):
        raise UsageError(f"gradbench run: label {args.label!r} must be a plain name, without "
                         "path separators")
    suite = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
    if not (suite / "test_sweep.py").is_file():
        raise UsageError("gradbench run: benchmarks/ not found next to the package; run from "
                         "a source checkout (pip install -e .)")
    out = _writable_folder(args.out, "gradbench run")
    if not args.no_report:
        _writable_folder(args.report, "gradbench run")

    import pytest

    label = args.label or socket.gethostname()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    final = out / f"{label}-{prof.name}-{stamp}.json"
    partial = out / f".{final.name}.partial"
    argv = [str(suite), "-q", "-p", "no:cacheprovider", "--benchmark-json", str(partial),
            "--benchmark-max-time", str(prof.max_time), "--benchmark-columns", "median,rounds",
            "--benchmark-sort", "name", "--gb-profile", prof.name, "--gb-budget",
            str(prof.budget), "--gb-label", label]
    if args.threads:
        argv += ["--gb-threads", str(args.threads)]
    print(f"gradbench run: profile {prof.name}, budget {prof.budget:g} s, results to {final}")
    code = pytest.main(argv)
    if not partial.is_file():
        print("gradbench run: no results were written", file=sys.stderr)
        return EXIT_USAGE if code in (3, 4) else EXIT_FINDING
    partial.replace(final)  # only whole files carry the final name
    if code == pytest.ExitCode.INTERRUPTED:
        print(f"gradbench run: interrupted; the cases that completed are in {final}")
    df = results.load(final)
    print()
    print(summary(df))
    if code == pytest.ExitCode.INTERRUPTED:
        print(f"build the report from it with: gradbench report {final}")
        return 130
    if not args.no_report:
        from . import report

        try:
            print(f"\nreport: {report.build(final, args.report)}")
        except ValueError as exc:
            print(f"gradbench run: no report: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return EXIT_OK if code == 0 else EXIT_FINDING


def summary(df) -> str:
    """Per method: fitted exponent with its interval; at the largest N where every method
    ran, each numerical method's time over backprop's."""
    from . import results

    lines = ["method                             exponent k  95% interval     N range"]
    for f in results.fits(df):
        lines.append(f"{f.method:34s} {f.k:8.2f}   [{f.k_low:5.2f}, {f.k_high:5.2f}]   "
                     f"{f.n_min:,} - {f.n_max:,}")
    ok = df[df["status"] == "ok"]
    by_n = ok.groupby("n_params")["method"].nunique()
    common = by_n[by_n == ok["method"].nunique()]
    if len(common) and "backprop" in set(ok["method"]):
        n = int(common.index.max())
        at = ok[ok["n_params"] == n].groupby("method")["median"].median()
        lines.append(f"\nat N = {n:,} (largest size every method ran):")
        for m, t in at.items():
            if m.startswith("numerical:"):
                lines.append(f"  {m:34s} {t / at['backprop']:12,.0f} x backprop")
    skipped = df[df["status"] == "skipped"]
    if len(skipped):
        lines.append(f"\n{len(skipped)} cases skipped by the budget (predicted times kept)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gradbench {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    _add_run(sub)
    _add_report(sub)
    _add_check(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("gradbench: missing command (see gradbench --help)")
        return args.func(args)
    except UsageError as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gradbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head, say: stop quietly
        # point stdout at devnull so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
