"""The customer timeline: one person's interactions and feedback across channels and partners.

A person is found by person id, e-mail or phone (normalised as ingest normalises them). The
timeline covers the whole merged group (everyone resolved into the same canonical person), newest
first, so what the customer just did on the web is in front of the agent on the phone.
Department heads and partner managers see only the records within their scope.
"""

from __future__ import annotations

from typing import Any

from corridor.analytics.customers import timeline
from corridor.analytics.customers.models import FittedModels
from corridor.api.routes.people import person_view, records_in_scope, sees_person
from corridor.auth.scope import Scope
from corridor.store import Store
from corridor.text.redact import redact
from corridor.web import charts
from corridor.web.insights import customer_outlook

LIMIT = 500


def find_people(store: Store, query: str, scope: Scope) -> list[dict[str, Any]]:
    """People whose id, e-mail, phone, CRM id or device id is ``query`` (exact, normalised),
    among those ``scope`` may see."""
    return [
        {"person_id": person, "segment": segment, "region": region}
        for person, segment, region in timeline.find_people(store, query)
        if sees_person(store, person, scope)
    ]


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
