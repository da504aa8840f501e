"""The durable outbox: every notification is a row written in the transaction of the change that
caused it, and delivered afterwards, at least once.

:func:`enqueue` is what the rest of the loop calls (a case opened, an alert fired): inside the
caller's :class:`~corridor.store.Tx` it writes one row per matching webhook endpoint, e-mail
address and user, so the change and its notifications commit (or roll back) together. A
dispatcher (:func:`dispatch`, run by the scheduler every second and woken by each enqueue)
claims due rows (:func:`claim`: a lease, so two processes never send one row at once), hands
each to the sender of its kind (signed webhook, SMTP mail), and records the outcome
(:func:`finish`): delivered; retried later with exponential backoff and jitter; or failed after
``max_attempts`` (visible, and sent again on request with :func:`redeliver`).

A server killed between commit and delivery loses nothing: the row is still pending (or its
claim runs out) and the next dispatcher sends it. It may then be sent twice (a crash after the
receiver answered but before the outcome was written); every attempt carries the same
idempotency key (``webhook-id``, the mail's ``Message-ID``) so a receiver can drop repeats.

This module writes rows (enqueue) and sends them again (redelivery); what a row is and reading
rows live in :mod:`corridor.loop.outbox_rows`, claiming and sending in
:mod:`corridor.loop.outbox_delivery`. Every name stays importable from here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from corridor.errors import CorridorError
from corridor.loop.outbox_delivery import (
    BACKOFF_FACTOR,
    MAX_DELAY_S,
    DispatchReport,
    claim,
    dispatch,
    finish,
    finish_many,
    retry_delay,
)
from corridor.loop.outbox_rows import (
    CANCELLED,
    DELIVERED,
    DIGEST,
    DIGESTED,
    EMAIL,
    FAILED,
    PENDING,
    REMAKING,
    STATES,
    WEBHOOK,
    Attempt,
    DeliveryAttempt,
    Notification,
    NotificationNotFoundError,
    Sender,
    State,
    envelope,
    get_notification,
    list_attempts,
    list_notifications,
    matches,
)
from corridor.store.base import Store, Tx

__all__ = [
    "BACKOFF_FACTOR",
    "CANCELLED",
    "DELIVERED",
    "DIGEST",
    "DIGESTED",
    "EMAIL",
    "FAILED",
    "MAX_DELAY_S",
    "PENDING",
    "REMAKING",
    "STATES",
    "WEBHOOK",
    "Attempt",
    "DeliveryAttempt",
    "DispatchReport",
    "Event",
    "NotRedeliverableError",
    "Notification",
    "NotificationNotFoundError",
    "Sender",
    "State",
    "cancel_endpoint_rows",
    "claim",
    "dispatch",
    "enqueue",
    "enqueue_many",
    "envelope",
    "finish",
    "finish_many",
    "get_notification",
    "list_attempts",
    "list_notifications",
    "matches",
    "on_enqueue",
    "redeliver",
    "retry_delay",
    "wake",
]

log = logging.getLogger(__name__)

# -- enqueue ----------------------------------------------------------------------------------
_wakers: list[Callable[[], None]] = []
_wakers_lock = threading.Lock()


def on_enqueue(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` whenever :func:`enqueue` writes rows (in this process); returns the
    function that stops it. The dispatcher uses it to wake at once: its claim waits for the
    store's write lock, so it reads the rows right after the enqueuing transaction commits."""
    with _wakers_lock:
        _wakers.append(callback)

    def remove() -> None:
        with _wakers_lock:
            if callback in _wakers:
                _wakers.remove(callback)

    return remove


def wake() -> None:
    """Wake the dispatcher: rows may be due now (after a commit that queued some, a redelivery,
    an endpoint resumed)."""
    with _wakers_lock:
        callbacks = list(_wakers)
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a waker never stops the caller's transaction
            log.exception("outbox wake-up failed")


@dataclass(frozen=True)
class Event:
    """One event to notify (see :func:`enqueue`)."""

    event_type: str
    payload: Mapping[str, Any]
    key: str
    emails: Sequence[str] = ()
    users: Sequence[str] = ()
    endpoints: Sequence[int] | None = None


def enqueue(
    tx: Tx,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    key: str,
    emails: Sequence[str] = (),
    users: Sequence[str] = (),
    endpoints: Sequence[int] | None = None,
) -> int:
    """Write the notifications of one event inside the caller's transaction ``tx``; return how
    many rows were written.

    One row per webhook endpoint (a paused one's waits) whose filter takes ``event_type`` (only
    those in ``endpoints`` when given), per address in ``emails``, and per user in ``users`` with a
    notification preference (:mod:`corridor.loop.mail`: a mail at once, or a line of their next
    digest). ``payload`` becomes the envelope's ``data`` (it must be JSON-serialisable).

    ``key`` is the idempotency key: stable for one event (e.g. ``case-42-opened``), it is the
    webhook's ``webhook-id`` and the mail's Message-ID, and enqueueing the same key again for the
    same target writes nothing (so a retried caller does not notify twice).
    """
    return enqueue_many(tx, [Event(event_type, payload, key, emails, users, endpoints)])


#: up to this many rows are written as one statement with parameters; more are staged
_VALUES_ROWS = 16


def enqueue_many(tx: Tx, events: Sequence[Event], *, new_keys: bool = False) -> int:
    """:func:`enqueue` for several events at once, as one write: the endpoints and the users'
    preferences are read once, and every row goes in with one ``INSERT`` (a batch of alerts
    and cases notifies in a few statements, not a few per event). Returns the rows written.
    ``new_keys``: every event's key was made in this transaction from a fresh random id (an
    alert's, a case history line's), so no stored row can hold it: the rows are inserted
    without the ``ON CONFLICT`` check, which cost DuckDB 3-4 ms a statement (a key stored
    after all fails the statement, and with it the caller's transaction: nothing is lost)."""
    for e in events:
        if not e.key or not e.key.strip():
            raise ValueError("enqueue needs an idempotency key")
    if not events:
        return 0
    now = datetime.now(UTC)
    # a paused (disabled) endpoint's rows are written too: they wait for it (see claim)
    endpoints = tx.fetchall("SELECT id, event_types FROM webhook_endpoints ORDER BY id")
    wanted_users = sorted({u for e in events for u in e.users})
    prefs: dict[str, tuple[str, str]] = {}
    for start in range(0, len(wanted_users), 500):
        chunk = wanted_users[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for username, address, mode in tx.fetchall(
            f"SELECT username, email, mode FROM notification_prefs WHERE username IN ({marks})",
            chunk,
        ):
            prefs[str(username)] = (str(address), str(mode))
    rows: dict[tuple[str, str, str], tuple[str, str]] = {}  # (key, kind, target) -> type, doc
    for e in events:
        doc = orjson.dumps(envelope(e.event_type, e.payload, now)).decode()
        targets: list[tuple[str, str]] = [
            (WEBHOOK, str(endpoint_id))
            for endpoint_id, filt in endpoints
            if (e.endpoints is None or int(endpoint_id) in e.endpoints)
            and matches(filt, e.event_type)
        ]
        targets += [(EMAIL, a.strip()) for a in e.emails if a and a.strip()]
        for username in sorted(set(e.users)):
            address, mode = prefs.get(username, ("", "off"))
            if mode == "immediate":
                targets.append((EMAIL, address))
            elif mode == "digest":
                targets.append((DIGEST, username))
        for kind, target in targets:  # an address named twice is mailed once
            rows.setdefault((e.key, kind, target), (e.event_type, doc))
    if not rows:
        return 0
    cols = (
        "idempotency_key, event_type, payload, created_at, target_kind, target, state, "
        "attempts, next_attempt_at"
    )
    conflict = "RETURNING id"
    if not new_keys:
        conflict = f"ON CONFLICT (idempotency_key, target_kind, target) DO NOTHING {conflict}"
    if len(rows) <= _VALUES_ROWS:
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?, 0, ?)" for _ in rows)
        params: list[Any] = []
        for (key, kind, target), (event_type, doc) in rows.items():
            params += [key, event_type, doc, now, kind, target, PENDING, now]
        written = tx.fetchall(f"INSERT INTO outbox ({cols}) VALUES {values} {conflict}", params)
    else:
        keys = list(rows)
        tx.stage(
            "_outbox_rows",
            pa.table(
                {
                    "k": pa.array([k for k, _, _ in keys], pa.string()),
                    "event_type": pa.array([rows[k][0] for k in keys], pa.string()),
                    "doc": pa.array([rows[k][1] for k in keys], pa.string()),
                    "target_kind": pa.array([kind for _, kind, _ in keys], pa.string()),
                    "target": pa.array([t for _, _, t in keys], pa.string()),
                }
            ),
        )
        written = tx.fetchall(
            f"INSERT INTO outbox ({cols}) SELECT k, event_type, CAST(doc AS {tx.json_type}), ?, "
            f"target_kind, target, '{PENDING}', 0, ? FROM _outbox_rows {conflict}",
            [now, now],
        )
    if written:
        wake()
    return len(written)


# -- redelivery ----------------------------------------------------------------------------
class NotRedeliverableError(CorridorError):
    status_code = 422


def redeliver(store: Store, outbox_id: int) -> Notification:
    """Send a row again (delivered, failed or pending): it is due at once with a fresh budget
    of attempts, and keeps its idempotency key (a receiver that has processed it drops it; for
    an endpoint that takes batches, the event's ``id`` inside a new batch)."""
    with store.transaction() as tx:
        rows = tx.fetchall(
            "SELECT target_kind, state, target, payload FROM outbox WHERE id = ?",
            [outbox_id],
        )
        if not rows:
            raise NotificationNotFoundError(
                f"no notification {outbox_id}; `corridor webhooks deliveries` lists them"
            )
        kind, state, target, payload = rows[0]
        if state == REMAKING:
            raise NotRedeliverableError(
                f"notification {outbox_id} is being made again after a privacy request (the "
                "reports job, within five minutes): it is sent once made"
            )
        if kind == DIGEST or state in (DIGESTED, CANCELLED):
            raise NotRedeliverableError(
                f"notification {outbox_id} is {state} ({kind}): only webhook and e-mail "
                "notifications can be sent again (a digest line goes out in its digest mail)"
            )
        if kind == WEBHOOK and not tx.fetchall(
            "SELECT 1 FROM webhook_endpoints WHERE CAST(id AS VARCHAR) = ?", [str(target)]
        ):
            raise NotRedeliverableError(
                f"notification {outbox_id} was for webhook endpoint {target}, which was removed: "
                "there is nowhere to send it again"
            )
        now = datetime.now(UTC)
        doc = payload if isinstance(payload, dict) else orjson.loads(payload)
        # a report whose content a privacy request withdrew is made again first
        again = REMAKING if "withdrawn" in (doc.get("data") or {}) else PENDING
        tx.execute(
            # sent again alone, or in a new batch (its event keeps its id inside it)
            "UPDATE outbox SET state = ?, attempts = 0, next_attempt_at = ?, lease_owner = NULL, "
            "lease_until = NULL, batch_key = NULL WHERE id = ?",
            [again, now, outbox_id],
        )
    wake()
    return get_notification(store, outbox_id)


def cancel_endpoint_rows(tx: Tx, endpoint_id: int) -> int:
    """Pending rows for a removed endpoint are cancelled (kept, with the reason, in the log;
    ``next_attempt_at`` says when, for the notifications' retention)."""
    return tx.execute(
        "UPDATE outbox SET state = ?, last_error = ?, lease_owner = NULL, lease_until = NULL, "
        "next_attempt_at = ? WHERE target_kind = ? AND target = ? AND state = ?",
        [CANCELLED, "the webhook endpoint was removed", datetime.now(UTC), WEBHOOK,
         str(endpoint_id), PENDING],
    )  # fmt: skip
