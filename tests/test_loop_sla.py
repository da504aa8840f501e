"""SLA clocks in business hours: due times checked against hand-computed cases (weekend,
holiday, time zone with a daylight-saving change, pause while pending) and escalation when a
clock runs out, under frozen time (time-machine), on both engines."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
import time_machine

from corridor.loop import cases, sla, webhooks
from corridor.loop.outbox_rows import WEBHOOK_EVENTS
from corridor.loop.rules import Rule, add_rule
from corridor.loop.sla import Calendar, Policy, SlaError, Target

WEEKDAYS = Calendar()  # Monday to Friday, 09:00-17:00 UTC, no holidays


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- the calendar, by hand ---------------------------------------------------------------------
def test_business_minutes_skip_the_weekend():
    # Friday 2025-06-06 16:00 + 2 business hours: 1 h on Friday, 1 h on Monday
    assert WEEKDAYS.add(utc(2025, 6, 6, 16), 120) == utc(2025, 6, 9, 10)
    assert WEEKDAYS.between(utc(2025, 6, 6, 16), utc(2025, 6, 9, 10)) == 120
    # opened on a Saturday: the clock starts on Monday at 09:00
    assert WEEKDAYS.add(utc(2025, 6, 7, 12), 60) == utc(2025, 6, 9, 10)
    # opened before hours and after hours
    assert WEEKDAYS.add(utc(2025, 6, 9, 6, 30), 30) == utc(2025, 6, 9, 9, 30)
    assert WEEKDAYS.add(utc(2025, 6, 9, 18), 30) == utc(2025, 6, 10, 9, 30)
    # exactly the end of a day stays there; a full day more lands at the same time next day
    assert WEEKDAYS.add(utc(2025, 6, 9, 9), 480) == utc(2025, 6, 9, 17)
    assert WEEKDAYS.add(utc(2025, 6, 9, 10), 480) == utc(2025, 6, 10, 10)
    # a week of business time is a calendar week
    assert WEEKDAYS.add(utc(2025, 6, 11, 13), 5 * 480) == utc(2025, 6, 18, 13)
    assert WEEKDAYS.between(utc(2025, 6, 11, 13), utc(2025, 6, 18, 13)) == 5 * 480
    # nothing counts backwards or over a weekend alone
    assert WEEKDAYS.between(utc(2025, 6, 9, 10), utc(2025, 6, 9, 9)) == 0
    assert WEEKDAYS.between(utc(2025, 6, 7, 0), utc(2025, 6, 9, 0)) == 0


def test_public_holidays_close_the_day():
    german = Calendar(country="DE")
    # Wednesday 24 Dec 2025 16:00 + 2 h: Christmas (Thu 25) and Boxing Day (Fri 26) are
    # public holidays in Germany, then the weekend: 1 h on the 24th, 1 h on Monday the 29th
    assert german.add(utc(2025, 12, 24, 16), 120) == utc(2025, 12, 29, 10)
    assert WEEKDAYS.add(utc(2025, 12, 24, 16), 120) == utc(2025, 12, 25, 10)
    assert not german.is_working_day(date(2025, 12, 25))
    # a regional holiday: Epiphany (6 Jan) in Bavaria, not in Berlin
    assert not Calendar(country="DE", subdiv="BY").is_working_day(date(2026, 1, 6))
    assert Calendar(country="DE", subdiv="BE").is_working_day(date(2026, 1, 6))
    # extra closed dates
    closed = Calendar(closed=(date(2025, 6, 9),))
    assert closed.add(utc(2025, 6, 6, 16), 120) == utc(2025, 6, 10, 10)


def test_hours_are_read_in_the_calendar_time_zone_across_a_clock_change():
    berlin = Calendar(timezone="Europe/Berlin")
    # Friday 28 March 2025 15:00 UTC is 16:00 in Berlin (CET, UTC+1): one hour is left that
    # day; the clocks go forward on Sunday, so Monday 09:00 CEST is 07:00 UTC: 08:00 UTC
    assert berlin.add(utc(2025, 3, 28, 15), 120) == utc(2025, 3, 31, 8)
    assert berlin.between(utc(2025, 3, 28, 15), utc(2025, 3, 31, 8)) == 120


def test_policy_documents_round_trip_and_are_checked():
    doc = {
        "name": "service-de",
        "calendar": {"timezone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri",
                     "sat"], "hours": "08:00-18:00", "holidays": "de", "subdivision": "BY"},
        "targets": {"urgent": {"first_response_minutes": 30, "resolution_minutes": 240}},
    }  # fmt: skip
    p = Policy.from_dict(doc)
    assert p.calendar.days == (0, 1, 2, 3, 4, 5) and p.calendar.start == 480
    assert p.calendar.country == "DE" and p.target("urgent") == Target(30, 240)
    assert p.target("normal") == sla.DEFAULT_TARGETS["normal"]
    assert Policy.from_dict(p.as_dict()) == p
    assert Calendar.from_dict({"hours": "24/7"}).add(utc(2025, 6, 7, 12), 90) == utc(
        2025, 6, 7, 13, 30
    )
    for bad, words in (
        ({"name": "x", "calendar": {"timezone": "Mars/Olympus"}}, "time zone"),
        ({"name": "x", "calendar": {"hours": "17:00-09:00"}}, "start before"),
        ({"name": "x", "calendar": {"holidays": "XX"}}, "no holiday calendar"),
        ({"name": "x", "calendar": {"days": ["caturday"]}}, "weekday"),
        ({"name": "x", "targets": {"normal": {"first_response_minutes": 9}}}, "resolution"),
        ({"name": "x", "targets": {"asap": {}}}, "priority"),
        ({"name": "x", "colour": "red"}, "unknown SLA policy field"),
    ):
        with pytest.raises(SlaError, match=words):
            Policy.from_dict(bad)


# -- cases on a store, under frozen time --------------------------------------------------------
def _detractor(ingestor, fid: str, at: datetime, person: str = "p1") -> None:
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [fid],
                "person_id": [person],
                "occurred_at": pa.array([at], pa.timestamp("us", tz="UTC")),
                "touchpoint": ["checkout"],
                "source": ["survey"],
                "nps": [2],
            }
        ),
    )


def _case(store) -> dict:
    found, n = cases.list_cases(store, None)
    assert n == 1
    return found[0]


def test_due_times_pause_while_pending_and_breaches_escalate(store, ingestor):
    webhooks.add_endpoint(store, "https://hooks.example.com/corridor")
    add_rule(store, Rule("detractors", "detractor", priority="normal"), actor="test")
    opened = utc(2025, 6, 2, 10)  # a Monday
    with time_machine.travel(opened, tick=False):
        _detractor(ingestor, "f1", opened)
    case = _case(store)
    # normal: first response in 8 business hours (Tuesday 10:00), resolution in 5 days
    assert case["opened_at"] == opened and case["state"] == "new"
    assert case["first_response_due"] == utc(2025, 6, 3, 10)
    assert case["resolution_due"] == utc(2025, 6, 9, 10)

    with time_machine.travel(utc(2025, 6, 2, 14), tick=False):
        c = cases.change_state(store, None, case["case_id"], "pending", actor="lena")
    assert c["paused_at"] == utc(2025, 6, 2, 14) and c["sla"]["status"] == "paused"
    # while pending no clock runs out, however late it gets
    with time_machine.travel(utc(2025, 6, 20, 12), tick=False):
        assert sla.escalate(store) == 0
    with time_machine.travel(utc(2025, 6, 4, 11), tick=False):
        c = cases.change_state(store, None, case["case_id"], "open", actor="lena")
    # paused: Mon 14-17 (180) + Tue (480) + Wed 9-11 (120) = 780 business minutes; the
    # resolution due moves from Mon 9 June 10:00 by 780: Mon 10-17 (420), Tue 9:00 + 360 min
    assert c["paused_at"] is None and c["paused_minutes"] == 780
    assert c["resolution_due"] == utc(2025, 6, 10, 15)
    assert c["first_response_due"] == WEEKDAYS.add(opened, 480 + 780)

    with time_machine.travel(utc(2025, 6, 10, 14, 59), tick=False):
        assert sla.escalate(store) == 0
    with time_machine.travel(utc(2025, 6, 10, 15, 1), tick=False):
        assert sla.escalate(store) == 1  # resolution (the first response was given)
        assert sla.escalate(store) == 0  # once per clock
        c = cases.get_case(store, None, case["case_id"])
    assert c["resolution_breached_at"] == utc(2025, 6, 10, 15, 1)
    assert c["first_response_breached_at"] is None
    assert c["escalation_level"] == 1 and c["priority"] == "high"
    assert c["sla"]["status"] == "breached"
    breach = [e for e in c["history"] if e["action"] == "breached"]
    assert len(breach) == 1 and breach[0]["actor"] == "sla" and breach[0]["field"] == "resolution"
    events = [r[0] for r in store.query("SELECT event_type FROM outbox ORDER BY id")]
    assert events == [
        "case.opened", "alert.fired", "case.state_changed", "case.state_changed", "case.breached"
    ]  # fmt: skip
    assert set(events) <= set(WEBHOOK_EVENTS)  # each one an endpoint's filter may name


def test_first_response_breach_after_a_weekend_and_priorities(store, ingestor):
    add_rule(store, Rule("urgent", "detractor", priority="urgent"), actor="test")
    friday = utc(2025, 6, 6, 16, 30)
    with time_machine.travel(friday, tick=False):
        _detractor(ingestor, "f1", friday)
    case = _case(store)
    # urgent: first response within 60 business minutes: 30 on Friday, 30 on Monday
    assert case["first_response_due"] == utc(2025, 6, 9, 9, 30)
    assert case["resolution_due"] == WEEKDAYS.add(friday, 480)
    with time_machine.travel(utc(2025, 6, 8, 23), tick=False):  # Sunday night: not late
        assert sla.escalate(store) == 0
    with time_machine.travel(utc(2025, 6, 9, 9, 31), tick=False):
        assert sla.escalate(store) == 1
        c = cases.get_case(store, None, case["case_id"])
    assert c["first_response_breached_at"] is not None and c["priority"] == "urgent"
    # a note is the first response; a lower priority moves the due times out again
    with time_machine.travel(utc(2025, 6, 9, 10), tick=False):
        c = cases.add_note(store, None, case["case_id"], "called the customer", actor="lena")
        assert c["first_response_at"] == utc(2025, 6, 9, 10)
        c = cases.set_priority(store, None, case["case_id"], "low", actor="lena")
    assert c["resolution_due"] == WEEKDAYS.add(friday, sla.DEFAULT_TARGETS["low"].resolution)


def test_a_stored_policy_with_holidays_sets_the_due_times(store, ingestor):
    sla.save_policy(
        store,
        Policy.from_dict({"name": "de", "calendar": {"holidays": "DE"},
                          "targets": {"normal": {"first_response_minutes": 120,
                                                 "resolution_minutes": 960}}}),
    )  # fmt: skip
    add_rule(store, Rule("de", "detractor", sla_policy="de"), actor="test")
    with pytest.raises(SlaError, match="no SLA policy"):
        add_rule(store, Rule("nope", "detractor", sla_policy="nope"), actor="test")
    opened = utc(2025, 12, 24, 16)
    with time_machine.travel(opened, tick=False):
        _detractor(ingestor, "f1", opened)
    case = _case(store)
    assert case["sla_policy"] == "de"
    assert case["first_response_due"] == utc(2025, 12, 29, 10)
    # 960 minutes: 60 on the 24th, 480 on the 29th, 420 on the 30th
    assert case["resolution_due"] == utc(2025, 12, 30, 16)
    assert [p.name for p in sla.list_policies(store)] == ["default", "de"]


def test_clock_state_in_words():
    now = utc(2025, 6, 9, 12)
    base = {"state": "open", "first_response_at": None, "first_response_breached_at": None,
            "resolution_breached_at": None, "resolution_due": now + timedelta(days=3)}  # fmt: skip
    assert (
        sla.clock_state({**base, "first_response_due": now + timedelta(days=1)}, now)["status"]
        == "on time"
    )
    assert (
        sla.clock_state({**base, "first_response_due": now + timedelta(hours=1)}, now)["status"]
        == "due soon"
    )
    assert (
        sla.clock_state({**base, "first_response_due": now - timedelta(hours=1)}, now)["status"]
        == "breached"
    )
    assert sla.clock_state({**base, "state": "resolved", "first_response_due": now}, now) == {
        "clock": "resolution", "status": "met", "due": None
    }  # fmt: skip


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"targets": [1, 2]}, "targets: map each priority"),
        ({"targets": {"normal": {"first_response_minutes": 1, "resolution_minutes": "inf"}}},
         "both finite"),
        ({"calendar": {"closed": 5}}, "closed dates"),
    ],
)  # fmt: skip
def test_policy_documents_of_the_wrong_shape_are_refused(doc, says):
    """A policy file of the wrong shape says what is wrong (before: AttributeError, a stored
    infinite target that made every later listing a 500)."""
    with pytest.raises(SlaError, match=re.escape(says)):
        Policy.from_dict(doc, "bad")
    assert Policy.from_dict({"calendar": {"closed": date(2026, 1, 1)}}, "one").calendar.closed == (
        date(2026, 1, 1),
    )


def test_a_policy_whose_targets_the_calendar_never_reaches_is_not_stored(store):
    """A target the calendar's working hours cannot reach within three years is refused when
    the policy is saved: it left a rule using the policy unable to open any case, which stopped
    the record rules firing (a calendar with no working day is refused as it is read)."""
    huge = Policy.from_dict(
        {"targets": {"normal": {"first_response_minutes": 60, "resolution_minutes": 10**7}}}, "huge"
    )
    with pytest.raises(SlaError, match="not reached within three years"):
        sla.save_policy(store, huge)
    assert [p.name for p in sla.list_policies(store)] == [sla.DEFAULT_POLICY_NAME]
