"""The feedback rollup's rows as Arrow: its columns, each feedback record's rollup row
(:func:`record_rows`) and a batch's rows summed per key (:func:`delta_rows`), given the records'
interactions and persons looked up by key (:func:`interactions_of`, :func:`people_of`). What
the rebuild's Ibis query computes in the engine (:mod:`corridor.analytics.feedback.rollup`),
computed without a query: the inline upkeep, the fold and the reads of queued records use it
(:mod:`~corridor.analytics.feedback.rollup_delta`,
:mod:`~corridor.analytics.feedback.rollup_pending`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from corridor.analytics.core.dimensions import MEASURES
from corridor.analytics.feedback.sums import (
    CES_EASY_MIN,
    CSAT_TOP2_MIN,
    DETRACTOR_MAX,
    GAP_SUMS,
    METRIC_SUMS,
    PROMOTER_MIN,
)

#: the dimensions a rollup row is keyed by (besides its day)
ROLLUP_DIMENSIONS: tuple[str, ...] = (
    "touchpoint",
    "channel",
    "partner",
    "segment",
    "region",
    "source",
)
#: sums name -> rollup column
GAP_COLUMNS: dict[str, str] = {name: f"gap_{name}" for name in GAP_SUMS}
METRIC_COLUMNS: dict[str, str] = {name: f"metric_{name}" for name in METRIC_SUMS}
#: every column of ``feedback_rollup``, in order
ROLLUP_COLUMNS: tuple[str, ...] = (
    "day",
    *ROLLUP_DIMENSIONS,
    *GAP_COLUMNS.values(),
    *METRIC_COLUMNS.values(),
)
#: the integer (count) columns; the rest are float sums
COUNTS = frozenset(
    {"n", "n_below", "nps_n", "promoters", "detractors", "csat_n", "csat_top2", "ces_n", "ces_easy"}
)

#: keys per ``IN (...)`` lookup (DuckDB answers a list of constants from the primary key's index)
LOOKUP_CHUNK = 1000
#: on DuckDB, a table holding fewer rows than this per key wanted is read in one pass (``= ANY``
#: of a list: about 12-20 ns a row) instead of probing its primary key's index with lists of
#: constants (about 40 µs a key, planning included). Measured (DuckDB 2.0, 500 keys): from
#: 231,000 interactions 4.9 ms against 21 ms, from 10 M 119 ms against 27 ms
SCAN_ROWS_PER_KEY = 2000
#: fewer keys than this are always probed through the index (at most ~2 ms; counting the table's
#: rows to decide would cost a good part of what one pass could save)
SCAN_MIN_KEYS = 50
#: the columns of an interaction the rollup's dimensions read (after its id), and of a person
_INTERACTION_COLUMNS: tuple[str, ...] = ("touchpoint", "channel", "partner_id")
PEOPLE_COLUMNS: tuple[str, ...] = ("person_id", "segment", "region")


class Fetches(Protocol):
    """What the look-ups read through: a write transaction, or a store's reads
    (:func:`reads`)."""

    @property
    def dialect(self) -> str: ...

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ...) -> pa.Table: ...

    def estimated_rows(self, table: str) -> int | None: ...


class _Reads:
    def __init__(self, store: Any) -> None:
        self.dialect: str = store.dialect
        self._store = store

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        return self._store.query_arrow(sql, params)

    def estimated_rows(self, table: str) -> int | None:
        return self._store.estimated_rows(table)


def reads(store: Any) -> Fetches:
    """The look-ups through ``store``'s small reads (beside the writer, what is committed)."""
    return _Reads(store)


def rollup_typed(t: pa.Table) -> pa.Table:
    """``t``'s rollup columns, in order, typed as :func:`delta_rows` types them."""
    types = {"day": pa.date32(), **{d: pa.string() for d in ROLLUP_DIMENSIONS}}
    for col in (*GAP_COLUMNS.values(), *METRIC_COLUMNS.values()):
        is_count = col.split("_", 1)[1] in COUNTS
        types[col] = pa.int64() if is_count else pa.float64()
    return pa.table({c: t.column(c).cast(types[c]) for c in ROLLUP_COLUMNS})


def _lookup(tx: Fetches, table: str, columns: tuple[str, ...], ids: Any) -> pa.Table:
    """``columns`` (the key first) of the rows of ``table`` whose key is among ``ids``, every
    column text: on DuckDB by lists of keys (answered from the primary key's index), on
    PostgreSQL by one array of keys (``= ANY``: planned as fast for 500 keys as for 1)."""
    return lookup(tx, table, columns, pc.unique(ids.drop_null()).to_pylist())


def lookup(tx: Fetches, table: str, columns: tuple[str, ...], wanted: list[Any]) -> pa.Table:
    """:func:`_lookup` of distinct keys ``wanted``."""
    empty = pa.table({c: pa.array([], pa.string()) for c in columns})
    if not wanted:
        return empty
    got = by_keys(tx, table, columns, wanted)
    return pa.concat_tables(
        [empty, pa.table({c: got.column(c).cast(pa.string()) for c in columns})]
    )


def by_keys(tx: Fetches, table: str, columns: Sequence[str], wanted: list[Any]) -> pa.Table:
    """``columns`` (the key first) of the rows of ``table`` whose key is among ``wanted``: on
    PostgreSQL one array of keys (``= ANY``: planned as fast for 500 keys as for 1, answered by
    the key's index); on DuckDB the same in one pass over a table of fewer than
    :data:`SCAN_ROWS_PER_KEY` rows a key (for :data:`SCAN_MIN_KEYS` keys or more; the size
    is DuckDB's estimate, which deletions not yet checkpointed do not slow as a ``count(*)``
    does, kept a few seconds: :class:`corridor.store.duckdb_store.Sizes`), else lists of keys
    answered from the primary key's index. ``wanted``: values of the key column's type (every
    key here is text); repeated keys are asked once."""
    select = f"SELECT {', '.join(columns)} FROM {table} WHERE {columns[0]}"
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return tx.fetch_arrow(f"{select} IS NULL AND FALSE")
    if tx.dialect != "duckdb":
        return tx.fetch_arrow(f"{select} = ANY(?)", [wanted])
    if len(wanted) >= SCAN_MIN_KEYS:
        size = tx.estimated_rows(table)
        if size is not None and size < SCAN_ROWS_PER_KEY * len(wanted):
            return tx.fetch_arrow(f"{select} = ANY(?)", [wanted])
    parts = [
        tx.fetch_arrow(f"{select} IN ({', '.join('?' for _ in chunk)})", chunk)
        for chunk in (wanted[i : i + LOOKUP_CHUNK] for i in range(0, len(wanted), LOOKUP_CHUNK))
    ]
    return pa.concat_tables(parts, promote_options="permissive")


def interactions_of(tx: Fetches, rows: pa.Table) -> pa.Table:
    """The stored interactions the feedback records ``rows`` refer to: ``interaction_id`` and
    :data:`_INTERACTION_COLUMNS`, every column text."""
    ids = rows.column("interaction_id")
    return _lookup(tx, "interactions", ("interaction_id", *_INTERACTION_COLUMNS), ids)


def people_of(tx: Fetches, rows: pa.Table, people: pa.Table | None = None) -> pa.Table:
    """The stored persons of the records ``rows``: :data:`PEOPLE_COLUMNS`, every column text
    (``people``: those, read already)."""
    if people is not None:
        return people
    return _lookup(tx, "people", PEOPLE_COLUMNS, rows.column("person_id"))


def looked_up_dimensions(
    rows: pa.Table, interactions: pa.Table, people: pa.Table
) -> dict[str, pa.Array]:
    """Each record's dimensions from its interaction and person among ``interactions``
    (``interaction_id`` and :data:`_INTERACTION_COLUMNS`) and ``people``
    (:data:`PEOPLE_COLUMNS`), as the rebuild joins them
    (:func:`~corridor.analytics.core.dimensions.feedback_facts`): ``touchpoint`` and
    ``partner`` the record's own, else its interaction's; the interaction's ``channel``; the
    person's ``segment`` and ``region``. Records whose interaction or person is not among them
    read as a left join's (nulls)."""

    def text(t: pa.Table, name: str) -> pa.Array:
        return t.column(name).cast(pa.string()).combine_chunks()

    def position(key: str, table: pa.Table) -> pa.Array:  # each record's row in ``table``
        return pc.index_in(text(rows, key), value_set=text(table, table.column_names[0]))

    at_i, at_p = position("interaction_id", interactions), position("person_id", people)

    def joined(table: pa.Table, at: pa.Array, column: str) -> pa.Array:
        return text(table, column).take(at)

    return {
        "touchpoint": pc.coalesce(
            text(rows, "touchpoint"), joined(interactions, at_i, "touchpoint")
        ),
        "channel": joined(interactions, at_i, "channel"),
        "partner": pc.coalesce(text(rows, "partner_id"), joined(interactions, at_i, "partner_id")),
        "segment": joined(people, at_p, "segment"),
        "region": joined(people, at_p, "region"),
    }


def record_rows(rows: pa.Table, interactions: pa.Table, people: pa.Table) -> pa.Table:
    """One rollup row per feedback record of ``rows`` (its ``feedback_id``, then the rollup's
    columns; a record with neither both ratings nor an NPS, CSAT or CES answer has none), given
    the records' interactions (``interaction_id`` and :data:`_INTERACTION_COLUMNS`) and persons
    (:data:`PEOPLE_COLUMNS`). Records whose interaction or person is not among them read as a
    left join's."""

    def valid(a: Any) -> Any:
        return pc.is_valid(a)

    def holds(a: Any) -> Any:  # a predicate, null read as false (as SQL's FILTER reads it)
        return pc.fill_null(a, False)

    dims = {
        **looked_up_dimensions(rows, interactions, people),
        "source": rows.column("source").cast(pa.string()),
    }
    assert tuple(dims) == ROLLUP_DIMENSIONS
    m = {
        name: rows.column(name).cast(pa.float64())
        for name in ("expectation", "experience", "nps", "csat", "ces")
    }
    e, x, nps, csat, ces = m["expectation"], m["experience"], m["nps"], m["csat"], m["ces"]
    rated = pc.and_(valid(e), valid(x))
    answered = pc.or_(pc.or_(valid(nps), valid(csat)), valid(ces))
    gap = pc.subtract(x, e)

    def count(where: Any) -> Any:
        return pc.cast(holds(where), pa.int64())

    def summed(value: Any, where: Any) -> Any:
        return pc.if_else(where, value, pa.scalar(None, pa.float64()))

    values = {
        "gap_n": count(rated),
        "gap_n_below": count(pc.and_(holds(pc.less(x, e)), rated)),
        "gap_sum_expectation": summed(e, rated),
        "gap_sumsq_expectation": summed(pc.multiply(e, e), rated),
        "gap_sum_experience": summed(x, rated),
        "gap_sumsq_experience": summed(pc.multiply(x, x), rated),
        "gap_sum_gap": summed(gap, rated),
        "gap_sumsq_gap": summed(pc.multiply(gap, gap), rated),
        "metric_n": count(answered),
        "metric_nps_n": count(pc.and_(valid(nps), answered)),
        "metric_promoters": count(pc.and_(holds(pc.greater_equal(nps, PROMOTER_MIN)), answered)),
        "metric_detractors": count(pc.and_(holds(pc.less_equal(nps, DETRACTOR_MAX)), answered)),
        "metric_csat_n": count(pc.and_(valid(csat), answered)),
        "metric_csat_top2": count(pc.and_(holds(pc.greater_equal(csat, CSAT_TOP2_MIN)), answered)),
        "metric_ces_n": count(pc.and_(valid(ces), answered)),
        "metric_ces_easy": count(pc.and_(holds(pc.greater_equal(ces, CES_EASY_MIN)), answered)),
        "metric_sum_ces": summed(ces, answered),
        "metric_sumsq_ces": summed(pc.multiply(ces, ces), answered),
    }
    assert tuple(values) == ROLLUP_COLUMNS[len(ROLLUP_DIMENSIONS) + 1 :]
    day = pc.cast(rows.column("occurred_at"), pa.date32())
    facts = pa.table({"day": day, **dims, **{c: _zero(v) for c, v in values.items()}})
    t = rollup_typed(facts).add_column(
        0, "feedback_id", rows.column("feedback_id").cast(pa.string())
    )
    return t.filter(pc.or_(pc.greater(t["gap_n"], 0), pc.greater(t["metric_n"], 0)))


def _zero(a: Any) -> Any:
    """Nulls as 0 (a count's or a sum's over no record)."""
    return pc.fill_null(a, 0) if pa.types.is_integer(a.type) else pc.fill_null(a, 0.0)


def delta_rows(rows: pa.Table, interactions: pa.Table, people: pa.Table) -> pa.Table:
    """The rollup rows of the feedback records ``rows``, given their interactions and persons
    (as :func:`record_rows` takes them): their :func:`record_rows` summed per day and
    dimensions, what the rebuild's query (``_aggregate_rows`` over
    :func:`~corridor.analytics.core.dimensions.feedback_facts`) gives for them."""
    facts = record_rows(rows, interactions, people)
    keys = ["day", *ROLLUP_DIMENSIONS]
    values = ROLLUP_COLUMNS[len(keys) :]
    grouped = facts.group_by(keys, use_threads=False).aggregate([(c, "sum") for c in values])
    out = {k: grouped.column(k) for k in keys} | {c: grouped.column(f"{c}_sum") for c in values}
    return rollup_typed(pa.table(out))


#: the feedback columns a record's rollup row is computed from
FEEDBACK_COLUMNS: tuple[str, ...] = (
    "feedback_id",
    "occurred_at",
    "interaction_id",
    "person_id",
    "touchpoint",
    "partner_id",
    "source",
    *MEASURES,
    "emotion",
)


def feedback_of(tx: Fetches, ids: list[str]) -> pa.Table:
    """The :data:`FEEDBACK_COLUMNS` of the feedback records ``ids``, as stored
    (:func:`by_keys`)."""
    return by_keys(tx, "feedback", FEEDBACK_COLUMNS, ids)


__all__ = [
    "COUNTS",
    "FEEDBACK_COLUMNS",
    "GAP_COLUMNS",
    "LOOKUP_CHUNK",
    "METRIC_COLUMNS",
    "PEOPLE_COLUMNS",
    "ROLLUP_COLUMNS",
    "ROLLUP_DIMENSIONS",
    "Fetches",
    "delta_rows",
    "feedback_of",
    "interactions_of",
    "looked_up_dimensions",
    "lookup",
    "people_of",
    "reads",
    "record_rows",
    "rollup_typed",
]
