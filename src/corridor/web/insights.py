"""Panels that bring the deeper analyses onto the pages: ripple effects on a department's page,
the shrunk scorecard on a partner's, churn risk and lifetime value on a customer's, and the voice
of the customer (sentiment, intent, themes) on a touch point's. Each returns plain dicts."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from corridor.analytics.core import registry
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.scoping import run_scoped
from corridor.analytics.customers.models import FittedModels
from corridor.auth.scope import Scope
from corridor.store import Store
from corridor.web.window import Window


def ripples(store: Store, scope: Scope, department: str, win: Window) -> list[dict[str, Any]]:
    """The department's operational events in the window with their estimated effects, as
    ``scope`` may see them (the declared rule of the ``ripple`` analysis)."""
    analysis = registry.get("ripple")
    # churn=False: the churn effects cost one more query over every interaction (seconds on a
    # page); `corridor ripple` and the API give it
    kwargs = analysis.bind(
        {"department": [department], "since": win.since, "until": win.until, "churn": False}
    )
    return run_scoped(analysis, store, scope, kwargs).to_records()


def partner_card(store: Store, scope: Scope, partner: str, win: Window) -> dict[str, Any] | None:
    """The partner's row of the empirical-Bayes scorecard (fitted over every partner, so the
    prior is the same for all), with the brand's own channels as the baseline row, as
    ``scope`` may see it (the declared rule of the ``partners`` analysis)."""
    analysis = registry.get("partners")
    kwargs = analysis.bind(
        {"filters": {"partner": [partner]}, "since": win.since, "until": win.until}
    )
    res: AnalyticsResult = run_scoped(analysis, store, scope, kwargs)
    rows = res.to_records()
    mine = next((r for r in rows if r.get("partner") == partner), None)
    if mine is None:
        return None
    base = next((r for r in rows if r.get("baseline")), {})
    return {"row": mine, "baseline": base, "ranked": res.extra.get("ranked")}


def customer_outlook(
    store: Store, person_id: str, *, models: FittedModels | None, refit: bool = False
) -> dict[str, Any]:
    """Churn risk with its main reasons, and lifetime value (BG/NBD + Gamma-Gamma), from the
    app's ``models`` as the background refresher fitted them (``refit=False``: never fit on a
    page; ``status`` is ``pending`` until the first fit is done, with ``wait``: what the page
    says meanwhile, :func:`fit_wait`)."""
    from corridor.analytics.customers.churn_risk import person_risk
    from corridor.analytics.customers.lifetime import person_value

    out = {
        "risk": person_risk(store, person_id, models=models, refit=refit),
        "value": person_value(store, person_id, models=models, refit=refit),
    }
    for key, what in (("risk", "The churn model is"), ("value", "The lifetime models are")):
        if out[key]["status"] == "pending":
            out[key]["wait"] = fit_wait(out[key], what)
    return out


#: how often a page waiting for a model reloads itself when nothing says when it is fitted
RELOAD_S = 10


def fit_wait(pending: dict[str, Any], what: str) -> dict[str, Any]:
    """What a page says of a model being fitted (``pending``: a ``pending`` answer of
    :func:`~corridor.analytics.customers.churn_risk.person_risk` or ``person_value``), and in
    how many seconds it reloads itself: ``{text, reload_s}``."""
    if pending.get("reason"):  # the latest fit failed; the refresher tries again
        return {"text": f"{what} not fitted yet: {pending['reason']}.", "reload_s": 60}
    started, ready_in = pending.get("fitting_started_at"), pending.get("ready_in_s")
    if started is None:
        return {
            "text": f"{what} being fitted in the background. This page reloads itself when it is.",
            "reload_s": RELOAD_S,
        }
    ago = (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds()
    when = f"started {_duration(ago)} ago"
    if ready_in is not None:
        when += (
            "; ready any moment now" if ready_in < 1 else f"; ready in about {_duration(ready_in)}"
        )
    return {
        "text": f"{what} being fitted ({when}). This page reloads itself when it is.",
        # a second after it should be done; again every so often when it overruns
        "reload_s": RELOAD_S if ready_in is None else min(max(math.ceil(ready_in) + 1, 2), 60),
    }


def _duration(seconds: float) -> str:
    """``40 s``, ``1 minute``, ``12 minutes``."""
    s = max(float(seconds), 0.0)
    if s < 59.5:
        return f"{s:.0f} s"
    minutes = round(s / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def voice(store: Store, filters: dict[str, list[str | None]], touchpoint: str) -> dict[str, Any]:
    """Recent analysed comments (redacted, with sentiment, intent, theme) and the themes."""
    from corridor.analytics.feedback.text import recent_comments, theme_summary

    scoped = {k: v for k, v in filters.items() if k != "touchpoint"}
    return {
        "comments": recent_comments(store, touchpoint, limit=8, scope_filters=scoped or None),
        "themes": theme_summary(store, {**scoped, "touchpoint": [touchpoint]})[:8],
    }
