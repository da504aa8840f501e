"""Contact-frequency rules: how often one person may be invited, across every survey and channel.

Qualtrics applies its directory rules per directory and cannot use person attributes; Formbricks'
caps hold for in-app surveys only. Here one set of rules holds for every invitation Corridor
sends, and can use what the store knows of the person:

- ``max_per_period``: at most ``count`` invitations per ``period`` (e.g. 2 per 30 days);
- ``min_gap``: at least ``period`` between two invitations;
- ``exclude``: people whose ``field`` (``segment``, ``region`` or ``attributes.<key>``) is one of
  ``values`` are never invited;
- ``open_case``: people with an open case (new, open, pending) are not invited (the case's
  owner is talking to them) — a recovery survey after the case is resolved still goes;
- ``recent_complaint``: people whose feedback text was a complaint within ``period`` are not.

:func:`check` says which rule, if any, holds an invitation back, and why, in words; an invitation
held back keeps that reason (``corridor surveys invitations``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from corridor.loop.rules import parse_duration
from corridor.store import Store
from corridor.store.base import Tx
from corridor.surveys.errors import SurveyError, SurveyNotFoundError

KINDS = ("max_per_period", "min_gap", "exclude", "open_case", "recent_complaint")
_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
_FIELD = re.compile(r"^(segment|region|attributes\.[A-Za-z0-9_\-]{1,64})$")


@dataclass(frozen=True)
class ContactRule:
    rule_id: str
    kind: str
    definition: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    created_at: datetime | None = None
    created_by: str | None = None

    @property
    def period(self) -> timedelta:
        return timedelta(seconds=int(self.definition.get("period_s", 0)))

    def describe(self) -> str:
        d = self.definition
        if self.kind == "max_per_period":
            return f"at most {d['count']} invitation(s) per {_words(self.period)}"
        if self.kind == "min_gap":
            return f"at least {_words(self.period)} between two invitations"
        if self.kind == "exclude":
            return f"nobody whose {d['field']} is {', '.join(map(str, d['values']))}"
        if self.kind == "open_case":
            return "nobody with an open case"
        return f"nobody who complained within {_words(self.period)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "kind": self.kind,
            "definition": dict(self.definition),
            "enabled": self.enabled,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "description": self.describe(),
        }


def _words(period: timedelta) -> str:
    s = int(period.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size and s % size == 0:
            n = s // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{s} seconds"


def build(
    kind: str,
    *,
    rule_id: str | None = None,
    count: int | None = None,
    period: str | int | None = None,
    field_name: str | None = None,
    values: Sequence[str] = (),
) -> ContactRule:
    """A checked rule from its parts (CLI and API); :class:`SurveyError` says what is wrong."""
    if kind not in KINDS:
        raise SurveyError(f"contact rule kind {kind!r}: one of {', '.join(KINDS)}")
    rule_id = rule_id or f"{kind.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    if not _ID.match(rule_id):
        raise SurveyError(
            f"rule id {rule_id!r}: lower-case letters, digits, '-' and '_', at most 64"
        )
    d: dict[str, Any] = {}
    if kind in ("max_per_period", "min_gap", "recent_complaint"):
        if period is None:
            raise SurveyError(f"a {kind} rule needs a period (e.g. 30d, 12h)")
        try:
            seconds = parse_duration(period)
        except ValueError as e:
            raise SurveyError(f"period {period!r}: {e}") from None
        if seconds <= 0:
            raise SurveyError("the period must be longer than 0")
        d["period_s"] = seconds
    if kind == "max_per_period":
        if count is None or count < 1:
            raise SurveyError("a max_per_period rule needs a count of 1 or more (e.g. 2)")
        d["count"] = int(count)
    if kind == "exclude":
        if not field_name or not _FIELD.match(field_name):
            raise SurveyError("an exclude rule needs a field: segment, region or attributes.<key>")
        cleaned = [str(v).strip() for v in values if str(v).strip()]
        if not cleaned:
            raise SurveyError("an exclude rule needs at least one value to exclude")
        d["field"] = field_name
        d["values"] = cleaned
    return ContactRule(rule_id, kind, d)


_COLUMNS = "rule_id, kind, definition, enabled, created_at, created_by"


def _rule(row: Sequence[Any]) -> ContactRule:
    doc = row[2]
    definition = json.loads(doc) if isinstance(doc, str | bytes) else dict(doc)
    return ContactRule(str(row[0]), str(row[1]), definition, bool(row[3]), row[4], row[5])


def add(store: Store, rule: ContactRule, *, by: str | None = None) -> ContactRule:
    now = datetime.now(UTC)
    with store.transaction() as tx:
        if tx.fetchall("SELECT 1 FROM contact_rules WHERE rule_id = ?", [rule.rule_id]):
            raise SurveyError(
                f"contact rule {rule.rule_id!r} exists; remove it first or choose another id"
            )
        tx.execute(
            f"INSERT INTO contact_rules ({_COLUMNS}) VALUES (?, ?, ?, TRUE, ?, ?)",
            [rule.rule_id, rule.kind, json.dumps(dict(rule.definition)), now, by],
        )
    return ContactRule(rule.rule_id, rule.kind, rule.definition, True, now, by)


def remove(store: Store, rule_id: str) -> None:
    with store.transaction() as tx:
        if not tx.fetchall("SELECT 1 FROM contact_rules WHERE rule_id = ?", [rule_id]):
            raise SurveyNotFoundError(
                f"no contact rule {rule_id!r}; `corridor surveys contact list` lists them"
            )
        tx.execute("DELETE FROM contact_rules WHERE rule_id = ?", [rule_id])


def active(tx: Tx) -> list[ContactRule]:
    rows = tx.fetchall(f"SELECT {_COLUMNS} FROM contact_rules WHERE enabled ORDER BY rule_id")
    return [_rule(r) for r in rows]


def list_rules(store: Store) -> list[ContactRule]:
    return [_rule(r) for r in store.query(f"SELECT {_COLUMNS} FROM contact_rules ORDER BY rule_id")]


@dataclass
class History:
    """What the rules need to know of the people being invited, read once per run: the times
    each was invited (updated as the run sends more), their attributes, open cases, complaints."""

    sent: dict[str, list[datetime]]
    people: dict[str, dict[str, Any]]
    open_cases: set[str]
    complaints: dict[str, datetime]

    def invited(self, person_id: str, at: datetime) -> None:
        self.sent.setdefault(person_id, []).append(at)


def history(tx: Tx, person_ids: Sequence[str], rules: Sequence[ContactRule]) -> History:
    """The :class:`History` of ``person_ids`` (staged once, four reads)."""
    import pyarrow as pa

    h = History({}, {}, set(), {})
    if not person_ids:
        return h
    tx.stage("_contact_people", pa.table({"person_id": pa.array(sorted(set(person_ids)))}))
    for person_id, at in tx.fetchall(
        "SELECT i.person_id, i.sent_at FROM survey_invitations i JOIN _contact_people p "
        "ON p.person_id = i.person_id WHERE i.sent_at IS NOT NULL"
    ):
        h.sent.setdefault(str(person_id), []).append(_utc(at))
    if any(r.kind == "exclude" for r in rules):
        for person_id, segment, region, attrs in tx.fetchall(
            "SELECT x.person_id, x.segment, x.region, CAST(x.attributes AS VARCHAR) FROM people x "
            "JOIN _contact_people p ON p.person_id = x.person_id"
        ):
            doc = json.loads(attrs) if attrs else {}
            h.people[str(person_id)] = {
                "segment": segment,
                "region": region,
                **{f"attributes.{k}": v for k, v in (doc if isinstance(doc, dict) else {}).items()},
            }
    if any(r.kind == "open_case" for r in rules):
        h.open_cases = {
            str(r[0])
            for r in tx.fetchall(
                "SELECT DISTINCT c.person_id FROM cases c JOIN _contact_people p "
                "ON p.person_id = c.person_id WHERE c.state IN ('new', 'open', 'pending')"
            )
        }
    if any(r.kind == "recent_complaint" for r in rules):
        for person_id, at in tx.fetchall(
            "SELECT f.person_id, max(f.occurred_at) FROM feedback f JOIN _contact_people p "
            "ON p.person_id = f.person_id JOIN text_analysis t ON t.feedback_id = f.feedback_id "
            "WHERE t.intent = 'complaint' GROUP BY f.person_id"
        ):
            h.complaints[str(person_id)] = _utc(at)
    return h


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def check(
    rules: Sequence[ContactRule], h: History, person_id: str, now: datetime
) -> tuple[ContactRule, str] | None:
    """The first rule that holds an invitation of ``person_id`` at ``now`` back, with the
    reason in words; None when it may go."""
    sent = sorted(h.sent.get(person_id, ()))
    for rule in rules:
        d = rule.definition
        if rule.kind == "max_per_period":
            since = now - rule.period
            recent = [t for t in sent if t > since]
            if len(recent) >= int(d["count"]):
                return rule, (
                    f"{len(recent)} invitation(s) in the last {_words(rule.period)}, the most "
                    f"{rule.describe()[len('at most ') :]} allows; the next may go after "
                    f"{(recent[0] + rule.period).isoformat(timespec='minutes')}"
                )
        elif rule.kind == "min_gap":
            if sent and now - sent[-1] < rule.period:
                return rule, (
                    f"invited {sent[-1].isoformat(timespec='minutes')}, less than "
                    f"{_words(rule.period)} ago"
                )
        elif rule.kind == "exclude":
            value = h.people.get(person_id, {}).get(str(d["field"]))
            if value is not None and str(value) in d["values"]:
                return rule, f"{d['field']} is {value}, which this rule excludes"
        elif rule.kind == "open_case":
            if person_id in h.open_cases:
                return rule, "the person has an open case"
        elif rule.kind == "recent_complaint":
            at = h.complaints.get(person_id)
            if at is not None and now - at < rule.period:
                return rule, (
                    f"complained {at.isoformat(timespec='minutes')}, within {_words(rule.period)}"
                )
    return None


__all__ = [
    "KINDS",
    "ContactRule",
    "History",
    "active",
    "add",
    "build",
    "check",
    "history",
    "list_rules",
    "remove",
]
