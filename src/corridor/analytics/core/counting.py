"""Counting the rows where a condition holds, alike on every engine.

``table.count(where=p)`` compiles to ``COUNT(*) FILTER (WHERE p)`` on DuckDB and PostgreSQL,
which is 0 when ``p`` holds on no row of a group (false or null alike). Ibis's PySpark compiler
writes ``SUM(CAST(p AS BIGINT))`` instead, which is NULL when ``p`` is null on every row of the
group (or there is no row at all). :func:`count_where` wraps the count in ``COALESCE(…, 0)``,
so it is 0 on every engine; on DuckDB and PostgreSQL it gives the numbers it always gave.

Two neighbours need no such help. A column's ``x.count(where=p)`` is a plain ``COUNT`` on every
engine (``FILTER`` or ``COUNT(IF(p, x, NULL))``), never null. ``x.sum(where=p)`` over no row is
NULL on every engine alike (SQL's ``SUM``); :func:`corridor.analytics.core.dimensions.aggregate`
turns such sums into 0, and the other callers handle the null themselves.
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir


def count_where(table: ir.Table, predicate: Any = None) -> ir.IntegerScalar:
    """The number of rows of ``table`` (per group, in an aggregate) where ``predicate`` holds:
    0, never null, when it holds on none of them — on every engine (see the module docstring).
    ``predicate=None`` counts every row."""
    if predicate is None:
        return table.count()
    counted: ir.IntegerScalar = ibis.coalesce(table.count(where=predicate), 0)
    return counted


__all__ = ["count_where"]
