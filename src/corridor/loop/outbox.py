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
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from corridor.errors import CorridorError
from corridor.store.base import Store, Tx

__all__ = [
    "Attempt",
    "DeliveryAttempt",
    "DispatchReport",
    "Event",
    "Notification",
    "NotificationNotFoundError",
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

_TS = pa.timestamp("us", tz="UTC")

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
STATES = (PENDING, DELIVERED, FAILED, DIGESTED, CANCELLED)
#: the longest wait between two attempts
MAX_DELAY_S = 6 * 3600.0
#: each retry waits this many times longer than the one before
BACKOFF_FACTOR = 3.0

_COLUMNS = (
    "id, idempotency_key, event_type, payload, created_at, target_kind, target, state, "
    "attempts, next_attempt_at, lease_owner, lease_until, last_error, delivered_at"
)


class NotificationNotFoundError(CorridorError):
    """No outbox row with that id."""

    status_code = 404


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


def enqueue_many(tx: Tx, events: Sequence[Event]) -> int:
    """:func:`enqueue` for several events at once, as one write: the endpoints and the users'
    preferences are read once, and every row goes in with one ``INSERT`` (a batch of alerts
    and cases notifies in a few statements, not a few per event). Returns the rows written."""
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
    conflict = "ON CONFLICT (idempotency_key, target_kind, target) DO NOTHING RETURNING id"
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
        json_type = "JSONB" if tx.dialect == "postgres" else "JSON"
        written = tx.fetchall(
            f"INSERT INTO outbox ({cols}) SELECT k, event_type, CAST(doc AS {json_type}), ?, "
            f"target_kind, target, '{PENDING}', 0, ? FROM _outbox_rows {conflict}",
            [now, now],
        )
    if written:
        wake()
    return len(written)


# -- claim, send, finish ----------------------------------------------------------------------
def claim(
    store: Store,
    owner: str,
    *,
    kinds: Sequence[str] = (WEBHOOK, EMAIL),
    limit: int = 8,
    lease_s: float = 60.0,
    now: datetime | None = None,
    exclusive: bool = False,
) -> list[Notification]:
    """Claim up to ``limit`` due rows of ``kinds`` for ``owner`` for ``lease_s`` seconds, and
    count the attempt. The one way rows are taken for sending.

    Due: pending, its next attempt time reached, and not claimed by a live lease. On PostgreSQL
    the rows are picked ``FOR UPDATE SKIP LOCKED``, so processes claiming at once take different
    rows; on DuckDB one process holds the file, and the store's write lock (one write
    transaction at a time) keeps two claims in it apart. A claim whose owner died runs out after
    ``lease_s`` and the row is due again; ``exclusive``: the caller is the only sender now (the
    scheduler's dispatch job, which runs in one process at a time), so a claim of another owner
    is a dead run's and is taken over at once."""
    now = now or datetime.now(UTC)
    until = now + timedelta(seconds=lease_s)
    kind_marks = ", ".join("?" for _ in kinds)
    others = " OR lease_owner <> ?" if exclusive else ""
    # a disabled endpoint's rows wait (paused, not cancelled) until it is enabled again
    paused = (
        f"(target_kind <> '{WEBHOOK}' OR target IN "
        "(SELECT CAST(id AS VARCHAR) FROM webhook_endpoints WHERE enabled))"
    )
    due = (
        f"state = '{PENDING}' AND target_kind IN ({kind_marks}) AND next_attempt_at <= ? "
        f"AND (lease_until IS NULL OR lease_until < ?{others}) AND {paused}"
    )
    with store.transaction() as tx:
        lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgres" else ""
        ids = [
            int(r[0])
            for r in tx.fetchall(
                f"SELECT id FROM outbox WHERE {due} ORDER BY next_attempt_at, id LIMIT ?{lock}",
                [*kinds, now, now, *([owner] if exclusive else []), limit],
            )
        ]
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        tx.execute(
            "UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 "
            f"WHERE id IN ({marks})",
            [owner, until, *ids],
        )
        rows = tx.fetchall(f"SELECT {_COLUMNS} FROM outbox WHERE id IN ({marks}) ORDER BY id", ids)
    return [Notification.of(r) for r in rows]


def retry_delay(attempt: int, base_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): ``base_s`` times
    3^(attempt-1), at most 6 hours, with ±20 % jitter so that retries of many rows spread out."""
    exp = min(attempt - 1, 60)
    delay = min(MAX_DELAY_S, base_s * math.pow(BACKOFF_FACTOR, exp))
    return delay * (rng or random).uniform(0.8, 1.2)


def finish(
    store: Store,
    row: Notification,
    attempt: Attempt,
    *,
    owner: str,
    max_attempts: int,
    base_s: float,
    now: datetime | None = None,
) -> str:
    """Record one attempt on ``row`` (claimed by ``owner``): the delivery log line, and the row's
    new state (delivered; pending again after a delay; failed). Returns that state."""
    return finish_many(
        store, [(row, attempt)], owner=owner, max_attempts=max_attempts, base_s=base_s, now=now
    )[0]


def _outcome(
    row: Notification, attempt: Attempt, max_attempts: int, base_s: float, now: datetime
) -> tuple[str, datetime, str | None]:
    """The row's next state, next attempt time and error after ``attempt``."""
    if attempt.ok:
        return DELIVERED, now, None
    if attempt.retry and row.attempts < max_attempts:
        delay = retry_delay(row.attempts, base_s)
        if attempt.retry_after_s is not None:
            delay = min(MAX_DELAY_S, max(attempt.retry_after_s, 0.0))
        return PENDING, now + timedelta(seconds=delay), attempt.error
    if attempt.retry:
        return FAILED, now, f"{attempt.error} (gave up after {row.attempts} attempts)"
    return FAILED, now, attempt.error


def finish_many(
    store: Store,
    done: Sequence[tuple[Notification, Attempt]],
    *,
    owner: str,
    max_attempts: int,
    base_s: float,
    now: datetime | None = None,
) -> list[str]:
    """:func:`finish` for several rows, in one transaction (the dispatcher records a round of
    parallel sends at once); returns each row's new state."""
    if not done:
        return []
    now = now or datetime.now(UTC)
    outcomes = [_outcome(row, attempt, max_attempts, base_s, now) for row, attempt in done]
    ids = sorted({row.id for row, _ in done})
    marks = ", ".join("?" for _ in ids)
    with store.transaction() as tx:
        number = {
            int(outbox_id): int(n)
            for outbox_id, n in tx.fetchall(
                f"SELECT outbox_id, max(attempt) FROM deliveries WHERE outbox_id IN ({marks}) "
                "GROUP BY outbox_id",
                ids,
            )
        }
        log_rows, updates = [], []
        for (row, attempt), (state, next_at, error) in zip(done, outcomes, strict=True):
            number[row.id] = number.get(row.id, 0) + 1
            log_rows += [
                row.id, number[row.id], now, attempt.status_code, attempt.duration_ms,
                attempt.error,
            ]  # fmt: skip
            updates.append((row.id, state, next_at, error, now if attempt.ok else None))
        values = ", ".join("(?, ?, ?, ?, ?, ?)" for _ in done)
        tx.execute(
            "INSERT INTO deliveries (outbox_id, attempt, attempted_at, status_code, duration_ms, "
            f"error) VALUES {values}",
            log_rows,
        )
        tx.stage(
            "_finished",
            pa.table(
                {
                    "id": pa.array([u[0] for u in updates], pa.int64()),
                    "state": pa.array([u[1] for u in updates], pa.string()),
                    "next_at": pa.array([u[2] for u in updates], _TS),
                    "error": pa.array([u[3] for u in updates], pa.string()),
                    "delivered_at": pa.array([u[4] for u in updates], _TS),
                }
            ),
        )
        tx.execute(
            "UPDATE outbox SET state = f.state, next_attempt_at = f.next_at, "
            "last_error = f.error, delivered_at = f.delivered_at, lease_owner = NULL, "
            "lease_until = NULL FROM _finished f WHERE outbox.id = f.id "
            "AND outbox.lease_owner = ? AND outbox.state = ?",
            [owner, PENDING],
        )
    return [state for state, _, _ in outcomes]


@dataclass
class DispatchReport:
    """What one :func:`dispatch` run did."""

    sent: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    #: seconds from each delivered row's creation to its delivery
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.sent} sent: {self.delivered} delivered, {self.retrying} to retry, "
            f"{self.failed} failed"
        )


def _send(sender: Sender | None, row: Notification) -> Attempt:
    if sender is None:
        return Attempt(False, error=f"no sender for {row.target_kind} notifications", retry=True)
    try:
        return sender(row)
    except Exception as e:  # a sender's bug is one failed attempt, never a lost row
        log.exception("sending outbox row %s failed", row.id)
        return Attempt(False, error=f"{type(e).__name__}: {e}", retry=True)


def dispatch(
    store: Store,
    senders: Mapping[str, Sender],
    *,
    owner: str,
    max_attempts: int = 8,
    base_s: float = 10.0,
    lease_s: float = 60.0,
    workers: int = 16,
    stop: threading.Event | None = None,
    exclusive: bool = False,
) -> DispatchReport:
    """Send every due row: claim a few (``workers``) at a time, send them in parallel, record
    each outcome, until none is due (or ``stop`` is set). ``exclusive``: see :func:`claim`."""
    report = DispatchReport()
    kinds = tuple(senders)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="corridor-send") as pool:
        while stop is None or not stop.is_set():
            rows = claim(
                store, owner, kinds=kinds, limit=workers, lease_s=lease_s, exclusive=exclusive
            )
            if not rows:
                break
            outcomes = list(pool.map(lambda r: _send(senders.get(r.target_kind), r), rows))
            states = finish_many(
                store,
                list(zip(rows, outcomes, strict=True)),
                owner=owner,
                max_attempts=max_attempts,
                base_s=base_s,
            )
            for row, state in zip(rows, states, strict=True):
                report.sent += 1
                if state == DELIVERED:
                    report.delivered += 1
                    report.latencies.append((datetime.now(UTC) - row.created_at).total_seconds())
                elif state == PENDING:
                    report.retrying += 1
                else:
                    report.failed += 1
    return report


# -- reading and redelivery -------------------------------------------------------------------
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
        f"SELECT {_COLUMNS} FROM outbox {clause}ORDER BY id DESC LIMIT ?", [*params, limit]
    )
    return [Notification.of(r) for r in rows]


def get_notification(store: Store, outbox_id: int) -> Notification:
    rows = store.query(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", [outbox_id])
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


class NotRedeliverableError(CorridorError):
    status_code = 422


def redeliver(store: Store, outbox_id: int) -> Notification:
    """Send a row again (delivered, failed or pending): it is due at once with a fresh budget
    of attempts, and keeps its idempotency key (a receiver that has processed it drops it)."""
    with store.transaction() as tx:
        rows = tx.fetchall("SELECT target_kind, state FROM outbox WHERE id = ?", [outbox_id])
        if not rows:
            raise NotificationNotFoundError(
                f"no notification {outbox_id}; `corridor webhooks deliveries` lists them"
            )
        kind, state = rows[0]
        if kind == DIGEST or state in (DIGESTED, CANCELLED):
            raise NotRedeliverableError(
                f"notification {outbox_id} is {state} ({kind}): only webhook and e-mail "
                "notifications can be sent again (a digest line goes out in its digest mail)"
            )
        now = datetime.now(UTC)
        tx.execute(
            "UPDATE outbox SET state = ?, attempts = 0, next_attempt_at = ?, lease_owner = NULL, "
            "lease_until = NULL WHERE id = ?",
            [PENDING, now, outbox_id],
        )
    wake()
    return get_notification(store, outbox_id)


def cancel_endpoint_rows(tx: Tx, endpoint_id: int) -> int:
    """Pending rows for a removed endpoint are cancelled (kept, with the reason, in the log)."""
    return tx.execute(
        "UPDATE outbox SET state = ?, last_error = ?, lease_owner = NULL, lease_until = NULL "
        "WHERE target_kind = ? AND target = ? AND state = ?",
        [CANCELLED, "the webhook endpoint was removed", WEBHOOK, str(endpoint_id), PENDING],
    )
