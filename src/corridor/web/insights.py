"""Panels that bring the deeper analyses onto the pages: ripple effects on a department's page,
the shrunk scorecard on a partner's, churn risk and lifetime value on a customer's, and the voice
of the customer (sentiment, intent, themes) on a touch point's. Each returns plain dicts."""

from __future__ import annotations

from typing import Any

from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.customers.models import FittedModels
from corridor.auth.scope import Scope
from corridor.store import Store
from corridor.web.window import Window


def ripples(store: Store, department: str, win: Window) -> list[dict[str, Any]]:
    """The department's operational events in the window with their estimated effects."""
    from corridor.analytics.attribution.ripple import ripple_table

    # churn=False: the churn effect costs one more query per event (seconds on a page);
    # `corridor ripple` and the API give it
    res = ripple_table(store, department=department, since=win.since, until=win.until, churn=False)
    return res.to_records()


def partner_card(store: Store, scope: Scope, partner: str, win: Window) -> dict[str, Any] | None:
    """The partner's row of the empirical-Bayes scorecard (fitted over every partner, so the
    prior is the same for all), with the brand's own channels as the baseline row."""
    from corridor.analytics.attribution.scorecards import partner_scorecard

    filters = {k: v for k, v in (scope.restrict(None) or {}).items() if k != "partner"}
    res: AnalyticsResult = partner_scorecard(
        store, kind="partner", filters=filters or None, since=win.since, until=win.until
    )
    rows = res.to_records()
    mine = next((r for r in rows if r.get("partner") == partner), None)
    if mine is None:
        return None
    base = next((r for r in rows if r.get("baseline")), {})
    ranked = sum(1 for r in rows if not r.get("baseline") and r.get("rank") is not None)
    return {"row": mine, "baseline": base, "ranked": ranked}


def customer_outlook(
    store: Store, person_id: str, *, models: FittedModels | None, refit: bool = False
) -> dict[str, Any]:
    """Churn risk with its main reasons, and lifetime value (BG/NBD + Gamma-Gamma), from the
    app's ``models`` as the background refresher fitted them (``refit=False``: never fit on a
    page; ``status`` is ``pending`` until the first fit is done)."""
    from corridor.analytics.customers.churn_risk import person_risk
    from corridor.analytics.customers.lifetime import person_value

    return {
        "risk": person_risk(store, person_id, models=models, refit=refit),
        "value": person_value(store, person_id, models=models, refit=refit),
    }


def voice(store: Store, filters: dict[str, list[str | None]], touchpoint: str) -> dict[str, Any]:
    """Recent analysed comments (redacted, with sentiment, intent, theme) and the themes."""
    from corridor.analytics.feedback.text import recent_comments, theme_summary

    scoped = {k: v for k, v in filters.items() if k != "touchpoint"}
    return {
        "comments": recent_comments(store, touchpoint, limit=8, scope_filters=scoped or None),
        "themes": theme_summary(store, {**scoped, "touchpoint": [touchpoint]})[:8],
    }
