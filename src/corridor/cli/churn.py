"""``corridor churn|lifetime``: retention curves, churn drivers and risk, customer lifetime value,
in a terminal (options as for the gap analytics: ``--by``, ``--where``, ``--until``,
``--confidence``, ``--format table|json|csv``, ``--store``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from corridor.analytics.core.catalog import Analysis, parse_filters
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.customers.churn import cox_table, person_risk, risk_table, survival_table
from corridor.analytics.customers.lifetime import lifetime_params, lifetime_table, person_value
from corridor.cli.common import ConfOpt, FormatOpt, StoreOpt, UntilOpt, WhereOpt, console
from corridor.cli.render import check_format, print_fields, print_json, render

CHURN_VIEWS = ("km", "cox", "risk")
LIFETIME_VIEWS = ("params", "people")

VIEWS: dict[str, Analysis] = {
    "km": Analysis(
        "churn",
        "Retention (Kaplan–Meier)",
        survival_table,
        brief=(
            "month",
            "customers",
            "at_risk",
            "churned",
            "survival",
            "survival_low",
            "survival_high",
        ),
    ),
    "cox": Analysis(
        "churn",
        "Churn drivers (Cox, hazard ratio per point of gap)",
        cox_table,
        brief=(
            "rated",
            "hazard_ratio",
            "hazard_ratio_low",
            "hazard_ratio_high",
            "p_value",
            "ph_p_value",
        ),
    ),
    "risk": Analysis(
        "churn",
        "Churn risk",
        risk_table,
        brief=("person_id", "tenure_months", "risk", "risk_low", "risk_high", "reasons"),
    ),
    "params": Analysis(
        "lifetime",
        "Lifetime models (BG/NBD, Gamma-Gamma)",
        lifetime_params,
        brief=("model", "parameter", "n", "estimate", "se", "low", "high"),
    ),
    "people": Analysis(
        "lifetime",
        "Customer lifetime value",
        lifetime_table,
        brief=(
            "person_id",
            "frequency",
            "p_alive",
            "expected_purchases",
            "expected_value",
            "clv",
            "clv_low",
            "clv_high",
        ),
    ),
}

ChurnViewOpt = Annotated[str, typer.Option("--view", help="km, cox or risk")]
LifeViewOpt = Annotated[str, typer.Option("--view", help="params or people")]
GroupOpt = Annotated[
    list[str] | None,
    typer.Option("--by", help="km view: group by segment (default) or region; 'none' for all"),
]
HorizonOpt = Annotated[
    float | None,
    typer.Option(help="months ahead: churn risk (default 3), lifetime (default 12)"),
]
MinRatedOpt = Annotated[int, typer.Option(help="customers with a rating a touch point needs")]
LimitOpt = Annotated[int, typer.Option(help="rows shown (risk, people)")]
PersonOpt = Annotated[str | None, typer.Option("--person", help="one person's figures")]
DiscountOpt = Annotated[float, typer.Option(help="monthly discount rate of the CLV")]


def _check(fmt: str, view: str, views: tuple[str, ...]) -> None:
    from corridor.errors import CorridorError

    check_format(fmt)
    if view not in views:
        raise CorridorError(f"unknown --view {view!r}; use one of: {', '.join(views)}")


def churn(
    view: ChurnViewOpt = "km",
    by: GroupOpt = None,
    where: WhereOpt = None,
    until: UntilOpt = None,
    confidence: ConfOpt = 0.95,
    horizon_months: HorizonOpt = None,
    min_rated: MinRatedOpt = 30,
    limit: LimitOpt = 20,
    person: PersonOpt = None,
    fmt: FormatOpt = "table",
    store: StoreOpt = None,
) -> None:
    """Churn: retention curves by segment (km), what drives churn (cox), who is at risk
    (risk, or one --person), with n and intervals."""
    from corridor.store import open_store

    _check(fmt, view, CHURN_VIEWS)
    horizon = 3.0 if horizon_months is None else horizon_months
    with open_store(store) as s:
        if person is not None:
            body = person_risk(s, person, horizon)
            if fmt == "table":
                print_fields(body)
            else:
                print_json(body, default=str)
            return
        filters = parse_filters(where or []) or None
        common: dict[str, Any] = {"filters": filters, "until": until, "confidence": confidence}
        result: AnalyticsResult
        if view == "km":
            groups = [b for b in (by or ["segment"]) if b != "none"]
            result = survival_table(s, by=groups, **common)
        elif view == "cox":
            result = cox_table(s, min_rated=min_rated, **common)
        else:
            result = risk_table(s, horizon, min_rated=min_rated, limit=limit, **common)
    render(VIEWS[view], result, fmt)
    if fmt == "table" and view == "km":
        t = result.metadata()["test"]
        if t.get("p_value") is not None:
            console.print(
                f"log-rank: chi2 = {t['chi2']:.2f}, df = {t['df']}, p = {t['p_value']:.3g}"
            )
        elif t.get("reason"):
            console.print(f"log-rank: no answer: {t['reason']}")
    if fmt == "table" and view in ("cox", "risk"):
        m = result.metadata()["model"]
        if view == "cox":
            console.print(
                f"events {m['events']}, concordance {m['concordance']:.3f}, "
                f"proportional hazards (global) p = {m['ph_global_p_value']:.3g}"
            )
        else:
            console.print(
                f"{m['active_customers']:,} active customers; model trained on "
                f"{m['training_customers']:,} ({m['training_churners']} churned), "
                f"5-fold AUC {m['cv_auc']:.3f}"
            )


def lifetime(
    view: LifeViewOpt = "params",
    where: WhereOpt = None,
    until: UntilOpt = None,
    confidence: ConfOpt = 0.95,
    horizon_months: HorizonOpt = None,
    discount_monthly: DiscountOpt = 0.01,
    limit: LimitOpt = 20,
    person: PersonOpt = None,
    fmt: FormatOpt = "table",
    store: StoreOpt = None,
) -> None:
    """Customer lifetime: BG/NBD and Gamma-Gamma parameters (params), or per buyer P(alive),
    expected purchases and CLV (people, or one --person), with intervals."""
    from corridor.store import open_store

    _check(fmt, view, LIFETIME_VIEWS)
    horizon = 12.0 if horizon_months is None else horizon_months
    with open_store(store) as s:
        if person is not None:
            body = person_value(s, person, horizon, discount_monthly, confidence)
            if fmt == "table":
                if body.get("status") == "buyer" and body.get("clv") is None:
                    body = body | {"clv": f"not available: {body.get('clv_reason')}"}
                print_fields(body)
            else:
                print_json(body, default=str)
            return
        filters = parse_filters(where or []) or None
        result: AnalyticsResult
        if view == "params":
            result = lifetime_params(s, filters=filters, until=until, confidence=confidence)
        else:
            result = lifetime_table(
                s,
                horizon,
                discount_monthly,
                filters=filters,
                until=until,
                confidence=confidence,
                limit=limit,
            )
    render(VIEWS[view], result, fmt)
    if fmt == "table":
        _lifetime_notes(result)


def _lifetime_notes(result: AnalyticsResult) -> None:
    """Under a lifetime table: why CLVs are missing (never a number the model cannot give)."""
    model = result.metadata()["model"]
    note = model.get("clv_note")
    if "clv_not_available" not in model:  # params: the fit's own note
        if note:
            console.print(f"CLV not available for some or all buyers: {note}")
        return
    if not model["clv_not_available"]:
        return
    console.print(
        f"CLV not available for {model['clv_not_available']:,} of {model['buyers']:,} buyers "
        f"(listed last, '-'): {note or 'see clv_reason'}"
    )
    shown = result.frame.loc[result.frame["clv"].isna(), "clv_reason"].dropna()
    for reason, n in shown[shown != note].value_counts().items():
        console.print(f"  and for {n:,} shown here: {reason}")


def register(app: typer.Typer) -> None:
    """Add ``corridor churn`` and ``corridor lifetime`` to ``app``."""
    app.command("churn")(churn)
    app.command("lifetime")(lifetime)
