"""The work after the commit of a server's feedback batches: each batch of new feedback only
queues its records (:func:`corridor.analytics.feedback.rollup_pending.queue`, in its
transaction); :func:`fold` then takes queued records out of the queue and, in that same
transaction, adds their rollup rows and fires their record rules. A server runs it in a worker
right after each commit (:class:`AfterCommitWorker`), the batches of the same moment together.

Each record is taken from the queue once (on PostgreSQL too, where several processes may fold
at once: each works on what its own ``DELETE … RETURNING`` took), so its rollup rows are added
once and its rules fire once, and the alerts, cases and notifications they raise commit with its
removal from the queue or not at all: a crash leaves it queued, and the next server to start
folds it. Answers count queued records from the base tables meanwhile (exact). Rules see the
record as the batch's transaction would have, a fraction of a second later: its interaction,
person and touch point as stored when the fold runs.

What it costs and saves: docs/benchmarks.md (rollup upkeep, closed loop)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from corridor.analytics.feedback import rollup_delta, rollup_pending, rollup_rows
from corridor.ingest.batch_upkeep import Staged
from corridor.loop import record_rules
from corridor.store.base import Store, Tx
from corridor.workers import PokedWorker


class Handed:
    """Queued batches handed over by the process that wrote them (see
    :meth:`AfterCommitWorker.poke`): their records as written and
    what their transaction read of their interactions and persons, so that the fold need not
    read them again. A record's row is computed from them only if this process's fold takes it
    from the queue; any change since to its interaction or person marked its day for a rebuild,
    which replaces the row."""

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


def fold(
    store: Store,
    *,
    most: int = rollup_pending.FOLD_MAX,
    handed: Handed | None = None,
    texts_analysed: bool = False,
) -> int:
    """Take up to ``most`` queued records and, in the same transaction, add their rollup rows
    (those a refresh did not rebuild already) and fire their record rules; returns how many
    were taken (0: the queue is empty). ``handed``: records (and what their batch read of their
    persons and interactions) this process has in hand; the others are read from the store.
    ``texts_analysed``: the texts were analysed with their batch (the text rules fire here),
    else the text rules fire when the analysis is stored."""
    if rollup_pending.empty(store):
        return 0
    with store.transaction() as tx:
        taken = rollup_pending.take(tx, most)
        if not taken:
            return 0
        rows, read = _records(tx, [i for i, _ in taken], handed)
        if rows.num_rows:  # (a record erased meanwhile is gone from feedback: nothing to do)
            rolled = pa.array([i for i, r in taken if r], pa.string())
            new = rows.filter(pc.invert(pc.is_in(rows.column("feedback_id"), value_set=rolled)))
            if new.num_rows:
                rollup_delta.add_new_feedback(store, tx, new, read["people"], read["interactions"])
            # No answer changes by the rollup rows: their records move from the queue's rows to
            # the rollup's. So the data version stays (kept answers stay as fresh as they were).
            tx.touched.difference_update(("feedback_rollup", "rollup_pending"))
            _fire(tx, rows, read, texts_analysed)
        else:
            tx.touched.difference_update(("rollup_pending",))
    return len(taken)


def fold_all(
    store: Store,
    handed: Handed | None = None,
    *,
    texts_analysed: bool = False,
    each: Callable[[int], None] | None = None,
) -> int:
    """Fold until the queue is empty (records queued meanwhile included); returns how many.
    ``each``: told how many records each fold took, as it commits."""
    done = 0
    while n := fold(store, handed=handed, texts_analysed=texts_analysed):
        done += n
        if each is not None:
            each(n)
    return done


def _records(tx: Tx, ids: list[str], handed: Handed | None) -> tuple[pa.Table, dict[str, pa.Table]]:
    """The records ``ids`` (as stored, or as handed over) and their interactions and persons."""
    parts = []
    rest = ids
    if handed is not None:
        mine = handed.taken(ids)
        if mine.num_rows:
            parts.append(mine.select(list(rollup_rows.FEEDBACK_COLUMNS)))
            got = set(mine.column("feedback_id").cast(pa.string()).to_pylist())
            rest = [i for i in ids if i not in got]
    if rest or not parts:
        parts.append(rollup_rows.feedback_of(tx, rest))
    rows = pa.concat_tables(parts, promote_options="permissive")
    # what the batches read covers their records only: with any record read here, read all
    known = handed.read if handed is not None and not rest else {}
    interactions = known.get("interactions")
    people = known.get("people")
    read = {
        "interactions": rollup_rows.interactions_of(tx, rows)
        if interactions is None
        else interactions,
        "people": rollup_rows.people_of(tx, rows, people),
    }
    return rows, read


def _fire(tx: Tx, rows: pa.Table, read: dict[str, pa.Table], texts_analysed: bool) -> None:
    """The record rules on the records ``rows``, in the fold's transaction."""
    batch = Staged(tx, rows)
    batch.read = read
    record_rules.evaluate_batch(
        tx,
        "feedback",
        datetime.now(UTC),
        staged=batch,
        texts_analysed=texts_analysed,
        tables=batch.looked_up,
        batch=rows,
        read=read,
    )


class AfterCommitWorker(PokedWorker):
    """A server's work after the commit: poked after each committed batch that queued records
    (settling a little, so that the batches of that moment are folded together), and every
    ``interval`` seconds; its first round folds what a stopped server left queued, and a server
    that stops folds what was poked before it stops."""

    #: records handed over and not yet folded are kept up to this many; past it they are
    #: dropped and the fold reads its records from the store instead
    KEEP = 50_000

    def __init__(
        self,
        store: Store,
        *,
        texts_analysed: bool = False,
        interval: float = 30.0,
        settle: float = 0.05,
    ) -> None:
        super().__init__(
            self._fold, name="corridor-after-commit", interval=interval, settle=settle, drain=True
        )
        self.store = store
        self.texts_analysed = texts_analysed
        self.folded = 0
        self._lock = threading.Lock()
        self._handed: list[tuple[pa.Table, Mapping[str, pa.Table]]] = []
        self._kept = 0
        #: records poked, and those of them known taken from the queue (see behind())
        self._records_poked = 0
        self._records_taken = 0

    def poke(
        self, rows: pa.Table | None = None, read: Mapping[str, pa.Table] | None = None
    ) -> None:
        """Records were queued: fold them soon. ``rows``: the committed batch's records (as
        written); ``read``: its persons (``people``) and interactions as its transaction read
        them, if it did."""
        if rows is not None:
            with self._lock:
                self._records_poked += rows.num_rows
                if self._kept + rows.num_rows <= self.KEEP:
                    self._handed.append((rows, dict(read or {})))
                    self._kept += rows.num_rows
        super().poke()

    def _fold(self) -> None:
        with self._lock:
            batches, self._handed, self._kept = self._handed, [], 0
            poked = self._records_poked
        # (once the queue is empty, every record handed before this round was taken)
        handed = Handed(batches) if batches else None
        fold_all(self.store, handed, texts_analysed=self.texts_analysed, each=self._took)
        # a fold that took nothing may have lost a race for the same records to another
        # process's (PostgreSQL): only an empty queue says every record poked before this round
        # was taken, here or there
        if rollup_pending.empty(self.store):
            with self._lock:
                self._records_taken = max(self._records_taken, poked)

    def _took(self, n: int) -> None:
        with self._lock:
            self.folded += n
            self._records_taken = min(self._records_poked, self._records_taken + n)

    def behind(self) -> int:
        """How many records this process queued and the fold has not taken yet: a writer past
        :data:`corridor.ingest.pipeline.QUEUE_BEHIND_MAX` does its batch's work itself, so the
        queue (and the time from a commit to its alerts) stays bounded when rules fire on most
        records. Records another process's fold took (PostgreSQL) count as taken once a round
        of this process's ends with the queue empty."""
        with self._lock:
            return self._records_poked - self._records_taken


__all__ = ["AfterCommitWorker", "Handed", "fold", "fold_all"]
