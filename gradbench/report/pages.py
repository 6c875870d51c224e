"""The one template environment of every page gradbench writes: the report, the comparison
and the history pages (templates/ in the package). Autoescaped, so every string from a
result file is shown as text; the filters format numbers alike on every page."""

from __future__ import annotations

import math
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape

from .. import methods


def fmt(v, spec: str = ".3g", unit: str = "") -> str:
    """A value for a table cell: ``spec`` for floats, "–" for none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return format(v, spec) + unit
    return str(v) + unit


def nice(x: float) -> str:
    """A ratio for a sentence: three significant figures, thousands separated."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def ratio(v) -> str:
    """A ratio for a table: three significant figures, thousands separated, "–" for none."""
    if v is None or not math.isfinite(float(v)):
        return "–"
    return nice(float(v))


def duration(seconds: float) -> str:
    """Seconds in the unit that keeps three significant figures short: 51.8 µs, 2.55 ms, 7.6 s."""
    if seconds >= 1000:
        return f"{seconds:,.0f} s"
    unit, scale = next(((u, f) for u, f in (("s", 1.0), ("ms", 1e-3)) if seconds >= f),
                       ("µs", 1e-6))
    return f"{seconds / scale:.3g} {unit}"


def threads(n) -> str:
    """A thread count for a sentence: "1 thread", "16 threads"."""
    n = int(n)
    return f"{n} thread" if n == 1 else f"{n} threads"


@cache
def environment() -> Environment:
    """The template environment (made once)."""
    env = Environment(loader=PackageLoader("gradbench", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["seconds"] = lambda v: fmt(v, unit=" s")
    env.filters["title_of"] = methods.title
    env.filters["duration"] = lambda v: "–" if v is None or v != v else duration(float(v))
    env.filters["ratio"] = ratio
    return env


def render(template: str, **context) -> str:
    """A page from one of the package's templates."""
    return environment().get_template(template).render(**context)
