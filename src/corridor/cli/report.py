"""``corridor report`` (one CX report as PDF, HTML, text or JSON) and ``corridor report-schedules
add|list|remove|deliveries|send|time-zone`` (weekly and monthly reports by e-mail).

A report is made in this process from the store; while a running server holds an embedded
store, ``corridor report`` asks that server for it (``GET /api/v1/reports``) instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from corridor.cli.common import ConfOpt, StoreOpt, check_out, console, err, on_store_or_server
from corridor.cli.render import print_json
from corridor.errors import CorridorError

if TYPE_CHECKING:
    from corridor.auth.local_server import ServerClient
    from corridor.store import Store

FORMATS = ("pdf", "html", "text", "json")

_ROLES = "admin, analyst, department_head or partner_manager"

schedules_app = typer.Typer(
    help="Scheduled CX reports by e-mail (weekly on Monday, monthly on the 1st).",
    no_args_is_help=True,
)


def make_report(
    store: Store,
    scope_spec: str | None,
    period: str,
    at: str | None,
    fmt: str,
    as_user: str | None,
    confidence: float,
) -> bytes:
    """The report in ``fmt`` (see :func:`report`)."""
    from corridor.auth import accounts
    from corridor.auth.scope import Principal, Role, Scope
    from corridor.reports import content, render
    from corridor.reports.periods import ReportPeriod, Subject
    from corridor.store.maps import load_map

    subject = Subject.parse(scope_spec)
    when = ReportPeriod.last_full(period, at)
    scope = None
    if as_user:
        user = accounts.get_user(store, as_user)
        if user is None:
            raise CorridorError(f"no user {as_user!r}; `corridor users list` shows them")
        principal = Principal(user.username, Role(user.role), user.department, user.partner)
        scope = Scope.of(principal, load_map(store))
    report = content.build_report(store, subject, when, scope=scope, confidence=confidence)
    return render.as_file(report, fmt, indent=True)


def _via_server(client: ServerClient, params: dict[str, str]) -> bytes:
    import httpx

    if "as" in params:
        raise CorridorError(
            f"--as reads the store itself, which the server at {client.url} holds: stop it and "
            "run this again, or ask the server with that user's API key (GET /api/v1/reports)"
        )

    with httpx.Client(base_url=client.url, timeout=120.0) as http:
        r = http.get(
            "/api/v1/reports", params=params, headers={"Authorization": f"Bearer {client.key}"}
        )
    if not r.is_success:
        try:
            message = str(r.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {r.status_code}"
        raise CorridorError(f"{message} (answered by the server at {client.url})")
    return r.content


def report(
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            help="what the report is about: department=NAME, partner=ID or touchpoint=KEY; "
            "left out, the whole corridor",
        ),
    ] = None,
    period: Annotated[
        str, typer.Option("--period", help="week, month or quarter: the last full one")
    ] = "month",
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="report the last full period before this date (ISO-8601; default today)"
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="pdf, html, text or json")] = "pdf",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="write the report to this file (needed for pdf; else stdout)"),
    ] = None,
    as_user: Annotated[
        str | None,
        typer.Option("--as", help="make it as this user sees it (their role and scope)"),
    ] = None,
    confidence: ConfOpt = 0.95,
    store: StoreOpt = None,
) -> None:
    """A CX report for a department, partner, touch point or the whole corridor over the last
    full week, month or quarter: headline gap, NPS, CSAT and CES with intervals and the change
    in words, the touch points that moved, drift and ripple findings, themes with quotes, cases
    and the forecast. PDF needs Chromium (apt-get install chromium)."""
    from corridor.reports.periods import ReportPeriod, Subject

    Subject.parse(scope)  # a scope or period that does not read: said before anything runs
    ReportPeriod.last_full(period, at)
    if fmt not in FORMATS:
        raise CorridorError(f"unknown --format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if fmt == "pdf" and out is None:
        raise CorridorError("a PDF goes to a file: add --out report.pdf (or use --format html)")
    if out is not None:
        check_out(out)  # (before the report is built)
    if not 0.5 <= confidence < 1:
        raise CorridorError(f"--confidence {confidence}: give a level from 0.5 to below 1")
    params = {"period": period, "format": fmt, "confidence": str(confidence)}
    params.update({k: v for k, v in (("scope", scope), ("at", at)) if v})
    if as_user:
        params["as"] = as_user
    data = on_store_or_server(
        store,
        lambda s: make_report(s, scope, period, at, fmt, as_user, confidence),
        lambda client: _via_server(client, params),
    )
    if out is None:
        sys.stdout.write(data.decode())
        return
    out.write_bytes(data)
    err.print(f"wrote {out} ({len(data):,} bytes, {fmt})")


# -- schedules --------------------------------------------------------------------------------
def _open(store: str | None) -> Store:
    from corridor.cli.common import open_to_write

    return open_to_write(store, "report-schedules", ", or use the API: /api/v1/report-schedules")


@schedules_app.command("add")
def schedules_add(
    cadence: Annotated[str, typer.Argument(help="weekly (Monday) or monthly (the 1st)")],
    role: Annotated[str, typer.Option(help=f"send to the users of this role: {_ROLES}")],
    department: Annotated[
        str | None, typer.Option(help="only the users of this department")
    ] = None,
    partner: Annotated[str | None, typer.Option(help="only the users of this partner")] = None,
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            help="what every report is about (department=NAME, partner=ID, touchpoint=KEY, "
            "corridor); left out, each recipient's own department or partner",
        ),
    ] = None,
    hour: Annotated[int, typer.Option(help="hour of the day it is sent, 0-23")] = 8,
    time_zone: Annotated[
        str, typer.Option(help="time zone of recipients without their own (IANA name)")
    ] = "UTC",
    store: StoreOpt = None,
) -> None:
    """Schedule a report by e-mail to the users of a role (each sees it in their own scope)."""
    from corridor.reports import schedules

    with _open(store) as s:
        made = schedules.add_schedule(
            s, cadence=cadence, role=role, department=department, partner=partner,
            subject=scope, time_zone=time_zone, hour=hour, created_by="cli",
        )  # fmt: skip
        reach = len(schedules.recipients(s, made))
    console.print(f"schedule {made.schedule_id}: {cadence} at {hour:02d}:00, {reach} recipients")


@schedules_app.command("list")
def schedules_list(store: StoreOpt = None) -> None:
    """The report schedules."""
    from corridor.reports import schedules

    with _open(store) as s:
        found = schedules.list_schedules(s)
        reach = {x.schedule_id: len(schedules.recipients(s, x)) for x in found}
    table = Table("id", "cadence", "hour", "time zone", "role", "dept / partner", "about", "to")
    for x in found:
        table.add_row(
            x.schedule_id, x.cadence, f"{x.hour:02d}:00", x.time_zone, x.role,
            x.department or x.partner or "any", x.subject or "their own scope",
            str(reach[x.schedule_id]),
        )  # fmt: skip
    console.print(table)


@schedules_app.command("remove")
def schedules_remove(
    schedule_id: Annotated[str, typer.Argument(help="the schedule's id")], store: StoreOpt = None
) -> None:
    """Stop a schedule."""
    from corridor.reports import schedules

    with _open(store) as s:
        schedules.remove_schedule(s, schedule_id)
    console.print(f"removed {schedule_id}")


@schedules_app.command("deliveries")
def schedules_deliveries(
    schedule_id: Annotated[str | None, typer.Argument(help="one schedule (default all)")] = None,
    store: StoreOpt = None,
) -> None:
    """The reports queued: schedule, period, user, outbox key, when (JSON)."""
    from corridor.reports import schedules

    with _open(store) as s:
        print_json(schedules.deliveries(s, schedule_id), default=str)


@schedules_app.command("send")
def schedules_send(
    no_pdf: Annotated[
        bool, typer.Option("--no-pdf", help="send the e-mail without the PDF attached")
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Queue every report that is due now and not yet queued (the server's ``reports.send``
    job does this every five minutes)."""
    from corridor.reports import schedules

    with _open(store) as s:
        done = schedules.send_due(s, with_pdf=not no_pdf)
    console.print(done.summary())


@schedules_app.command("time-zone")
def schedules_time_zone(
    username: Annotated[str, typer.Argument(help="a user with e-mail settings")],
    zone: Annotated[str, typer.Argument(help="IANA time zone, e.g. Europe/Berlin; '-' to clear")],
    store: StoreOpt = None,
) -> None:
    """The time zone a user's scheduled reports follow (Monday 08:00 there)."""
    from corridor.reports import schedules

    with _open(store) as s:
        schedules.set_time_zone(s, username, None if zone == "-" else zone)
    console.print(f"{username}: reports at their local time in {zone}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.add_typer(schedules_app, name="report-schedules")


__all__ = ["FORMATS", "make_report", "register"]
