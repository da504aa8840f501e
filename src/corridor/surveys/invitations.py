"""Invitations: who is asked to answer a survey, when, and whether the contact rules let it go.

An invitation comes from a trigger of the survey (:func:`add_trigger`): ``interaction`` — each
interaction at the trigger's touch point, ``delay`` after it (a delivery, a support call);
``case_resolved`` — the customer of each case resolved, ``delay`` after (the recovery survey of
the closed loop: its answer is the customer's next feedback at the touch point, which the case's
verification reads) — or from a list (:func:`invite`). Each cause invites once (``source_key``).

The ``surveys.invitations`` job (:func:`run`, every minute in the server) finds new causes
(:func:`schedule`; interactions and cases of the last two days, so an import of history invites
nobody), then sends what is due (:func:`send_due`): the contact rules
(:mod:`corridor.surveys.contact`) are checked across every survey, in time order, counting what
this run sends; an invitation they hold back is ``held`` with the rule and the reason; one that
goes gets a personal link and an e-mail through the outbox (delivered at least once, like every
notification). One reminder goes to those who have not answered ``remind`` after
(:func:`remind_due`), and answered invitations are marked (:func:`mark_answered`).

The mail holds the link; its token is kept in the outbox row until delivered and for a
redelivery (the store keeps only the hash in ``survey_links``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import Field

from corridor.loop import outbox
from corridor.loop.rules import parse_duration
from corridor.store import Store
from corridor.surveys import catalog, contact, links
from corridor.surveys.errors import SurveyError, SurveyNotFoundError

TRIGGER_KINDS = ("interaction", "case_resolved")
#: how far back the job looks for interactions and resolved cases it has not invited for yet
LOOKBACK = timedelta(days=2)
STATES = ("scheduled", "held", "sent", "answered", "failed")
INVITATION = "survey.invitation"
REMINDER = "survey.reminder"


class _Record:
    """A stored row as a frozen dataclass: :meth:`as_dict` gives its fields, in order. The API
    replies with it as it is (the field descriptions are the reply's)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Trigger(_Record):
    trigger_id: str
    survey_id: str
    kind: str
    touchpoint: str | None
    delay_s: int
    remind_s: int | None
    channel: str
    enabled: bool
    created_at: datetime
    created_by: str | None


_TRIGGER_COLUMNS = (
    "trigger_id, survey_id, kind, touchpoint, delay_s, remind_s, channel, enabled, created_at, "
    "created_by"
)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _trigger(r: Sequence[Any]) -> Trigger:
    return Trigger(
        str(r[0]), str(r[1]), str(r[2]), r[3], int(r[4]), None if r[5] is None else int(r[5]),
        str(r[6]), bool(r[7]), _utc(r[8]), r[9],
    )  # fmt: skip


def _seconds(value: str | int | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise SurveyError(f"{what} {value!r}: {e}") from None


def add_trigger(
    store: Store,
    survey_id: str,
    kind: str,
    *,
    touchpoint: str | None = None,
    delay: str | int = "1h",
    remind: str | int | None = None,
    by: str | None = None,
    now: datetime | None = None,
) -> Trigger:
    """Invite to ``survey_id`` after each interaction at ``touchpoint`` (``kind="interaction"``)
    or each case resolved (``"case_resolved"``), ``delay`` after it; one reminder ``remind``
    after the invitation when unanswered. It invites for causes from ``now`` (its creation) on."""
    if kind not in TRIGGER_KINDS:
        raise SurveyError(f"trigger kind {kind!r}: one of {', '.join(TRIGGER_KINDS)}")
    survey = catalog.get(store, survey_id).survey
    if kind == "interaction":
        if touchpoint is None and len(survey.touchpoints) == 1:
            touchpoint = survey.touchpoints[0]
        if touchpoint not in survey.touchpoints:
            raise SurveyError(
                f"an interaction trigger names one of the survey's touch points "
                f"({', '.join(survey.touchpoints)}), not {touchpoint!r}"
            )
    delay_s = _seconds(delay, "delay") or 0
    remind_s = _seconds(remind, "remind")
    if remind_s is not None and remind_s <= 0:
        raise SurveyError("remind must be longer than 0 (or left out: no reminder)")
    now = now or datetime.now(UTC)
    trigger = Trigger(
        f"trg-{uuid.uuid4().hex[:10]}", survey_id, kind, touchpoint, delay_s, remind_s, "email",
        True, now, by,
    )  # fmt: skip
    with store.transaction() as tx:
        tx.execute(
            f"INSERT INTO survey_triggers ({_TRIGGER_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [getattr(trigger, c.strip()) for c in _TRIGGER_COLUMNS.split(",")],
        )
    return trigger


def list_triggers(store: Store, survey_id: str | None = None) -> list[Trigger]:
    where, params = ("WHERE survey_id = ? ", [survey_id]) if survey_id else ("", [])
    rows = store.query(
        f"SELECT {_TRIGGER_COLUMNS} FROM survey_triggers {where}ORDER BY created_at", params
    )
    return [_trigger(r) for r in rows]


def remove_trigger(store: Store, trigger_id: str, survey_id: str | None = None) -> None:
    """Stop a trigger (of ``survey_id`` when given); the invitations it made stay."""
    with store.transaction() as tx:
        found = tx.fetchall(
            "SELECT survey_id FROM survey_triggers WHERE trigger_id = ?", [trigger_id]
        )
        if not found or (survey_id is not None and found[0][0] != survey_id):
            raise SurveyNotFoundError(
                f"no trigger {trigger_id!r}"
                + (f" of survey {survey_id!r}" if survey_id else "")
                + "; `corridor surveys triggers SURVEY` lists them"
            )
        tx.execute("UPDATE survey_triggers SET enabled = FALSE WHERE trigger_id = ?", [trigger_id])


# -- invitations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Invitation(_Record):
    invitation_id: str
    survey_id: str
    trigger_id: str | None
    person_id: str
    interaction_id: str | None
    case_id: str | None
    touchpoint: str | None
    channel: str
    created_at: datetime
    due_at: datetime
    state: Annotated[str, Field(description="scheduled, held, sent, answered or failed")]
    held_rule: Annotated[
        str | None, Field(description="the contact rule that held it (or its reminder) back")
    ]
    held_reason: Annotated[
        str | None, Field(description="why, in words (`no reminder: …` for its reminder)")
    ]
    link_id: str | None
    sent_at: datetime | None
    remind_s: int | None
    remind_at: datetime | None
    reminded_at: datetime | None
    answered_at: datetime | None
    error: str | None


_COLUMNS = (
    "invitation_id, survey_id, trigger_id, person_id, interaction_id, case_id, touchpoint, "
    "channel, created_at, due_at, state, held_rule, held_reason, link_id, sent_at, remind_s, "
    "remind_at, reminded_at, answered_at, error"
)


def _invitation(r: Sequence[Any]) -> Invitation:
    return Invitation(*[_utc(v) for v in r])


def invite(
    store: Store,
    survey_id: str,
    person_ids: Sequence[str],
    *,
    at: datetime | None = None,
    remind: str | int | None = None,
    touchpoint: str | None = None,
) -> int:
    """Invite a list of people (due ``at``, now by default); returns how many invitations were
    made (a person named twice is invited once). The contact rules apply when they are sent."""
    catalog.get(store, survey_id)
    at = at or datetime.now(UTC)
    remind_s = _seconds(remind, "remind")
    batch = uuid.uuid4().hex[:10]
    people = sorted({p.strip() for p in person_ids if p and p.strip()})
    if not people:
        raise SurveyError("name at least one person to invite")
    with store.transaction() as tx:
        known = set()
        for start in range(0, len(people), 500):
            chunk = people[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            known |= {
                str(r[0])
                for r in tx.fetchall(
                    f"SELECT person_id FROM people WHERE person_id IN ({marks})", chunk
                )
            }
        unknown = [p for p in people if p not in known]
        if unknown:
            raise SurveyError(
                f"{len(unknown)} person id(s) not in the store, e.g. {unknown[0]!r}; import the "
                "people first (corridor import people.csv) or drop them from the list"
            )
        for p in people:
            _insert(tx, f"list|{batch}|{p}", survey_id, None, p, None, None, touchpoint, at,
                    remind_s)  # fmt: skip
    return len(people)


def _insert(
    tx: Any,
    source_key: str,
    survey_id: str,
    trigger_id: str | None,
    person_id: str,
    interaction_id: str | None,
    case_id: str | None,
    touchpoint: str | None,
    due_at: datetime,
    remind_s: int | None,
) -> None:
    tx.execute(
        "INSERT INTO survey_invitations (invitation_id, source_key, survey_id, trigger_id, "
        "person_id, interaction_id, case_id, touchpoint, channel, created_at, due_at, state, "
        "remind_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'email', ?, ?, 'scheduled', ?) "
        "ON CONFLICT (source_key) DO NOTHING",
        [
            f"inv-{uuid.uuid4().hex[:16]}", source_key, survey_id, trigger_id, person_id,
            interaction_id, case_id, touchpoint, datetime.now(UTC), due_at, remind_s,
        ],
    )  # fmt: skip


def schedule(store: Store, now: datetime | None = None) -> int:
    """Make the invitations of every enabled trigger's new causes (interactions at its touch
    point, resolved cases, since the trigger was made and within :data:`LOOKBACK`); returns how
    many were made. Idempotent: a cause invites once."""
    now = now or datetime.now(UTC)
    made = 0
    with store.transaction() as tx:
        triggers = [
            _trigger(r)
            for r in tx.fetchall(
                f"SELECT {_TRIGGER_COLUMNS} FROM survey_triggers WHERE enabled ORDER BY trigger_id"
            )
        ]
        for t in triggers:
            since = max(t.created_at, now - LOOKBACK)
            if t.kind == "interaction":
                causes = tx.fetchall(
                    "SELECT interaction_id, person_id, occurred_at, touchpoint, NULL "
                    "FROM interactions WHERE touchpoint = ? AND occurred_at >= ? "
                    "AND occurred_at <= ?",
                    [t.touchpoint, since, now],
                )
            else:
                causes = tx.fetchall(
                    "SELECT NULL, person_id, resolved_at, touchpoint, case_id FROM cases "
                    "WHERE person_id IS NOT NULL AND resolved_at IS NOT NULL "
                    "AND resolved_at >= ? AND resolved_at <= ?",
                    [since, now],
                )
            before = tx.fetchall(
                "SELECT count(*) FROM survey_invitations WHERE trigger_id = ?", [t.trigger_id]
            )[0][0]
            for interaction_id, person_id, at, touchpoint, case_id in causes:
                cause = interaction_id or case_id
                _insert(
                    tx, f"{t.trigger_id}|{cause}", t.survey_id, t.trigger_id, str(person_id),
                    interaction_id, case_id, touchpoint, _utc(at) + timedelta(seconds=t.delay_s),
                    t.remind_s,
                )  # fmt: skip
            after = tx.fetchall(
                "SELECT count(*) FROM survey_invitations WHERE trigger_id = ?", [t.trigger_id]
            )[0][0]
            made += int(after) - int(before)
    return made


def _emails(tx: Any, person_ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    ids = sorted(set(person_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for person_id, address in tx.fetchall(
            f"SELECT person_id, min(id_value) FROM identities WHERE id_type = 'email' "
            f"AND person_id IN ({marks}) GROUP BY person_id",
            chunk,
        ):
            out[str(person_id)] = str(address)
    return out


@dataclass
class SendReport:
    sent: int = 0
    held: int = 0
    failed: int = 0
    reminded: int = 0
    answered: int = 0

    def summary(self) -> str:
        return (
            f"{self.sent} invitations sent, {self.held} held by contact rules, "
            f"{self.failed} without an address, {self.reminded} reminders, "
            f"{self.answered} answered"
        )


def send_due(
    store: Store, base_url: str, now: datetime | None = None, limit: int = 5000
) -> SendReport:
    """Send the invitations due at ``now`` (oldest first), checking the contact rules for each
    against every invitation already sent and those sent earlier in this run."""
    now = now or datetime.now(UTC)
    report = SendReport()
    with store.transaction() as tx:
        due = [
            _invitation(r)
            for r in tx.fetchall(
                f"SELECT {_COLUMNS} FROM survey_invitations WHERE state = 'scheduled' "
                "AND due_at <= ? ORDER BY due_at, invitation_id LIMIT ?",
                [now, limit],
            )
        ]
        if not due:
            return report
        rules = contact.active(tx)
        people = [i.person_id for i in due]
        history = contact.history(tx, people, rules)
        emails = _emails(tx, people)
    # decide in time order (the rules count what this run sends), then write
    go: list[Invitation] = []
    for inv in due:
        held = contact.check(rules, history, inv.person_id, now)
        if held is not None:
            rule, reason = held
            _set(store, inv, state="held", held_rule=rule.rule_id, held_reason=reason)
            report.held += 1
        elif inv.person_id not in emails:
            _set(store, inv, state="failed", error="no e-mail address is known for the person")
            report.failed += 1
        else:
            history.invited(inv.person_id, now)
            go.append(inv)
    for inv in go:
        try:
            link, token = links.create(
                store, inv.survey_id, person_id=inv.person_id, interaction_id=inv.interaction_id,
                touchpoint=inv.touchpoint, channel="email", now=now,
            )  # fmt: skip
        except SurveyError as e:
            _set(store, inv, state="failed", error=str(e)[:500])
            report.failed += 1
            continue
        url = base_url.rstrip("/") + links.path(token)
        remind_at = None if inv.remind_s is None else now + timedelta(seconds=inv.remind_s)
        with store.transaction() as tx:
            sent = tx.execute(
                "UPDATE survey_invitations SET state = 'sent', link_id = ?, sent_at = ?, "
                "remind_at = ? WHERE invitation_id = ? AND state = 'scheduled'",
                [link.link_id, now, remind_at, inv.invitation_id],
            )
            if sent != 1:  # erased (or sent by another run) since it was read: no mail
                tx.execute("DELETE FROM survey_links WHERE link_id = ?", [link.link_id])
                continue
            outbox.enqueue(
                tx, INVITATION, _mail(inv, url, link, reminder=False),
                key=f"{inv.invitation_id}-invitation", emails=[emails[inv.person_id]],
                endpoints=[],
            )  # fmt: skip
        report.sent += 1
    return report


def _mail(inv: Invitation, url: str, link: links.Link, *, reminder: bool) -> dict[str, Any]:
    subject = "A reminder: how did we do?" if reminder else "How did we do?"
    text = (
        ("We have not heard from you yet. " if reminder else "")
        + "Tell us in two minutes how it went"
        + (f" ({inv.touchpoint.replace('_', ' ')})" if inv.touchpoint else "")
        + f": {url}\n\nThe link is yours alone"
        + (f" and works until {link.expires_at:%Y-%m-%d}." if link.expires_at else ".")
    )
    return {
        "subject": subject,
        "text": text,
        "url": url,
        "invitation_id": inv.invitation_id,
        "survey_id": inv.survey_id,
        "link_id": link.link_id,
        "person_id": inv.person_id,
    }


def _set(store: Store, inv: Invitation, **changes: Any) -> None:
    sets = ", ".join(f"{k} = ?" for k in changes)
    with store.transaction() as tx:
        tx.execute(
            f"UPDATE survey_invitations SET {sets} WHERE invitation_id = ? AND state = 'scheduled'",
            [*changes.values(), inv.invitation_id],
        )


def mark_answered(store: Store) -> int:
    """Mark sent invitations whose link's response was submitted; returns how many."""
    with store.transaction() as tx:
        rows = tx.fetchall(
            "SELECT i.invitation_id, min(r.submitted_at) FROM survey_invitations i "
            "JOIN survey_responses r ON r.link_id = i.link_id "
            "WHERE i.state = 'sent' AND r.state = 'submitted' GROUP BY i.invitation_id"
        )
        for invitation_id, at in rows:
            tx.execute(
                "UPDATE survey_invitations SET state = 'answered', answered_at = ? "
                "WHERE invitation_id = ?",
                [at, invitation_id],
            )
    return len(rows)


#: the contact rules a reminder is checked against: who may be contacted at all now (the
#: frequency rules count invitations, and the reminder is part of one already counted)
REMINDER_RULES = ("exclude", "open_case", "recent_complaint")


def remind_due(store: Store, now: datetime | None = None) -> int:
    """One reminder to each unanswered invitation whose reminder is due; the same link (read
    from the invitation's mail in the outbox), to the person's address now. A person whom the
    contact rules of :data:`REMINDER_RULES` now hold back (excluded since, an open case, a
    complaint), or who has no address any more, gets none: the invitation keeps the reason.
    Returns how many went."""
    now = now or datetime.now(UTC)
    sent = 0
    with store.transaction() as tx:
        rows = tx.fetchall(
            "SELECT i.invitation_id, i.person_id, o.payload FROM survey_invitations i "
            "JOIN outbox o ON o.idempotency_key = i.invitation_id || '-invitation' "
            "WHERE i.state = 'sent' AND i.remind_at IS NOT NULL AND i.remind_at <= ? "
            "AND i.reminded_at IS NULL AND o.target_kind = 'email'",
            [now],
        )
        if not rows:
            return 0
        people = [str(r[1]) for r in rows]
        rules = [r for r in contact.active(tx) if r.kind in REMINDER_RULES]
        history = contact.history(tx, people, rules)
        emails = _emails(tx, people)
        for invitation_id, person, payload in rows:
            person_id = str(person)
            held = contact.check(rules, history, person_id, now)
            if held is not None or person_id not in emails:
                rule, reason = held or (None, "no e-mail address is known for the person")
                tx.execute(
                    "UPDATE survey_invitations SET remind_at = NULL, held_rule = ?, "
                    "held_reason = ? WHERE invitation_id = ?",
                    [rule and rule.rule_id, f"no reminder: {reason}"[:500], invitation_id],
                )
                continue
            doc = orjson.loads(payload) if isinstance(payload, str | bytes) else dict(payload)
            data = dict(doc.get("data") or {})
            data["subject"] = "A reminder: how did we do?"
            data["text"] = "We have not heard from you yet. " + str(data.get("text", ""))
            tx.execute(
                "UPDATE survey_invitations SET reminded_at = ? WHERE invitation_id = ?",
                [now, invitation_id],
            )
            outbox.enqueue(
                tx, REMINDER, data, key=f"{invitation_id}-reminder",
                emails=[emails[person_id]], endpoints=[],
            )  # fmt: skip
            sent += 1
    return sent


def run(store: Store, base_url: str, now: datetime | None = None) -> SendReport:
    """One round of the ``surveys.invitations`` job."""
    now = now or datetime.now(UTC)
    schedule(store, now)
    report = SendReport(answered=mark_answered(store))
    sent = send_due(store, base_url, now)
    report.sent, report.held, report.failed = sent.sent, sent.held, sent.failed
    report.reminded = remind_due(store, now)
    return report


def list_invitations(
    store: Store, *, survey_id: str | None = None, state: str | None = None, limit: int = 100
) -> list[Invitation]:
    where, params = [], []
    if survey_id:
        where.append("survey_id = ?")
        params.append(survey_id)
    if state:
        if state not in STATES:
            raise SurveyError(f"state {state!r}: one of {', '.join(STATES)}")
        where.append("state = ?")
        params.append(state)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = store.query(
        f"SELECT {_COLUMNS} FROM survey_invitations {clause}ORDER BY due_at DESC LIMIT ?",
        [*params, limit],
    )
    return [_invitation(r) for r in rows]


__all__ = [
    "INVITATION",
    "LOOKBACK",
    "REMINDER",
    "REMINDER_RULES",
    "TRIGGER_KINDS",
    "Invitation",
    "SendReport",
    "Trigger",
    "add_trigger",
    "invite",
    "list_invitations",
    "list_triggers",
    "mark_answered",
    "remind_due",
    "remove_trigger",
    "run",
    "schedule",
    "send_due",
]
