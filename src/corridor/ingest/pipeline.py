"""Validate → resolve identities → write, in one transaction per batch, idempotent on record ids.

A batch either commits whole (its valid records, their persons, identities and merges, and the
batch's line in ``ingest_batches``) or not at all; when :meth:`Ingestor.ingest` returns, what it
reports as stored is durable. Records whose id is already stored are skipped, so a client that
retries after a lost reply stores nothing twice.

After a committed batch that may have changed the feedback rollup (feedback, interactions,
people), the Ingestor brings the rollup up to date
(:func:`~corridor.analytics.feedback.rollup.refresh`), so reads never have to; inside
:meth:`Ingestor.bulk` (a file import's many chunks) once, at the end. A failed refresh is
logged, never fails the batch, and is tried again after the next commit; meanwhile reads take
the marked days from the base tables. A batch of new feedback adds its own rollup rows in its
transaction (``rollup_upkeep="inline"``) or, in a server (``"background"``), queues its records
for the work that runs after the commit (:mod:`corridor.ingest.after_commit`).

Record rules (:mod:`corridor.loop.record_rules`) are evaluated inside each batch's transaction,
once its records are written: the alerts, cases and notifications they raise commit with the
batch or not at all, on every ingest path (HTTP and file imports alike). A queued batch's
records are evaluated in the transaction that takes them from the queue, right after the
commit, with the same guarantee: each record once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from corridor.domain.contract import RecordKind, get_kind
from corridor.domain.corridor_map import CorridorMap
from corridor.errors import StoreReadOnlyError
from corridor.ingest import identity
from corridor.ingest.batch_upkeep import (
    Staged,
    add_to_rollup,
    delta_candidate,
    mark_rollup_dirty,
    mark_rollup_people,
)
from corridor.ingest.validate import (
    ATTRIBUTES,
    ROW,
    Rejection,
    ValidationResult,
    Validator,
    Vocabularies,
)
from corridor.loop import record_rules
from corridor.privacy import ledger
from corridor.store.base import Store, Tx
from corridor.store.maps import load_map, save_map
from corridor.store.migrations import V3, V5, V9, V13, V16
from corridor.text import intake

#: the schema version that brought the feedback rollup
ROLLUP_VERSION = V3.version
#: the schema version that brought the rollup's queue (upkeep after the commit)
QUEUE_VERSION = V16.version
#: a batch of new feedback is queued only while the work after the commit is behind by fewer
#: records than this (:attr:`Ingestor.rollup_behind`); else the batch does it in its own
#: transaction, which slows the writers down until the queue has caught up
QUEUE_BEHIND_MAX = 500
#: the schema version that brought text analysis (and kept originals)
TEXT_VERSION = V5.version
#: the schema version that brought the erasure ledger (records naming erased people refused)
PRIVACY_VERSION = V13.version
#: the schema version that brought alert rules (record rules run on every committed batch)
LOOP_VERSION = V9.version

_TS = pa.timestamp("us", tz="UTC")
_PEOPLE_PROFILE = ("kind", "created_at", "segment", "region", "attributes")
#: the kinds whose batches mark feedback rollup days dirty
_ROLLUP_KINDS = frozenset({"feedback", "interactions", "people"})

log = logging.getLogger("corridor.ingest")


@dataclass(kw_only=True)
class RecordCounts:
    """What became of records sent in: of a batch (:class:`IngestReport`) or of a file
    (:class:`~corridor.ingest.files.ImportSummary`)."""

    #: valid records, now stored (new ones plus ones already stored)
    accepted: int = 0
    #: of the accepted, how many were new
    inserted: int = 0
    #: of the accepted, how many were already stored (or repeated within the batch or file)
    duplicates: int = 0
    #: records refused (for a file: quarantined)
    rejected: int = 0

    def add_counts(self, other: RecordCounts) -> None:
        """Count ``other``'s records too."""
        for name, n in other.counts().items():
            setattr(self, name, getattr(self, name) + n)

    def counts(self) -> dict[str, int]:
        """The four counts above (a subclass's own fields are not counts), by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(RecordCounts)}


@dataclass
class IngestReport(RecordCounts):
    kind: str
    received: int = 0
    errors: list[Rejection] = field(default_factory=list)
    merges: list[identity.Merge] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        self.received += other.received
        self.add_counts(other)
        self.errors.extend(other.errors)
        self.merges.extend(other.merges)

    def as_dict(self, max_errors: int | None = None) -> dict[str, Any]:
        errors = self.errors if max_errors is None else self.errors[:max_errors]
        return {
            "kind": self.kind,
            "received": self.received,
            **self.counts(),
            "errors": [e.as_dict() for e in errors],
            "errors_truncated": len(errors) < len(self.errors),
            "merges": [
                {
                    "from_person": m.from_person,
                    "into_person": m.into_person,
                    "id_type": m.id_type,
                    "record_id": m.record_id,
                }
                for m in self.merges
            ],
        }


class Ingestor:
    """The one write path for records. Thread-safe; batches are serialised by the store."""

    def __init__(
        self,
        store: Store,
        *,
        keep_original_text: bool = False,
        analyze_text: bool = True,
        rollup_upkeep: Literal["inline", "background"] = "inline",
    ) -> None:
        """``keep_original_text``: keep feedback texts as received (before redaction) in
        ``feedback_text_original``; ``analyze_text``: score feedback texts with the default
        lexicon model inside the ingest transaction (else they are pending, and
        :attr:`on_pending_text`, when set, is called after each committed feedback batch — a
        server's background worker, handed the batch and the text rules' rows of it or None — or
        ``corridor text analyze`` scores them); ``rollup_upkeep``: a batch of new feedback adds
        its rollup rows in its transaction and its record rules fire there (``"inline"``), or it
        queues its records for the work after the commit, rollup rows and record rules
        (``"background"``: :attr:`on_pending_rollup`, when set, is called after each batch that
        queued some, with the batch and its persons as its transaction read them — a server's
        :class:`~corridor.ingest.after_commit.AfterCommitWorker`; reads are exact meanwhile)."""
        self.store = store
        self.rollup_upkeep = rollup_upkeep
        self.on_pending_rollup: Callable[[pa.Table, Mapping[str, pa.Table]], None] | None = None
        #: how many queued records the work after the commit has not taken yet (None: unknown)
        self.rollup_behind: Callable[[], int] | None = None
        self.keep_original_text = keep_original_text
        self.analyze_text = analyze_text
        self.on_pending_text: Callable[[pa.Table, pa.Table | None], None] | None = None
        self._lock = threading.Lock()
        self._map = load_map(store)
        self._validator = Validator(Vocabularies.from_map(self._map))
        self._schema_version: int | None = None
        self._bulk = 0  # open bulk() blocks: rollup refreshes wait for the last to end
        self._bulk_lock = threading.Lock()
        self._refresh_failed = False  # the last rollup refresh failed: retry after any commit

    def close(self) -> None:
        self._validator.close()

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Batches ingested inside leave the feedback rollup to be refreshed once, when the
        (outermost) block ends, instead of after each one: for imports of many chunks."""
        with self._bulk_lock:
            self._bulk += 1
        try:
            yield
        finally:
            with self._bulk_lock:
                self._bulk -= 1
                last = self._bulk == 0
            if last:
                self.refresh_rollup()

    def refresh_rollup(self) -> int:
        """Bring the feedback rollup up to date (rebuild the days marked dirty); returns the
        number of days rebuilt. A failure is logged, not raised: the days stay marked, reads
        answer from the base tables, and the next refresh tries again."""
        if not self._schema_at(ROLLUP_VERSION):
            return 0
        from corridor.analytics.feedback import rollup

        try:
            days = rollup.refresh(self.store)
        except Exception:
            self._refresh_failed = True
            log.exception("refreshing the feedback rollup failed; it is tried again later")
            return 0
        self._refresh_failed = False
        return days

    def _schema_at(self, version: int) -> bool:
        """Whether the store's schema is ``version`` or later (one of the ``*_VERSION`` above);
        the store is asked once."""
        if self._schema_version is None:
            self._schema_version = self.store.schema_version()
        return self._schema_version >= version

    @property
    def corridor_map(self) -> CorridorMap | None:
        return self._map

    def load_map(self, cmap: CorridorMap, *, force: bool = False) -> int:
        version = save_map(self.store, cmap, force=force)
        with self._lock:
            old = self._validator
            self._map = cmap
            self._validator = Validator(Vocabularies.from_map(cmap))
            old.close()
        return version

    def validate(self, kind: str | RecordKind, batch: pa.Table) -> ValidationResult:
        k = get_kind(kind) if isinstance(kind, str) else kind
        with self._lock:
            validator = self._validator
        return validator.validate(k, batch)

    def ingest(
        self,
        kind: str | RecordKind,
        batch: pa.Table,
        *,
        source: str = "api",
        validated: ValidationResult | None = None,
        early_rejections: Sequence[Rejection] = (),
        assume_new: bool = False,
    ) -> IngestReport:
        """Validate and store one batch; returns what was stored and what was rejected, and why.

        ``validated`` is :meth:`validate`'s result for this very batch, when the caller has it
        already (file import validates the next chunk while the current one is written).
        ``early_rejections`` are items a reader already refused (not JSON, wrong shape): they
        are counted and listed with the rest, and logged with the batch.
        ``assume_new`` says the caller expects none of the records to be stored yet (a file
        imported for the first time): they are written with a plain INSERT (DuckDB) or COPY'd
        straight into their table (PostgreSQL), much cheaper than INSERT ... ON CONFLICT from a
        staged copy; should one be stored already after all, the transaction is rolled back and
        written again the careful way. The result is the same.
        """
        refusal = getattr(self.store, "ingest_refusal", None)  # a lake store takes no records
        if refusal:
            raise StoreReadOnlyError(refusal)
        k = get_kind(kind) if isinstance(kind, str) else kind
        if validated is not None:
            result = validated
        elif batch.num_rows:
            result = self.validate(k, batch)
        else:
            result = ValidationResult(pa.table({}))
        # records naming an erased person: the one place they are caught
        if self._schema_at(PRIVACY_VERSION):
            kept, refused, n_refused = ledger.guard_batch(self.store, k, result.valid)
            if n_refused:
                result = dataclasses.replace(
                    result,
                    valid=kept,
                    rejections=[*result.rejections, *refused],
                    rejected_rows=result.rejected_rows + n_refused,
                )
        early_rows = len({r.row for r in early_rejections})
        report = IngestReport(
            k.name,
            received=batch.num_rows + early_rows,
            rejected=result.rejected_rows + early_rows,
            errors=sorted([*early_rejections, *result.rejections], key=lambda r: r.row),
        )
        valid = result.valid
        originals = None
        if k.name == "feedback":  # no unredacted text is written to the feedback table
            redacted, originals = intake.redact_batch(valid)
            result = dataclasses.replace(result, valid=redacted)
        # a record repeated within the batch would fail the plain path's COPY (and be written
        # again the careful way): take the careful way at once
        plain = (
            assume_new
            and valid.num_rows > 0
            and not k.upsert
            and pc.count_distinct(valid[k.id_field]).as_py() == valid.num_rows
        )
        try:
            return self._store(k, result, report, source, plain=plain, originals=originals)
        except Exception:
            if not plain:
                raise
        # a record was stored already (or came twice): rolled back, now written the careful way
        return self._store(k, result, report, source, plain=False, originals=originals)

    def _store(
        self,
        k: RecordKind,
        result: ValidationResult,
        report: IngestReport,
        source: str,
        *,
        plain: bool,
        originals: pa.Table | None = None,
    ) -> IngestReport:
        valid = result.valid
        now = datetime.now(UTC)
        rollup = self._schema_at(ROLLUP_VERSION)
        text = k.name == "feedback" and self._schema_at(TEXT_VERSION)
        rules = k.name in record_rules.WATCHES and self._schema_at(LOOP_VERSION)
        with self._bulk_lock:
            # a bulk import rebuilds the rollup once at its end; other batches of new feedback
            # add their own rollup rows
            delta = None if self._bulk else self.store
        queue = (
            self.rollup_upkeep == "background"
            and self._schema_at(QUEUE_VERSION)
            and (self.rollup_behind is None or self.rollup_behind() < QUEUE_BEHIND_MAX)
        )
        for_texts: list[pa.Table] = []  # the text rules' rows, for the background worker
        batch = None
        with self.store.transaction() as tx:
            marked = False
            if valid.num_rows:
                inserted, merges, batch, marked = _write(
                    tx, k, valid, now, plain=plain, rollup=rollup, delta=delta, queue=queue
                )
                if text:
                    intake.store_batch(
                        tx,
                        valid,
                        originals,
                        now,
                        keep_original=self.keep_original_text,
                        analyze=self.analyze_text,
                    )
                if rules and not (batch is not None and batch.queued):
                    # the record rules fire in the batch's transaction: its alerts, cases and
                    # their notifications commit with the records or not at all
                    # (text rules: here when the texts were analysed above, else when the
                    # background worker stores their analysis; a queued batch's records: in the
                    # transaction that takes them from the queue, corridor.ingest.after_commit)
                    record_rules.evaluate_batch(
                        tx,
                        k.name,
                        now,
                        staged=batch,
                        texts_analysed=self.analyze_text,
                        tables=batch.looked_up if batch is not None else None,
                        batch=batch.rows if batch is not None else None,
                        read=batch.read if batch is not None else None,
                        for_texts=for_texts,
                    )
                report.accepted = valid.num_rows + result.batch_duplicates
                report.inserted = inserted
                report.duplicates = report.accepted - inserted
                report.merges = merges
            tx.execute(
                "INSERT INTO ingest_batches (batch_id, kind, source, received_at, accepted, "
                "duplicates, rejected) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    uuid.uuid4().hex,
                    k.name,
                    source[:200],
                    now,
                    report.accepted,
                    report.duplicates,
                    report.rejected,
                ),
            )
        # (a batch of new feedback that added its own rollup rows marked no day: nothing to do)
        if rollup and (marked or self._refresh_failed):
            with self._bulk_lock:
                deferred = self._bulk > 0
            if not deferred:
                self.refresh_rollup()
        if queue and self.on_pending_rollup is not None and batch is not None and batch.queued:
            self.on_pending_rollup(batch.rows, batch.read)
        if text and not self.analyze_text and self.on_pending_text is not None:
            self.on_pending_text(valid, for_texts[0] if for_texts else None)
        return report


def _write(
    tx: Tx,
    kind: RecordKind,
    valid: pa.Table,
    now: datetime,
    *,
    plain: bool = False,
    rollup: bool = False,
    delta: Store | None = None,
    queue: bool = False,
) -> tuple[int, list[identity.Merge], Staged | None, bool]:
    """Write one validated batch; ``rollup``: also mark the feedback rollup days it changes, or,
    with ``delta`` (the store) and a feedback batch of new records only, add its rollup rows
    (:func:`corridor.analytics.feedback.rollup_delta.add_new_feedback`), or, with ``queue``,
    queue them for the fold after the commit. Returns the rows inserted,
    the merges made, the records written (None for people), and whether rollup days may have
    been marked (a refresh is due after the commit)."""
    columns = [f.name for f in kind.stored_fields] + [ATTRIBUTES]
    merges: list[identity.Merge] = []
    people = None  # the batch's persons' rollup dimensions, when a delta may need them
    if kind.has_person:
        res = identity.resolve(tx, kind, valid)
        valid = valid.set_column(
            valid.schema.get_field_index("person_id"), "person_id", res.person_ids
        )
        merges = res.merges
        # Persons exist before identities point at them and before merges repoint them.
        if kind.upsert:
            inserted = _upsert_people(tx, valid.select(columns), now, rollup=rollup)
            identity.apply(tx, res, now)
            return inserted, merges, None, rollup
        dims = rollup and delta_candidate(kind, valid, delta)
        people = _ensure_people(tx, valid, now, dims=dims)
        identity.apply(tx, res, now)
    batch = Staged(tx, valid.select(columns))
    if plain:  # all new (or the transaction fails on the first stored id, and is written again)
        inserted = tx.append(kind.name, batch.rows)
    else:
        inserted = tx.insert(kind.name, batch(), columns, key=[kind.id_field])
    if not rollup:
        return inserted, merges, batch, False
    all_new = not merges and inserted == valid.num_rows
    if add_to_rollup(tx, kind, batch, delta, all_new=all_new, people=people, queue=queue):
        return inserted, merges, batch, False
    mark_rollup_dirty(tx, kind, batch)
    return inserted, merges, batch, kind.name in _ROLLUP_KINDS


def _ensure_people(
    tx: Tx, valid: pa.Table, now: datetime, *, dims: bool = False
) -> pa.Table | None:
    """Events often arrive before profiles: a person named by a record exists from then on.
    ``dims``: also return the stored persons' rollup dimensions
    (:data:`corridor.analytics.feedback.rollup_rows.PEOPLE_COLUMNS`), read with their existence (a
    person inserted here has none), for the batch's own rollup rows."""
    persons = pc.unique(valid.column("person_id").drop_null())
    if dims or len(persons) <= _ARRAY_MAX:
        # a small batch: read which are stored (rollup_rows.lookup: by key, or one pass over a
        # small table; an INSERT ... WHERE NOT EXISTS read every person), insert the others
        found = _ensure_people_read(tx, persons, now)
        return found if dims else None
    _insert_people(tx, persons, now, all_new=False)
    return None


#: a batch of at most this many persons reads which are stored before inserting the others (on
#: PostgreSQL as one array parameter instead of a staged table: creating a temporary table cost
#: a small batch 10-20 ms there)
_ARRAY_MAX = 2000


def _insert_people(tx: Tx, persons: pa.Array, now: datetime, *, all_new: bool) -> None:
    """Insert the persons ``persons`` not stored yet (``all_new``: none of them is, as far as the
    caller read)."""
    exists = "WHERE NOT EXISTS (SELECT 1 FROM people p WHERE p.person_id = s.person_id) "
    new = "" if all_new else exists
    insert = "INSERT INTO people (person_id, kind, canonical_id, first_seen_at) "
    if tx.dialect != "duckdb" and len(persons) <= _ARRAY_MAX:
        tx.execute(
            f"{insert}SELECT s.person_id, 'customer', s.person_id, ? "
            f"FROM unnest(CAST(? AS text[])) AS s(person_id) {new}"
            "ON CONFLICT (person_id) DO NOTHING",
            (now, persons.to_pylist()),
        )
        return
    # Only the ids travel, and only the persons not stored yet are inserted: most are known
    # already, and staging (and conflict-checking) all of them was a third of a PostgreSQL import.
    tx.stage("_persons", pa.table({"person_id": persons}))
    tx.execute(
        f"{insert}SELECT s.person_id, 'customer', s.person_id, ? FROM _persons s {new}"
        "ON CONFLICT (person_id) DO NOTHING",
        (now,),
    )


def _ensure_people_read(tx: Tx, persons: pa.Array, now: datetime) -> pa.Table:
    """:func:`_ensure_people` for a small batch: one read of its persons gives both which are
    stored and their rollup dimensions (a batch of new feedback adds its own rollup rows with
    them, instead of looking them up again)."""
    from corridor.analytics.feedback import rollup_rows

    found = rollup_rows.lookup(tx, "people", rollup_rows.PEOPLE_COLUMNS, persons.to_pylist())
    missing = pc.filter(persons, pc.invert(pc.is_in(persons, value_set=found["person_id"])))
    if len(missing):
        _insert_people(tx, missing, now, all_new=True)
    return found


def _upsert_people(tx: Tx, staged: pa.Table, now: datetime, *, rollup: bool = False) -> int:
    n = staged.num_rows
    staged = staged.append_column("canonical_id", staged.column("person_id")).append_column(
        "first_seen_at", pa.repeat(pa.scalar(now, _TS), n)
    )
    tx.stage("_people", staged)
    if rollup:
        mark_rollup_people(tx)
    # A later profile says what kind a person is; fields it leaves empty keep their old value.
    sets = ", ".join(
        f"{c} = excluded.{c}" if c == "kind" else f"{c} = coalesce(excluded.{c}, people.{c})"
        for c in _PEOPLE_PROFILE
    )
    cols = ", ".join(staged.schema.names)
    return tx.execute(
        f"INSERT INTO people ({cols}) SELECT {cols} FROM _people "
        f"ON CONFLICT (person_id) DO UPDATE SET {sets}"
    )


__all__ = ["ROW", "IngestReport", "Ingestor", "RecordCounts"]
