"""What the pages count: cases per state and each rule's recent alerts, within a user's scope.

The case inbox shows how many cases of each state the user sees (:func:`case_counts`, the
same filters as :func:`corridor.loop.cases.list_cases`, state aside) and the rules page when
each rule last fired and how many alerts it raised lately (:func:`rule_activity`). Both count
only what the user's scope sees (:meth:`~corridor.auth.scope.Scope.case_filter`), so a count
never tells of a case or an alert outside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from corridor.auth.scope import Role, Scope
from corridor.loop.cases import FILTERS, STATES, CaseError
from corridor.store import Store


def _where(
    scope: Scope | None, filters: Mapping[str, Iterable[str]] | None
) -> tuple[str, list[Any]]:
    where, params = scope.case_filter() if scope is not None else ("TRUE", [])
    parts, args = [where], list(params)
    for column, values in (filters or {}).items():
        if column not in FILTERS or column == "state":
            raise CaseError(f"unknown case filter {column!r}; allowed: {', '.join(FILTERS)}")
        vals = list(values)
        if vals:
            parts.append(f"{column} IN ({', '.join('?' * len(vals))})")
            args.extend(vals)
    return " AND ".join(parts), args


def case_counts(
    store: Store, scope: Scope | None, filters: Mapping[str, Iterable[str]] | None = None
) -> dict[str, int]:
    """How many cases ``scope`` sees in each state (every state, zeros included), among those
    matching ``filters`` (column → allowed values, as :func:`~corridor.loop.cases.list_cases`
    takes them, but no ``state``)."""
    clause, args = _where(scope, filters)
    with store.transaction() as tx:
        rows = tx.fetchall(f"SELECT state, count(*) FROM cases WHERE {clause} GROUP BY state", args)
    found = {str(state): int(n) for state, n in rows}
    return {state: found.get(state, 0) for state in STATES}


def rule_activity(store: Store, scope: Scope | None, since: datetime) -> dict[str, dict[str, Any]]:
    """Per rule id: ``last_fired`` (when its latest alert the scope sees was raised) and
    ``recent`` (how many of those were raised from ``since`` on). Rules that never fired within
    the scope are left out. An agent sees no alerts (they see cases on a customer's timeline)."""
    if scope is not None and scope.role is Role.AGENT:
        return {}
    # the scope's condition reads department and partner_id, which alerts carry as cases do
    where, params = scope.case_filter() if scope is not None else ("TRUE", [])
    with store.transaction() as tx:
        rows = tx.fetchall(
            "SELECT rule_id, max(fired_at), count(*) FILTER (WHERE fired_at >= ?) "
            f"FROM alerts WHERE {where} GROUP BY rule_id",
            [since, *params],
        )
    return {str(r): {"last_fired": last, "recent": int(n)} for r, last, n in rows}


__all__ = ["case_counts", "rule_activity"]
