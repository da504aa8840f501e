"""A feedback batch's rows for the record rules, built in Arrow from what its transaction read
already: the records themselves and the rollup's look-ups of their interactions and persons
(:func:`corridor.analytics.feedback.rollup_delta.add_new_feedback`). They are the rows of
:data:`corridor.loop.record_rules.FEEDBACK_SQL_UNANALYSED` over the batch, with no query: the
join of that query cost a batch of 500 records 8-10 ms to plan and run on DuckDB (staging the
looked-up rows included), the look-ups by position here well under a millisecond."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from corridor.analytics.feedback import rollup_rows
from corridor.store.base import Tx

#: the columns of :data:`corridor.loop.record_rules.COLUMNS` ``["feedback"]`` taken from the
#: record as it is
_OWN = ("expectation", "experience", "nps", "csat", "ces", "emotion")


def departments(tx: Tx) -> dict[str, str]:
    """Each touch point's department (the corridor map's few dozen rows)."""
    return {
        str(key): str(dept) for key, dept in tx.fetchall("SELECT key, department FROM touchpoints")
    }


def since(rows: pa.Table, oldest: datetime) -> pa.Table:
    """The ``rows`` that occurred (``occurred_at``) at ``oldest`` or later."""
    at = rows.column("occurred_at")
    return rows.filter(pc.fill_null(pc.greater_equal(at, pa.scalar(oldest).cast(at.type)), False))


def feedback_rows(
    rows: pa.Table,
    read: Mapping[str, pa.Table],
    owners: Mapping[str, str],
    oldest: datetime | None,
) -> pa.Table:
    """The rows :data:`~corridor.loop.record_rules.FEEDBACK_SQL_UNANALYSED` gives for the feedback
    records ``rows`` that occurred at ``oldest`` or later (None: all), given ``read`` (the
    batch's stored ``interactions``: ``interaction_id``, ``touchpoint``, ``channel``,
    ``partner_id``; and ``people``: ``person_id``, ``segment``, ``region``; each keyed by
    its first column) and ``owners`` (touch point → department): the record's dimensions as
    the rollup reads them
    (:func:`~corridor.analytics.feedback.rollup_rows.looked_up_dimensions`), the touch
    point's department, the record's scores, no text analysis. A record whose interaction,
    person or touch point is not among them reads as the query's left joins read it (nulls)."""
    recent = rows if oldest is None else since(rows, oldest)

    def text(name: str) -> pa.Array:
        return recent.column(name).cast(pa.string()).combine_chunks()

    dims = rollup_rows.looked_up_dimensions(recent, read["interactions"], read["people"])
    keys = sorted(owners)
    department = pa.array([owners[k] for k in keys], pa.string()).take(
        pc.index_in(dims["touchpoint"], value_set=pa.array(keys, pa.string()))
    )
    none = pa.nulls(recent.num_rows, pa.string())
    return pa.table(
        {
            "record_id": text("feedback_id"),
            "person_id": text("person_id"),
            "occurred_at": recent.column("occurred_at"),
            "touchpoint": dims["touchpoint"],
            "partner_id": dims["partner"],
            "department": department,
            "segment": dims["segment"],
            "region": dims["region"],
            **{name: recent.column(name) for name in _OWN},
            "intent": none,
            "theme_id": none,
        }
    )


def analysed_rows(
    known: pa.Table, analysis: pa.Table, ids: list[str]
) -> tuple[pa.Table, list[str]]:
    """The rows :data:`~corridor.loop.record_rules.FEEDBACK_SQL` gives for the feedback ``ids``
    that ``known`` holds (rows of :func:`feedback_rows`, handed over by the batches that brought
    the records), with the intent and theme of the text ``analysis`` just stored for them
    (columns ``feedback_id``, ``intent``, ``theme_id``); and the ids ``known`` does not hold,
    left for the query. A record held twice (a batch posted again) reads as its first row."""
    wanted = pa.array(ids, pa.string())
    at = pc.index_in(wanted, value_set=known.column("record_id").combine_chunks())
    found = pc.is_valid(at)
    have = known.take(at.filter(found))
    missing = [str(i) for i in wanted.filter(pc.invert(found)).to_pylist()]
    by_id = pc.index_in(
        have.column("record_id"),
        value_set=analysis.column("feedback_id").cast(pa.string()).combine_chunks(),
    )
    for name in ("intent", "theme_id"):
        value = analysis.column(name).cast(pa.string()).combine_chunks().take(by_id)
        have = have.set_column(have.schema.get_field_index(name), name, value)
    return have, missing


def stack(tables: Sequence[pa.Table]) -> pa.Table | None:
    """Rows of :func:`feedback_rows` from several sources (batches, a read) as one table; None
    when there are none, or when their columns' types do not stack (the caller then reads
    those records instead)."""
    if not tables:
        return None
    try:
        return pa.concat_tables(list(tables), promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


__all__ = ["analysed_rows", "departments", "feedback_rows", "since", "stack"]
