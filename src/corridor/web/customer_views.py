"""The customer timeline: one person's interactions and feedback across channels and partners.

A person is found by person id, e-mail or phone (normalised as ingest normalises them). The
timeline covers the whole merged group (everyone resolved into the same canonical person), newest
first, so what the customer just did on the web is in front of the agent on the phone.
Department heads and partner managers see only the records within their scope.
"""

from __future__ import annotations

import re
from typing import Any

from corridor.api.routes.people import person_view, records_in_scope, sees_person
from corridor.auth.scope import Scope
from corridor.domain.contract import PHONE_SEPARATORS
from corridor.store import Store
from corridor.text.redact import redact
from corridor.web import charts

LIMIT = 500


def find_people(store: Store, query: str, scope: Scope) -> list[dict[str, Any]]:
    """People whose id, e-mail, phone, CRM id or device id is ``query`` (exact, normalised),
    among those ``scope`` may see."""
    q = query.strip()
    if not q:
        return []
    candidates = {q, q.lower(), re.sub(PHONE_SEPARATORS, "", q)}
    marks = ", ".join("?" * len(candidates))
    rows = store.query(
        "SELECT DISTINCT COALESCE(p.canonical_id, p.person_id), p.segment, p.region FROM people p "
        f"WHERE p.person_id IN ({marks}) OR p.person_id IN "
        f"(SELECT person_id FROM identities WHERE id_value IN ({marks})) LIMIT 50",
        [*candidates, *candidates],
    )
    return [
        {"person_id": r[0], "segment": r[1], "region": r[2]}
        for r in rows
        if sees_person(store, r[0], scope)
    ]


def customer(
    store: Store, scope: Scope, person_id: str, *, refit: bool = False
) -> dict[str, Any] | None:
    view = person_view(store, person_id, scope)
    if view is None:
        return None
    group = view.canonical_id
    members = "SELECT person_id FROM people WHERE canonical_id = ?"
    in_inter, in_fb, params = records_in_scope(scope)
    inter = store.query(
        "SELECT i.occurred_at, i.touchpoint, i.channel, i.partner_id, i.agent_id, i.outcome, "
        "i.value, i.duration_minutes, i.person_id, i.interaction_id, t.department "
        "FROM interactions i LEFT JOIN touchpoints t ON t.key = i.touchpoint "
        f"WHERE i.person_id IN ({members}) AND {in_inter} "
        f"ORDER BY i.occurred_at DESC LIMIT {LIMIT}",
        (group, *params),
    )
    fb = store.query(
        "SELECT f.occurred_at, COALESCE(f.touchpoint, i.touchpoint), f.source, "
        "COALESCE(f.partner_id, i.partner_id), f.expectation, f.experience, f.nps, f.csat, f.ces, "
        "f.text, f.person_id, f.feedback_id, t.department FROM feedback f "
        "LEFT JOIN interactions i ON i.interaction_id = f.interaction_id "
        "LEFT JOIN touchpoints t ON t.key = COALESCE(f.touchpoint, i.touchpoint) "
        f"WHERE f.person_id IN ({members}) AND {in_fb} "
        f"ORDER BY f.occurred_at DESC LIMIT {LIMIT}",
        (group, *params),
    )
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
    from corridor.web.insights import customer_outlook

    outlook = customer_outlook(store, group, refit=refit)
    return {
        "view": view,
        "outlook": {k: scope.shown_outlook(v) for k, v in outlook.items()},
        "events": events,
        "scoped": not scope.sees_every_customer,
        "chart": chart,
        "truncated": len(inter) >= LIMIT or len(fb) >= LIMIT,
    }
