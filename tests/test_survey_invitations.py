"""Survey invitations (issue 15): triggers after interactions and resolved cases, lists, the
contact-frequency rules across every survey (caps, gaps, exclusions by attribute, open cases),
with the reason an invitation was held recorded, the mail and its one reminder through a real
SMTP server, and the answered invitation marked."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email import message_from_bytes

import pyarrow as pa
import pytest

from corridor.ingest.pipeline import Ingestor
from corridor.loop import casestore
from corridor.store import Store
from corridor.surveys import catalog, contact, definition, invitations
from corridor.surveys.errors import SurveyError
from survey_fixtures import delivery
from test_loop_outbox import Inbox, mail_dispatch, smtp  # noqa: F401  (the SMTP fixture)

BASE = "https://feedback.example.com"
DAY = timedelta(days=1)


def people(ingestor: Ingestor, n: int, start: datetime) -> list[str]:
    ids = [f"p{i:02d}" for i in range(n)]
    table = pa.table(
        {
            "person_id": ids,
            "kind": ["customer"] * n,
            "created_at": [start - 400 * DAY] * n,
            # every fifth person asked not to be surveyed (a segment the rules exclude)
            "segment": ["no_survey" if i % 5 == 4 else "consumer" for i in range(n)],
            "email": [f"{p}@example.com" for p in ids],
        }
    )
    report = ingestor.ingest("people", table)
    assert report.rejected == 0, report.errors
    return ids


def interactions(ingestor: Ingestor, ids: list[str], start: datetime, days: int) -> int:
    rng = random.Random(15)
    rows: dict[str, list[object]] = {
        "interaction_id": [], "person_id": [], "occurred_at": [], "touchpoint": [],
        "channel": [],
    }  # fmt: skip
    for d in range(days):
        for p in ids:
            if rng.random() < 0.35:  # a delivery every three days or so: far over any cap
                rows["interaction_id"].append(f"i-{p}-{d}")
                rows["person_id"].append(p)
                rows["occurred_at"].append(start + d * DAY + timedelta(hours=rng.uniform(8, 18)))
                rows["touchpoint"].append("home_delivery")
                rows["channel"].append("web")
    report = ingestor.ingest("interactions", pa.table(rows))
    assert report.rejected == 0, report.errors
    return len(rows["interaction_id"])


@pytest.fixture
def survey(store: Store, ingestor: Ingestor) -> str:
    catalog.save(store, definition.parse(delivery()), by="ana")
    return "delivery-pulse"


def test_contact_rules_hold_over_a_simulated_month(
    store: Store, ingestor: Ingestor, survey: str
) -> None:
    now0 = datetime.now(UTC).replace(microsecond=0)
    start = now0 - 31 * DAY
    ids = people(ingestor, 25, start)
    made = interactions(ingestor, ids, start, 30)
    # p03 has an open case: its owner is talking to them
    case = {c: None for c in casestore.CASE_COLUMNS} | {
        "case_id": "case-open", "title": "Parcel lost", "state": "open", "priority": "normal",
        "person_id": "p03", "opened_at": start, "updated_at": start, "alerts": 1,
        "sla_policy": "default", "paused_minutes": 0.0, "escalation_level": 0,
    }  # fmt: skip
    with store.transaction() as tx:
        casestore.insert_cases(tx, [case])
    rules = [
        contact.build("max_per_period", rule_id="two-a-month", count=2, period="30d"),
        contact.build("min_gap", rule_id="a-week-apart", period="7d"),
        contact.build("exclude", rule_id="opted-out", field_name="segment", values=["no_survey"]),
        contact.build("open_case", rule_id="open-case"),
    ]
    for r in rules:
        contact.add(store, r, by="ana")
    invitations.add_trigger(store, survey, "interaction", delay="2h", now=start)

    # the job every six hours for a month
    t = start
    while t <= now0:
        invitations.run(store, BASE, now=t)
        t += timedelta(hours=6)

    everything = invitations.list_invitations(store, limit=100_000)
    assert len(everything) == made  # each delivery invited once (no duplicates across runs)
    sent = [i for i in everything if i.sent_at is not None]
    held = [i for i in everything if i.state == "held"]
    assert sent and held
    by_person: dict[str, list[datetime]] = {}
    for i in sent:
        by_person.setdefault(i.person_id, []).append(i.sent_at)  # type: ignore[arg-type]
    for person, times in by_person.items():
        times.sort()
        # the cap: no 30-day window holds more than two; the gap: a week between two
        for k, at in enumerate(times):
            assert sum(1 for u in times if at <= u < at + 30 * DAY) <= 2, (person, times)
            if k:
                assert at - times[k - 1] >= 7 * DAY, (person, times)
    excluded = {p for k, p in enumerate(ids) if k % 5 == 4}
    assert not excluded & set(by_person) and "p03" not in by_person
    # everyone else was invited (the rules hold back, they do not silence)
    assert set(ids) - excluded - {"p03"} <= set(by_person)
    # every held invitation names its rule and says why
    reasons = {i.held_rule for i in held}
    assert reasons == {"two-a-month", "a-week-apart", "opted-out", "open-case"}
    for i in held:
        assert i.held_reason and i.sent_at is None and i.link_id is None
    gap = next(i for i in held if i.held_rule == "a-week-apart")
    assert "less than 7 days ago" in (gap.held_reason or "")
    opted = next(i for i in held if i.held_rule == "opted-out")
    assert opted.held_reason == "segment is no_survey, which this rule excludes"
    # each sent invitation queued one mail with its personal link
    mails = store.query(
        "SELECT count(*) FROM outbox WHERE event_type = 'survey.invitation' "
        "AND target_kind = 'email'"
    )[0][0]
    assert mails == len(sent)


def test_invitation_mail_reminder_and_answer(
    store: Store,
    ingestor: Ingestor,
    survey: str,
    smtp: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, port = smtp
    now = datetime.now(UTC)
    people(ingestor, 3, now)
    assert invitations.invite(store, survey, ["p00", "p01", "p01"], remind="3d", at=now) == 2
    report = invitations.run(store, BASE, now=now)
    assert report.sent == 2 and report.held == 0
    assert mail_dispatch(store, port).delivered == 2
    msgs = {m[1][0]: message_from_bytes(m[2]) for m in inbox.messages}
    msg = msgs["p00@example.com"]
    assert msg["Subject"] == "How did we do?"
    assert not [p for p in msg.walk() if p.get_content_type() == "application/json"]
    text = msg.get_payload(decode=True).decode()
    assert f"{BASE}/s/" in text
    token = text.split(f"{BASE}/s/")[1].split()[0].rstrip(".:")

    # p00 answers through the link; the next run marks it answered
    from corridor.surveys import links, responses

    link = links.find(store, token)
    assert link.person_id == "p00"
    r = responses.open_response(store, link, token, language="en")
    r = responses.save(store, r, {"experience": 8, "expectation": 7}, page=1)
    responses.submit(store, ingestor, r, catalog.get(store, survey).survey)
    # three days on: the reminder goes to p01 only, once
    later = now + 3 * DAY + timedelta(minutes=1)
    report = invitations.run(store, BASE, now=later)
    assert report.answered == 1 and report.reminded == 1
    assert invitations.run(store, BASE, now=later + DAY).reminded == 0
    assert mail_dispatch(store, port).delivered == 1
    reminder = message_from_bytes(inbox.messages[-1][2])
    assert inbox.messages[-1][1] == ["p01@example.com"]
    assert reminder["Subject"] == "A reminder: how did we do?"
    assert f"{BASE}/s/" in reminder.get_payload(decode=True).decode()
    states = {i.person_id: i.state for i in invitations.list_invitations(store)}
    assert states == {"p00": "answered", "p01": "sent"}


def test_a_reminder_is_held_by_the_contact_rules_of_now(
    store: Store, ingestor: Ingestor, survey: str
) -> None:
    """Between the invitation and its reminder, p01 asks not to be surveyed (an exclusion
    rule, added since) and p02 gets an open case: neither is reminded, and each invitation
    says why; p00 is reminded, once. The frequency rules (one invitation a month) count
    invitations, so they do not hold a reminder back."""
    now = datetime.now(UTC)
    people(ingestor, 3, now)
    contact.add(store, contact.build("max_per_period", count=1, period="30d"))
    assert invitations.invite(store, survey, ["p00", "p01", "p02"], remind="3d", at=now) == 3
    assert invitations.run(store, BASE, now=now).sent == 3
    report = ingestor.ingest("people", pa.table({
        "person_id": ["p01"], "kind": ["customer"], "created_at": [now - 400 * DAY],
        "segment": ["no_survey"], "email": ["p01@example.com"],
    }))  # fmt: skip
    assert report.rejected == 0, report.errors
    contact.add(store, contact.build("exclude", field_name="segment", values=["no_survey"]))
    contact.add(store, contact.build("open_case"))
    with store.transaction() as tx:
        case = {c: None for c in casestore.CASE_COLUMNS} | {
            "case_id": "case-p02", "title": "late parcel", "state": "open", "priority": "normal",
            "person_id": "p02", "opened_at": now, "updated_at": now, "alerts": 1,
            "sla_policy": "default", "paused_minutes": 0.0, "escalation_level": 0,
        }  # fmt: skip
        casestore.insert_cases(tx, [case])
    later = now + 3 * DAY + timedelta(minutes=1)
    assert invitations.run(store, BASE, now=later).reminded == 1
    assert invitations.run(store, BASE, now=later + DAY).reminded == 0
    reminded = store.query(
        "SELECT target FROM outbox WHERE event_type = ? AND target_kind = 'email'",
        [invitations.REMINDER],
    )
    assert [r[0] for r in reminded] == ["p00@example.com"]
    held = {i.person_id: (i.state, i.held_reason) for i in invitations.list_invitations(store)}
    assert held["p00"] == ("sent", None)
    assert held["p01"] == ("sent", "no reminder: segment is no_survey, which this rule excludes")
    assert held["p02"] == ("sent", "no reminder: the person has an open case")


def test_a_person_without_an_address_and_bad_input(
    store: Store, ingestor: Ingestor, survey: str
) -> None:
    now = datetime.now(UTC)
    report = ingestor.ingest(
        "people",
        pa.table({"person_id": ["nomail"], "kind": ["customer"], "created_at": [now]}),
    )
    assert report.rejected == 0
    invitations.invite(store, survey, ["nomail"], at=now)
    assert invitations.run(store, BASE, now=now).failed == 1
    (inv,) = invitations.list_invitations(store)
    assert inv.state == "failed" and "no e-mail address" in (inv.error or "")
    with pytest.raises(SurveyError, match="not in the store"):
        invitations.invite(store, survey, ["nobody-42"])
    with pytest.raises(SurveyError, match="one of interaction, case_resolved"):
        invitations.add_trigger(store, survey, "sometimes")
    with pytest.raises(SurveyError, match="touch points"):
        invitations.add_trigger(store, survey, "interaction", touchpoint="checkout")
    with pytest.raises(SurveyError, match="needs a count"):
        contact.build("max_per_period", period="30d")
    with pytest.raises(SurveyError, match="period"):
        contact.build("min_gap", period="soon")
    with pytest.raises(SurveyError, match="segment, region or attributes"):
        contact.build("exclude", field_name="password", values=["x"])
    contact.add(store, contact.build("open_case", rule_id="oc"))
    with pytest.raises(SurveyError, match="exists"):
        contact.add(store, contact.build("open_case", rule_id="oc"))


def test_a_resolved_case_invites_its_customer_to_the_recovery_survey(
    store: Store, ingestor: Ingestor, survey: str
) -> None:
    now = datetime.now(UTC)
    people(ingestor, 2, now)
    invitations.add_trigger(store, survey, "case_resolved", delay="1h", remind="2d",
                            now=now - 3 * DAY)  # fmt: skip
    base = {c: None for c in casestore.CASE_COLUMNS} | {
        "title": "Parcel lost", "priority": "normal", "opened_at": now - 2 * DAY,
        "updated_at": now, "alerts": 1, "sla_policy": "default", "paused_minutes": 0.0,
        "escalation_level": 0, "touchpoint": "home_delivery",
    }  # fmt: skip
    with store.transaction() as tx:
        casestore.insert_cases(
            tx,
            [
                base | {"case_id": "c-done", "state": "resolved", "person_id": "p00",
                        "resolved_at": now - 2 * timedelta(hours=1)},
                base | {"case_id": "c-open", "state": "open", "person_id": "p01"},
            ],
        )  # fmt: skip
    report = invitations.run(store, BASE, now=now)
    assert report.sent == 1
    (inv,) = invitations.list_invitations(store)
    assert (inv.person_id, inv.case_id, inv.state) == ("p00", "c-done", "sent")
    assert inv.remind_at is not None and inv.remind_at - inv.sent_at == 2 * DAY  # type: ignore[operator]
    invitations.run(store, BASE, now=now + timedelta(minutes=5))  # the same case: once
    assert len(invitations.list_invitations(store)) == 1
