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
summed as the rollup holds it, as a read a moment earlier would have. A server's new feedback
waits in a queue for its rollup rows (:mod:`corridor.analytics.feedback.rollup_pending`): a read
adds the queued records' rows in the same statement, so it is exact too.

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
from corridor.analytics.feedback import rollup_rows
from corridor.analytics.feedback.rollup_rows import (
    COUNTS,
    GAP_COLUMNS,
    METRIC_COLUMNS,
    ROLLUP_COLUMNS,
    ROLLUP_DIMENSIONS,
)
from corridor.analytics.feedback.sums import gap_aggregates, metric_aggregates
from corridor.store.base import Store
from corridor.store.migrations import V3, V16

#: groupings and filters the rollup can answer: its own, plus what the touch point determines
ROLLUP_ELIGIBLE: frozenset[str] = frozenset({*ROLLUP_DIMENSIONS, "stage", "department"})

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

#: stores known to be at a schema version (v3: the rollup tables; v16: ``rollup_pending``)
_ready: dict[int, weakref.WeakSet[Store]] = {
    V3.version: weakref.WeakSet(),
    V16.version: weakref.WeakSet(),
}


def _at_least(store: Store, version: int) -> bool:
    if store in _ready[version]:
        return True
    try:  # read, not store.schema_version(): that one runs in a write transaction
        found = store.table("schema_migrations").version.max().execute()
    except TableNotFound:  # a store never migrated
        return False
    if found is not None and int(found) >= version:
        _ready[version].add(store)
        return True
    return False


def has_rollup(store: Store) -> bool:
    """Whether the store's schema has the rollup (v3+). Stores opened at an older schema
    version (tests of the migrations) answer from the base tables."""
    return _at_least(store, V3.version)


def has_pending(store: Store) -> bool:
    """Whether the store's schema has ``rollup_pending`` (v16+): feedback whose rollup rows a
    background fold adds after its commit (:mod:`corridor.analytics.feedback.rollup_pending`)."""
    return _at_least(store, V16.version)


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
        aggs[GAP_COLUMNS[name]] = expr if name in COUNTS else expr.coalesce(0.0)
    for name, expr in metric_aggregates(t, where=answered(t)).items():
        aggs[METRIC_COLUMNS[name]] = expr if name in COUNTS else expr.coalesce(0.0)
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
        if has_pending(store):
            # first: the records of these days still queued are rebuilt here, so only their
            # record rules wait (on PostgreSQL this waits for a fold holding them to commit, and
            # the delete below then removes the rows it added)
            tx.execute(
                "UPDATE rollup_pending SET rolled = TRUE "
                "WHERE NOT rolled AND day IN (SELECT day FROM rollup_dirty)"
            )
        tx.execute("DELETE FROM feedback_rollup WHERE day IN (SELECT day FROM rollup_dirty)")
        tx.execute(
            f"INSERT INTO feedback_rollup ({cols}) SELECT {cols} FROM ({sql}) AS r",
            [since if which == 1 else until for which in order],
        )
        tx.execute("DELETE FROM rollup_dirty")
        # the days rebuilt (one row per key now, the keys maybe others) are read again when next
        # added to
        known = days_known.get(store, {})
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


#: a day whose rollup rows outnumber twice its keys plus this is folded (see
#: :func:`corridor.analytics.feedback.rollup_delta.add_new_feedback`)
FOLD_SLACK = 100


class DayRows:
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
        return self.rows > 2 * len(self.keys) + FOLD_SLACK


#: per open store, the days this process added rollup rows to (see
#: :func:`corridor.analytics.feedback.rollup_delta.add_new_feedback`): read from the rollup the
#: first time, then kept up to date with every delta and fold. Exact on DuckDB (one process
#: writes a file); on PostgreSQL, rows other processes add are not counted here, so a day may
#: pass the limit before it is folded; a batch rolled back after adding its rows leaves them
#: counted until the day's next fold or refresh (matters of speed, never of sums). A refresh
#: forgets the days it rebuilt.
days_known: weakref.WeakKeyDictionary[Store, dict[date, DayRows]] = weakref.WeakKeyDictionary()


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
    """Whether the rollup holds every stored record: no day is marked dirty and no record waits
    for the fold. A read."""
    if int(store.table("rollup_dirty").count().execute()):
        return False
    if not has_pending(store):
        return True
    return not store.query("SELECT 1 FROM rollup_pending WHERE NOT rolled LIMIT 1")


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
    lo, hi, waiting = _marks(source)
    if waiting:
        # Records waiting for the fold: their rows from the base tables, in the same query. At
        # the query's snapshot a record is either waiting or folded, never both.
        r = r.union(_pending_rows(source), distinct=False)
    if lo is not None and hi is not None:
        # The days marked between lo and hi at the query's snapshot come from the base tables
        # (the refresh's own query), the others from the rollup. A day marked after the bounds
        # were read, outside them, is summed as the rollup holds it: as a read a moment earlier.
        # (Records of those days waiting for the fold are among the base tables' rows.)
        in_range = (r.day >= ibis.literal(lo)) & (r.day <= ibis.literal(hi))
        stale = in_range & r.day.isin(marked.day)
        r = r.filter(~stale).union(_fresh_rows(source, lo, hi), distinct=False)
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
        if name in COUNTS:
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


def _marks(store: Store) -> tuple[date | None, date | None, bool]:
    """The first and last day marked dirty (None, None: none), and whether any record's rollup
    rows wait for the fold: one small read."""
    pending = (
        "EXISTS (SELECT 1 FROM rollup_pending WHERE NOT rolled)" if has_pending(store) else "FALSE"
    )
    # (days as text: an empty min() reads as a null on every engine)
    (lo, hi, waiting), *_ = store.query(
        f"SELECT min(CAST(day AS VARCHAR)), max(CAST(day AS VARCHAR)), {pending} FROM rollup_dirty"
    )
    if isinstance(lo, str) and isinstance(hi, str):
        return date.fromisoformat(lo[:10]), date.fromisoformat(hi[:10]), bool(waiting)
    return None, None, bool(waiting)


#: DuckDB: up to this many queued records are read by key and their rows computed in Arrow
#: (:func:`_queued_rows`); more (a fold fallen behind) by the engine's join
QUEUED_BY_KEY = 5000


def _pending_rows(store: Store) -> ir.Table:
    """Rollup rows of the records waiting for the fold (``rollup_pending``), from the base
    tables: read, not written. The fold moves records from the queue to the rollup in one
    transaction, so these rows and the rollup's, read in one statement, count each record
    once. On DuckDB, :func:`_queued_rows`; else (and past :data:`QUEUED_BY_KEY`) one join,
    which PostgreSQL answers by index look-ups."""
    if store.dialect == "duckdb":
        ids = store.query(
            f"SELECT feedback_id FROM rollup_pending WHERE NOT rolled LIMIT {QUEUED_BY_KEY + 1}"
        )
        if len(ids) <= QUEUED_BY_KEY:
            return _queued_rows(store, [str(i) for (i,) in ids])
    sql = _compiled_pending.get(store)
    if sql is None:
        tables = _unbound(store, ("feedback", "interactions", "people", "rollup_pending"))
        f, queue = tables["feedback"], tables["rollup_pending"]
        waiting = f.filter(f.feedback_id.isin(queue.filter(~queue.rolled).feedback_id))
        t = feedback_facts({**tables, "feedback": waiting}, ROLLUP_DIMENSIONS)
        rows = _aggregate_rows(t.mutate(day=t.occurred_at.date()))
        sql = ibis.to_sql(rows, dialect=store.dialect)
        _compiled_pending[store] = sql
    schema = store.table("feedback_rollup").select(*ROLLUP_COLUMNS).schema()
    return store.ibis.sql(sql, schema=schema, dialect=store.dialect).select(*ROLLUP_COLUMNS)


def _queued_rows(store: Store, ids: list[str]) -> ir.Table:
    """The rows of the queued records ``ids``, one per record, computed in Arrow from their
    feedback, interactions and persons read by key (:func:`rollup_rows.by_keys`: on DuckDB a
    large table answers a list of keys from its primary key's index, where a join reads the
    whole table, 30 ms for the feedback and 110 ms for the interactions at 10 M; a small table
    is read in one pass), kept in the statement only while still
    queued: a record folded since is in the rollup's rows instead."""
    by_key = rollup_rows.reads(store)
    records = rollup_rows.feedback_of(by_key, ids)
    rows = rollup_rows.record_rows(
        records,
        rollup_rows.interactions_of(by_key, records),
        rollup_rows.people_of(by_key, records),
    )
    schema = store.table("feedback_rollup").select(*ROLLUP_COLUMNS).schema()
    t = ibis.memtable(rows).cast({"feedback_id": "string", **dict(schema.items())})
    queue = store.table("rollup_pending")
    still = t.filter(t.feedback_id.isin(queue.filter(~queue.rolled).feedback_id))
    return still.select(*ROLLUP_COLUMNS)


#: the pending rows' query of each open store, compiled once
_compiled_pending: weakref.WeakKeyDictionary[Store, str] = weakref.WeakKeyDictionary()


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
    "COUNTS",
    "FOLD_SLACK",
    "GAP_COLUMNS",
    "METRIC_COLUMNS",
    "ROLLUP_COLUMNS",
    "ROLLUP_DIMENSIONS",
    "ROLLUP_ELIGIBLE",
    "DayRows",
    "days_known",
    "eligible",
    "has_rollup",
    "is_current",
    "rebuild",
    "refresh",
    "sums",
    "values",
]
