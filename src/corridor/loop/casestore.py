"""Case rows in the store: read one, change fields, write the history, send the notification.

Every change of a case goes through here inside the caller's transaction: :func:`write_fields`
updates the row, :func:`record` adds the line of ``case_events`` (who changed what, when, old
and new value) and :func:`notify` writes the notification to the outbox
(:func:`corridor.loop.outbox.enqueue`) in the same transaction, so a committed change always
has its notification and a rolled-back one never does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from corridor.loop import outbox
from corridor.store.base import Tx

#: the columns of ``cases``, in table order
CASE_COLUMNS: tuple[str, ...] = (
    "case_id", "title", "rule_id", "cause", "state", "priority", "assignee", "department",
    "partner_id", "team", "touchpoint", "person_id", "region", "segment", "opened_at",
    "updated_at", "last_alert_at", "alerts", "sla_policy", "first_response_due",
    "resolution_due", "first_response_at", "resolved_at", "closed_at", "paused_at",
    "paused_minutes", "first_response_breached_at", "resolution_breached_at",
    "escalation_level", "root_cause", "root_cause_event", "verification", "verify_after",
    "verified_at", "verification_detail",
)  # fmt: skip
#: the columns a notification carries (the case as its owner sees it)
PUBLIC: tuple[str, ...] = tuple(c for c in CASE_COLUMNS if c not in ("cause", "paused_minutes"))
EVENT_COLUMNS = (
    "event_id", "case_id", "seq", "changed_at", "actor", "action", "field", "old_value",
    "new_value", "note",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(CASE_COLUMNS)} FROM cases"


def json_value(value: Any) -> Any:
    """A JSON column as Python (DuckDB hands out text, PostgreSQL parsed values)."""
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def as_case(row: Sequence[Any]) -> dict[str, Any]:
    case = dict(zip(CASE_COLUMNS, row, strict=True))
    case["verification_detail"] = json_value(case["verification_detail"])
    return case


def read_case(tx: Tx, case_id: str) -> dict[str, Any] | None:
    rows = tx.fetchall(f"{_SELECT} WHERE case_id = ?", (case_id,))
    return as_case(rows[0]) if rows else None


def select_cases(tx: Tx, where: str, params: Sequence[Any], tail: str = "") -> list[dict[str, Any]]:
    return [as_case(r) for r in tx.fetchall(f"{_SELECT} WHERE {where} {tail}", params)]


def write_fields(tx: Tx, case_id: str, changes: Mapping[str, Any], now: datetime) -> None:
    """Set ``changes`` (column → value) and ``updated_at`` on one case."""
    bad = [c for c in changes if c not in CASE_COLUMNS or c == "case_id"]
    if bad:
        raise ValueError(f"not case columns: {bad}")
    values = {**changes, "updated_at": now}
    if "verification_detail" in values and values["verification_detail"] is not None:
        values["verification_detail"] = json.dumps(values["verification_detail"], default=str)
    sets = ", ".join(f"{c} = ?" for c in values)
    tx.execute(f"UPDATE cases SET {sets} WHERE case_id = ?", (*values.values(), case_id))


def record(
    tx: Tx,
    case_id: str,
    actor: str,
    action: str,
    *,
    at: datetime,
    field: str | None = None,
    old: Any = None,
    new: Any = None,
    note: str | None = None,
) -> str:
    """Add one line to the case's history; returns its event id."""
    seq = int(tx.fetchall("SELECT count(*) FROM case_events WHERE case_id = ?", (case_id,))[0][0])
    event_id = uuid.uuid4().hex
    tx.execute(
        f"INSERT INTO case_events ({', '.join(EVENT_COLUMNS)}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (event_id, case_id, seq, at, actor, action, field, _text(old), _text(new), note),
    )
    return event_id


def history(tx: Tx, case_id: str) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM case_events WHERE case_id = ? ORDER BY seq",
        (case_id,),
    )
    return [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows]


#: the columns of ``alerts``, in table order
ALERT_COLUMNS = (
    "alert_id", "rule_id", "subject", "occurred_at", "fired_at", "record_kind", "record_id",
    "person_id", "touchpoint", "department", "partner_id", "region", "segment", "summary",
    "evidence", "case_id",
)  # fmt: skip


def alerts_of_case(tx: Tx, case_id: str) -> list[dict[str, Any]]:
    cols = [c for c in ALERT_COLUMNS if c != "case_id"]
    rows = tx.fetchall(
        f"SELECT {', '.join(cols)} FROM alerts WHERE case_id = ? ORDER BY occurred_at, alert_id",
        (case_id,),
    )
    out = []
    for r in rows:
        a = dict(zip(cols, r, strict=True))
        a["evidence"] = json_value(a["evidence"])
        out.append(a)
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def payload_case(case: Mapping[str, Any]) -> dict[str, Any]:
    """The case as a notification carries it (times in ISO-8601)."""
    return {c: _jsonable(case.get(c)) for c in PUBLIC}


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def recipients(tx: Tx, case: Mapping[str, Any]) -> list[str]:
    """Who hears of a change by e-mail (as their notification preferences say): the assignee,
    and the heads of the case's department or the managers of its partner."""
    rows = tx.fetchall(
        "SELECT u.username FROM users u WHERE u.username = ? "
        "OR (u.role = 'department_head' AND u.department = ?) "
        "OR (u.role = 'partner_manager' AND u.partner = ?) ORDER BY u.username",
        (case.get("assignee"), case.get("department"), case.get("partner_id")),
    )
    return [r[0] for r in rows]


def notify(
    tx: Tx,
    event_type: str,
    case: Mapping[str, Any],
    event_id: str,
    *,
    actor: str | None = None,
    change: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Write the notification of one case change to the outbox, in the caller's transaction
    (its idempotency key is the history line's id)."""
    payload = {
        "title": f"{case['case_id']}: {case.get('title')}",
        "case": payload_case(case),
        "change": {k: _jsonable(v) for k, v in (change or {}).items()},
        "actor": actor,
        "at": _jsonable(at or case.get("updated_at")),
        "history_id": event_id,
    }
    # the outbox (corridor.loop.outbox) delivers it to webhooks and by e-mail after the commit
    outbox.enqueue(tx, event_type, payload, key=event_id, users=recipients(tx, case))


__all__ = [
    "ALERT_COLUMNS",
    "CASE_COLUMNS",
    "alerts_of_case",
    "as_case",
    "history",
    "json_value",
    "notify",
    "payload_case",
    "read_case",
    "recipients",
    "record",
    "select_cases",
    "write_fields",
]
