"""The outbox's rows: what a notification is (one event for one target), what a sender reports
for one attempt, the delivery log, and reading them (see :mod:`corridor.loop.outbox`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import orjson

from corridor.errors import NotFoundError
from corridor.store.base import Store

# target kinds
WEBHOOK, EMAIL, DIGEST = "webhook", "email", "digest"
# states
PENDING, DELIVERED, FAILED, DIGESTED, CANCELLED = (
    "pending",
    "delivered",
    "failed",
    "digested",
    "cancelled",
)
#: a report mail whose content a privacy request withdrew (it quoted the person): the reports
#: job makes it again from the store as it is now, then it is pending
REMAKING = "remaking"
#: every state, as the API declares it
State = Literal["pending", "delivered", "failed", "digested", "cancelled", "remaking"]
STATES: tuple[str, ...] = get_args(State)

#: the columns of an outbox row, in the order :meth:`Notification.of` reads them
COLUMNS = (
    "id, idempotency_key, event_type, payload, created_at, target_kind, target, state, "
    "attempts, next_attempt_at, lease_owner, lease_until, last_error, delivered_at, batch_key"
)


class NotificationNotFoundError(NotFoundError):
    """No outbox row with that id."""


@dataclass(frozen=True)
class Notification:
    """One outbox row: one event for one target."""

    id: int
    key: str
    event_type: str
    #: the envelope sent: ``{"type", "timestamp", "data"}``
    payload: dict[str, Any]
    created_at: datetime
    target_kind: str
    target: str
    state: str
    #: attempts since it was enqueued (or last redelivered)
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    #: the batch it is sent in (an endpoint taking several events per request), else None
    batch_key: str | None = None

    @classmethod
    def of(cls, row: Sequence[Any]) -> Notification:
        doc = row[3]
        payload = orjson.loads(doc) if isinstance(doc, str | bytes) else dict(doc)
        return cls(
            int(row[0]),
            str(row[1]),
            str(row[2]),
            payload,
            row[4],
            str(row[5]),
            str(row[6]),
            str(row[7]),
            int(row[8]),
            row[9],
            row[10],
            row[11],
            row[12],
            row[13],
            row[14] if len(row) > 14 else None,
        )


@dataclass(frozen=True)
class DeliveryAttempt:
    """One line of the delivery log."""

    outbox_id: int
    attempt: int
    attempted_at: datetime
    #: the HTTP status (webhooks) or SMTP reply code (mail); None when there was no answer
    status_code: int | None
    duration_ms: float
    error: str | None


@dataclass(frozen=True)
class Attempt:
    """What a sender reports for one attempt."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    #: a failure worth trying again (timeouts, connection errors, 408, 429, 5xx)
    retry: bool = False
    #: the receiver asked to wait this long (Retry-After)
    retry_after_s: float | None = None
    duration_ms: float = 0.0


Sender = Callable[[Notification], Attempt]
#: sends several rows for one target as one message (a batch); one attempt for them all
BatchSender = Callable[[Sequence[Notification]], Attempt]


#: every event a webhook endpoint may be sent (docs/closed-loop.md, "Events"); an endpoint's
#: filter names some of them, prefixes of them (``case.*``) or ``*``. Mail-only events (digests,
#: reports, survey invitations) go to no endpoint.
WEBHOOK_EVENTS: tuple[str, ...] = (
    "alert.fired",
    "case.opened",
    "case.alert_added",
    "case.assigned",
    "case.note_added",
    "case.state_changed",
    "case.priority_changed",
    "case.breached",
    "case.verification",
    "webhook.test",
)


def envelope(event_type: str, data: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """The Standard Webhooks payload: ``{"type": ..., "timestamp": ISO-8601, "data": {...}}``."""
    return {"type": event_type, "timestamp": at.isoformat(), "data": dict(data)}


def matches(event_types: str, event_type: str) -> bool:
    """Does an endpoint's filter (comma-separated types, ``case.*`` prefixes; empty: all) take
    ``event_type``?"""
    wanted = [t.strip() for t in event_types.split(",") if t.strip()]
    if not wanted:
        return True
    for t in wanted:
        if t == "*" or t == event_type:
            return True
        if t.endswith("*") and event_type.startswith(t[:-1]):
            return True
    return False


def list_notifications(
    store: Store,
    *,
    state: str | None = None,
    target_kind: str | None = None,
    endpoint: int | None = None,
    limit: int = 50,
) -> list[Notification]:
    """Outbox rows, newest first, optionally of one state, kind or webhook endpoint."""
    where, params = [], []
    if state is not None:
        where.append("state = ?")
        params.append(state)
    if endpoint is not None:
        where += ["target_kind = ?", "target = ?"]
        params += [WEBHOOK, str(endpoint)]
    elif target_kind is not None:
        where.append("target_kind = ?")
        params.append(target_kind)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = store.query(
        f"SELECT {COLUMNS} FROM outbox {clause}ORDER BY id DESC LIMIT ?", [*params, limit]
    )
    return [Notification.of(r) for r in rows]


def get_notification(store: Store, outbox_id: int) -> Notification:
    rows = store.query(f"SELECT {COLUMNS} FROM outbox WHERE id = ?", [outbox_id])
    if not rows:
        raise NotificationNotFoundError(
            f"no notification {outbox_id}; `corridor webhooks deliveries` (GET "
            "/api/v1/admin/deliveries) lists them"
        )
    return Notification.of(rows[0])


def list_attempts(store: Store, outbox_id: int) -> list[DeliveryAttempt]:
    """The delivery log of one row, first attempt first."""
    rows = store.query(
        "SELECT outbox_id, attempt, attempted_at, status_code, duration_ms, error FROM deliveries "
        "WHERE outbox_id = ? ORDER BY attempt",
        [outbox_id],
    )
    return [DeliveryAttempt(int(r[0]), int(r[1]), r[2], r[3], float(r[4]), r[5]) for r in rows]


__all__ = [
    "CANCELLED",
    "COLUMNS",
    "DELIVERED",
    "DIGEST",
    "DIGESTED",
    "EMAIL",
    "FAILED",
    "PENDING",
    "REMAKING",
    "STATES",
    "WEBHOOK",
    "WEBHOOK_EVENTS",
    "Attempt",
    "BatchSender",
    "DeliveryAttempt",
    "Notification",
    "NotificationNotFoundError",
    "Sender",
    "State",
    "envelope",
    "get_notification",
    "list_attempts",
    "list_notifications",
    "matches",
]
