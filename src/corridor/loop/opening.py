"""Opening and joining cases from alerts.

An alert opens a case, or joins the open case (new, open or pending) of the same cause: the same
rule and subject, through the same partner (:func:`take_alerts`, called by
:func:`corridor.loop.alerts.fire` in the transaction that raises the alerts). A record of
another partner (the same customer at the same touch point, served by another carrier) opens a
case of its own, for that partner: a case, its notifications and its page hold only what its
owners may see. A new case takes its rule's priority, team and SLA policy,
the department, partner, touch point and customer of its first alert, and due times from the
policy; opening and joining each write a history line and a notification (``case.opened``,
``case.alert_added``). A case of a rule ``per`` touch point names no customer: it is about the
touch point, whose gap verifies it, and the customers of its alerts are in the alerts.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from corridor.loop import casestore, outbox, sla
from corridor.loop.cases import owner
from corridor.store.base import Tx

if TYPE_CHECKING:
    from corridor.loop.alerts import Hit


def take_alerts(
    tx: Tx, hits: Sequence[Hit], now: datetime, events: list[outbox.Event] | None = None
) -> dict[int, str]:
    """Open a case for each new cause among ``hits`` and let the others join the open case of
    their cause; returns ``id(hit)`` → case id. Written as a batch: the new cases, the joined
    cases' counts, the history lines and the notifications go in a few statements whatever the
    number of hits. The notifications are appended to ``events`` when given (the caller writes
    them with its own, in one :func:`corridor.loop.outbox.enqueue_many`), else written here."""
    causes = tx.stage_keys("_alert_causes", sorted({h.cause for h in hits}))
    rows = tx.fetchall(
        "SELECT cause, partner_id, case_id FROM cases WHERE state IN ('new', 'open', 'pending') "
        f"AND cause IN ({causes}) ORDER BY opened_at"
    )
    open_case: dict[tuple[str, str | None], str] = {
        (cause, partner): case_id for cause, partner, case_id in rows
    }
    groups: dict[tuple[str, str | None], list[Hit]] = defaultdict(list)
    for h in hits:
        groups[(h.cause, h.partner_id)].append(h)
    policies: dict[str | None, sla.Policy] = {}
    dues: dict[tuple[str | None, str], tuple[datetime, datetime]] = {}  # one `now` for all
    out: dict[int, str] = {}
    opened: list[tuple[dict[str, Any], Hit]] = []
    joins: list[tuple[str, list[Hit]]] = []
    for key, group in groups.items():
        group.sort(key=lambda h: h.occurred_at)
        case_id = open_case.get(key)
        joining = group
        if case_id is None:
            first = group[0]
            name = first.rule.sla_policy
            if name not in policies:
                policies[name] = sla.get_policy(tx, name)
            if (name, first.rule.priority) not in dues:
                dues[(name, first.rule.priority)] = policies[name].dues(first.rule.priority, now)
            case = _new_case(first, policies[name], dues[(name, first.rule.priority)], now)
            opened.append((case, first))
            case_id = case["case_id"]
            joining = group[1:]
        if joining:
            joins.append((case_id, joining))
        for h in group:
            out[id(h)] = case_id
    casestore.insert_cases(tx, [case for case, _ in opened])
    lines = [
        casestore.Line(
            case["case_id"], f"rule:{hit.rule.rule_id}", "opened", now, "state", None, "new",
            hit.summary,
        )
        for case, hit in opened
    ]  # fmt: skip
    notices: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
        ("case.opened", case, f"rule:{hit.rule.rule_id}",
         {"alert": hit.as_dict(), "owner": owner(case)})
        for case, hit in opened
    ]  # fmt: skip
    joined = _join(tx, joins, {case["case_id"]: case for case, _ in opened}, now)
    for case_id, group, before, after in joined:
        summary = (
            group[-1].summary
            if len(group) == 1
            else f"{len(group)} more alerts; last: {group[-1].summary}"
        )
        actor = f"rule:{group[0].rule.rule_id}"
        lines.append(
            casestore.Line(
                case_id, actor, "alert_added", now, "alerts", before["alerts"],
                after["alerts"], summary,
            )
        )  # fmt: skip
        notices.append(("case.alert_added", after, actor, {"alerts": [h.as_dict() for h in group]}))
    event_ids = casestore.record_many(tx, lines, new={case["case_id"] for case, _ in opened})
    batch = casestore.notices(
        tx,
        [
            casestore.Notice(kind, case, event_id, actor=actor, change=change, at=now)
            for (kind, case, actor, change), event_id in zip(notices, event_ids, strict=True)
        ],
    )
    if events is None:  # (keyed by the history lines' ids, made just now)
        outbox.enqueue_many(tx, batch, new_keys=True)
    else:
        events.extend(batch)
    return out


def _new_case(
    hit: Hit, policy: sla.Policy, due: tuple[datetime, datetime], now: datetime
) -> dict[str, Any]:
    rule = hit.rule
    fr_due, res_due = due
    return {c: None for c in casestore.CASE_COLUMNS} | {
        "case_id": "case-" + uuid.uuid4().hex[:12],
        "title": hit.summary[:500],
        "rule_id": rule.rule_id,
        "cause": hit.cause,
        "state": "new",
        "priority": rule.priority,
        "department": hit.department,
        "partner_id": hit.partner_id,
        "team": rule.team,
        "touchpoint": hit.touchpoint,
        "person_id": hit.person_id if hit.about_person else None,
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


def _join(
    tx: Tx,
    joins: Sequence[tuple[str, list[Hit]]],
    fresh: dict[str, dict[str, Any]],
    now: datetime,
) -> list[tuple[str, list[Hit], dict[str, Any], dict[str, Any]]]:
    """Add each group of hits to its case (stored, or ``fresh``: opened in this batch): the
    case's alert count and last alert time, in one update; returns (case id, hits, the case
    before, the case after)."""
    if not joins:
        return []
    stored_ids = sorted({case_id for case_id, _ in joins if case_id not in fresh})
    cases = dict(fresh)
    if stored_ids:
        where = f"case_id IN ({tx.stage_keys('_joined_ids', stored_ids)})"
        cases.update({c["case_id"]: c for c in casestore.select_cases(tx, where, ())})
    out = []
    for case_id, group in joins:
        case = cases[case_id]
        last = max([h.occurred_at for h in group] + [case["last_alert_at"] or group[0].occurred_at])
        after = {**case, "alerts": int(case["alerts"]) + len(group), "last_alert_at": last,
                 "updated_at": now}  # fmt: skip
        out.append((case_id, group, case, after))
        cases[case_id] = after
    tx.stage(
        "_joined_cases",
        pa.table(
            {
                "case_id": pa.array([c for c, _, _, _ in out], pa.string()),
                "alerts": pa.array([a["alerts"] for _, _, _, a in out], pa.int32()),
                "last_alert_at": pa.array(
                    [a["last_alert_at"] for _, _, _, a in out], pa.timestamp("us", tz="UTC")
                ),
            }
        ),
    )
    tx.execute(
        "UPDATE cases SET alerts = j.alerts, last_alert_at = j.last_alert_at, updated_at = ? "
        "FROM _joined_cases j WHERE cases.case_id = j.case_id",
        [now],
    )
    return out


__all__ = ["take_alerts"]
