"""The gate's verdict as text (the terminal) and Markdown (a CI job's summary)."""

from __future__ import annotations

from . import stats
from .coordinator import label


def _sizes(sizes) -> str:
    return "-".join(map(str, sizes))


def _rows(case_rows: list[dict], method_rows: list[dict]):
    """(method rows, case rows) as lists of cells."""
    head = ["method", "ratio", f"{stats.Z_LEVEL} interval", "detectable", "verdict", "cases"]
    methods = [head]
    for r in method_rows:
        e = r["estimate"]
        methods.append([label(r), f"{e.ratio:.3f}", _interval(e), _detectable(e),
                        _verdict(e), str(e.n)])
    cases = [["method", "network", "batch", "threads", "ratio", f"{stats.Z_LEVEL} interval",
              "detectable", "verdict", "quads", "idle side's CPU"]]
    for r in case_rows:
        e = r["estimate"]
        cases.append([r["method"], _sizes(r["sizes"]), str(r["batch"]),
                      str(r.get("threads") or "-"), f"{e.ratio:.3f}", _interval(e),
                      _detectable(e), _verdict(e), str(e.n), _share(r.get("idle_share"))])
    return methods, cases


def _share(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f} %"


def _interval(e: stats.Estimate) -> str:
    lo, hi = e.interval
    return f"{lo:.3f} - {hi:.3f}" if e.n and hi < float("inf") else "-"


def _detectable(e: stats.Estimate) -> str:
    d = e.detectable
    return f"{d:.3f}x" if d < float("inf") else "-"


def _verdict(e: stats.Estimate) -> str:
    return "SLOWER" if e.verdict == "slower" else e.verdict


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows) + "\n"


#: The idle side's CPU, in cores, above which the verdict says it disturbed the timing.
IDLE_SPIN = 0.05


def _idle(share: float | None, case_rows=()) -> str:
    if share is None:
        return ("the idle side's CPU was not measured (no /proc here)" if case_rows else
                "nothing was timed")
    shares = [(r["idle_share"], r) for r in case_rows if r.get("idle_share") is not None]
    worst = max(shares, key=lambda x: x[0], default=None)
    most = ("" if worst is None else f"; at most {100 * worst[0]:.1f} % in a case "
            f"({worst[1]['method']} {_sizes(worst[1]['sizes'])} on {worst[1]['threads']} "
            "thread(s))")
    if max(share, worst[0] if worst else 0.0) < IDLE_SPIN:
        return (f"the idle side used {100 * share:.1f} % of a core while the other was timed"
                f"{most} (its thread pools slept)")
    return (f"the idle side used {100 * share:.1f} % of a core while the other was timed"
            f"{most}: its thread pools spin and disturb the timing")


def text(case_rows, method_rows, threshold: float, idle_share: float | None) -> str:
    methods, cases = _rows(case_rows, method_rows)
    return (f"head / base, per method (slower: interval above 1 and ratio above "
            f"{threshold:g}; detectable: the smallest slowdown this run flags 9 times in 10)"
            f"\n{_table(methods)}\nper case\n{_table(cases)}\n{_idle(idle_share, case_rows)}\n")


def markdown(case_rows, method_rows, threshold: float, idle_share: float | None,
             status: str) -> str:
    methods, cases = _rows(case_rows, method_rows)
    slower = [label(r) for r in method_rows if r["estimate"].verdict == "slower"]
    verdict = (f"**slower: {', '.join(slower)}**" if slower else "no method slower")
    if status != "complete":
        verdict += f" (the gate was {status}: the verdict covers the quads it timed)"

    def md(rows):
        out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(out) + "\n"

    return (f"## gradbench ab: {verdict}\n\nhead / base, timed interleaved on one machine. A "
            f"method is slower when its {stats.Z_LEVEL} interval lies above 1 and its ratio "
            f"above {threshold:g}; *detectable* is the smallest slowdown this run flags 9 "
            f"times in 10.\n\n{md(methods)}\n<details><summary>per case</summary>\n\n"
            f"{md(cases)}\n</details>\n\n{_idle(idle_share, case_rows)}.\n")
