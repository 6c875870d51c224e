"""A comparison as text, markdown, JSON or HTML: one data shape in, one string out.

Strings from result files (machine labels, CPU names) are escaped for each format: a label
holding ``|`` or ``<script>`` breaks neither a markdown table nor the page.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from . import Comparison, rule

FORMATS = ("text", "markdown", "json", "html")


def _side(d: dict) -> str:
    commits = f"commit {', '.join(d['commits'])}" if d["commits"] else "no commit recorded"
    return (f"{', '.join(d['labels'])} ({'; '.join(d['cpus']) or 'CPU not recorded'}; "
            f"{commits}; {d['runs']} run{'s' if d['runs'] != 1 else ''})")


def _x(v: float) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.3g}x"


def headline(c: Comparison) -> list[str]:
    """The sentences every format starts with."""
    lines = [f"baseline: {_side(c.baseline)}", f"current:  {_side(c.current)}"]
    lines += [f"note: {n}" for n in c.notes]
    judged = int(c.cases["rounds_ok"].sum())
    lines.append(f"threshold {c.threshold:g}x; drift of a method's whole sweep "
                 f"{100 * c.drift:.1f} % per run ({c.drift_source}); spread of cases about "
                 f"their method {100 * c.spread:.1f} %; evidence needed: {rule.Z:g} standard "
                 f"deviations, for the case and for its method; times normalised: "
                 f"{c.normalize}")
    lines.append(f"smallest slowdown this comparison could have detected: {_x(c.detectable)} "
                 f"(median over the {judged} cases with at least {rule.MIN_ROUNDS} rounds a "
                 "side; per case in the table)")
    n = c.cases["verdict"].value_counts()
    one_side = int((c.unmatched["side"] != "neither").sum())
    neither = len(c.unmatched) - one_side
    lines.append(f"{len(c.cases)} cases matched: " + ", ".join(
        f"{int(n.get(v, 0))} {v}" for v in rule.VERDICTS) + f"; {one_side} timed on one side "
        f"only" + (f"; {neither} timed on neither side" if neither else "")
        + f"; {c.both_skipped} skipped by the budget on both sides"
        + (f"; {c.both_unavailable} unavailable on both sides (peers not installed)"
           if c.both_unavailable else ""))
    for r in c.scaling_regressions.itertuples():
        lines.append(f"scaling: {r.method} ({r.dtype}) went from N^{r.k_baseline:.2f} "
                     f"[{r.k_baseline_low:.2f}, {r.k_baseline_high:.2f}] to N^{r.k_current:.2f} "
                     f"[{r.k_current_low:.2f}, {r.k_current_high:.2f}]")
    s = c.scaling
    for r in s[s["changed"] & (s["k_current"] < s["k_baseline"])].itertuples():
        lines.append(f"scaling (improved): {r.method} ({r.dtype}) went from "
                     f"N^{r.k_baseline:.2f} to N^{r.k_current:.2f}")
    laws = s[~s["asymptotic"]] if len(s) else s
    if len(laws):
        lines.append("exponents not judged (a range that did not reach the cost law on a side: "
                     "overhead still a large share at its top, or under a decade of N): "
                     + ", ".join(f"{r.method} ({r.k_baseline:.2f} -> {r.k_current:.2f})"
                                 for r in laws.itertuples()))
    if c.failed:
        lines.append(f"REGRESSION: {len(c.regressions)} cases slower beyond {c.threshold:g}x"
                     f" with evidence, {len(c.scaling_regressions)} exponents grew")
    else:
        lines.append("no regression")
    return lines


def _case_rows(c: Comparison) -> list[dict]:
    rows = []
    for r in c.cases.to_dict("records"):
        rows.append({"method": r["method"], "sizes": r["sizes"], "batch": r["batch"],
                     "dtype": r["dtype"], "threads": r["threads"],
                     "baseline": f"{r['baseline_seconds']:.3g} s",
                     "current": f"{r['current_seconds']:.3g} s", "ratio": _x(r["ratio"]),
                     "its method": _x(r["method_ratio"]),
                     "interval": f"[{r['ratio_low']:.3g}, {r['ratio_high']:.3g}]",
                     "verdict": r["verdict"], "detectable": _x(r["detectable"]),
                     "rounds": f"{r['rounds_baseline']}/{r['rounds_current']}",
                     "normalized by": r["normalized_by"]})
    return rows


def _method_rows(c: Comparison) -> list[dict]:
    return [{"method": r["method"], "dtype": r["dtype"], "cases": r["cases"],
             "geometric-mean ratio": _x(r["geomean_ratio"]),
             **{v: r[v] for v in rule.VERDICTS}} for r in c.methods.to_dict("records")]


def _unmatched_rows(c: Comparison) -> list[dict]:
    return [{"timed in": r["side"], "method": r["method"], "sizes": r["sizes"],
             "dtype": r["dtype"], "threads": r["threads"], "not timed": r["why"]}
            for r in c.unmatched.to_dict("records")]


def text(c: Comparison) -> str:
    out = headline(c)
    for title, rows in (("per method", _method_rows(c)), ("cases", _case_rows(c)),
                        ("unmatched cases", _unmatched_rows(c))):
        if rows:
            out += ["", f"{title}:", pd.DataFrame(rows).to_string(index=False)]
    return "\n".join(out) + "\n"


def md_escape(value) -> str:
    """A value for a markdown table cell: pipes, angle brackets, backticks and line breaks
    made harmless."""
    s = str(value)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`"),
                 ("\r", " "), ("\n", " ")):
        s = s.replace(a, b)
    return s


def _md_table(rows: list[dict]) -> list[str]:
    cols = list(rows[0])
    out = ["| " + " | ".join(md_escape(k) for k in cols) + " |",
           "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(md_escape(r[k]) for k in cols) + " |" for r in rows]
    return out


def markdown(c: Comparison) -> str:
    out = ["## gradbench compare", ""]
    out += [f"- {md_escape(line)}" for line in headline(c)]
    for title, rows in (("Per method", _method_rows(c)),
                        ("Cases", _case_rows(c)), ("Unmatched cases", _unmatched_rows(c))):
        if rows:
            out += ["", f"### {title}", "", *_md_table(rows)]
    return "\n".join(out) + "\n"


def _plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return _plain(v.item())
    return v


def as_json(c: Comparison) -> str:
    def frame(df):
        return [{k: _plain(v) for k, v in r.items() if k != "run_logs"}
                for r in df.to_dict("records")]

    doc = {"regression": c.failed, "threshold": c.threshold, "normalize": c.normalize,
           "drift": c.drift, "spread": c.spread, "drift_source": c.drift_source, "z": rule.Z,
           "smallest_detectable_slowdown": _plain(c.detectable),
           "same_machine": c.same_machine, "notes": c.notes, "baseline": c.baseline,
           "current": c.current, "methods": frame(c.methods), "cases": frame(c.cases),
           "scaling": frame(c.scaling), "unmatched": frame(c.unmatched),
           "both_skipped": c.both_skipped, "both_unavailable": c.both_unavailable,
           "regressions": frame(c.regressions)}
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def html(c: Comparison) -> str:
    from ..report import pages

    return pages.render("compare.html.j2",
        head=headline(c), tables=[("Per method", _method_rows(c)), ("Cases", _case_rows(c)),
                                  ("Unmatched cases", _unmatched_rows(c))])


def render(c: Comparison, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return {"text": text, "markdown": markdown, "json": as_json, "html": html}[fmt](c)


__all__ = ["FORMATS", "render", "headline", "md_escape"]
