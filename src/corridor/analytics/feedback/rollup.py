"""The feedback rollup: additive sufficient statistics per UTC day × dimensions, kept fresh.

``feedback_rollup`` (schema v3) holds, per UTC day of ``feedback.occurred_at`` and per
touch point × channel × partner × segment × region × source, the :data:`GAP_SUMS` of the rated
records (``gap_*`` columns) and the :data:`METRIC_SUMS` of the records with an NPS, CSAT or CES
answer (``metric_*`` columns): counts, sums and sums of squares. They are additive, so summing
rollup rows over any grouping and period gives exactly the frame :func:`gap_sums` /
:func:`metric_sums` compute from the base tables, and intervals stay exact.

The rows are built by the same Ibis expressions as the analytics
(:func:`~corridor.analytics.core.dimensions.feedback_facts` with the rollup dimensions, aggregated
with :func:`~corridor.analytics.feedback.sums.gap_aggregates` and
:func:`~corridor.analytics.feedback.sums.metric_aggregates`), so a dimension means the same thing
on both paths.

Freshness: the ingest path marks the UTC days whose rows may have changed in ``rollup_dirty``
inside the batch's own transaction (a feedback batch its days; an interactions batch the days
of stored feedback about those interactions; a people batch the days of stored feedback by
those persons). :func:`refresh` rebuilds exactly those days in one transaction; the
:class:`~corridor.ingest.pipeline.Ingestor` calls it after each committed batch that may have
marked days (a bulk import once, at its end), and a failed refresh is tried again after the next
one. Reads never write: while days are marked, :func:`sums` reads those days' rows from the
base tables and the others' from the rollup, in one query (the same numbers; only the marked days,
usually the few just written, cost a base-table read). A day marked after the read looked is
summed as the rollup holds it, as a read a moment earlier would have.

A query uses the rollup when the source is a store, every grouping and filter is among
:data:`ROLLUP_ELIGIBLE` (stage and department come from joining the corridor map's touch points
at read time) and ``since``/``until`` fall on UTC midnights; otherwise the base tables answer.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from ibis.common.exceptions import TableNotFound

from corridor.analytics.core.dimensions import (
    PERIODS,
    Query,
    Source,
    aggregate,
    feedback_facts,
    filter_predicates,
    query_rows,
)
from corridor.analytics.feedback.sums import (
    CES_EASY_MIN,
    CSAT_TOP2_MIN,
    DETRACTOR_MAX,
    GAP_SUMS,
    METRIC_SUMS,
    PROMOTER_MIN,
    gap_aggregates,
    metric_aggregates,
)
from corridor.store.base import Store, Tx
from corridor.store.migrations import V3

#: the dimensions a rollup row is keyed by (besides its day)
ROLLUP_DIMENSIONS: tuple[str, ...] = (
    "touchpoint",
    "channel",
    "partner",
    "segment",
    "region",
    "source",
)
#: groupings and filters the rollup can answer: its own, plus what the touch point determines
ROLLUP_ELIGIBLE: frozenset[str] = frozenset({*ROLLUP_DIMENSIONS, "stage", "department"})

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
_COUNTS = frozenset(
    {"n", "n_below", "nps_n", "promoters", "detractors", "csat_n", "csat_top2", "ces_n", "ces_easy"}
)

Kind = Literal["gap", "metric"]


def rated(t: ir.Table) -> ir.BooleanValue:
    """The records the gap sums are over: with both an expectation and an experience."""
    return t.expectation.notnull() & t.experience.notnull()


def answered(t: ir.Table) -> ir.BooleanValue:
    """The records the metric sums are over: with at least one of NPS, CSAT and CES."""
    return t.nps.notnull() | t.csat.notnull() | t.ces.notnull()


#: kind -> the records its sums are over, and those sums' aggregates
_BASE: dict[Kind, tuple[Callable[[ir.Table], ir.BooleanValue], Callable[..., dict[str, Any]]]] = {
    "gap": (rated, gap_aggregates),
    "metric": (answered, metric_aggregates),
}

#: stores known to have the rollup tables (schema v3 or later)
_ready: weakref.WeakSet[Store] = weakref.WeakSet()


def has_rollup(store: Store) -> bool:
    """Whether the store's schema has the rollup (v3+). Stores opened at an older schema
    version (tests of the migrations) answer from the base tables."""
    if store in _ready:
        return True
    try:  # read, not store.schema_version(): that one runs in a write transaction
        version = store.table("schema_migrations").version.max().execute()
    except TableNotFound:  # a store never migrated
        return False
    if version is not None and int(version) >= V3.version:
        _ready.add(store)
        return True
    return False


def eligible(source: Source, query: Query) -> bool:
    """Whether the rollup can answer ``query`` on ``source`` exactly."""
    if not isinstance(source, Store):
        return False
    if not set(query.dimensions) <= ROLLUP_ELIGIBLE:
        return False
    for t in (query.since, query.until):
        if t is not None and (t.hour, t.minute, t.second, t.microsecond) != (0, 0, 0, 0):
            return False
    return has_rollup(source)


# -- building -------------------------------------------------------------------------------------
def _aggregate_rows(t: ir.Table) -> ir.Table:
    """Rollup rows of facts that carry a ``day``: gap sums over the rated records and metric
    sums over the answered ones, per day and dimensions (sums over no record are 0)."""
    aggs: dict[str, Any] = {}
    for name, expr in gap_aggregates(t, where=rated(t)).items():
        aggs[GAP_COLUMNS[name]] = expr if name in _COUNTS else expr.coalesce(0.0)
    for name, expr in metric_aggregates(t, where=answered(t)).items():
        aggs[METRIC_COLUMNS[name]] = expr if name in _COUNTS else expr.coalesce(0.0)
    rows = t.group_by(["day", *ROLLUP_DIMENSIONS]).aggregate(**aggs)
    return rows.filter((rows.gap_n > 0) | (rows.metric_n > 0))


def _unbound(store: Store, names: tuple[str, ...]) -> dict[str, ir.Table]:
    """Tables named as in the store but bound to no backend, so the compiled SQL names them
    plainly and runs inside a store transaction."""
    return {n: ibis.table(store.table(n).schema(), name=n) for n in names}


def refresh(store: Store) -> int:
    """Rebuild the rollup rows of every day marked dirty, in one transaction (serialised with
    ingest by the store's write lock). Returns the number of days rebuilt (0: nothing to do)."""
    if not has_rollup(store):
        return 0
    sql, order = _refresh_select(store)
    with store.transaction() as tx:
        (count, lo, hi), *_ = tx.fetchall("SELECT count(*), min(day), max(day) FROM rollup_dirty")
        if not count:
            return 0
        since, until = _midnight(lo), _midnight(hi) + timedelta(days=1)
        cols = ", ".join(ROLLUP_COLUMNS)
        tx.execute("DELETE FROM feedback_rollup WHERE day IN (SELECT day FROM rollup_dirty)")
        tx.execute(
            f"INSERT INTO feedback_rollup ({cols}) SELECT {cols} FROM ({sql}) AS r",
            [since if which == 1 else until for which in order],
        )
        tx.execute("DELETE FROM rollup_dirty")
        # the days rebuilt (one row per key now, the keys maybe others) are read again when next
        # added to
        known = _days.get(store, {})
        for day in [d for d in known if _midnight(lo) <= _midnight(d) <= _midnight(hi)]:
            del known[day]
    return int(count)


#: stand-ins for the time range in the compiled refresh query, replaced by parameters
_SINCE, _UNTIL = datetime(1901, 1, 1, tzinfo=UTC), datetime(1901, 1, 2, tzinfo=UTC)
#: how each engine's compiler writes them (DuckDB, PostgreSQL); group 1 or 2: which one
_STANDIN = re.compile(
    r"MAKE_TIMESTAMPTZ\(1901, 1, ([12]), 0, 0, 0\.0, 'UTC'\)"
    r"|CAST\('1901-01-0([12])T00:00:00\+00:00' AS TIMESTAMPTZ\)"
)
#: the refresh query of each open store, compiled once (compiling it took ~100 ms, most of a
#: small batch's ingest): its SQL with ``?`` for the time range, and which bound each ``?`` is
_compiled: weakref.WeakKeyDictionary[Store, tuple[str, tuple[int, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _refresh_select(store: Store) -> tuple[str, tuple[int, ...]]:
    """The SELECT of the rollup rows of the dirty days between two times (parameters)."""
    found = _compiled.get(store)
    if found is not None:
        return found
    tables = _unbound(store, ("feedback", "interactions", "people", "rollup_dirty"))
    t = feedback_facts(tables, ROLLUP_DIMENSIONS)
    # the time range lets the engine skip old data; the semi-join picks the dirty days
    t = t.filter(t.occurred_at >= ibis.literal(_SINCE), t.occurred_at < ibis.literal(_UNTIL))
    t = t.mutate(day=t.occurred_at.date())
    t = t.filter(t.day.isin(tables["rollup_dirty"].day))
    sql = ibis.to_sql(_aggregate_rows(t), dialect=store.dialect)
    order = tuple(int(m.group(1) or m.group(2)) for m in _STANDIN.finditer(sql))
    if "?" in sql or "%" in sql or set(order) != {1, 2}:
        raise RuntimeError(  # a compiler that writes times otherwise: caught by the tests
            "the rollup's refresh query does not hold the expected time stand-ins"
        )
    found = (_STANDIN.sub("CAST(? AS TIMESTAMPTZ)", sql), order)
    _compiled[store] = found
    return found


#: a feedback batch of at most this many records, none of them stored before, adds its own
#: rollup rows (:func:`add_new_feedback`) instead of marking its days for a rebuild
DELTA_MAX = 2000
#: keys per ``IN (...)`` lookup (DuckDB answers a list of constants from the primary key's index)
_LOOKUP_CHUNK = 1000
#: the columns of an interaction the rollup's dimensions read (after its id), and of a person
_INTERACTION_COLUMNS: tuple[str, ...] = ("touchpoint", "channel", "partner_id")
PEOPLE_COLUMNS: tuple[str, ...] = ("person_id", "segment", "region")
#: a day whose rollup rows outnumber twice its keys plus this is folded (see :func:`_fold`)
_FOLD_SLACK = 100


class _Day:
    """What this process knows of one day's rollup rows: how many, and their keys."""

    __slots__ = ("keys", "rows")

    def __init__(self) -> None:
        self.rows = 0
        self.keys: set[tuple[Any, ...]] = set()

    def add(self, keys: list[tuple[Any, ...]], rows: int) -> None:
        self.keys.update(keys)
        self.rows += rows

    def over(self) -> bool:
        """Whether the rows have grown past twice the keys (+100): time to fold them."""
        return self.rows > 2 * len(self.keys) + _FOLD_SLACK


#: per open store, the days this process added rollup rows to (see :func:`add_new_feedback`):
#: read from the rollup the first time, then kept up to date with every delta and fold. Exact on
#: DuckDB (one process writes a file); on PostgreSQL, rows other processes add are not counted
#: here, so a day may pass the limit before it is folded; a batch rolled back after adding its
#: rows leaves them counted until the day's next fold or refresh (matters of speed, never of
#: sums).
_days: weakref.WeakKeyDictionary[Store, dict[date, _Day]] = weakref.WeakKeyDictionary()


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
    interactions = _interaction_lookup(tx, rows.column("interaction_id"))
    if people is None:
        people = _lookup(tx, "people", PEOPLE_COLUMNS, rows.column("person_id"))
    read = {"interactions": interactions, "people": people}
    delta = delta_rows(rows, interactions, people)
    if not delta.num_rows:
        return read
    _insert_rows(tx, delta)
    known = _days.setdefault(store, {})
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


def _read_days(tx: Tx, known: dict[date, _Day], days: list[date]) -> None:
    """Read the rows and keys of ``days`` from the rollup."""
    marks = ", ".join("?" for _ in days)
    dims = ", ".join(ROLLUP_DIMENSIONS)
    for day in days:
        known[day] = _Day()
    for day, *key, n in tx.fetchall(
        f"SELECT day, {dims}, count(*) FROM feedback_rollup WHERE day IN ({marks}) "
        f"GROUP BY day, {dims}",
        days,
    ):
        day = day.date() if isinstance(day, datetime) else day
        known[day].add([tuple(key)], int(n))


def _fold(tx: Tx, known: dict[date, _Day], days: list[date]) -> None:
    """Replace the rollup rows of ``days`` by one row per key, their sums (the rollup is
    additive: the same sums, in fewer rows), in the caller's transaction: no base table read."""
    marks = ", ".join("?" for _ in days)
    keys = ["day", *ROLLUP_DIMENSIONS]
    sums = ", ".join(
        f"CAST(sum({c}) AS {'BIGINT' if c.split('_', 1)[1] in _COUNTS else 'DOUBLE PRECISION'})"
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
    folded = _rollup_typed(
        tx.fetch_arrow(
            f"SELECT {group}, {sums} FROM feedback_rollup WHERE day IN ({marks}) GROUP BY {group}",
            days,
        )
    )
    tx.execute(f"DELETE FROM feedback_rollup WHERE day IN ({marks})", days)
    _insert_rows(tx, folded)
    for day in days:
        known[day] = _Day()
    for key in zip(*(folded.column(c).to_pylist() for c in keys), strict=True):
        known[key[0]].add([key[1:]], 1)


def _rollup_typed(t: pa.Table) -> pa.Table:
    """``t``'s rollup columns, in order, typed as :func:`delta_rows` types them."""
    types = {"day": pa.date32(), **{d: pa.string() for d in ROLLUP_DIMENSIONS}}
    for col in (*GAP_COLUMNS.values(), *METRIC_COLUMNS.values()):
        is_count = col.split("_", 1)[1] in _COUNTS
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
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
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


def _interaction_lookup(tx: Tx, ids: Any) -> pa.Table:
    return _lookup(tx, "interactions", ("interaction_id", *_INTERACTION_COLUMNS), ids)


def delta_rows(rows: pa.Table, interactions: pa.Table, people: pa.Table) -> pa.Table:
    """The rollup rows of the feedback records ``rows``, given their interactions
    (``interaction_id`` and :data:`_INTERACTION_COLUMNS`) and persons (:data:`PEOPLE_COLUMNS`):
    what the rebuild's query (:func:`_aggregate_rows` over
    :func:`~corridor.analytics.core.dimensions.feedback_facts`) gives for them, computed in
    Arrow. Records whose interaction or person is not among them read as a left join's."""

    def text(t: pa.Table, name: str) -> pa.ChunkedArray:
        return t.column(name).cast(pa.string())

    def position(key: str, table: pa.Table) -> pa.Array:  # each record's row in ``table``
        at = pc.index_in(text(rows, key), value_set=text(table, table.column_names[0]))
        return at.combine_chunks() if isinstance(at, pa.ChunkedArray) else at

    def valid(a: Any) -> Any:
        return pc.is_valid(a)

    def holds(a: Any) -> Any:  # a predicate, null read as false (as SQL's FILTER reads it)
        return pc.fill_null(a, False)

    at_i, at_p = position("interaction_id", interactions), position("person_id", people)

    def joined(table: pa.Table, at: pa.Array, column: str) -> pa.Array:
        return text(table, column).combine_chunks().take(at)

    dims = {
        "touchpoint": pc.coalesce(
            text(rows, "touchpoint"), joined(interactions, at_i, "touchpoint")
        ),
        "channel": joined(interactions, at_i, "channel"),
        "partner": pc.coalesce(text(rows, "partner_id"), joined(interactions, at_i, "partner_id")),
        "segment": joined(people, at_p, "segment"),
        "region": joined(people, at_p, "region"),
        "source": text(rows, "source"),
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
    t = _rollup_typed(pa.table(out))
    return t.filter(pc.or_(pc.greater(t["gap_n"], 0), pc.greater(t["metric_n"], 0)))


def rebuild(store: Store) -> int:
    """Mark every day with feedback dirty and refresh: the whole rollup from scratch."""
    with store.transaction() as tx:
        tx.execute("DELETE FROM feedback_rollup")
        tx.execute(
            "INSERT INTO rollup_dirty (day) SELECT DISTINCT CAST(occurred_at AS DATE) "
            "FROM feedback ON CONFLICT (day) DO NOTHING"
        )
    return refresh(store)


def _midnight(d: date | datetime) -> datetime:
    if isinstance(d, datetime):
        d = d.date()
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


# -- reading --------------------------------------------------------------------------------------
def is_current(store: Store) -> bool:
    """Whether the rollup holds every stored record: no day is marked dirty. A read."""
    return int(store.table("rollup_dirty").count().execute()) == 0


def sums(source: Source, query: Query, kind: Kind) -> pd.DataFrame | None:
    """The :func:`~corridor.analytics.feedback.gaps.gap_sums` (``kind="gap"``) or
    :func:`~corridor.analytics.feedback.metrics.metric_sums` (``"metric"``) frame of ``query``,
    summed from the rollup; None when the rollup cannot answer the query.

    Days marked dirty (records committed since the last refresh: the ingest path refreshes
    them, a read never does) are summed from the base tables instead, in the same query, so the
    answer is exact at the query's snapshot while writes go on: the rollup's rows of the days
    not marked, and the base tables' rows of the days marked (few: those just written)."""
    if not eligible(source, query):
        return None
    assert isinstance(source, Store)
    columns = GAP_COLUMNS if kind == "gap" else METRIC_COLUMNS
    r = source.table("feedback_rollup").select(*ROLLUP_COLUMNS)
    marked = source.table("rollup_dirty")
    days = marked.day.cast("string")  # (an empty min() reads as a null on every engine)
    bounds = marked.aggregate(lo=days.min(), hi=days.max()).execute()
    lo, hi = bounds["lo"].iloc[0], bounds["hi"].iloc[0]
    if isinstance(lo, str) and isinstance(hi, str):
        # The days marked between lo and hi at the query's snapshot come from the base tables
        # (the refresh's own query), the others from the rollup. A day marked after the bounds
        # were read, outside them, is summed as the rollup holds it: as a read a moment earlier.
        first, last = date.fromisoformat(lo[:10]), date.fromisoformat(hi[:10])
        in_range = (r.day >= ibis.literal(first)) & (r.day <= ibis.literal(last))
        stale = in_range & r.day.isin(marked.day)
        r = r.filter(~stale).union(_fresh_rows(source, first, last), distinct=False)
    joined: Any = r
    cols: dict[str, Any] = {d: r[d] for d in ROLLUP_DIMENSIONS}
    if {"stage", "department"} & set(query.dimensions):
        tp = source.table("touchpoints")
        tp = tp.select(_tp_key=tp.key, _tp_stage=tp.stage, _tp_department=tp.department)
        joined = joined.left_join(tp, r.touchpoint == tp._tp_key)
        cols.update(stage=tp._tp_stage, department=tp._tp_department)
    t = joined.select(
        day=r.day,
        **{d: cols[d] for d in query.dimensions},
        **{col: r[col] for col in columns.values()},
    )
    preds = [t[columns["n"]] > 0, *filter_predicates(t, query.filters)]
    if query.since is not None:
        preds.append(t.day >= ibis.literal(query.since.date()))
    if query.until is not None:
        preds.append(t.day < ibis.literal(query.until.date()))
    t = t.filter(*preds)
    if query.period is not None:
        t = t.mutate(period=t.day.truncate(PERIODS[query.period]).cast("timestamp"))
    aggs = {name: t[col].sum() for name, col in columns.items()}
    df = aggregate(t, query.keys, aggs)
    for name in columns:
        if name in _COUNTS:
            df[name] = df[name].astype("int64")
    return df


def sums_or_base(source: Source, query: Query, kind: Kind) -> pd.DataFrame:
    """:func:`sums` where the rollup can answer ``query``, else the same frame summed from the
    base tables (over the records :func:`rated` or :func:`answered`)."""
    found = sums(source, query, kind)
    if found is not None:
        return found
    keep, aggregates = _BASE[kind]
    t = query_rows(source, query)
    t = t.filter(keep(t))
    return aggregate(t, query.keys, aggregates(t))


def _fresh_rows(store: Store, lo: date, hi: date) -> ir.Table:
    """Rollup rows of the days marked dirty between ``lo`` and ``hi``, from the base tables:
    the refresh's query (compiled once per store), read, not written."""
    sql, order = _refresh_select(store)
    since, until = _midnight(lo), _midnight(hi) + timedelta(days=1)
    for which in order:  # the time range as literals (dates of the store's own marks)
        at = (since if which == 1 else until).isoformat()
        sql = sql.replace("CAST(? AS TIMESTAMPTZ)", f"CAST('{at}' AS TIMESTAMPTZ)", 1)
    # declared as the rollup's own columns (the engine casts the union's rows alike)
    schema = store.table("feedback_rollup").select(*ROLLUP_COLUMNS).schema()
    return store.ibis.sql(sql, schema=schema, dialect=store.dialect).select(*ROLLUP_COLUMNS)


def values(store: Store, dimension: str) -> list[str]:
    """The values ``dimension`` (one of :data:`ROLLUP_DIMENSIONS`) takes in the rollup, sorted,
    missing left out: what a filter can offer (small, and current enough for that)."""
    if dimension not in ROLLUP_DIMENSIONS:
        raise ValueError(f"not a rollup dimension: {dimension!r}")
    r = store.table("feedback_rollup")
    t = r.filter(r[dimension].notnull()).select(dimension).distinct().order_by(dimension)
    return [str(v) for v in t.to_pyarrow().column(dimension).to_pylist()]


__all__ = [
    "DELTA_MAX",
    "GAP_COLUMNS",
    "METRIC_COLUMNS",
    "ROLLUP_COLUMNS",
    "ROLLUP_DIMENSIONS",
    "ROLLUP_ELIGIBLE",
    "add_new_feedback",
    "eligible",
    "has_rollup",
    "is_current",
    "rebuild",
    "refresh",
    "sums",
    "values",
]
