"""How the loop performs, per department (or partner, team, touch point, rule).

One row per group of the cases opened in ``[since, until)`` that the user sees: cases opened and
still open; time to first response and to resolution in **business minutes** on each case's own
SLA calendar (the time its clocks were stopped left out), median and 90th percentile with their
n; SLA breaches (cases with a breached clock, and their share); and the share of decided
verifications that verified the fix, with its Wilson interval.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from corridor.analytics.core.dimensions import TimeLike, check_range
from corridor.analytics.estimators import stats
from corridor.auth.scope import Scope
from corridor.errors import CorridorError
from corridor.loop import casestore, sla
from corridor.store import Store

GROUPS: tuple[str, ...] = ("department", "partner_id", "team", "touchpoint", "rule_id")


def _quantiles(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values, dtype=float)
    return round(float(np.median(arr)), 1), round(float(np.quantile(arr, 0.9)), 1)


def case_report(
    store: Store,
    scope: Scope | None,
    *,
    by: str = "department",
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """The report's rows (see the module notes), one per value of ``by`` (``group``; None for
    cases without one), largest group first."""
    if by not in GROUPS:
        raise CorridorError(f"cannot group cases by {by!r}; use one of {', '.join(GROUPS)}")
    lo, hi = check_range(since, until)
    where, params = scope.case_filter() if scope is not None else ("TRUE", [])
    args: list[Any] = list(params)
    if lo is not None:
        where += " AND opened_at >= ?"
        args.append(lo)
    if hi is not None:
        where += " AND opened_at < ?"
        args.append(hi)
    with store.transaction() as tx:
        found = casestore.select_cases(tx, where, args, "ORDER BY opened_at")
        policies = {name: sla.get_policy(tx, name) for name in {c["sla_policy"] for c in found}}
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for c in found:
        groups[c[by]].append(c)
    rows = []
    for key, members in groups.items():
        first: list[float] = []
        resolve: list[float] = []
        for c in members:
            cal = policies[c["sla_policy"]].calendar
            if c["first_response_at"] is not None:
                first.append(cal.between(c["opened_at"], c["first_response_at"]))
            if c["resolved_at"] is not None and c["paused_at"] is not None:
                active = cal.between(c["opened_at"], c["paused_at"]) - float(c["paused_minutes"])
                resolve.append(max(active, 0.0))
        breached = sum(
            c["first_response_breached_at"] is not None or c["resolution_breached_at"] is not None
            for c in members
        )
        verified = sum(c["verification"] == "verified" for c in members)
        decided = verified + sum(c["verification"] == "not_verified" for c in members)
        share = stats.proportion(verified, decided, confidence) if decided else None
        fr_median, fr_p90 = _quantiles(first)
        res_median, res_p90 = _quantiles(resolve)
        rows.append({
            "group": key,
            "opened": len(members),
            "open_now": sum(c["state"] in ("new", "open", "pending") for c in members),
            "first_response_n": len(first),
            "first_response_median_min": fr_median,
            "first_response_p90_min": fr_p90,
            "resolved_n": len(resolve),
            "resolution_median_min": res_median,
            "resolution_p90_min": res_p90,
            "breached": breached,
            "breached_share": round(breached / len(members), 4),
            "verification_decided": decided,
            "verified": verified,
            "verified_share": None if share is None else round(float(share.share), 4),
            "verified_share_low": None if share is None else round(float(share.low), 4),
            "verified_share_high": None if share is None else round(float(share.high), 4),
        })  # fmt: skip
    rows.sort(key=lambda r: (-r["opened"], str(r["group"])))
    return rows


__all__ = ["GROUPS", "case_report"]
