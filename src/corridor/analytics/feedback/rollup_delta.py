"""The rollup's delta path: a batch of new feedback adds its own rollup rows in its own
transaction (see :mod:`corridor.analytics.feedback.rollup` for the table, its freshness and its
reads). The batch's interactions and persons are looked up by key, its rows computed in Arrow
(:func:`delta_rows`, equal to the rebuild's aggregates), and a day whose rows have grown is
folded back to one row per key."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from corridor.analytics.feedback.rollup import (
    COUNTS,
    GAP_COLUMNS,
    METRIC_COLUMNS,
    ROLLUP_COLUMNS,
    ROLLUP_DIMENSIONS,
    DayRows,
    days_known,
)
from corridor.analytics.feedback.sums import (
    CES_EASY_MIN,
    CSAT_TOP2_MIN,
    DETRACTOR_MAX,
    PROMOTER_MIN,
)
from corridor.store.base import Store, Tx

#: a feedback batch of at most this many records, none of them stored before, adds its own
#: rollup rows (:func:`add_new_feedback`) instead of marking its days for a rebuild
DELTA_MAX = 2000
#: keys per ``IN (...)`` lookup (DuckDB answers a list of constants from the primary key's index)
LOOKUP_CHUNK = 1000
#: the columns of an interaction the rollup's dimensions read (after its id), and of a person
_INTERACTION_COLUMNS: tuple[str, ...] = ("touchpoint", "channel", "partner_id")
PEOPLE_COLUMNS: tuple[str, ...] = ("person_id", "segment", "region")


def add_new_feedback(
    store: Store, tx: Tx, rows: pa.Table, people: pa.Table | None = None
) -> dict[str, pa.Table]:
    """Add the rollup rows of a batch of new feedback records (``rows``; none of them was
    stored before this transaction), in the batch's own transaction: the rollup is additive, so
    the batch's own sums, added as rows of their own, keep every key's sum exact without
    rebuilding its days. ``people``: the batch's stored persons' :data:`PEOPLE_COLUMNS`, when
    the ingest read them already (persons not among them have no segment or region).

    The dimensions are those a rebuild joins (:func:`~corridor.analytics.core.dimensions.
    feedback_facts`: the record's touch point and partner, else its interaction's; the
    interaction's channel; the person's segment and region), read for the batch's keys only (a
    list of keys, answered from the primary key's index on DuckDB), and the sums are computed
    in Arrow (:func:`delta_rows`; tested equal to the rebuild's Ibis aggregates): the
    Ibis-compiled query took DuckDB 13-25 ms to plan, more than the whole upkeep may cost.
    A day whose rows have grown to more than twice its keys (+100) is folded in the same
    transaction (:func:`_fold`): its rows and keys are read the first time this process adds to
    it; after that, this process keeps count of them as it adds rows (no read of the rollup).

    Returns what it read: ``interactions`` and ``people``, the batch's stored interactions
    (``interaction_id`` and :data:`_INTERACTION_COLUMNS`) and persons (:data:`PEOPLE_COLUMNS`),
    every column text, for the record rules to read instead of the whole tables.

    Measured at 1 M and 10 M interactions: see docs/benchmarks.md."""
    read = {"interactions": interactions_of(tx, rows), "people": people_of(tx, rows, people)}
    delta = delta_rows(rows, read["interactions"], read["people"])
    if not delta.num_rows:
        return read
    _insert_rows(tx, delta)
    known = days_known.setdefault(store, {})
    keys = list(
        zip(*(delta.column(c).to_pylist() for c in ("day", *ROLLUP_DIMENSIONS)), strict=True)
    )
    new = sorted({k[0] for k in keys if k[0] not in known})
    if new:  # (read after the insert: the batch's rows are among them)
        _read_days(tx, known, new)
    over = []
    for day in sorted({k[0] for k in keys}):
        if day not in new:
            mine = [k[1:] for k in keys if k[0] == day]
            known[day].add(mine, len(mine))
        if known[day].over():
            over.append(day)
    if over:
        _fold(tx, known, over)
    return read


def _read_days(tx: Tx, known: dict[date, DayRows], days: list[date]) -> None:
    """Read the rows and keys of ``days`` from the rollup."""
    marks = ", ".join("?" for _ in days)
    dims = ", ".join(ROLLUP_DIMENSIONS)
    for day in days:
        known[day] = DayRows()
    for day, *key, n in tx.fetchall(
        f"SELECT day, {dims}, count(*) FROM feedback_rollup WHERE day IN ({marks}) "
        f"GROUP BY day, {dims}",
        days,
    ):
        day = day.date() if isinstance(day, datetime) else day
        known[day].add([tuple(key)], int(n))


def _fold(tx: Tx, known: dict[date, DayRows], days: list[date]) -> None:
    """Replace the rollup rows of ``days`` by one row per key, their sums (the rollup is
    additive: the same sums, in fewer rows), in the caller's transaction: no base table read."""
    marks = ", ".join("?" for _ in days)
    keys = ["day", *ROLLUP_DIMENSIONS]
    sums = ", ".join(
        f"CAST(sum({c}) AS {'BIGINT' if c.split('_', 1)[1] in COUNTS else 'DOUBLE PRECISION'})"
        f" AS {c}"
        for c in ROLLUP_COLUMNS
        if c not in keys
    )
    group = ", ".join(keys)
    if tx.dialect != "duckdb":  # one statement: the rows deleted, summed and inserted again
        tx.execute(
            f"WITH gone AS (DELETE FROM feedback_rollup WHERE day IN ({marks}) RETURNING *) "
            f"INSERT INTO feedback_rollup ({group}, {', '.join(ROLLUP_COLUMNS[len(keys) :])}) "
            f"SELECT {group}, {sums} FROM gone GROUP BY {group}",
            days,
        )
        for day in days:  # one row per key now (the keys this process knows of)
            known[day].rows = len(known[day].keys)
        return
    folded = rollup_typed(
        tx.fetch_arrow(
            f"SELECT {group}, {sums} FROM feedback_rollup WHERE day IN ({marks}) GROUP BY {group}",
            days,
        )
    )
    tx.execute(f"DELETE FROM feedback_rollup WHERE day IN ({marks})", days)
    _insert_rows(tx, folded)
    for day in days:
        known[day] = DayRows()
    for key in zip(*(folded.column(c).to_pylist() for c in keys), strict=True):
        known[key[0]].add([key[1:]], 1)


def rollup_typed(t: pa.Table) -> pa.Table:
    """``t``'s rollup columns, in order, typed as :func:`delta_rows` types them."""
    types = {"day": pa.date32(), **{d: pa.string() for d in ROLLUP_DIMENSIONS}}
    for col in (*GAP_COLUMNS.values(), *METRIC_COLUMNS.values()):
        is_count = col.split("_", 1)[1] in COUNTS
        types[col] = pa.int64() if is_count else pa.float64()
    return pa.table({c: t.column(c).cast(types[c]) for c in ROLLUP_COLUMNS})


def _lookup(tx: Tx, table: str, columns: tuple[str, ...], ids: Any) -> pa.Table:
    """``columns`` (the key first) of the rows of ``table`` whose key is among ``ids``, every
    column text: on DuckDB by lists of keys (answered from the primary key's index), on
    PostgreSQL by one array of keys (``= ANY``: planned as fast for 500 keys as for 1)."""
    return lookup(tx, table, columns, pc.unique(ids.drop_null()).to_pylist())


def lookup(tx: Tx, table: str, columns: tuple[str, ...], wanted: list[Any]) -> pa.Table:
    """:func:`_lookup` of distinct keys ``wanted``."""
    select = f"SELECT {', '.join(columns)} FROM {table} WHERE {columns[0]}"
    parts = [pa.table({c: pa.array([], pa.string()) for c in columns})]
    if tx.dialect == "duckdb":
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            got = tx.fetch_arrow(f"{select} IN ({', '.join('?' for _ in chunk)})", chunk)
            parts.append(pa.table({c: got.column(c).cast(pa.string()) for c in columns}))
    elif wanted:
        got = tx.fetch_arrow(f"{select} = ANY(?)", [wanted])
        parts.append(pa.table({c: got.column(c).cast(pa.string()) for c in columns}))
    return pa.concat_tables(parts)


#: PostgreSQL: up to this many rollup rows are inserted as arrays, more by a binary COPY
#: (measured: 20 rows 2.4 against 4.6 ms, 320 rows 7.6 against 3.9 ms)
_ARRAY_ROWS = 100


def _insert_rows(tx: Tx, rows: pa.Table) -> None:
    """Insert rollup rows (typed as :func:`delta_rows` types them): on DuckDB read in place;
    on PostgreSQL a few as one array per column (a COPY's catalog read cost more), more by
    COPY."""
    cols = ", ".join(rows.column_names)
    if tx.dialect == "duckdb":
        tx.stage("_rollup_rows", rows)
        tx.execute(f"INSERT INTO feedback_rollup ({cols}) SELECT {cols} FROM _rollup_rows")
        return
    if rows.num_rows > _ARRAY_ROWS:
        tx.append("feedback_rollup", rows)
        return
    types = {pa.date32(): "date", pa.string(): "text", pa.int64(): "bigint"}
    arrays = ", ".join(f"CAST(? AS {types.get(f.type, 'double precision')}[])" for f in rows.schema)
    tx.execute(
        f"INSERT INTO feedback_rollup ({cols}) SELECT * FROM unnest({arrays})",
        [rows.column(c).to_pylist() for c in rows.column_names],
    )


def interactions_of(tx: Tx, rows: pa.Table) -> pa.Table:
    """The stored interactions the feedback records ``rows`` refer to: ``interaction_id`` and
    :data:`_INTERACTION_COLUMNS`, every column text."""
    ids = rows.column("interaction_id")
    return _lookup(tx, "interactions", ("interaction_id", *_INTERACTION_COLUMNS), ids)


def people_of(tx: Tx, rows: pa.Table, people: pa.Table | None = None) -> pa.Table:
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


def delta_rows(rows: pa.Table, interactions: pa.Table, people: pa.Table) -> pa.Table:
    """The rollup rows of the feedback records ``rows``, given their interactions
    (``interaction_id`` and :data:`_INTERACTION_COLUMNS`) and persons (:data:`PEOPLE_COLUMNS`):
    what the rebuild's query (:func:`_aggregate_rows` over
    :func:`~corridor.analytics.core.dimensions.feedback_facts`) gives for them, computed in
    Arrow. Records whose interaction or person is not among them read as a left join's."""

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
    facts = pa.table({"day": pc.cast(rows.column("occurred_at"), pa.date32()), **dims, **values})
    keys = ["day", *ROLLUP_DIMENSIONS]
    grouped = facts.group_by(keys, use_threads=False).aggregate([(c, "sum") for c in values])
    out = {k: grouped.column(k) for k in keys}
    for c in values:
        s = grouped.column(f"{c}_sum")
        out[c] = pc.fill_null(s, 0) if pa.types.is_integer(s.type) else pc.fill_null(s, 0.0)
    t = rollup_typed(pa.table(out))
    return t.filter(pc.or_(pc.greater(t["gap_n"], 0), pc.greater(t["metric_n"], 0)))


__all__ = [
    "DELTA_MAX",
    "LOOKUP_CHUNK",
    "PEOPLE_COLUMNS",
    "add_new_feedback",
    "delta_rows",
    "interactions_of",
    "looked_up_dimensions",
    "lookup",
    "people_of",
    "rollup_typed",
]
