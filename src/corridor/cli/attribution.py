"""``corridor ripple|partners|alignment``: who caused the gaps, in a terminal (options as for the
gap analytics: ``--where``, ``--since``, ``--until``, ``--confidence``, ``--format
table|json|csv``, ``--store``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from corridor.analytics.attribution.alignment import GROUPINGS, VIEWS, alignment_table
from corridor.analytics.attribution.ripple import department_impact, ripple_table
from corridor.analytics.attribution.scorecards import KINDS, partner_scorecard
from corridor.analytics.core.catalog import Analysis, parse_filters
from corridor.cli.common import ConfOpt, FormatOpt, SinceOpt, StoreOpt, UntilOpt, WhereOpt
from corridor.cli.render import show

RIPPLE = Analysis(
    "ripple",
    "Ripple effects of operational events (difference in differences)",
    ripple_table,
    brief=(
        "event_id", "n_treated", "effect_gap", "effect_gap_low", "effect_gap_high",
        "q_value_gap", "effect_churn", "direction",
    ),
)  # fmt: skip
IMPACT = Analysis(
    "ripple",
    "Departments by customer impact (gap points × affected interactions)",
    department_impact,
    brief=(
        "rank", "events", "significant_events", "affected_interactions", "impact",
        "impact_low", "impact_high", "excess_churned", "worst_event",
    ),
)  # fmt: skip
SCORECARD_BRIEF = (
    "n", "mean_gap", "adjusted_gap", "shrunk_gap", "shrunk_gap_low", "shrunk_gap_high",
    "shrunk_nps", "shrunk_kept_rate", "shrunk_complaint_share", "rank", "select",
)  # fmt: skip
ALIGNMENT_BRIEF = {
    "employees": (
        "n", "mean_predicted", "mean_actual", "bias", "bias_low", "bias_high",
        "correlation", "correlation_low", "correlation_high",
    ),
    "channels": (
        "n", "mean", "mean_low", "mean_high", "deviation", "spread", "sd_channels",
        "p_value", "q_value",
    ),
}  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``ripple``, ``partners`` and ``alignment`` to ``app``."""

    @app.command("ripple")
    def ripple(
        department: Annotated[
            list[str] | None, typer.Option(help="only this department's events (repeatable)")
        ] = None,
        event: Annotated[
            list[str] | None, typer.Option(help="only this event (repeatable)")
        ] = None,
        departments: Annotated[
            bool, typer.Option("--departments", help="rank departments by customer impact")
        ] = False,
        alpha: Annotated[float, typer.Option(help="false discovery rate for 'significant'")] = 0.05,
        churn: Annotated[
            bool, typer.Option(help="estimate churn effects (one query per event)")
        ] = True,
        since: SinceOpt = None,
        until: UntilOpt = None,
        confidence: ConfOpt = 0.95,
        fmt: FormatOpt = "table",
        store: StoreOpt = None,
    ) -> None:
        """Ripple effects: each operational event's effect on gap, complaint share and churn,
        against untouched comparable regions or touch points; --departments ranks departments."""
        params: dict[str, Any] = dict(
            since=since, until=until, confidence=confidence, alpha=alpha, churn=churn
        )
        if departments:
            show(IMPACT, department_impact, fmt, store, **params)
        else:
            show(RIPPLE, ripple_table, fmt, store, department=department, event=event, **params)

    @app.command("partners")
    def partners(
        kind: Annotated[str, typer.Option(help=f"whose scorecard: {', '.join(KINDS)}")] = "partner",
        min_n: Annotated[int, typer.Option(help="leave out units with fewer rated records")] = 1,
        where: WhereOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        confidence: ConfOpt = 0.95,
        fmt: FormatOpt = "table",
        store: StoreOpt = None,
    ) -> None:
        """Partner (or agent) scorecards: touch-point-adjusted gap, NPS, promise-kept rate and
        complaint share, shrunk by empirical Bayes, ranked, with a select list."""
        card = Analysis(kind, f"{kind.capitalize()} scorecard", partner_scorecard,
                        brief=SCORECARD_BRIEF)  # fmt: skip
        show(card, partner_scorecard, fmt, store, kind=kind, min_n=min_n,
             filters=parse_filters(where or []) or None, since=since, until=until,
             confidence=confidence)  # fmt: skip

    @app.command("alignment")
    def alignment(
        view: Annotated[str, typer.Option(help=f"one of {', '.join(VIEWS)}")] = "employees",
        by: Annotated[
            str, typer.Option(help=f"employees view: {', '.join(GROUPINGS)}")
        ] = "department",
        measure: Annotated[
            str, typer.Option(help="channels view: experience or gap")
        ] = "experience",
        where: WhereOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        confidence: ConfOpt = 0.95,
        fmt: FormatOpt = "table",
        store: StoreOpt = None,
    ) -> None:
        """Alignment: employees' predicted experience against customers' actual (bias,
        correlation), or the consistency of experience across channels (spread, Welch ANOVA)."""
        title = {
            "employees": "Employees' predictions against customers' experience",
            "channels": "Experience across channels of one touch point",
        }.get(view, "Alignment")
        card = Analysis("alignment", title, alignment_table,
                        brief=ALIGNMENT_BRIEF.get(view, ()))  # fmt: skip
        show(card, alignment_table, fmt, store, view=view, by=by, measure=measure,
             filters=parse_filters(where or []) or None, since=since, until=until,
             confidence=confidence)  # fmt: skip
