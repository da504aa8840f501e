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
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

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
_TS = pa.timestamp("us", tz="UTC")
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
    return record_many(tx, [Line(case_id, actor, action, at, field, old, new, note)])[0]


@dataclass(frozen=True)
class Line:
    """One line of a case's history, to write (see :func:`record_many`)."""

    case_id: str
    actor: str
    action: str
    at: datetime
    field: str | None = None
    old: Any = None
    new: Any = None
    note: str | None = None


def record_many(tx: Tx, lines: Sequence[Line], *, new: Set[str] = frozenset()) -> list[str]:
    """Add history lines (several cases, several lines per case: numbered in the order
    given, after the lines each case has; ``new``: cases created in this transaction, which
    have none yet) in one write; returns their event ids."""
    if not lines:
        return []
    seq: dict[str, int] = {line.case_id: 0 for line in lines}
    case_ids = sorted(c for c in seq if c not in new)
    if case_ids:
        for case_id, n in tx.fetchall(
            "SELECT case_id, count(*) FROM case_events WHERE case_id IN "
            f"({tx.stage_keys('_line_cases', case_ids)}) GROUP BY case_id"
        ):
            seq[str(case_id)] = int(n)
    rows = []
    for line in lines:
        rows.append(
            (
                uuid.uuid4().hex,
                line.case_id,
                seq[line.case_id],
                line.at,
                line.actor,
                line.action,
                line.field,
                _text(line.old),
                _text(line.new),
                line.note,
            )
        )
        seq[line.case_id] += 1
    cols = ", ".join(EVENT_COLUMNS)
    if len(rows) == 1:
        tx.execute(
            f"INSERT INTO case_events ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[0]
        )
    else:
        tx.stage("_case_lines", _table(EVENT_COLUMNS, rows, {"seq": pa.int32()}))
        tx.execute(f"INSERT INTO case_events ({cols}) SELECT {cols} FROM _case_lines")
    return [r[0] for r in rows]


def _table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], types: Mapping[str, pa.DataType]
) -> pa.Table:
    """Rows as an Arrow table to stage: text columns unless ``types`` says otherwise, times
    for columns ending in ``_at``, ``_due`` or ``_after``."""
    data = list(zip(*rows, strict=True))
    out = {}
    for name, values in zip(columns, data, strict=True):
        if name in types:
            kind = types[name]
        elif name.endswith(("_at", "_due", "_after")):
            kind = _TS
        else:
            kind = pa.string()
        out[name] = pa.array(list(values), kind)
    return pa.table(out)


def insert_cases(tx: Tx, cases: Sequence[Mapping[str, Any]]) -> None:
    """Write new case rows (every column of :data:`CASE_COLUMNS`) in one statement."""
    if not cases:
        return
    cols = CASE_COLUMNS
    rows = [
        [
            json.dumps(c[name], default=str)
            if name == "verification_detail" and c[name] is not None
            else c[name]
            for name in cols
        ]
        for c in cases
    ]
    if len(rows) == 1:
        tx.execute(
            f"INSERT INTO cases ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            rows[0],
        )
        return
    types = {
        "alerts": pa.int32(),
        "escalation_level": pa.int32(),
        "paused_minutes": pa.float64(),
    }
    tx.stage("_new_cases", _table(cols, rows, types))
    select = ", ".join(
        f"CAST({c} AS {tx.json_type})" if c == "verification_detail" else c for c in cols
    )
    tx.execute(f"INSERT INTO cases ({', '.join(cols)}) SELECT {select} FROM _new_cases")


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
    return recipients_many(tx, [case])[0]


def recipients_many(tx: Tx, cases: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """:func:`recipients` of several cases, read with one query."""
    assignees = sorted({str(c["assignee"]) for c in cases if c.get("assignee")})
    marks = ", ".join("?" for _ in assignees)
    named = f" OR username IN ({marks})" if assignees else ""
    users = tx.fetchall(
        "SELECT username, role, department, partner FROM users "
        f"WHERE role IN ('department_head', 'partner_manager'){named} ORDER BY username",
        assignees,
    )
    out = []
    for c in cases:
        out.append(
            [
                str(username)
                for username, role, department, partner in users
                if (username == c.get("assignee") and _works(role, department, partner, c))
                or (role == "department_head" and department == c.get("department")
                    and department is not None)
                or (role == "partner_manager" and partner == c.get("partner_id")
                    and partner is not None)
            ]
        )  # fmt: skip
    return out


def _works(role: str, department: str | None, partner: str | None, case: Mapping[str, Any]) -> bool:
    """Whether a user of ``role`` (and ``department``/``partner``) may work ``case`` now: an
    assignee whose role changed since (removed and added again with another) is not told of
    a case they can no longer see."""
    from corridor.auth.scope import Principal, Role, Scope

    try:
        user = Principal("", Role(role), department, partner)
    except ValueError:  # a role this code does not know: told nothing
        return False
    return Scope.of(user, None).may_work_case(case.get("department"), case.get("partner_id"))


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
    notice = Notice(event_type, case, event_id, actor=actor, change=change, at=at)
    outbox.enqueue_many(tx, notices(tx, [notice]))


@dataclass(frozen=True)
class Notice:
    """The notification of one case change (see :func:`notices`)."""

    event_type: str
    case: Mapping[str, Any]
    event_id: str
    actor: str | None = None
    change: Mapping[str, Any] | None = None
    at: datetime | None = None


def notices(tx: Tx, items: Sequence[Notice]) -> list[outbox.Event]:
    """The outbox events of case changes (the recipients of every case read at once), for
    :func:`corridor.loop.outbox.enqueue_many` in the caller's transaction."""
    who = recipients_many(tx, [n.case for n in items]) if items else []
    events = []
    for n, users in zip(items, who, strict=True):
        payload = {
            "title": f"{n.case['case_id']}: {n.case.get('title')}",
            "case": payload_case(n.case),
            "change": {k: _jsonable(v) for k, v in (n.change or {}).items()},
            "actor": n.actor,
            "at": _jsonable(n.at or n.case.get("updated_at")),
            "history_id": n.event_id,
        }
        # the outbox (corridor.loop.outbox) delivers it to webhooks and by e-mail after the
        # commit
        events.append(outbox.Event(n.event_type, payload, n.event_id, users=users))
    return events


__all__ = [
    "ALERT_COLUMNS",
    "CASE_COLUMNS",
    "Line",
    "Notice",
    "alerts_of_case",
    "as_case",
    "history",
    "insert_cases",
    "json_value",
    "notices",
    "notify",
    "payload_case",
    "read_case",
    "recipients",
    "recipients_many",
    "record",
    "record_many",
    "select_cases",
    "write_fields",
]
