"""The customer search and timeline: one person's interactions and feedback across channels and
partners.

A person is found by part of their id, e-mail or phone (:func:`find_people`). The timeline
covers the whole merged group (everyone resolved into the same canonical person), newest first,
so what the customer just did on the web is in front of the agent on the phone.
Department heads and partner managers see only the records within their scope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from corridor.analytics.customers import timeline
from corridor.analytics.customers.models import FittedModels
from corridor.api.routes import people
from corridor.api.routes.people import person_view, records_in_scope
from corridor.auth.scope import Scope
from corridor.store import Store
from corridor.text.redact import redact
from corridor.web import charts
from corridor.web.insights import customer_outlook

LIMIT = 500


def find_people(store: Store, query: str, scope: Scope) -> dict[str, Any]:
    """The search page's answer: the people matching ``query`` that ``scope`` may find, best
    first, as :func:`corridor.api.routes.people.find_people` gives them to the API, each with
    its last activity in words."""
    found = people.find_people(store, query, scope)
    now = datetime.now(UTC)
    return {
        "people": [{**p.model_dump(), "ago": ago(p.last_activity, now)} for p in found.people],
        "more": found.more,
        "limit": found.limit,
        "partial": found.partial,
        "scoped": not scope.sees_every_customer,
    }


def ago(at: datetime | None, now: datetime) -> str:
    """``at`` in words, from ``now``: "today", "yesterday", "3 days ago", "2 months ago"."""
    if at is None or at > now:
        return ""
    days = (now - at).days
    if days < 2:
        return ("today", "yesterday")[days]
    for size, unit in ((365, "year"), (30, "month"), (7, "week")):
        if days >= 2 * size:
            return f"{days // size} {unit}s ago"
    return f"{days} days ago"


def customer(
    store: Store,
    scope: Scope,
    person_id: str,
    *,
    models: FittedModels | None = None,
    refit: bool = False,
) -> dict[str, Any] | None:
    view = person_view(store, person_id, scope)
    if view is None:
        return None
    group = view.canonical_id
    in_scope = records_in_scope(scope)
    inter, fb = timeline.person_records(store, group, in_scope, LIMIT)
    events: list[dict[str, Any]] = []
    for at, tp, channel, partner, agent, outcome, value, dur, pid, rid, _dept in inter:
        events.append(
            {
                "kind": "interaction",
                "at": at,
                "touchpoint": tp,
                "channel": channel,
                "partner": partner,
                "agent": agent,
                "outcome": outcome,
                "value": value,
                "duration": dur,
                "person_id": pid,
                "id": rid,
            }
        )
    for at, tp, source, partner, exp, expr, nps, csat, ces, text, pid, rid, _dept in fb:
        events.append(
            {
                "kind": "feedback",
                "at": at,
                "touchpoint": tp,
                "channel": source,
                "partner": partner,
                "expectation": exp,
                "experience": expr,
                "gap": (expr - exp) if exp is not None and expr is not None else None,
                "nps": nps,
                "csat": csat,
                "ces": ces,
                "text": redact(text).text if text else None,
                "person_id": pid,
                "id": rid,
            }
        )
    events.sort(key=lambda e: e["at"], reverse=True)
    chart = None
    if events:
        chart = charts.timeline(
            [
                {
                    "kind": e["kind"],
                    "at": e["at"].isoformat(),
                    "row": e["channel"] or "unknown",
                    "label": f"{e['touchpoint'] or ''} {e.get('outcome') or ''}".strip(),
                }
                for e in events
            ],
            title="Interactions and feedback over time, by channel or source",
        )
    outlook = customer_outlook(store, group, models=models, refit=refit)
    return {
        "view": view,
        # the customer's own history, not when their record reached Corridor
        "since": timeline.first_activity(store, group, in_scope),
        "outlook": {k: scope.shown_outlook(v) for k, v in outlook.items()},
        "events": events,
        "scoped": not scope.sees_every_customer,
        "chart": chart,
        "truncated": len(inter) >= LIMIT or len(fb) >= LIMIT,
    }
