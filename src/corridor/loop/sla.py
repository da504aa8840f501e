"""SLA clocks in business hours: calendars, policies, due times, pauses and escalation.

A :class:`Calendar` says when the clock runs: the working days and hours in a time zone, minus
public holidays (the ``holidays`` package, by country and subdivision) and extra closed dates.
A :class:`Policy` gives, per priority, the business minutes allowed until the first response
and until resolution. A case's due times are

    due = add(opened_at, target + paused_minutes)

where ``paused_minutes`` counts the business minutes the case spent with its clocks stopped
(pending, resolved or closed): pausing moves both due times on by exactly the business time
spent paused, and a change of priority recomputes them from the opening. All arithmetic runs
in UTC on instants; the calendar's days and hours are read in its own zone, so a daylight-saving
change shortens or lengthens a day as it does on the wall clock.

:func:`escalate` is the scheduled job ``sla.escalate``: a running clock past its due time is a
breach, recorded once per clock, raising the escalation level and the priority one step (the
due times stay those that were breached) and notifying (``case.breached``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from corridor.errors import CorridorError
from corridor.loop import casestore
from corridor.store import Store
from corridor.store.base import Tx

PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
#: states whose clocks run; in the others (pending, resolved, closed) they are stopped
RUNNING: tuple[str, ...] = ("new", "open")
DEFAULT_POLICY_NAME = "default"
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: how far ahead a due time is looked for before the calendar is declared closed for good
_HORIZON_DAYS = 3 * 366


class SlaError(CorridorError, ValueError):
    """An SLA policy or calendar that cannot be used as given."""

    status_code = 422


@functools.lru_cache(maxsize=64)
def _holiday_table(country: str, subdiv: str | None) -> Any:
    import holidays

    try:
        return holidays.country_holidays(country, subdiv=subdiv)
    except NotImplementedError:
        raise SlaError(
            f"no holiday calendar for country {country!r}"
            + (f" and subdivision {subdiv!r}" if subdiv else "")
            + "; use an ISO 3166 country code the holidays package knows (e.g. DE, FR, US), "
            "with a subdivision it lists for that country"
        ) from None


def _hhmm(value: str) -> int:
    """Minutes after midnight of ``HH:MM`` (``24:00`` allowed as the end of a day)."""
    try:
        hh, mm = value.split(":")
        minutes = int(hh) * 60 + int(mm)
    except ValueError:
        raise SlaError(f"business hours {value!r}: write HH:MM, e.g. 09:00") from None
    if not 0 <= minutes <= 24 * 60 or not 0 <= int(mm) < 60:
        raise SlaError(f"business hours {value!r} is not a time of day")
    return minutes


@dataclass(frozen=True)
class Calendar:
    """When SLA clocks run. ``days``: working weekdays (0 = Monday); ``start``/``end``: the
    working hours each working day, minutes after local midnight; ``country``/``subdiv``: the
    public holidays that close the day; ``closed``: extra closed dates."""

    timezone: str = "UTC"
    days: tuple[int, ...] = (0, 1, 2, 3, 4)
    start: int = 9 * 60
    end: int = 17 * 60
    country: str | None = None
    subdiv: str | None = None
    closed: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SlaError(f"unknown time zone {self.timezone!r}; e.g. Europe/Berlin") from None
        if not self.days or any(d not in range(7) for d in self.days):
            raise SlaError("a calendar needs at least one working day (mon..sun)")
        if not 0 <= self.start < self.end <= 24 * 60:
            raise SlaError("business hours must start before they end, within one day")
        if self.country:
            _holiday_table(self.country, self.subdiv)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_working_day(self, day: date) -> bool:
        if day.weekday() not in self.days or day in self.closed:
            return False
        return not (self.country and day in _holiday_table(self.country, self.subdiv))

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working hours of a local ``day`` as UTC instants (None: a closed day)."""
        if not self.is_working_day(day):
            return None
        zone = self.zone
        midnight = datetime.combine(day, time(0), tzinfo=zone)

        def at(minutes: int) -> datetime:
            if minutes >= 24 * 60:
                nxt = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
                return nxt.astimezone(UTC)
            local = midnight.replace(hour=minutes // 60, minute=minutes % 60)
            return local.astimezone(UTC)

        return at(self.start), at(self.end)

    def _days_from(self, instant: datetime) -> Iterable[date]:
        day = instant.astimezone(self.zone).date() - timedelta(days=1)  # a window may straddle
        for i in range(_HORIZON_DAYS):
            yield day + timedelta(days=i)

    def add(self, start: datetime, minutes: float) -> datetime:
        """The instant ``minutes`` business minutes after ``start``."""
        start = _utc(start)
        left = timedelta(minutes=max(minutes, 0.0))
        for day in self._days_from(start):
            win = self.window(day)
            if win is None or win[1] <= start:
                continue
            cursor = max(start, win[0])
            if left <= win[1] - cursor:
                return cursor + left
            left -= win[1] - cursor
        raise SlaError("the calendar has no working hours in the next three years")

    def between(self, a: datetime, b: datetime) -> float:
        """Business minutes from ``a`` to ``b`` (0 when ``b`` is not after ``a``)."""
        a, b = _utc(a), _utc(b)
        if b <= a:
            return 0.0
        total = timedelta(0)
        for day in self._days_from(a):
            win = self.window(day)
            if win is not None:
                lo, hi = max(a, win[0]), min(b, win[1])
                if hi > lo:
                    total += hi - lo
            if datetime.combine(day, time(0), tzinfo=self.zone) > b:
                break
        return total.total_seconds() / 60.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "days": [_DAY_NAMES[d] for d in self.days],
            "hours": f"{self.start // 60:02d}:{self.start % 60:02d}-"
            f"{self.end // 60:02d}:{self.end % 60:02d}",
            "holidays": self.country,
            "subdivision": self.subdiv,
            "closed": [d.isoformat() for d in self.closed],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Calendar:
        unknown = set(doc) - {"timezone", "days", "hours", "holidays", "subdivision", "closed"}
        if unknown:
            raise SlaError(
                f"unknown calendar field(s) {', '.join(sorted(unknown))}; allowed: timezone, "
                "days, hours, holidays, subdivision, closed"
            )
        hours = str(doc.get("hours", "09:00-17:00"))
        if hours == "24/7":
            start, end, days = 0, 24 * 60, tuple(range(7))
        else:
            lo, sep, hi = hours.partition("-")
            if not sep:
                raise SlaError(f"hours {hours!r}: write HH:MM-HH:MM, e.g. 09:00-17:00, or 24/7")
            start, end = _hhmm(lo.strip()), _hhmm(hi.strip())
            days = tuple(_day(d) for d in doc.get("days", _DAY_NAMES[:5]))
        listed = doc.get("closed", ())
        if isinstance(listed, str | date) or not isinstance(listed, Iterable):
            listed = [listed]  # one date given alone
        try:
            closed = tuple(date.fromisoformat(str(d)) for d in listed)
        except ValueError as e:
            raise SlaError(f"closed dates: {e}; write YYYY-MM-DD") from None
        country = doc.get("holidays") or None
        return cls(
            timezone=str(doc.get("timezone", "UTC")),
            days=tuple(sorted(set(days))),
            start=start,
            end=end,
            country=str(country).upper() if country else None,
            subdiv=doc.get("subdivision") or None,
            closed=closed,
        )


def _day(name: Any) -> int:
    key = str(name).strip().lower()[:3]
    if key not in _DAY_NAMES:
        raise SlaError(f"unknown weekday {name!r}; use mon, tue, wed, thu, fri, sat, sun")
    return _DAY_NAMES.index(key)


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise SlaError("SLA times must carry a time zone")
    return t.astimezone(UTC)


@dataclass(frozen=True)
class Target:
    """Business minutes allowed until the first response and until resolution."""

    first_response: float
    resolution: float


DEFAULT_TARGETS: dict[str, Target] = {
    "urgent": Target(60, 8 * 60),
    "high": Target(4 * 60, 2 * 8 * 60),
    "normal": Target(8 * 60, 5 * 8 * 60),
    "low": Target(2 * 8 * 60, 10 * 8 * 60),
}


@dataclass(frozen=True)
class Policy:
    """An SLA policy: a calendar and the targets per priority."""

    name: str = DEFAULT_POLICY_NAME
    calendar: Calendar = field(default_factory=Calendar)
    targets: Mapping[str, Target] = field(default_factory=lambda: dict(DEFAULT_TARGETS))

    def target(self, priority: str) -> Target:
        return (
            self.targets.get(priority) or DEFAULT_TARGETS.get(priority) or DEFAULT_TARGETS["normal"]
        )

    def dues(
        self, priority: str, opened_at: datetime, paused_minutes: float = 0.0
    ) -> tuple[datetime, datetime]:
        """The first-response and resolution due times of a case."""
        t = self.target(priority)
        cal = self.calendar
        return (
            cal.add(opened_at, t.first_response + paused_minutes),
            cal.add(opened_at, t.resolution + paused_minutes),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "calendar": self.calendar.as_dict(),
            "targets": {
                p: {"first_response_minutes": t.first_response, "resolution_minutes": t.resolution}
                for p, t in self.targets.items()
            },
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], name: str | None = None) -> Policy:
        unknown = set(doc) - {"name", "calendar", "targets"}
        if unknown:
            raise SlaError(
                f"unknown SLA policy field(s) {', '.join(sorted(unknown))}; allowed: name, "
                "calendar, targets"
            )
        targets = dict(DEFAULT_TARGETS)
        given = doc.get("targets") or {}
        if not isinstance(given, Mapping):
            raise SlaError(
                "targets: map each priority (low, normal, high, urgent) to its "
                "first_response_minutes and resolution_minutes"
            )
        for prio, t in given.items():
            if prio not in PRIORITIES:
                raise SlaError(f"unknown priority {prio!r}; use {', '.join(PRIORITIES)}")
            try:
                fr = float(t["first_response_minutes"])
                res = float(t["resolution_minutes"])
            except (KeyError, TypeError, ValueError):
                raise SlaError(
                    f"targets.{prio}: give first_response_minutes and resolution_minutes "
                    "(business minutes)"
                ) from None
            if not (math.isfinite(res) and 0 < fr <= res):
                raise SlaError(
                    f"targets.{prio}: 0 < first_response_minutes <= resolution_minutes, both finite"
                )
            targets[prio] = Target(fr, res)
        policy_name = str(name or doc.get("name") or "").strip()
        if not policy_name:
            raise SlaError("an SLA policy needs a name")
        return cls(policy_name, Calendar.from_dict(doc.get("calendar") or {}), targets)


DEFAULT_POLICY = Policy()


# -- storage ---------------------------------------------------------------------------------
def get_policy(tx: Tx, name: str | None) -> Policy:
    """The stored policy ``name`` (the built-in default when none is stored by that name)."""
    name = name or DEFAULT_POLICY_NAME
    rows = tx.fetchall("SELECT definition FROM sla_policies WHERE name = ?", (name,))
    if not rows:
        if name != DEFAULT_POLICY_NAME:
            raise SlaError(
                f"no SLA policy {name!r}; `corridor cases sla NAME FILE` stores one "
                "(the built-in one is 'default')"
            )
        return DEFAULT_POLICY
    doc = rows[0][0]
    return Policy.from_dict(json.loads(doc) if isinstance(doc, str | bytes) else doc, name)


def save_policy(store: Store, policy: Policy) -> None:
    """Store ``policy`` (replacing one of its name), once every target can be met: a target the
    calendar's working hours never reach would leave no due time for a case to open with."""
    now = datetime.now(UTC)
    for prio, t in policy.targets.items():
        try:
            policy.calendar.add(now, t.resolution)
        except (SlaError, OverflowError):
            raise SlaError(
                f"targets.{prio}: {t.resolution:g} business minutes are not reached within three "
                "years of this calendar's working hours; give a shorter target or more working "
                "hours"
            ) from None
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO sla_policies (name, definition, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, "
            "updated_at = excluded.updated_at",
            (policy.name, json.dumps(policy.as_dict()), datetime.now(UTC)),
        )


def list_policies(store: Store) -> list[Policy]:
    with store.transaction() as tx:
        names = [r[0] for r in tx.fetchall("SELECT name FROM sla_policies ORDER BY name")]
        stored = [get_policy(tx, n) for n in names]
    if DEFAULT_POLICY_NAME not in names:
        stored.insert(0, DEFAULT_POLICY)
    return stored


# -- clocks of one case ----------------------------------------------------------------------
def on_state_change(
    policy: Policy, case: Mapping[str, Any], new_state: str, now: datetime
) -> dict[str, Any]:
    """The clock fields a state change sets: stopping the clocks notes when; restarting them
    adds the business minutes spent stopped and moves the due times on."""
    running_before = case["state"] in RUNNING
    running_after = new_state in RUNNING
    if running_before and not running_after:
        return {"paused_at": now}
    if not running_before and running_after and case.get("paused_at") is not None:
        paused = float(case["paused_minutes"] or 0) + policy.calendar.between(
            case["paused_at"], now
        )
        fr, res = policy.dues(case["priority"], case["opened_at"], paused)
        return {
            "paused_at": None,
            "paused_minutes": paused,
            "first_response_due": fr,
            "resolution_due": res,
        }
    return {}


def on_priority_change(policy: Policy, case: Mapping[str, Any], priority: str) -> dict[str, Any]:
    fr, res = policy.dues(priority, case["opened_at"], float(case["paused_minutes"] or 0))
    return {"first_response_due": fr, "resolution_due": res}


def clock_state(case: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The SLA state of a case in words: the clock that matters now, and how it stands."""
    if case["state"] in ("resolved", "closed"):
        late = case.get("resolution_breached_at") is not None
        return {"clock": "resolution", "status": "breached" if late else "met", "due": None}
    responded = case.get("first_response_at") is not None
    clock = "resolution" if responded else "first_response"
    due = case.get(f"{clock}_due")
    breached = case.get(f"{clock}_breached_at") is not None or (
        due is not None and case["state"] in RUNNING and due <= now
    )
    if breached:
        status = "breached"
    elif case["state"] not in RUNNING:
        status = "paused"
    elif due is not None and due - now <= timedelta(hours=4):
        status = "due soon"
    else:
        status = "on time"
    return {"clock": clock, "status": status, "due": due}


# -- escalation ------------------------------------------------------------------------------
_CLOCKS = (
    ("first_response", "first_response_at IS NULL AND first_response_due <= ? "
     "AND first_response_breached_at IS NULL"),
    ("resolution", "resolution_due <= ? AND resolution_breached_at IS NULL"),
)  # fmt: skip


def escalate(store: Store, now: datetime | None = None) -> int:
    """Record every breach of a running clock (once per clock and case): the escalation level
    and the priority go up one step, the history and a ``case.breached`` notification say which
    clock. Returns the number of breaches recorded. The scheduled job ``sla.escalate``."""
    now = now or datetime.now(UTC)
    found = 0
    with store.transaction() as tx:
        for clock, condition in _CLOCKS:
            ids = [
                r[0]
                for r in tx.fetchall(
                    f"SELECT case_id FROM cases WHERE state IN ('new', 'open') AND {condition} "
                    "ORDER BY case_id",
                    (now,),
                )
            ]
            for case_id in ids:
                case = casestore.read_case(tx, case_id)
                assert case is not None
                level = int(case["escalation_level"] or 0) + 1
                prio = case["priority"]
                raised = PRIORITIES[min(PRIORITIES.index(prio) + 1, len(PRIORITIES) - 1)]
                changes: dict[str, Any] = {
                    f"{clock}_breached_at": now,
                    "escalation_level": level,
                }
                if raised != prio:  # the due times stay: the breach is of those
                    changes["priority"] = raised
                casestore.write_fields(tx, case_id, changes, now)
                event = casestore.record(
                    tx, case_id, "sla", "breached", at=now, field=clock,
                    old=_iso(case[f"{clock}_due"]), new=f"escalation level {level}",
                )  # fmt: skip
                after = {**case, **changes}
                casestore.notify(
                    tx, "case.breached", after, event,
                    change={"clock": clock, "due": _iso(case[f"{clock}_due"]),
                            "escalation_level": level, "priority": raised},
                )  # fmt: skip
                found += 1
    return found


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


__all__ = [
    "DEFAULT_POLICY",
    "PRIORITIES",
    "RUNNING",
    "Calendar",
    "Policy",
    "SlaError",
    "Target",
    "clock_state",
    "escalate",
    "get_policy",
    "list_policies",
    "on_priority_change",
    "on_state_change",
    "save_policy",
]
