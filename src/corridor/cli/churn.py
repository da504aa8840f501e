"""``corridor churn`` and ``corridor lifetime``: the groups the churn and lifetime analyses'
generated commands join (``churn survival|cox|risk``, ``lifetime params|people``, from their
declarations: :mod:`corridor.cli.analyses`), one customer's figures (``churn person ID``,
``lifetime person ID``), and what a table of each shows under it (the log-rank test, the
model's facts, why CLVs are missing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import typer

from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.customers.churn_risk import HORIZON_MONTHS, person_risk
from corridor.analytics.customers.lifetime import person_value
from corridor.cli.analyses import FOOTERS
from corridor.cli.common import ConfOpt, FormatOpt, StoreOpt, console, on_store_or_server
from corridor.cli.render import check_format, json_instead, print_fields

churn_app = typer.Typer(
    help="Churn: retention curves (survival), what drives it (cox), who is at risk (risk, or "
    "one person).",
    no_args_is_help=True,
)
lifetime_app = typer.Typer(
    help="Customer lifetime: the BG/NBD and Gamma-Gamma fits (params), value per buyer "
    "(people, or one person).",
    no_args_is_help=True,
)

PersonArg = Annotated[str, typer.Argument(help="the person's id")]


def _person(
    store: str | None,
    here: Callable[[Any], dict[str, Any]],
    path: str,
    params: dict[str, str],
) -> dict[str, Any]:
    """``here(store)``; or, when a running server holds the store, ``GET path`` through it."""
    return on_store_or_server(store, here, lambda c: c.call("GET", path, params=params))


@churn_app.command("person")
def churn_person(
    person: PersonArg,
    horizon_months: Annotated[
        float, typer.Option(help="months ahead the probability is for; above 0, at most 24")
    ] = HORIZON_MONTHS,
    fmt: FormatOpt = "table",
    store: StoreOpt = None,
) -> None:
    """One customer's probability of churning within the horizon, with its interval and the
    reasons that raise it most (status active, churned or unknown)."""
    check_format(fmt)
    body = _person(
        store,
        lambda s: person_risk(s, person, horizon_months),
        f"/api/v1/churn/risk/{quote(person, safe='')}",
        {"horizon_months": str(horizon_months)},
    )
    if not json_instead(fmt, body, default=str):
        print_fields(body)


@lifetime_app.command("person")
def lifetime_person(
    person: PersonArg,
    horizon_months: Annotated[
        float, typer.Option(help="months ahead of the figures; above 0, at most 120")
    ] = 12.0,
    discount_monthly: Annotated[
        float, typer.Option(help="monthly discount rate of the CLV (0.01 for 1 % a month)")
    ] = 0.01,
    confidence: ConfOpt = 0.95,
    fmt: FormatOpt = "table",
    store: StoreOpt = None,
) -> None:
    """One buyer's P(alive), expected purchases, expected value and CLV with intervals (status
    buyer or no_purchases); a figure the models cannot give says why."""
    check_format(fmt)
    body = _person(
        store,
        lambda s: person_value(s, person, horizon_months, discount_monthly, confidence),
        f"/api/v1/lifetime/people/{quote(person, safe='')}",
        {"horizon_months": str(horizon_months), "discount_monthly": str(discount_monthly)},
    )
    if json_instead(fmt, body, default=str):
        return
    if body.get("status") == "buyer" and body.get("clv") is None:
        body = body | {"clv": f"not available: {body.get('clv_reason')}"}
    print_fields(body)


def _log_rank(result: AnalyticsResult) -> None:
    t = result.metadata()["test"]
    if t.get("p_value") is not None:
        console.print(f"log-rank: chi2 = {t['chi2']:.2f}, df = {t['df']}, p = {t['p_value']:.3g}")
    elif t.get("reason"):
        console.print(f"log-rank: no answer: {t['reason']}")


def _cox_model(result: AnalyticsResult) -> None:
    m = result.metadata()["model"]
    console.print(
        f"events {m['events']}, concordance {m['concordance']:.3f}, "
        f"proportional hazards (global) p = {m['ph_global_p_value']:.3g}"
    )


def _risk_model(result: AnalyticsResult) -> None:
    m = result.metadata()["model"]
    console.print(
        f"{m['active_customers']:,} active customers; model trained on "
        f"{m['training_customers']:,} ({m['training_churners']} churned), "
        f"5-fold AUC {m['cv_auc']:.3f}"
        + (
            f" [{m['cv_auc_low']:.3f}, {m['cv_auc_high']:.3f}]"
            if m.get("cv_auc_low") is not None and m.get("cv_auc_high") is not None
            else ""
        )
        + (f", Brier {m['cv_brier']:.4f}" if m.get("cv_brier") is not None else "")
    )
    if m.get("model_kind"):
        console.print(f"model: {m['model_kind']} ({m.get('choice') or m.get('model')})")


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


FOOTERS.update(
    churn_survival=_log_rank,
    churn_cox=_cox_model,
    churn_risk=_risk_model,
    lifetime=_lifetime_notes,
    lifetime_people=_lifetime_notes,
)


def register(app: typer.Typer) -> None:
    """Add the ``corridor churn`` and ``corridor lifetime`` groups to ``app`` (before the
    generated commands join them)."""
    app.add_typer(churn_app, name="churn")
    app.add_typer(lifetime_app, name="lifetime")
