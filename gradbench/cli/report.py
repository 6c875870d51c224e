"""``gradbench report``: the HTML + PNG report from saved result files (no kernel runs)."""

from __future__ import annotations

from .common import EXIT_OK, UsageError, add_verb, writable_folder

PROG = "gradbench report"


def add_parser(sub) -> None:
    p = add_verb(
        sub, "report", help="HTML + PNG report from saved results",
        description="Build index.html, PNG figures and cases.csv from result files or folders "
        "of them (several machines or runs may be given together), and a training section "
        "from the training records among them. Only saved results are shown: nothing is "
        "computed or compiled.")
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result files (JSON from gradbench run), training records (from "
                        "gradbench train), or folders of them")
    p.add_argument("--out", default="reports", help="folder for the report (default reports/)")
    p.add_argument("--reference", default=None, metavar="LABEL",
                   help="with several machines: the one the others are measured against "
                        "(default: the first label)")
    p.set_defaults(func=main)


def main(args) -> int:
    from .. import report

    writable_folder(args.out, PROG)
    try:
        index = report.build(args.results, args.out, args.reference)
    except ValueError as exc:
        raise UsageError(f"{PROG}: {exc}") from None
    print(f"{PROG}: {index}")
    return EXIT_OK
