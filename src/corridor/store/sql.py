"""Pieces of parameterised SQL that the modules above the store build by hand (``?`` markers,
as :meth:`corridor.store.base.Store.query` takes them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from corridor.store.base import Tx

#: keys per look-up statement of :func:`lookup_by_key`
LOOKUP_CHUNK = 1000


def add_time_range(
    conds: list[str],
    params: list[Any],
    since: Any,
    until: Any,
    column: str,
    *,
    ends: str | None = None,
) -> None:
    """Restrict a query to ``[since, until)``: append ``column < ?`` for ``until`` and
    ``ends >= ?`` (``ends`` defaults to ``column``; an interval's end, to keep what overlaps the
    range) for ``since`` to ``conds``, and their values to ``params``; a bound that is None adds
    nothing."""
    if since is not None:
        conds.append(f"{ends or column} >= ?")
        params.append(since)
    if until is not None:
        conds.append(f"{column} < ?")
        params.append(until)


def lookup_by_key(
    tx: Tx, table: str, key: str, columns: tuple[str, ...], ids: Any, *, chunk: int = LOOKUP_CHUNK
) -> pa.Table:
    """``columns`` of the rows of ``table`` whose ``key`` is among ``ids`` (an Arrow array),
    by index look-ups: on DuckDB a list of keys is answered from the primary key's index, where
    a join with a staged table of keys reads the whole table."""
    wanted = pc.unique(ids.drop_null()).to_pylist()
    select = f"SELECT {', '.join(columns)} FROM {table}"
    parts = [tx.fetch_arrow(f"{select} WHERE FALSE")]  # the columns' types, when no key
    for start in range(0, len(wanted), chunk):
        keys = wanted[start : start + chunk]
        marks = ", ".join("?" for _ in keys)
        parts.append(tx.fetch_arrow(f"{select} WHERE {key} IN ({marks})", keys))
    return pa.concat_tables(parts)


__all__ = ["add_time_range", "lookup_by_key"]
