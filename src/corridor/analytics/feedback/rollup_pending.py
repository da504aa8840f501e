"""The rollup's upkeep after the commit: a batch of new feedback only queues its records in
``rollup_pending`` (one small insert in its transaction), and a fold, run by the server's
background worker right after (:class:`RollupWorker`), adds their rollup rows later, many
batches at a time.

Why: adding a batch's own rollup rows in its transaction
(:func:`corridor.analytics.feedback.rollup_delta.add_new_feedback`) means looking up each
record's interaction and person by key, which cost a batch of 20 records a quarter more than
its ingest and a batch of 500 more than half at 10 M interactions (docs/benchmarks.md). Queued,
the batch pays for one insert of its keys; the fold pays for the look-ups once for everything
queued meanwhile.

Answers stay exact, what TimescaleDB's real-time aggregates do: a read sums the rollup's rows
and, in the same statement, the rows of the records still queued, computed from the base tables
(:func:`corridor.analytics.feedback.rollup.sums`). A fold takes its records out of the queue
and adds their rows in one transaction, so at any snapshot a record is counted either from the
queue or from the rollup, never both; a refresh that rebuilds a day from the base tables takes
that day's records out of the queue first, in its own transaction
(:func:`corridor.analytics.feedback.rollup.refresh`). A crash leaves the queue as committed: the
next worker to start folds it. On PostgreSQL several processes may fold at once: each adds the
rows of the records its own ``DELETE … RETURNING`` took, and a record is taken once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from corridor.analytics.feedback import rollup, rollup_delta, rollup_rows
from corridor.store.base import Store, Tx
from corridor.workers import PokedWorker

log = logging.getLogger(__name__)

#: records one fold transaction takes from the queue at most
FOLD_MAX = 20_000
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
            "INSERT INTO rollup_pending SELECT unnest(?), unnest(?)",
            [ids.to_pylist(), days.to_pylist()],
        )
        return
    if tx.dialect == "duckdb":
        tx.stage("_rollup_queue", pa.table({"feedback_id": ids, "day": days}))
        tx.execute("INSERT INTO rollup_pending SELECT feedback_id, day FROM _rollup_queue")
        return
    tx.execute(
        "INSERT INTO rollup_pending (feedback_id, day) "
        "SELECT * FROM unnest(CAST(? AS text[]), CAST(? AS date[]))",
        [ids.to_pylist(), days.to_pylist()],
    )


class Handed:
    """Queued batches handed over by the process that wrote them (see
    :meth:`RollupWorker.poke`): their records as written and what their transaction read of
    their interactions and persons, so that the fold need not read them again. A record's row
    is computed from them only if this process's fold takes it from the queue; any change since
    to its interaction or person marked its day for a rebuild, which replaces the row."""

    def __init__(self, batches: list[tuple[pa.Table, Mapping[str, pa.Table]]]) -> None:
        self.rows = pa.concat_tables([b for b, _ in batches], promote_options="permissive")
        self.read: dict[str, pa.Table] = {}
        for name in ("interactions", "people"):  # only when every batch has it
            if all(name in r for _, r in batches):
                self.read[name] = pa.concat_tables([r[name] for _, r in batches])

    def taken(self, ids: list[str]) -> pa.Table:
        """The handed records among ``ids``."""
        wanted = pa.array(ids, pa.string())
        return self.rows.filter(pc.is_in(self.rows.column("feedback_id"), value_set=wanted))


def fold(store: Store, *, most: int = FOLD_MAX, handed: Handed | None = None) -> int:
    """Add the rollup rows of up to ``most`` queued records and take them out of the queue, in
    one transaction; returns how many records were taken (0: the queue is empty). ``handed``:
    records (and look-ups) this process has in hand; the others are read from the store."""
    if not rollup.has_pending(store) or not store.query("SELECT 1 FROM rollup_pending LIMIT 1"):
        return 0  # (a read beside the writer: no write transaction for an empty queue)
    with store.transaction() as tx:
        taken = [
            str(r[0])
            for r in tx.fetchall(
                "DELETE FROM rollup_pending WHERE feedback_id IN "
                "(SELECT feedback_id FROM rollup_pending LIMIT ?) RETURNING feedback_id",
                [most],
            )
        ]
        if not taken:
            return 0
        rest = taken
        if handed is not None:
            mine = handed.taken(taken)
            if mine.num_rows:
                rollup_delta.add_new_feedback(
                    store,
                    tx,
                    mine,
                    handed.read.get("people"),
                    handed.read.get("interactions"),
                )
                got = set(mine.column("feedback_id").cast(pa.string()).to_pylist())
                rest = [i for i in taken if i not in got]
        # (a record erased meanwhile is gone from feedback: nothing to add for it)
        rows = rollup_rows.feedback_of(tx, rest) if rest else None
        if rows is not None and rows.num_rows:
            rollup_delta.add_new_feedback(store, tx, rows)
        # No answer changes: its records move from the queue's rows to the rollup's. So the
        # store's data version stays (kept answers stay as fresh as they were).
        tx.touched.difference_update(("feedback_rollup", "rollup_pending"))
    return len(taken)


def fold_all(store: Store, handed: Handed | None = None) -> int:
    """Fold until the queue is empty (records queued meanwhile included); returns how many."""
    done = 0
    while n := fold(store, handed=handed):
        done += n
    return done


def waiting(store: Store) -> int:
    """How many records wait for the fold (a read)."""
    return store.count("rollup_pending") if rollup.has_pending(store) else 0


class RollupWorker(PokedWorker):
    """The server's fold: poked after each committed batch that queued records (settling a
    little, so that the batches of that moment are folded together), and every ``interval``
    seconds; its first round folds what a stopped server left queued."""

    #: records handed over and not yet folded are kept up to this many; past it they are
    #: dropped and the fold reads its records from the store instead
    KEEP = 50_000

    def __init__(self, store: Store, *, interval: float = 30.0, settle: float = 0.2) -> None:
        super().__init__(self._fold, name="corridor-rollup", interval=interval, settle=settle)
        self.store = store
        self.folded = 0
        self._lock = threading.Lock()
        self._handed: list[tuple[pa.Table, Mapping[str, pa.Table]]] = []
        self._kept = 0

    def poke(
        self, rows: pa.Table | None = None, read: Mapping[str, pa.Table] | None = None
    ) -> None:
        """Records were queued: fold them soon. ``rows``: the committed batch's records (as
        :func:`queue` took them, with the columns the rollup reads); ``read``: the batch's
        interactions and persons its transaction read already (``interactions``, ``people``)."""
        if rows is not None:
            with self._lock:
                if self._kept + rows.num_rows <= self.KEEP:
                    self._handed.append((rows, dict(read or {})))
                    self._kept += rows.num_rows
        super().poke()

    def _fold(self) -> None:
        with self._lock:
            batches, self._handed, self._kept = self._handed, [], 0
        # (after fold_all the queue was empty: every record handed before it was taken)
        self.folded += fold_all(self.store, Handed(batches) if batches else None)


__all__ = ["FOLD_MAX", "Handed", "RollupWorker", "fold", "fold_all", "queue", "waiting"]
