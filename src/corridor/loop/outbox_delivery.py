"""Delivering the outbox: claiming due rows under a lease, sending them in parallel, recording
each outcome (delivered; retried later with exponential backoff and jitter; failed) — see
:mod:`corridor.loop.outbox`."""

from __future__ import annotations

import logging
import math
import random
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from corridor.loop.outbox_rows import (
    COLUMNS,
    DELIVERED,
    EMAIL,
    FAILED,
    PENDING,
    WEBHOOK,
    Attempt,
    BatchSender,
    Notification,
    Sender,
)
from corridor.store.base import Store, Tx

#: the outbox's logger (its messages keep the name they had before the module was split)
log = logging.getLogger("corridor.loop.outbox")

_TS = pa.timestamp("us", tz="UTC")
#: the longest wait between two attempts
MAX_DELAY_S = 6 * 3600.0
#: each retry waits this many times longer than the one before
BACKOFF_FACTOR = 3.0


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

    Rows for an endpoint that takes batches (``batch_max`` > 1) are claimed by batch: a row sent
    before brings the rest of its batch (``batch_key``), and rows claimed for the first time are
    put into batches of at most ``batch_max``, written in the claim's transaction, so every
    retry sends the same events under the same webhook-id (see :func:`dispatch`).

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
        # the due rows read whole at once (a claim takes up to 2,000; usually a few)
        rows = tx.fetchall(
            f"SELECT {COLUMNS} FROM outbox WHERE {due} ORDER BY next_attempt_at, id LIMIT ?{lock}",
            [*kinds, now, now, *([owner] if exclusive else []), limit],
        )
        if not rows:
            return []
        sent_before = sorted({str(r[14]) for r in rows if r[14] is not None})
        if sent_before:
            # the rest of the batches these rows were sent in before (a batch is retried whole);
            # the ids staged, not a parameter each: a statement with thousands of parameters is
            # planned slowly (tens of ms on DuckDB)
            picked = tx.stage_keys("_claim_picked", [int(r[0]) for r in rows])
            batches = tx.stage_keys("_claim_batches", sent_before)
            free = "lease_until IS NULL OR lease_until < ?" + (
                " OR lease_owner <> ?" if exclusive else ""
            )
            rows += tx.fetchall(
                f"SELECT {COLUMNS} FROM outbox WHERE state = '{PENDING}' AND id NOT IN "
                f"({picked}) AND ({free}) AND batch_key IN ({batches}){lock}",
                [now, *([owner] if exclusive else [])],
            )
        rows.sort(key=lambda r: int(r[0]))  # in id order, as batches are formed
        keys = _batch_keys(tx, rows)
        _lease(tx, [int(r[0]) for r in rows], keys, owner, until)
        return [
            Notification.of(
                (*r[:8], int(r[8]) + 1, r[9], owner, until, *r[12:14],
                 keys.get(int(r[0]), r[14]))
            )
            for r in rows
        ]  # fmt: skip


#: a claim whose rows fall into at most this many groups (a new batch each, or none) leases each
#: group with one ``UPDATE`` by its ids; more, with one ``UPDATE`` from a staged table
_LEASE_GROUPS = 3


def _lease(
    tx: Tx, ids: Sequence[int], keys: Mapping[int, str], owner: str, until: datetime
) -> None:
    """Lease the claimed rows ``ids`` to ``owner`` until ``until``, count the attempt and set the
    new batch keys ``keys`` (id → key): a statement per group of rows (their ids an integer
    list, which PostgreSQL takes as an array literal, nothing staged), or for many groups one
    statement joining a staged table."""
    groups: dict[str | None, list[int]] = {}
    for outbox_id in ids:
        groups.setdefault(keys.get(outbox_id), []).append(outbox_id)
    lease = "UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1, "
    if len(groups) <= _LEASE_GROUPS:
        for n, (key, members) in enumerate(groups.items()):
            chosen = tx.stage_keys(f"_claim_group{n}", members)
            tx.execute(
                f"{lease}batch_key = coalesce(?, batch_key) WHERE id IN ({chosen})",
                [owner, until, key],
            )
        return
    tx.stage(
        "_claimed",
        pa.table(
            {
                "id": pa.array(list(ids), pa.int64()),
                "batch_key": pa.array([keys.get(i) for i in ids], pa.string()),
            }
        ),
    )
    tx.execute(
        f"{lease}batch_key = coalesce(c.batch_key, outbox.batch_key) FROM _claimed c "
        "WHERE outbox.id = c.id",
        [owner, until],
    )


def _batch_keys(tx: Tx, rows: Sequence[Sequence[Any]]) -> dict[int, str]:
    """Outbox id → batch key for the ``rows`` (as :data:`COLUMNS` reads them, in id order) sent
    for the first time to an endpoint that takes batches: at most its ``batch_max`` to a batch."""
    first = [r for r in rows if r[5] == WEBHOOK and r[14] is None]
    if not first:
        return {}
    sizes = {
        str(endpoint_id): int(most)
        for endpoint_id, most in tx.fetchall(
            "SELECT id, batch_max FROM webhook_endpoints WHERE batch_max > 1"
        )
    }
    fresh: dict[str, list[int]] = {}
    for r in first:
        if str(r[6]) in sizes:
            fresh.setdefault(str(r[6]), []).append(int(r[0]))
    keys: dict[int, str] = {}
    for target, waiting in fresh.items():
        size = sizes[target]
        for start in range(0, len(waiting), size):
            key = f"batch_{uuid.uuid4().hex}"
            keys.update((outbox_id, key) for outbox_id in waiting[start : start + size])
    return keys


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
    with store.transaction() as tx:
        # staged, not a parameter each (see claim)
        finished = tx.stage_keys("_finished_ids", ids)
        number = {
            int(outbox_id): int(n)
            for outbox_id, n in tx.fetchall(
                f"SELECT outbox_id, max(attempt) FROM deliveries WHERE outbox_id IN ({finished}) "
                "GROUP BY outbox_id"
            )
        }
        attempts: list[int] = []
        for row, _ in done:
            number[row.id] = number.get(row.id, 0) + 1
            attempts.append(number[row.id])
        # one staged row per attempt: its delivery log line and the row's new state
        tx.stage(
            "_finished",
            pa.table(
                {
                    "id": pa.array([row.id for row, _ in done], pa.int64()),
                    "attempt": pa.array(attempts, pa.int32()),
                    "status_code": pa.array([a.status_code for _, a in done], pa.int32()),
                    "duration_ms": pa.array([a.duration_ms for _, a in done], pa.float64()),
                    "attempt_error": pa.array([a.error for _, a in done], pa.string()),
                    "state": pa.array([o[0] for o in outcomes], pa.string()),
                    "next_at": pa.array([o[1] for o in outcomes], _TS),
                    "error": pa.array([o[2] for o in outcomes], pa.string()),
                    "delivered_at": pa.array([now if a.ok else None for _, a in done], _TS),
                }
            ),
        )
        # (a row removed meanwhile, by an erasure, keeps no log of its attempt)
        tx.execute(
            "INSERT INTO deliveries (outbox_id, attempt, attempted_at, status_code, duration_ms, "
            "error) SELECT f.id, f.attempt, ?, f.status_code, f.duration_ms, f.attempt_error "
            "FROM _finished f JOIN outbox o ON o.id = f.id",
            [now],
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
    #: the messages that carried the rows sent (a batch carries several)
    messages: int = 0

    def summary(self) -> str:
        return (
            f"{self.sent} sent: {self.delivered} delivered, {self.retrying} to retry, "
            f"{self.failed} failed"
        )


def _guarded(send: Callable[[], Attempt], what: str) -> Attempt:
    try:
        return send()
    except Exception as e:  # a sender's bug is one failed attempt, never a lost row
        log.exception("sending %s failed", what)
        return Attempt(False, error=f"{type(e).__name__}: {e}", retry=True)


def _send_unit(
    senders: Mapping[str, Sender],
    batch_senders: Mapping[str, BatchSender],
    unit: list[Notification],
) -> Attempt:
    """Send one message: a row alone, or the rows of one batch (one attempt for them all)."""
    first = unit[0]
    if first.batch_key is None:
        sender = senders.get(first.target_kind)
        if sender is None:
            why = f"no sender for {first.target_kind} notifications"
            return Attempt(False, error=why, retry=True)
        return _guarded(lambda: sender(first), f"outbox row {first.id}")
    batch_sender = batch_senders.get(first.target_kind)
    if batch_sender is None:
        return Attempt(False, error=f"no batch sender for {first.target_kind}", retry=True)
    return _guarded(lambda: batch_sender(unit), f"outbox batch {first.batch_key}")


def _units(rows: Sequence[Notification]) -> list[list[Notification]]:
    """The messages of claimed rows: each batch's rows together, every other row alone."""
    units: list[list[Notification]] = []
    batches: dict[str, list[Notification]] = {}
    for r in rows:
        if r.batch_key is None:
            units.append([r])
        elif r.batch_key in batches:
            batches[r.batch_key].append(r)
        else:
            units.append(batches.setdefault(r.batch_key, [r]))
    return units


def dispatch(
    store: Store,
    senders: Mapping[str, Sender],
    *,
    batch_senders: Mapping[str, BatchSender] | None = None,
    owner: str,
    max_attempts: int = 8,
    base_s: float = 10.0,
    lease_s: float = 60.0,
    workers: int = 16,
    batch: int = 64,
    stop: threading.Event | None = None,
    exclusive: bool = False,
) -> DispatchReport:
    """Send every due row: claim ``batch`` at a time, send them ``workers`` in parallel, record
    the batch's outcomes in one transaction, until a claim takes fewer than ``batch`` (or
    ``stop`` is set).
    A claim and a finish are write transactions, queued behind the ingest's: a batch of
    several rows per worker keeps them few when thousands of notifications are due.
    ``lease_s`` covers one attempt; a claim lasts as many as a worker may make in a row.
    ``exclusive``: see :func:`claim`. ``batch_senders``: how rows claimed in a batch (an
    endpoint that takes several events per request) are sent, by target kind."""
    report = DispatchReport()
    grouped = batch_senders or {}
    kinds = tuple(senders)
    rounds = max(1, math.ceil(batch / workers))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="corridor-send") as pool:
        while stop is None or not stop.is_set():
            rows = claim(
                store,
                owner,
                kinds=kinds,
                limit=batch,
                lease_s=lease_s * rounds,
                exclusive=exclusive,
            )
            if not rows:
                break
            # fewer than asked for: nothing more was due at the claim; a row queued since wakes
            # the dispatcher again (the scheduler runs it at once), and a retry falling due
            # meanwhile is taken by its next run, so no empty claim (a write transaction) is
            # made to find that out
            drained = len(rows) < batch
            units = _units(rows)
            attempts = list(pool.map(lambda u: _send_unit(senders, grouped, u), units))
            report.messages += len(units)
            done = [(r, a) for unit, a in zip(units, attempts, strict=True) for r in unit]
            rows = [r for r, _ in done]
            states = finish_many(
                store,
                done,
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
            if drained:
                break
    return report


__all__ = [
    "BACKOFF_FACTOR",
    "MAX_DELAY_S",
    "DispatchReport",
    "claim",
    "dispatch",
    "finish",
    "finish_many",
    "retry_delay",
]
