"""Alerts: what a rule found (a :class:`Hit`), de-duplicated, stored, and turned into cases.

:func:`fire` is the one way an alert is raised, for record and aggregate rules alike, inside
the caller's transaction: hits whose subject the rule alerted within its cooldown (before or
after, by the time of what fired it) are dropped, the rest are stored in ``alerts``, open a case
or join the open case of the same cause (:func:`corridor.loop.opening.take_alerts`), and are sent
to webhooks as ``alert.fired``.
:func:`dedup` is the same de-duplication in memory, for dry runs.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from corridor.loop import opening, outbox
from corridor.loop.casestore import ALERT_COLUMNS
from corridor.loop.rules import Rule
from corridor.store.base import Tx

_TS = pa.timestamp("us", tz="UTC")


@dataclass
class Hit:
    """One thing a rule found: the subject it keys on, when it happened, where, and why."""

    rule: Rule
    subject: str
    occurred_at: datetime
    summary: str
    record_kind: str | None = None
    record_id: str | None = None
    person_id: str | None = None
    touchpoint: str | None = None
    department: str | None = None
    partner_id: str | None = None
    region: str | None = None
    segment: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    #: an operational event the alert is about (a ripple), proposed as the root cause
    event_id: str | None = None
    #: the case it opens is about the person (their next feedback verifies it), not about the
    #: touch point its alerts share (a rule ``per`` touch point: the gap verifies it)
    about_person: bool = True

    @property
    def cause(self) -> str:
        """What a case is about: the rule and the subject."""
        return f"{self.rule.rule_id}|{self.subject}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule.rule_id,
            "subject": self.subject,
            "occurred_at": self.occurred_at,
            "summary": self.summary,
            "record_kind": self.record_kind,
            "record_id": self.record_id,
            "person_id": self.person_id,
            "touchpoint": self.touchpoint,
            "department": self.department,
            "partner_id": self.partner_id,
            "region": self.region,
            "segment": self.segment,
            "event_id": self.event_id,
            "evidence": self.evidence,
        }


def _suppressed(at: datetime, others: Iterable[datetime], cooldown: timedelta) -> bool:
    return any(at == t or abs(at - t) < cooldown for t in others)


#: what the cooldown is kept per: the rule, the subject and the partner (the same customer at
#: the same touch point served by two carriers is two causes, each with its own case and owner)
Key = tuple[str, str, str | None]


def dedup(hits: Sequence[Hit], prior: Mapping[Key, Sequence[datetime]] | None = None) -> list[Hit]:
    """The hits that would fire: in time order per rule, subject and partner, a hit within the
    rule's cooldown of an earlier alert (``prior``, or a hit kept before it) is dropped."""
    kept: list[Hit] = []
    seen: dict[Key, list[datetime]] = defaultdict(list)
    for key, times in (prior or {}).items():
        seen[key].extend(times)
    for hit in sorted(hits, key=lambda h: (h.rule.rule_id, h.subject, h.occurred_at)):
        key = (hit.rule.rule_id, hit.subject, hit.partner_id)
        if _suppressed(hit.occurred_at, seen[key], hit.rule.cooldown):
            continue
        seen[key].append(hit.occurred_at)
        kept.append(hit)
    return sorted(kept, key=lambda h: (h.occurred_at, h.rule.rule_id, h.subject))


def _prior(tx: Tx, hits: Sequence[Hit]) -> dict[Key, list[datetime]]:
    """Stored alerts of the hits' rules, subjects and partners within the cooldown of any
    hit."""
    if not hits:
        return {}
    table = pa.table(
        {
            "rule_id": [h.rule.rule_id for h in hits],
            "subject": [h.subject for h in hits],
            "partner_id": pa.array([h.partner_id for h in hits], pa.string()),
            "lo": pa.array([h.occurred_at - h.rule.cooldown for h in hits], _TS),
            "hi": pa.array([h.occurred_at + h.rule.cooldown for h in hits], _TS),
        }
    )
    tx.stage("_loop_hits", table)
    rows = tx.fetchall(
        "SELECT DISTINCT a.rule_id, a.subject, a.partner_id, a.occurred_at FROM alerts a "
        "JOIN _loop_hits h ON a.rule_id = h.rule_id AND a.subject = h.subject "
        "AND a.partner_id IS NOT DISTINCT FROM h.partner_id "
        "AND a.occurred_at >= h.lo AND a.occurred_at <= h.hi"
    )
    out: dict[Key, list[datetime]] = defaultdict(list)
    for rule_id, subject, partner_id, at in rows:
        out[(rule_id, subject, partner_id)].append(at)
    return out


def fire(tx: Tx, hits: Sequence[Hit], now: datetime) -> list[Hit]:
    """Raise the alerts of ``hits`` that are not duplicates (see the module notes); returns
    those raised."""
    fresh = dedup(hits, _prior(tx, hits))
    if not fresh:
        return []
    events: list[outbox.Event] = []
    case_of = opening.take_alerts(tx, fresh, now, events)
    rows = [
        (
            uuid.uuid4().hex,
            h.rule.rule_id,
            h.subject,
            h.occurred_at,
            now,
            h.record_kind,
            h.record_id,
            h.person_id,
            h.touchpoint,
            h.department,
            h.partner_id,
            h.region,
            h.segment,
            h.summary,
            json.dumps(h.evidence, default=str),
            case_of[id(h)],
        )
        for h in fresh
    ]
    if len(rows) == 1:
        tx.execute(
            f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(ALERT_COLUMNS))})",
            rows[0],
        )
    else:
        columns = list(zip(*rows, strict=True))
        table = pa.table(
            {
                name: pa.array(list(values), _TS if name.endswith("_at") else pa.string())
                for name, values in zip(ALERT_COLUMNS, columns, strict=True)
            }
        )
        tx.stage("_loop_alerts", table)
        cols = ", ".join(ALERT_COLUMNS)
        select = cols.replace("evidence", _json_cast(tx, "evidence"))
        tx.execute(f"INSERT INTO alerts ({cols}) SELECT {select} FROM _loop_alerts")
    for h, row in zip(fresh, rows, strict=True):
        alert_id, case_id = row[0], row[-1]
        # to webhooks only (people hear of the case, not of each alert)
        events.append(
            outbox.Event(
                "alert.fired",
                {
                    "title": h.summary,
                    "alert": {"alert_id": alert_id, **h.as_dict()},
                    "case_id": case_id,
                },
                f"alert-{alert_id}",
            )
        )
    # the cases' notifications and the alerts', in one write (keys of ids made just now)
    outbox.enqueue_many(tx, events, new_keys=True)
    return fresh


def _json_cast(tx: Tx, column: str) -> str:
    return f"CAST({column} AS JSONB)" if tx.dialect == "postgres" else f"CAST({column} AS JSON)"


__all__ = ["Hit", "dedup", "fire"]
