"""The rollup's delta path: a batch of new feedback adds its own rollup rows in its own
transaction (see :mod:`corridor.analytics.feedback.rollup` for the table, its freshness and its
reads). The batch's interactions and persons are looked up by key, its rows computed in Arrow
(:func:`~corridor.analytics.feedback.rollup_rows.delta_rows`, equal to the rebuild's
aggregates), and a day whose rows have grown is folded back to one row per key."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa

from corridor.analytics.feedback.rollup import DayRows, days_known
from corridor.analytics.feedback.rollup_rows import (
    COUNTS,
    ROLLUP_COLUMNS,
    ROLLUP_DIMENSIONS,
    delta_rows,
    interactions_of,
    people_of,
    rollup_typed,
)
from corridor.store.base import Store, Tx

#: a feedback batch of at most this many records, none of them stored before, adds its own
#: rollup rows (:func:`add_new_feedback`) instead of marking its days for a rebuild
DELTA_MAX = 2000


def add_new_feedback(
    store: Store,
    tx: Tx,
    rows: pa.Table,
    people: pa.Table | None = None,
    interactions: pa.Table | None = None,
) -> dict[str, pa.Table]:
    """Add the rollup rows of a batch of new feedback records (``rows``; none of them was
    stored before this transaction), in the batch's own transaction: the rollup is additive, so
    the batch's own sums, added as rows of their own, keep every key's sum exact without
    rebuilding its days. ``people``: the batch's stored persons' :data:`PEOPLE_COLUMNS`, when
    the ingest read them already (persons not among them have no segment or region);
    ``interactions``: likewise its interactions, when read already.

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
    if interactions is None:
        interactions = interactions_of(tx, rows)
    read = {"interactions": interactions, "people": people_of(tx, rows, people)}
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


__all__ = ["DELTA_MAX", "add_new_feedback"]
