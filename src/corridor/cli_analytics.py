"""``corridor gaps|nps|csat|ces|promises|drift|facets|sources``: analyses, in a terminal."""

from __future__ import annotations

import math
import sys
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from corridor.analytics.core.catalog import ANALYSES, Analysis, parse_filters
from corridor.analytics.core.dimensions import DIMENSIONS, PERIODS
from corridor.analytics.core.result import AnalyticsResult
from corridor.cli_common import StoreOpt, console

FORMATS = ("table", "json", "csv")

ByOpt = Annotated[
    list[str] | None,
    typer.Option("--by", help=f"group by (repeatable): {', '.join(DIMENSIONS)}"),
]
PeriodOpt = Annotated[str | None, typer.Option("--period", help=f"one of {', '.join(PERIODS)}")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="filter DIMENSION=VALUE[,VALUE...] (repeatable), e.g. --where region=north",
    ),
]
SinceOpt = Annotated[str | None, typer.Option(help="from this time on (ISO-8601, inclusive)")]
UntilOpt = Annotated[str | None, typer.Option(help="before this time (ISO-8601, exclusive)")]
ConfOpt = Annotated[float, typer.Option(help="confidence level of every interval")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, json or csv")]


def register(app: typer.Typer) -> None:
    """Add one command per analysis to ``app``."""
    for analysis in ANALYSES.values():
        app.command(analysis.name, help=f"{analysis.title}, with n and intervals.")(
            _command(analysis)
        )


def _command(analysis: Analysis) -> Any:
    def command(
        by: ByOpt = None,
        period: PeriodOpt = None,
        where: WhereOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        confidence: ConfOpt = 0.95,
        fmt: FormatOpt = "table",
        store: StoreOpt = None,
    ) -> None:
        from corridor.errors import CorridorError
        from corridor.store import open_store

        if fmt not in FORMATS:
            raise CorridorError(f"unknown --format {fmt!r}; use one of: {', '.join(FORMATS)}")
        filters = parse_filters(where or [])
        with open_store(store) as s:
            result = analysis(
                s,
                by=by,
                period=period,
                filters=filters or None,
                since=since,
                until=until,
                confidence=confidence,
            )
        render(analysis, result, fmt)

    command.__name__ = analysis.name
    return command


def render(analysis: Analysis, result: AnalyticsResult, fmt: str) -> None:
    if fmt == "json":
        body = {"analysis": analysis.name, **result.metadata(), "rows": result.to_records()}
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if fmt == "csv":
        result.frame.to_csv(sys.stdout, index=False)
        return
    frame = result.frame
    keys = [c for c in frame.columns if c in DIMENSIONS]
    if "period_label" in frame.columns:
        keys.append("period_label")
    shown = keys + [c for c in analysis.brief if c in frame.columns]
    table = Table(
        *shown, title=f"{analysis.title} — n = {result.n:,}, {result.confidence:.0%} intervals"
    )
    for row in frame[shown].itertuples(index=False, name=None):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    console.print(f"[dim]{result.method}[/]")
    if frame.empty:
        console.print("no records match; widen the filters or the time range")


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1 else f"{v:,.2f}"
    if isinstance(v, datetime):
        return v.date().isoformat()
    return str(v)
