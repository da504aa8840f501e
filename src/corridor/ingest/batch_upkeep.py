"""A batch being written, and what its writing does for the feedback rollup: its records
staged when SQL asks for them by name, its new feedback's rollup rows added (or queued for the
fold after the commit), or the days it may change marked dirty (see
:mod:`corridor.analytics.feedback.rollup`). Used by :mod:`corridor.ingest.pipeline`."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from corridor.domain.contract import RecordKind
from corridor.store.base import Store, Tx


class Staged:
    """A batch's records, staged as ``_batch`` when something first asks for them by name (the
    rollup marks and record rules read them in SQL): a plain insert copies them straight into
    their table and often needs no staged copy at all."""

    def __init__(self, tx: Tx, rows: pa.Table) -> None:
        self._tx = tx
        self.rows = rows
        self._staged = False
        #: the batch's rows of other tables read in its transaction already (table → rows: the
        #: rollup's look-ups of its interactions and persons)
        self.read: Mapping[str, pa.Table] = {}
        self._read_staged: dict[str, str] = {}
        #: its records were queued for the rollup's fold
        self.queued = False

    def looked_up(self) -> dict[str, str]:
        """:attr:`read`, staged until the transaction ends (table → staged name) on DuckDB,
        when something first asks for them (the record rules read them instead of the whole
        tables; PostgreSQL's rules look each key up themselves)."""
        if self._tx.dialect == "duckdb":
            for table, rows in self.read.items():
                if table not in self._read_staged:
                    self._read_staged[table] = f"_rollup_{table}"
                    self._tx.stage(self._read_staged[table], rows)
        return self._read_staged

    def __call__(self) -> str:
        if not self._staged:
            self._tx.stage("_batch", self.rows)
            self._staged = True
        return "_batch"


def delta_candidate(kind: RecordKind, valid: pa.Table, store: Store | None) -> bool:
    """Whether the batch may add its own rollup rows (:func:`add_to_rollup`), should its
    records all be new: then its persons' dimensions are read with their existence."""
    if kind.name != "feedback" or store is None:
        return False
    from corridor.analytics.feedback import rollup_delta

    return valid.num_rows <= rollup_delta.DELTA_MAX


def add_to_rollup(
    tx: Tx,
    kind: RecordKind,
    batch: Staged,
    store: Store | None,
    *,
    all_new: bool,
    people: pa.Table | None = None,
    queue: bool = False,
) -> bool:
    """Add the rollup rows of a batch of new feedback records in its transaction (see
    :func:`corridor.analytics.feedback.rollup_delta.add_new_feedback`; ``people``: its persons'
    dimensions, read by :func:`_ensure_people`); False when the batch is not one (a bulk
    import: ``store`` None; records stored before, or persons merged: their stored feedback's
    days are rebuilt), or too big for looking its keys up one by one. ``queue``: its records
    are queued for the work after the commit instead (:mod:`corridor.ingest.after_commit`:
    their rollup rows and record rules), with its persons' dimensions in :attr:`Staged.read`."""
    if not all_new or not delta_candidate(kind, batch.rows, store):
        return False
    from corridor.analytics.feedback import rollup_delta, rollup_pending

    assert store is not None
    if queue:
        rollup_pending.queue(tx, batch.rows)
        batch.read = {} if people is None else {"people": people}
        batch.queued = True
        return True
    batch.read = rollup_delta.add_new_feedback(store, tx, batch.rows, people)
    return True


MARK = "INSERT INTO rollup_dirty (day) SELECT DISTINCT CAST(occurred_at AS DATE) FROM "


def mark_rollup_dirty(tx: Tx, kind: RecordKind, batch: Staged) -> None:
    """Mark the UTC days whose feedback rollup rows the batch may change (see
    :mod:`corridor.analytics.feedback.rollup`): a feedback batch its own days; an interactions batch
    the days of stored feedback about those interactions (feedback that arrived first). Nothing to
    do while no feedback is stored (a first import loads feedback last)."""
    if kind.name == "feedback":
        tx.execute(f"{MARK}{batch()} ON CONFLICT (day) DO NOTHING")
    elif kind.name == "interactions" and tx.fetchall("SELECT 1 FROM feedback LIMIT 1"):
        tx.execute(
            f"{MARK}feedback WHERE interaction_id IN (SELECT interaction_id FROM {batch()}) "
            "ON CONFLICT (day) DO NOTHING"
        )


def mark_rollup_people(tx: Tx) -> None:
    """Before the staged ``_people`` are upserted: mark the days of stored feedback by persons
    whose segment or region the upsert will change (a profile sync that changes nothing marks
    nothing; a field left empty keeps its value, as in :func:`_upsert_people`)."""
    if not tx.fetchall("SELECT 1 FROM feedback LIMIT 1"):
        return
    tx.execute(
        f"{MARK}feedback WHERE person_id IN (SELECT s.person_id FROM _people s "
        "JOIN people p ON p.person_id = s.person_id "
        "WHERE (s.segment IS NOT NULL AND s.segment IS DISTINCT FROM p.segment) "
        "OR (s.region IS NOT NULL AND s.region IS DISTINCT FROM p.region)) "
        "ON CONFLICT (day) DO NOTHING"
    )


__all__ = [
    "MARK",
    "Staged",
    "add_to_rollup",
    "delta_candidate",
    "mark_rollup_dirty",
    "mark_rollup_people",
]
