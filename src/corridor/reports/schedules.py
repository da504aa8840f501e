"""Scheduled reports: weekly (Monday) or monthly (the 1st) at an hour of each recipient's time
zone, to the users of a role (and department or partner), through the closed loop's outbox.

A schedule names its recipients by role (and, optionally, one department or partner); each of
them with an e-mail address (``corridor users notify``; mode not ``off``) gets the report as
*they* may see it: built with their own :class:`~corridor.auth.scope.Scope`, about the
schedule's subject or, when it names none, about their own department or partner (the whole
corridor for admins and analysts). A recipient's time zone is theirs
(:func:`set_time_zone`), else the schedule's.

The ``reports.send`` job (every five minutes) finds, for each schedule and recipient, the last
send time that has passed (the last Monday or 1st at ``hour`` in their zone, not before the
schedule was made) and, unless that period's report was queued already, renders it (the e-mail
with its charts and the PDF attached) and writes the outbox row and a ``report_deliveries`` row
in one transaction. The row's key (schedule, period, user) is the primary key, so a report is
queued once per period and user whatever restarts or second processes happen; a server that was
down at 08:00 sends it at its next run. The outbox then delivers it at least once, with the same
``Message-ID`` on every attempt.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import pandas as pd
from pydantic import Field

from corridor.auth import accounts
from corridor.auth.scope import ROLES, Principal, Role, Scope
from corridor.errors import CorridorError, NotFoundError
from corridor.loop import outbox, scheduler
from corridor.loop.scheduler import JobContext
from corridor.privacy.requests import ran_since
from corridor.reports import render
from corridor.reports.content import build_report
from corridor.reports.periods import ReportPeriod, ReportRequestError, Subject
from corridor.store import Store
from corridor.store.maps import load_map

log = logging.getLogger(__name__)

#: cadences and the report period each sends
CADENCES: dict[str, str] = {"weekly": "week", "monthly": "month"}
#: the outbox event of a report mail
EVENT = "report"
EVERY_S = 300.0


class ScheduleNotFoundError(NotFoundError):
    """No report schedule with that id (or no e-mail settings for a user)."""


@dataclass(frozen=True)
class Schedule:
    schedule_id: str
    cadence: str
    subject: Annotated[
        str | None, Field(description="what the reports are about (null: their own)")
    ]
    role: str
    department: str | None
    partner: str | None
    time_zone: str
    hour: int
    enabled: bool
    created_at: datetime
    created_by: str | None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["created_at"] = self.created_at.isoformat()
        return out


_COLUMNS = (
    "schedule_id, cadence, subject, role, department, partner, time_zone, hour, enabled, "
    "created_at, created_by"
)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ReportRequestError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
        ) from e


def add_schedule(
    store: Store,
    *,
    cadence: str,
    role: str,
    department: str | None = None,
    partner: str | None = None,
    subject: str | None = None,
    time_zone: str = "UTC",
    hour: int = 8,
    created_by: str | None = None,
    now: datetime | None = None,
) -> Schedule:
    """A new schedule (see the module notes); every value checked with a message that says
    how to fix it."""
    if cadence not in CADENCES:
        raise ReportRequestError(f"cadence {cadence!r}: use one of {', '.join(CADENCES)}")
    if role not in ROLES or role == Role.AGENT:
        allowed = ", ".join(r for r in ROLES if r != Role.AGENT)
        raise ReportRequestError(f"role {role!r}: reports go to {allowed} (agents see none)")
    if not 0 <= int(hour) <= 23:
        raise ReportRequestError(f"hour {hour}: give an hour of the day, 0 to 23")
    _zone(time_zone)
    spec = Subject.parse(subject).spec if subject else None
    sid = "rs_" + secrets.token_hex(5)
    with store.transaction() as tx:
        tx.execute(
            f"INSERT INTO report_schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [sid, cadence, spec, role, department, partner, time_zone, int(hour), True,
             now or datetime.now(UTC), created_by],
        )  # fmt: skip
    return get_schedule(store, sid)


def get_schedule(store: Store, schedule_id: str) -> Schedule:
    rows = store.query(
        f"SELECT {_COLUMNS} FROM report_schedules WHERE schedule_id = ?", [schedule_id]
    )
    if not rows:
        raise ScheduleNotFoundError(
            f"no report schedule {schedule_id!r}; `corridor report-schedules list` shows them"
        )
    return Schedule(*rows[0])


def list_schedules(store: Store) -> list[Schedule]:
    rows = store.query(f"SELECT {_COLUMNS} FROM report_schedules ORDER BY created_at")
    return [Schedule(*r) for r in rows]


def remove_schedule(store: Store, schedule_id: str) -> None:
    get_schedule(store, schedule_id)
    with store.transaction() as tx:
        tx.execute("DELETE FROM report_schedules WHERE schedule_id = ?", [schedule_id])


def set_time_zone(store: Store, username: str, time_zone: str | None) -> None:
    """The time zone ``username``'s scheduled reports follow (None: the schedule's)."""
    if time_zone is not None:
        _zone(time_zone)
    with store.transaction() as tx:
        found = tx.fetchall(
            "SELECT username FROM notification_prefs WHERE username = ?", [username]
        )
        if not found:
            if not tx.fetchall("SELECT 1 FROM users WHERE username = ?", [username]):
                raise ScheduleNotFoundError(
                    f"no user {username!r}; `corridor users list` shows them"
                )
            raise ScheduleNotFoundError(
                f"{username} has no e-mail settings yet: set them first with "
                "`corridor users notify USERNAME --email ADDRESS`"
            )
        tx.execute(
            "UPDATE notification_prefs SET time_zone = ? WHERE username = ?",
            [time_zone, username],
        )


@dataclass(frozen=True)
class Recipient:
    principal: Principal
    email: str
    time_zone: str


def recipients(store: Store, schedule: Schedule) -> list[Recipient]:
    """The users the schedule reaches: its role (and department or partner), with an address
    and e-mail not switched off."""
    prefs = {
        str(r[0]): (str(r[1]), r[2])
        for r in store.query(
            "SELECT username, email, time_zone FROM notification_prefs WHERE mode <> 'off'"
        )
    }
    out = []
    for user in accounts.list_users(store):
        principal = Principal(user.username, Role(user.role), user.department, user.partner)
        if user.username in prefs and reaches(schedule, principal):
            email, zone = prefs[user.username]
            out.append(Recipient(principal, email, zone or schedule.time_zone))
    return out


def reaches(schedule: Schedule, principal: Principal) -> bool:
    """Whether the schedule is meant for ``principal`` (their role, and the schedule's
    department or partner when it names one)."""
    if principal.role.value != schedule.role:
        return False
    if schedule.department and principal.department != schedule.department:
        return False
    return not (schedule.partner and principal.partner != schedule.partner)


def last_send_time(schedule: Schedule, time_zone: str, now: datetime) -> datetime:
    """The last Monday (weekly) or 1st (monthly) at ``hour`` in ``time_zone`` not after
    ``now``, in UTC."""
    local = pd.Timestamp(now).tz_convert(_zone(time_zone))
    day = local.normalize()
    if schedule.cadence == "weekly":
        day -= pd.Timedelta(days=day.weekday())
        step = pd.DateOffset(weeks=1)
    else:
        day = day.replace(day=1)
        step = pd.DateOffset(months=1)
    at = day.replace(hour=schedule.hour)  # wall-clock time: 08:00 on either side of DST
    if at > local:
        at = (day - step).replace(hour=schedule.hour)
    return at.tz_convert(UTC).to_pydatetime()


def due_period(schedule: Schedule, time_zone: str, now: datetime) -> ReportPeriod | None:
    """The period whose report is due for a recipient in ``time_zone`` at ``now`` (None before
    the schedule's first send time)."""
    sent_at = last_send_time(schedule, time_zone, now)
    if sent_at < schedule.created_at:
        return None
    local_day = pd.Timestamp(sent_at).tz_convert(_zone(time_zone)).date()
    return ReportPeriod.last_full(CADENCES[schedule.cadence], local_day)


def subject_for(schedule: Schedule) -> Subject:
    """The schedule's subject; none: the whole corridor, which for a department head or partner
    manager is their department or partner (:func:`~corridor.reports.content.reader_subject`)."""
    return Subject.parse(schedule.subject) if schedule.subject else Subject()


@dataclass
class SendReport:
    queued: int = 0
    skipped: int = 0
    failed: int = 0

    def summary(self) -> str:
        return f"{self.queued} reports queued, {self.skipped} skipped, {self.failed} failed"


def _payload(
    schedule: Schedule, store: Store, period: ReportPeriod, scope: Scope,
    pdf_from: Callable[[str], bytes] | None, no_pdf: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The outbox row's data: the rendered mail and, given ``pdf_from``, the PDF (else the
    text says why it is missing, ``no_pdf``)."""
    import base64

    report = build_report(store, subject_for(schedule), period, scope=scope)
    spec = report.subject.spec
    data = render.mail(report).as_payload()
    data.update(schedule_id=schedule.schedule_id, period=period.key, scope=spec)
    if pdf_from is not None:
        name = f"cx-report-{spec.replace('=', '-')}-{period.key}.pdf"
        pdf = base64.b64encode(pdf_from(render.html(report))).decode()
        data["attachments"] = [{"filename": name, "content_type": "application/pdf", "data": pdf}]
    elif no_pdf:
        data["text"] += f"\n(The PDF could not be attached: {no_pdf}.)\n"
    return data


_DELIVERED = (
    "SELECT 1 FROM report_deliveries WHERE schedule_id = ? AND period_key = ? AND username = ?"
)


def _queue(store: Store, schedule: Schedule, period: ReportPeriod, user: str, key: str,
           now: datetime, data: dict[str, Any], email: str, built: datetime) -> bool:  # fmt: skip
    """The delivery row and the outbox row in one transaction; False when the report was
    queued meanwhile (another process: the delivery's primary key refuses a second), or when a
    privacy request ran since it was ``built`` (it may quote what the request removed: the next
    run makes it again)."""
    ids = [schedule.schedule_id, period.key, user]
    try:
        with store.transaction() as tx:
            if tx.fetchall(_DELIVERED, ids) or ran_since(tx, built):
                return False
            tx.execute(
                "INSERT INTO report_deliveries (schedule_id, period_key, username, outbox_key, "
                "queued_at) VALUES (?, ?, ?, ?, ?)",
                [*ids, key, now],
            )
            # mail only: a recipient's report is not a copy for every webhook endpoint
            outbox.enqueue(tx, EVENT, data, key=key, emails=[email], endpoints=[])
    except Exception:
        if store.query(_DELIVERED, ids):
            return False
        raise
    return True


def _due(store: Store, now: datetime) -> list[tuple[Schedule, Recipient, ReportPeriod]]:
    """Every (schedule, recipient, period) due at ``now`` and not yet queued."""
    out = []
    for schedule in list_schedules(store):
        if not schedule.enabled:
            continue
        for rcpt in recipients(store, schedule):
            period = due_period(schedule, rcpt.time_zone, now)
            ids = [schedule.schedule_id, period.key if period else "", rcpt.principal.username]
            if period is not None and not store.query(_DELIVERED, ids):
                out.append((schedule, rcpt, period))
    return out


@contextlib.contextmanager
def _printing(with_pdf: bool) -> Iterator[tuple[Callable[[str], bytes] | None, str | None]]:
    """(what prints a report's HTML as PDF, or None and why not): one Chromium for a run."""
    from corridor.reports.pdf import PdfUnavailableError, printer

    if not with_pdf:
        yield None, None
        return
    with contextlib.ExitStack() as stack:
        pdf_from: Callable[[str], bytes] | None = None
        why = None
        try:
            pdf_from = stack.enter_context(printer()).pdf
        except PdfUnavailableError as e:
            log.warning("reports go without their PDF: %s", e)
            why = str(e)
        yield pdf_from, why


def send_due(store: Store, *, now: datetime | None = None, with_pdf: bool = True) -> SendReport:
    """Queue every report that is due and not yet queued (see the module notes). One Chromium
    prints every PDF of the run; without one, the mails go without the PDF and say why."""
    now = now or datetime.now(UTC)
    done = SendReport()
    due = _due(store, now)
    if not due:
        return done
    cmap = load_map(store)
    with _printing(with_pdf) as (pdf_from, no_pdf):
        for schedule, rcpt, period in due:
            user = rcpt.principal.username
            key = f"report-{schedule.schedule_id}-{period.key}-{user}"
            built = datetime.now(UTC)
            try:
                scope = Scope.of(rcpt.principal, cmap)
                data = _payload(schedule, store, period, scope, pdf_from, no_pdf)
            except CorridorError as e:  # e.g. a subject outside the user's scope
                log.warning("report %s for %s not sent: %s", key, user, e)
                done.failed += 1
                continue
            if _queue(store, schedule, period, user, key, now, data, rcpt.email, built):
                done.queued += 1
            else:
                done.skipped += 1
    return done


def remake_withdrawn(store: Store, *, now: datetime | None = None, with_pdf: bool = True) -> int:
    """Make again every report mail whose content a privacy request withdrew (see
    :func:`corridor.privacy.mails.withdraw_reports`); returns how many are pending again."""
    rows = _withdrawn(store)
    if not rows:
        return 0
    now = now or datetime.now(UTC)
    cmap = load_map(store)
    with _printing(with_pdf) as (pdf_from, no_pdf):
        return sum(_remake(store, cmap, row, pdf_from, no_pdf, now) for row in rows)


def _withdrawn(store: Store) -> list[tuple[int, dict[str, Any], str | None]]:
    """The report mails whose content a privacy request withdrew (state ``remaking``: see
    :func:`corridor.privacy.mails.withdraw_reports`): (outbox id, envelope, recipient)."""
    rows = store.query(
        "SELECT o.id, CAST(o.payload AS VARCHAR), d.username FROM outbox o "
        "LEFT JOIN report_deliveries d ON d.outbox_key = o.idempotency_key "
        "WHERE o.event_type = ? AND o.state = ? ORDER BY o.id",
        [EVENT, outbox.REMAKING],
    )
    return [(int(i), orjson.loads(doc), None if u is None else str(u)) for i, doc, u in rows]


def _remake(
    store: Store, cmap: Any, row: tuple[int, dict[str, Any], str | None],
    pdf_from: Callable[[str], bytes] | None, no_pdf: str | None, now: datetime,
) -> int:  # fmt: skip
    """Make a withdrawn report mail again, from the store as it is now, for its recipient as
    they may see it now and to their address now; it is then pending (with a fresh budget of
    attempts). When it cannot be (its schedule or recipient gone, its subject out of their
    scope) it is cancelled, with why; when a privacy request ran while it was made, it waits
    for the next run. Returns 1 if it was made again."""
    outbox_id, doc, username = row
    data = doc.get("data") or {}
    why = None
    built = datetime.now(UTC)
    email = ""
    try:
        schedule = get_schedule(store, str(data.get("schedule_id")))
        rcpt = next(
            (r for r in recipients(store, schedule) if r.principal.username == username), None
        )
        if rcpt is None:
            who = username or "its recipient"
            why = f"{who} no longer receives schedule {schedule.schedule_id}"
        else:
            period = ReportPeriod.from_key(CADENCES[schedule.cadence], str(data.get("period")))
            scope = Scope.of(rcpt.principal, cmap)
            doc["data"] = _payload(schedule, store, period, scope, pdf_from, no_pdf)
            email = rcpt.email
    except CorridorError as e:  # the schedule removed, a subject now outside the scope
        why = str(e)
    with store.transaction() as tx:
        if why is None and ran_since(tx, built):
            return 0  # what it quotes may be gone since: made again at the next run
        if why is not None:
            log.warning("report mail %s not made again: %s", outbox_id, why)
            tx.execute(
                "UPDATE outbox SET state = ?, last_error = ? WHERE id = ? AND state = ?",
                [outbox.CANCELLED, f"not made again: {why}"[:500],
                 outbox_id, outbox.REMAKING],
            )  # fmt: skip
            return 0
        made = tx.execute(
            f"UPDATE outbox SET payload = CAST(? AS {tx.json_type}), target = ?, state = ?, "
            "attempts = 0, next_attempt_at = ?, last_error = NULL WHERE id = ? AND state = ?",
            [orjson.dumps(doc).decode(), email, outbox.PENDING, now, outbox_id, outbox.REMAKING],
        )
    if made == 1:
        outbox.wake()
    return int(made == 1)


def deliveries(store: Store, schedule_id: str | None = None) -> list[dict[str, Any]]:
    where, args = ("WHERE schedule_id = ?", [schedule_id]) if schedule_id else ("", [])
    rows = store.query(
        "SELECT schedule_id, period_key, username, outbox_key, queued_at FROM report_deliveries "
        f"{where} ORDER BY queued_at, username",
        args,
    )
    names = ("schedule_id", "period", "username", "outbox_key", "queued_at")
    return [dict(zip(names, r, strict=True)) for r in rows]


def reports_job(ctx: JobContext) -> str | None:
    done = send_due(ctx.store)
    remade = remake_withdrawn(ctx.store)
    told = [done.summary()] if (done.queued or done.failed) else []
    told += [f"{remade} report mails made again after a privacy request"] if remade else []
    return "; ".join(told) or None


scheduler.register("reports.send", EVERY_S, reports_job)

__all__ = [
    "CADENCES",
    "EVENT",
    "Schedule",
    "ScheduleNotFoundError",
    "SendReport",
    "add_schedule",
    "deliveries",
    "due_period",
    "get_schedule",
    "last_send_time",
    "list_schedules",
    "reaches",
    "remake_withdrawn",
    "remove_schedule",
    "send_due",
    "set_time_zone",
]
