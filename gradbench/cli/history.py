"""``gradbench history``: trends across many runs, and where each case's time changed."""

from __future__ import annotations

from .common import EXIT_FINDING, EXIT_OK, UsageError, add_verb, writable_folder

PROG = "gradbench history"


def add_parser(sub) -> None:
    p = add_verb(
        sub, "history", help="trends across many runs, change points by commit",
        description="Read every result file under STORAGE (any depth; one or many machines), "
        "put each machine's runs in commit order, and find where each case's time changed. "
        "Prints each change ('from commit X (date): 1.3x slower [standing]', or '[fixed from "
        "commit Y (date)]' when a later run is back to the earlier time) and writes a page "
        "with a trend figure per method. Exit 1 only when a slowdown still stands at the "
        "newest run; slowdowns fixed since are listed and pass.")
    p.add_argument("storage", metavar="STORAGE", help="folder of result files")
    p.add_argument("--out", default="reports/history",
                   help="folder for the page and figures (default reports/history/)")
    p.set_defaults(func=main)


def main(args) -> int:
    from pathlib import Path

    from ..compare import history as H

    if not Path(args.storage).is_dir():
        raise UsageError(f"{PROG}: {args.storage} is not a folder of result files")
    out = writable_folder(args.out, PROG)
    try:
        h = H.history(args.storage)
    except ValueError as exc:
        raise UsageError(f"{PROG}: {exc}") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        page = _page(h, out)
    except OSError as exc:  # a full disk, say: the temporary folder is gone, the page as it was
        raise UsageError(f"{PROG}: cannot write the page to {out}: {exc.strerror or exc}") \
            from None
    n_runs = h.series["file"].nunique()
    standing = H.standing_slowdowns(h)
    print(f"{PROG}: {n_runs} runs, {len(h.noise)} machine(s), {len(h.changes)} change(s), "
          f"{len(standing)} slowdown(s) still standing at the newest run")
    for label in sorted(h.noise):
        print(f"  {label}: {h.noise_text(label)}")
    for c in h.changes.to_dict("records"):
        print("  " + H.describe(c))
    print(f"page: {page}")
    return EXIT_FINDING if len(standing) else EXIT_OK


def _page(h, out):
    """Figures and index.html, built in a temporary folder and moved into place."""
    import os
    import shutil
    import tempfile

    from .. import methods
    from ..compare import history as H
    from ..report import figures, pages

    tmp = tempfile.mkdtemp(prefix=".history-", dir=out)
    try:
        names = []
        for method in sorted(h.series["method"].unique(), key=methods.order):
            name = f"trend-{method.replace(':', '-')}.png"
            figures.trend(h.series, h.changes, method, os.path.join(tmp, name))
            names.append(name)
        changes = [{"text": H.describe(c), "cls": ("slower" if c["ratio"] > 1 else "faster")
                    + " " + H.status(c)} for c in h.changes.to_dict("records")]
        html = pages.render("history.html.j2",
            runs=h.series["file"].nunique(),
            machines=[(m, h.noise_text(m)) for m in sorted(h.noise)],
            changes=changes, figures=names, min_change=H.MIN_CHANGE)
        with open(os.path.join(tmp, "index.html"), "w", encoding="utf-8") as f:
            f.write(html)
        for name in [*names, "index.html"]:
            os.replace(os.path.join(tmp, name), out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "index.html"
