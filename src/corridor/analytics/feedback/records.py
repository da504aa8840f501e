"""Single feedback records, for pages that show them: when the latest was given, the latest
texts (within filters and a time range), and whose each record is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from corridor.store.base import Store
from corridor.store.sql import add_time_range


def latest_at(store: Store) -> datetime | None:
    """When the latest feedback record was given (None: there is none)."""
    rows = store.query("SELECT max(occurred_at) FROM feedback")
    value = rows[0][0] if rows else None
    return value if isinstance(value, datetime) else None


def authors(store: Store, feedback_ids: Sequence[str]) -> dict[str, str]:
    """``feedback_id`` → ``person_id`` of those records."""
    if not feedback_ids:
        return {}
    marks = ", ".join("?" * len(feedback_ids))
    rows = store.query(
        f"SELECT feedback_id, person_id FROM feedback WHERE feedback_id IN ({marks})",
        list(feedback_ids),
    )
    return {str(fid): person for fid, person in rows}


def latest_texts(
    store: Store,
    filters: Mapping[str, Sequence[str | None]],
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 8,
) -> list[dict[str, Any]]:
    """The latest feedback records with a text, newest first, at the ``touchpoint`` and
    ``partner`` values of ``filters`` (the record's own, else its interaction's), given at or
    after ``since`` and before ``until``. Texts as stored: redact them for display."""
    where: list[str] = ["f.text IS NOT NULL", "f.text <> ''"]
    params: list[Any] = []
    tps = filters.get("touchpoint")
    if tps:
        where.append(f"COALESCE(f.touchpoint, i.touchpoint) IN ({', '.join('?' * len(tps))})")
        params += list(tps)
    partners = filters.get("partner")
    if partners:
        where.append(f"COALESCE(f.partner_id, i.partner_id) IN ({', '.join('?' * len(partners))})")
        params += list(partners)
    add_time_range(where, params, since, until, "f.occurred_at")
    rows = store.query(
        "SELECT f.occurred_at, f.source, f.experience, f.nps, f.text, f.person_id, "
        "COALESCE(f.partner_id, i.partner_id) FROM feedback f "
        "LEFT JOIN interactions i ON i.interaction_id = f.interaction_id "
        f"WHERE {' AND '.join(where)} ORDER BY f.occurred_at DESC LIMIT {int(limit)}",
        params,
    )
    keys = ("at", "source", "experience", "nps", "text", "person_id", "partner")
    return [dict(zip(keys, r, strict=True)) for r in rows]


__all__ = ["authors", "latest_at", "latest_texts"]
