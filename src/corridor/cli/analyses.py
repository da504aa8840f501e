"""``corridor gaps|nps|csat|ces|promises|drift|facets|sources``: analyses, in a terminal."""

from __future__ import annotations

from typing import Any

import typer

from corridor.analytics.core.catalog import ANALYSES, Analysis, parse_filters
from corridor.cli.common import (
    ByOpt,
    ConfOpt,
    FormatOpt,
    PeriodOpt,
    SinceOpt,
    StoreOpt,
    UntilOpt,
    WhereOpt,
)
from corridor.cli.render import check_format, show


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
        check_format(fmt)
        filters = parse_filters(where or [])
        show(
            analysis,
            analysis,
            fmt,
            store,
            by=by,
            period=period,
            filters=filters or None,
            since=since,
            until=until,
            confidence=confidence,
        )

    command.__name__ = analysis.name
    return command
