"""``gradbench compare``: two result sets, case by case, as a gate (exit 1 on a regression)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..config import COMPARE_THRESHOLD
from .common import EXIT_FINDING, EXIT_OK, UsageError, add_verb

PROG = "gradbench compare"


def add_parser(sub) -> None:
    p = add_verb(
        sub, "compare", help="compare runs or machines; exit 1 on a regression",
        description="Compare CURRENT with BASELINE case by case (cases matched on method, "
        "sizes, batch, dtype and threads). A case is a regression only when it is slower than "
        "the threshold and the slowdown survives run-to-run drift (see the documentation: "
        "docs/compare.md). Each side "
        "is one or more result files or folders of one machine; several runs on a side are "
        "pooled as repeated runs. Exit 1 on any regression (or an exponent that grew beyond both "
        "intervals), 0 otherwise.")
    p.add_argument("baseline", metavar="BASELINE",
                   help="result file or folder (several: separate with commas)")
    p.add_argument("current", metavar="CURRENT",
                   help="result file or folder (several: separate with commas)")
    p.add_argument("--threshold", type=float, default=None,
                   help="slowdown factor a regression must exceed "
                        f"(default {COMPARE_THRESHOLD:.2f})")
    p.add_argument("--normalize", default="none",
                   help="none (default), auto (each case by its bottleneck: matrix-product "
                        "GFLOP/s or memory GB/s), flops or memory")
    p.add_argument("--format", default="text", help="text (default), markdown, json or html")
    p.add_argument("--out", default=None, help="write to this file instead of standard output")
    p.set_defaults(func=main)


def _paths(text: str) -> list[str]:
    return [p for p in text.split(",") if p]


def _check_out(out: str | None) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"{PROG}: --out {path} is a folder; name a file")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"{PROG}: cannot write to {folder} (--out): no such folder or not "
                         "writable")
    return path


def main(args) -> int:
    import math

    from .. import compare
    from ..compare import normalize, render, rule

    threshold = rule.THRESHOLD if args.threshold is None else args.threshold
    if not (math.isfinite(threshold) and threshold >= 1):
        raise UsageError(f"{PROG}: --threshold must be a factor of at least 1 such as "
                         f"{rule.THRESHOLD:.2f}, got {args.threshold!r}")
    if args.normalize not in normalize.MODES:
        raise UsageError(f"{PROG}: unknown --normalize {args.normalize!r}: choose one of "
                         f"{', '.join(normalize.MODES)}")
    if args.format not in render.FORMATS:
        raise UsageError(f"{PROG}: unknown --format {args.format!r}: choose one of "
                         f"{', '.join(render.FORMATS)}")
    out = _check_out(args.out)
    try:
        c = compare.compare(_paths(args.baseline), _paths(args.current), threshold,
                            args.normalize)
        text = render.render(c, args.format)
    except ValueError as exc:
        raise UsageError(f"{PROG}: {exc}") from None
    if out is None:
        sys.stdout.write(text)
    else:
        from ..results import write_text

        try:
            write_text(out, text)
        except OSError as exc:  # a full disk, say: no temporary left, the old file kept
            raise UsageError(f"{PROG}: cannot write {out}: {exc.strerror or exc}") from None
        print(f"{PROG}: {'REGRESSION' if c.failed else 'no regression'}; written to {out}")
    return EXIT_FINDING if c.failed else EXIT_OK
