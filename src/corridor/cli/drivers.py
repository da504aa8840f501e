"""``corridor drivers|journeys|wallet``: key drivers, journeys and share of wallet, in a
terminal (same options as the gap analytics: ``--by``, ``--where``, ``--since``, ``--until``,
``--confidence``, ``--format table|json|csv``, ``--store``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from corridor.analytics.core.catalog import Analysis, parse_filters
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.customers.drivers import DRIVER_KINDS, OUTCOMES, driver_table
from corridor.analytics.customers.journeys import LEVELS, VIEWS, journey_table
from corridor.analytics.customers.wallet import wallet_table
from corridor.cli.common import ByOpt, ConfOpt, FormatOpt, SinceOpt, StoreOpt, UntilOpt, WhereOpt
from corridor.cli.render import check_format, print_notes, show

BootOpt = Annotated[int, typer.Option(help="bootstrap resamples for the intervals (20–10000)")]
SeedOpt = Annotated[int, typer.Option(help="seed of the bootstrap (same seed, same intervals)")]

DRIVERS = Analysis(
    "drivers",
    "Key drivers",
    driver_table,
    brief=(
        "driver",
        "rank",
        "n",
        "r",
        "share",
        "share_low",
        "share_high",
        "lmg_share",
        "performance",
        "quadrant",
    ),
)
JOURNEY_BRIEF = {
    "paths": ("path", "persons", "share", "conversions", "conversion_rate"),
    "transitions": ("from", "to", "count", "share_of_from", "median_hours", "n"),
    "stages": (  # "stage" is a dimension: render shows it first
        "next_stage",
        "reached",
        "dropoff",
        "dropoff_low",
        "dropoff_high",
        "median_hours",
        "median_hours_low",
        "median_hours_high",
        "q75_hours",
    ),
    "attribution": (
        "step",
        "persons",
        "removal_effect",
        "removal_effect_low",
        "removal_effect_high",
        "attributed_conversions",
        "attribution_share",
        "first_touch",
        "last_touch",
    ),
}
WALLET = Analysis(
    "wallet",
    "Share of wallet (Wallet Allocation Rule)",
    wallet_table,
    brief=(
        "n",
        "wallet_share",
        "wallet_share_low",
        "wallet_share_high",
        "first_choice",
        "first_choice_low",
        "first_choice_high",
        "mean_brands",
        "mean_rank",
    ),
)


def _run(
    analysis: Analysis,
    run: Callable[..., AnalyticsResult],
    fmt: str,
    store: str | None,
    where: list[str] | None,
    **params: Any,
) -> None:
    check_format(fmt)
    filters = parse_filters(where or [])
    result = show(analysis, run, fmt, store, filters=filters or None, **params)
    if fmt == "table":
        print_notes(result)


def register(app: typer.Typer) -> None:
    """Add ``drivers``, ``journeys`` and ``wallet`` to ``app``."""

    @app.command("drivers")
    def drivers(
        outcome: Annotated[
            str, typer.Option(help=f"what is driven: {', '.join(OUTCOMES)}")
        ] = "nps",
        kind: Annotated[
            str, typer.Option("--drivers", help=f"driver kind: {', '.join(DRIVER_KINDS)}")
        ] = "touchpoint",
        select: Annotated[
            list[str] | None,
            typer.Option(
                "--select", help="driver to use (repeatable, at most 15); default: most rated"
            ),
        ] = None,
        by: ByOpt = None,
        where: WhereOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        confidence: ConfOpt = 0.95,
        bootstrap: BootOpt = 200,
        seed: SeedOpt = 0,
        min_n: Annotated[int, typer.Option(help="fewest persons a driver or group needs")] = 30,
        fmt: FormatOpt = "table",
        store: StoreOpt = None,
    ) -> None:
        """Key drivers: relative weights and LMG shares of R², with intervals and quadrants."""
        _run(
            DRIVERS,
            driver_table,
            fmt,
            store,
            where,
            outcome=outcome,
            drivers=kind,
            select=select,
            by=by,
            since=since,
            until=until,
            confidence=confidence,
            bootstrap=bootstrap,
            seed=seed,
            min_n=min_n,
        )

    @app.command("journeys")
    def journeys(
        view: Annotated[str, typer.Option(help=f"one of {', '.join(VIEWS)}")] = "paths",
        level: Annotated[str, typer.Option(help=f"steps are {' or '.join(LEVELS)}s")] = (
            "touchpoint"
        ),
        conversion: Annotated[
            list[str] | None,
            typer.Option(help="interaction outcome that converts (repeatable; purchase)"),
        ] = None,
        max_length: Annotated[int, typer.Option(help="steps shown per path")] = 8,
        limit: Annotated[int, typer.Option(help="rows shown (paths, transitions)")] = 20,
        where: WhereOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        confidence: ConfOpt = 0.95,
        bootstrap: BootOpt = 200,
        seed: SeedOpt = 0,
        fmt: FormatOpt = "table",
        store: StoreOpt = None,
    ) -> None:
        """Journeys: top paths, transitions, stage drop-off and timing, Markov attribution."""
        analysis = Analysis("journeys", f"Journeys: {view}", journey_table)
        if view in JOURNEY_BRIEF:
            analysis = Analysis(
                "journeys", f"Journeys: {view}", journey_table, brief=JOURNEY_BRIEF[view]
            )
        _run(
            analysis,
            journey_table,
            fmt,
            store,
            where,
            view=view,
            level=level,
            conversion=conversion or ["purchase"],
            max_length=max_length,
            limit=limit,
            since=since,
            until=until,
            confidence=confidence,
            bootstrap=bootstrap,
            seed=seed,
        )

    @app.command("wallet")
    def wallet(
        by: ByOpt = None,
        where: WhereOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        confidence: ConfOpt = 0.95,
        fmt: FormatOpt = "table",
        store: StoreOpt = None,
    ) -> None:
        """Share of wallet by the Wallet Allocation Rule (per segment unless --by)."""
        _run(
            WALLET,
            wallet_table,
            fmt,
            store,
            where,
            by=by or ["segment"],
            since=since,
            until=until,
            confidence=confidence,
        )
