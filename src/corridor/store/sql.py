"""Pieces of parameterised SQL that the modules above the store build by hand (``?`` markers,
as :meth:`corridor.store.base.Store.query` takes them)."""

from __future__ import annotations

from typing import Any


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


__all__ = ["add_time_range"]
