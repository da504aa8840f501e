"""A rule's dry run: what it would have fired on past data, as a user may see it.

Record rules run over the stored records (ignoring their ``max_age``), aggregate rules over the
complete periods of their analysis; both de-duplicated by the rule's cooldown, and nothing is
written. The alerts a user is shown are those of cases they would see
(:meth:`~corridor.auth.scope.Scope.sees_case`). ``corridor rules test`` and
``GET /api/v1/rules/{rule_id}/test`` both call :func:`dry_run`.
"""

from __future__ import annotations

from datetime import datetime

from corridor.analytics.core.dimensions import TimeLike, check_range
from corridor.auth.scope import Scope
from corridor.loop import aggregate_rules, alerts, record_rules
from corridor.loop.alerts import Hit
from corridor.loop.rules import Rule
from corridor.store import Store


def dry_run(
    store: Store, scope: Scope | None, rule: Rule, since: TimeLike, until: TimeLike
) -> tuple[list[Hit], datetime | None, datetime | None]:
    """The alerts ``rule`` would have fired from ``since`` to before ``until`` (in time order)
    that ``scope`` sees, and the two bounds as read."""
    lo, hi = check_range(since, until)
    if rule.family == "record":
        hits = _record_dry_run(store, rule, lo, hi)
    else:
        with store.reading():
            hits = aggregate_rules.dry_run(store, rule, since=lo, until=hi)
    if scope is not None and not scope.sees_all:
        hits = [h for h in hits if scope.sees_case(h.department, h.partner_id)]
    return hits, lo, hi


def _record_dry_run(
    store: Store, rule: Rule, since: datetime | None, until: datetime | None
) -> list[Hit]:
    """What ``rule`` would have fired on the stored records (``since`` ≤ time < ``until``),
    de-duplicated by its cooldown; nothing is written."""
    kinds = [k for k, watched in record_rules.WATCHES.items() if rule.kind in watched]
    hits: list[Hit] = []
    with store.transaction() as tx:
        for kind in kinds:
            sql = (
                record_rules.FEEDBACK_SQL if kind == "feedback" else record_rules.INTERACTIONS_SQL
            ).format(src=kind)
            conds, params = ["TRUE"], []
            if since is not None:
                conds.append("b.occurred_at >= ?")
                params.append(since)
            if until is not None:
                conds.append("b.occurred_at < ?")
                params.append(until)
            rows = tx.fetch_arrow(f"{sql} WHERE {' AND '.join(conds)}", params)
            hits.extend(record_rules.find_hits(tx, [rule], kind, rows, now=None))
    return alerts.dedup(hits)


__all__ = ["dry_run"]
