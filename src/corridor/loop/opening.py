"""Opening and joining cases from alerts.

An alert opens a case, or joins the open case (new, open or pending) of the same cause: the same
rule and subject (:func:`take_alerts`, called by :func:`corridor.loop.alerts.fire` in the
transaction that raises the alerts). A new case takes its rule's priority, team and SLA policy,
the department, partner, touch point and customer of its first alert, and due times from the
policy; opening and joining each write a history line and a notification (``case.opened``,
``case.alert_added``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from corridor.loop import casestore, sla
from corridor.loop.cases import owner
from corridor.store.base import Tx

if TYPE_CHECKING:
    from corridor.loop.alerts import Hit


def take_alerts(tx: Tx, hits: Sequence[Hit], now: datetime) -> dict[int, str]:
    """Open a case for each new cause among ``hits`` and let the others join the open case of
    their cause; returns ``id(hit)`` → case id."""
    causes = sorted({h.cause for h in hits})
    open_case: dict[str, str] = {}
    for start in range(0, len(causes), 500):
        chunk = causes[start : start + 500]
        rows = tx.fetchall(
            "SELECT cause, case_id FROM cases WHERE state IN ('new', 'open', 'pending') "
            f"AND cause IN ({', '.join('?' * len(chunk))}) ORDER BY opened_at",
            chunk,
        )
        open_case.update({cause: case_id for cause, case_id in rows})
    groups: dict[str, list[Hit]] = defaultdict(list)
    for h in hits:
        groups[h.cause].append(h)
    policies: dict[str | None, sla.Policy] = {}
    out: dict[int, str] = {}
    for cause, group in groups.items():
        group.sort(key=lambda h: h.occurred_at)
        case_id = open_case.get(cause)
        joining = group
        if case_id is None:
            first = group[0]
            name = first.rule.sla_policy
            if name not in policies:
                policies[name] = sla.get_policy(tx, name)
            case_id = _open(tx, first, policies[name], now)
            joining = group[1:]
        if joining:
            _join(tx, case_id, joining, now)
        for h in group:
            out[id(h)] = case_id
    return out


def _open(tx: Tx, hit: Hit, policy: sla.Policy, now: datetime) -> str:
    rule = hit.rule
    case_id = "case-" + uuid.uuid4().hex[:12]
    fr_due, res_due = policy.dues(rule.priority, now)
    case = {c: None for c in casestore.CASE_COLUMNS} | {
        "case_id": case_id,
        "title": hit.summary[:500],
        "rule_id": rule.rule_id,
        "cause": hit.cause,
        "state": "new",
        "priority": rule.priority,
        "department": hit.department,
        "partner_id": hit.partner_id,
        "team": rule.team,
        "touchpoint": hit.touchpoint,
        "person_id": hit.person_id,
        "region": hit.region,
        "segment": hit.segment,
        "opened_at": now,
        "updated_at": now,
        "last_alert_at": hit.occurred_at,
        "alerts": 1,
        "sla_policy": policy.name,
        "first_response_due": fr_due,
        "resolution_due": res_due,
        "paused_minutes": 0.0,
        "escalation_level": 0,
        "root_cause_event": hit.event_id,
    }
    cols = casestore.CASE_COLUMNS
    tx.execute(
        f"INSERT INTO cases ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        [case[c] for c in cols],
    )
    actor = f"rule:{rule.rule_id}"
    event = casestore.record(
        tx, case_id, actor, "opened", at=now, field="state", new="new", note=hit.summary
    )
    casestore.notify(
        tx,
        "case.opened",
        case,
        event,
        actor=actor,
        at=now,
        change={"alert": hit.as_dict(), "owner": owner(case)},
    )
    return case_id


def _join(tx: Tx, case_id: str, hits: Sequence[Hit], now: datetime) -> None:
    case = casestore.read_case(tx, case_id)
    assert case is not None
    last = max([h.occurred_at for h in hits] + [case["last_alert_at"] or hits[0].occurred_at])
    changes = {"alerts": int(case["alerts"]) + len(hits), "last_alert_at": last}
    casestore.write_fields(tx, case_id, changes, now)
    actor = f"rule:{hits[0].rule.rule_id}"
    summary = (
        hits[-1].summary if len(hits) == 1 else f"{len(hits)} more alerts; last: {hits[-1].summary}"
    )
    event = casestore.record(
        tx,
        case_id,
        actor,
        "alert_added",
        at=now,
        field="alerts",
        old=case["alerts"],
        new=changes["alerts"],
        note=summary,
    )
    casestore.notify(
        tx,
        "case.alert_added",
        {**case, **changes, "updated_at": now},
        event,
        actor=actor,
        at=now,
        change={"alerts": [h.as_dict() for h in hits]},
    )


__all__ = ["take_alerts"]
