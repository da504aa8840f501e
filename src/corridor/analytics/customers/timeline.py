"""One customer's records for a page: a person group's interactions and feedback, newest first
(the people are found by :mod:`corridor.store.people_search`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from corridor.store.base import Store

#: the people of a merged group (``?``: its canonical id)
_GROUP = "SELECT person_id FROM people WHERE canonical_id = ?"


def person_records(
    store: Store,
    canonical_id: str,
    in_scope: tuple[str, str, Sequence[Any]] = ("TRUE", "TRUE", ()),
    limit: int = 500,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(interactions, feedback) of the person group ``canonical_id``, newest first, at most
    ``limit`` of each, kept by ``in_scope``: the SQL conditions on interactions (``i``, with
    touch point ``t``) and on feedback (``f``, with interaction ``i`` and touch point ``t``) and
    their parameters, as :func:`corridor.api.routes.people.records_in_scope` makes them.

    An interaction: occurred_at, touchpoint, channel, partner_id, agent_id, outcome, value,
    duration_minutes, person_id, interaction_id, department. A feedback record: occurred_at,
    touchpoint, source, partner_id, expectation, experience, nps, csat, ces, text, person_id,
    feedback_id, department (touch point and partner its own, else its interaction's)."""
    in_inter, in_fb, params = in_scope
    inter = store.query(
        "SELECT i.occurred_at, i.touchpoint, i.channel, i.partner_id, i.agent_id, i.outcome, "
        "i.value, i.duration_minutes, i.person_id, i.interaction_id, t.department "
        "FROM interactions i LEFT JOIN touchpoints t ON t.key = i.touchpoint "
        f"WHERE i.person_id IN ({_GROUP}) AND {in_inter} "
        f"ORDER BY i.occurred_at DESC LIMIT {int(limit)}",
        (canonical_id, *params),
    )
    fb = store.query(
        "SELECT f.occurred_at, COALESCE(f.touchpoint, i.touchpoint), f.source, "
        "COALESCE(f.partner_id, i.partner_id), f.expectation, f.experience, f.nps, f.csat, f.ces, "
        "f.text, f.person_id, f.feedback_id, t.department FROM feedback f "
        "LEFT JOIN interactions i ON i.interaction_id = f.interaction_id "
        "LEFT JOIN touchpoints t ON t.key = COALESCE(f.touchpoint, i.touchpoint) "
        f"WHERE f.person_id IN ({_GROUP}) AND {in_fb} "
        f"ORDER BY f.occurred_at DESC LIMIT {int(limit)}",
        (canonical_id, *params),
    )
    return inter, fb


def first_activity(
    store: Store, canonical_id: str, in_scope: tuple[str, str, Sequence[Any]] = ("TRUE", "TRUE", ())
) -> Any:
    """When the person group ``canonical_id`` first interacted or gave feedback (within
    ``in_scope``, as for :func:`person_records`); None when it never did."""
    in_inter, in_fb, params = in_scope
    row = store.query(
        "SELECT min(first_at) FROM ("
        "SELECT min(i.occurred_at) AS first_at FROM interactions i "
        "LEFT JOIN touchpoints t ON t.key = i.touchpoint "
        f"WHERE i.person_id IN ({_GROUP}) AND {in_inter} "
        "UNION ALL SELECT min(f.occurred_at) FROM feedback f "
        "LEFT JOIN interactions i ON i.interaction_id = f.interaction_id "
        "LEFT JOIN touchpoints t ON t.key = COALESCE(f.touchpoint, i.touchpoint) "
        f"WHERE f.person_id IN ({_GROUP}) AND {in_fb}) AS firsts",
        (canonical_id, *params, canonical_id, *params),
    )
    return row[0][0] if row else None


__all__ = ["first_activity", "person_records"]
