"""The rollup's queue: a batch of new feedback written by a server only queues its records in
``rollup_pending`` (one small insert in its transaction); the work after the commit
(:mod:`corridor.ingest.after_commit`) adds their rollup rows and fires their record rules later,
many batches at a time.

Why: adding a batch's own rollup rows in its transaction
(:func:`corridor.analytics.feedback.rollup_delta.add_new_feedback`) means looking up each
record's interaction and person by key, which cost a batch of 20 records a quarter more than
its ingest and a batch of 500 more than half at 10 M interactions (docs/benchmarks.md). Queued,
the batch pays for one insert of its keys.

Answers stay exact, what TimescaleDB's real-time aggregates do: a read sums the rollup's rows
and, in the same statement, the rows of the records still queued, computed from the base tables
(:func:`corridor.analytics.feedback.rollup.sums`). The fold takes its records out of the queue
and adds their rows in one transaction, so at any snapshot a record is counted either from the
queue or from the rollup, never both. A refresh that rebuilds a day from the base tables marks
that day's queued records ``rolled`` first, in its own transaction
(:func:`corridor.analytics.feedback.rollup.refresh`): reads no longer add them, and the fold
adds no row for them (their record rules still wait)."""

from __future__ import annotations

import pyarrow as pa

from corridor.analytics.feedback import rollup
from corridor.store.base import Store, Tx

#: records one fold transaction takes from the queue at most
FOLD_MAX = 250
#: DuckDB: a batch of up to this many records is queued as two lists (0.4 ms for 20 records),
#: more as a staged table (0.7 ms for 20, 1.1 ms for 500; lists 1.5 ms)
_LISTED = 100


def queue(tx: Tx, rows: pa.Table) -> None:
    """Queue the new feedback records ``rows`` (``feedback_id``, ``occurred_at``) for the fold,
    in their batch's transaction."""
    ids = rows.column("feedback_id").cast(pa.string())
    days = rows.column("occurred_at").cast(pa.timestamp("us", tz="UTC")).cast(pa.date32())
    if tx.dialect == "duckdb" and rows.num_rows <= _LISTED:
        tx.execute(
            "INSERT INTO rollup_pending (feedback_id, day) SELECT unnest(?), unnest(?)",
            [ids.to_pylist(), days.to_pylist()],
        )
        return
    if tx.dialect == "duckdb":
        tx.stage("_rollup_queue", pa.table({"feedback_id": ids, "day": days}))
        tx.execute(
            "INSERT INTO rollup_pending (feedback_id, day) "
            "SELECT feedback_id, day FROM _rollup_queue"
        )
        return
    tx.execute(
        "INSERT INTO rollup_pending (feedback_id, day) "
        "SELECT * FROM unnest(CAST(? AS text[]), CAST(? AS date[]))",
        [ids.to_pylist(), days.to_pylist()],
    )


def take(tx: Tx, most: int = FOLD_MAX) -> list[tuple[str, bool]]:
    """Take up to ``most`` records out of the queue, in ``tx``: each record's id and whether a
    refresh added its rollup rows already (``rolled``). On PostgreSQL, of several transactions
    taking at once each gets the records its own ``DELETE`` removed: a record is taken once,
    and records another transaction is taking are skipped (``SKIP LOCKED``), so folds running at
    once take different records rather than all but one coming away empty."""
    skip = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgres" else ""
    return [
        (str(i), bool(rolled))
        for i, rolled in tx.fetchall(
            "DELETE FROM rollup_pending WHERE feedback_id IN "
            f"(SELECT feedback_id FROM rollup_pending LIMIT ?{skip}) RETURNING feedback_id, rolled",
            [most],
        )
    ]


def empty(store: Store) -> bool:
    """Whether no record waits in the queue (a read beside the writer: no write transaction is
    begun to find out); True for a store without the queue."""
    return not rollup.has_pending(store) or not store.query("SELECT 1 FROM rollup_pending LIMIT 1")


def waiting(store: Store) -> int:
    """How many records wait for the work after the commit (a read)."""
    return store.count("rollup_pending") if rollup.has_pending(store) else 0


__all__ = ["FOLD_MAX", "empty", "queue", "take", "waiting"]
