"""How every ``corridor`` command shows a result: a Rich table, JSON or CSV (``--format``)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from rich.table import Table

from corridor.analytics.core.dimensions import DIMENSIONS
from corridor.analytics.core.registry import Analysis
from corridor.analytics.core.result import AnalyticsResult
from corridor.cli.common import console
from corridor.errors import CorridorError

FORMATS = ("table", "json", "csv")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise CorridorError(f"unknown --format {fmt!r}; use one of: {', '.join(FORMATS)}")


def render(analysis: Analysis, result: AnalyticsResult, fmt: str) -> None:
    """``result`` of ``analysis`` (its title and brief columns) in ``fmt``; JSON is the API's
    reply, to the byte."""
    if fmt == "json":
        print_json(analysis.body(result))
        return
    if fmt == "csv":
        result.frame.to_csv(sys.stdout, index=False)
        return
    frame = result.frame
    keys = [c for c in frame.columns if c in DIMENSIONS]
    if "period_label" in frame.columns:
        keys.append("period_label")
    brief = analysis.brief or tuple(c for c in frame.columns if c not in keys)
    shown = keys + [c for c in brief if c in frame.columns]
    table = Table(
        *shown, title=f"{analysis.title} — n = {result.n:,}, {result.confidence:.0%} intervals"
    )
    for row in frame[shown].itertuples(index=False, name=None):
        table.add_row(*(cell(v) for v in row))
    console.print(table)
    console.print(f"[dim]{result.method}[/]")
    if frame.empty:
        console.print("no records match; widen the filters or the time range")


def print_notes(result: AnalyticsResult) -> None:
    """Under a table: the result's notes and its one-line summary, if it has them."""
    meta = result.metadata()
    for note in meta.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")
    summary = meta.get("summary")
    if summary:
        console.print(", ".join(f"{k} = {value(v)}" for k, v in summary.items()))


def print_json(body: Any, default: Callable[[Any], Any] | None = None) -> None:
    sys.stdout.write(orjson.dumps(body, default=default, option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")


def json_instead(fmt: str, body: Any, default: Callable[[Any], Any] | None = None) -> bool:
    """``body`` printed as JSON unless ``--format`` is table (csv too: records with nested parts
    have no one CSV shape); True when it was printed, so the caller's table is not wanted."""
    if fmt == "table":
        return False
    print_json(body, default)
    return True


def print_fields(body: dict[str, Any]) -> None:
    """One record as a field/value table (a string as it is, anything else as JSON)."""
    table = Table("field", "value")
    for k, v in body.items():
        table.add_row(k, orjson.dumps(v, default=str).decode() if not isinstance(v, str) else v)
    console.print(table)


def cell(v: Any) -> str:
    """A table cell: '-' for nothing, 4 decimals below 1, thousands and 2 decimals above."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1 else f"{v:,.2f}"
    if isinstance(v, datetime):
        return v.date().isoformat()
    return str(v)


def value(v: Any) -> str:
    """A figure in a summary line: 4 decimals, a list comma-separated."""
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)
