"""``GET /api/v1/reports``: the CX report of a scope and period, as the caller may see it (JSON,
HTML, plain text or PDF); ``/api/v1/report-schedules``: the weekly and monthly reports by e-mail.

The report is made with the caller's :class:`~corridor.auth.scope.Scope`: a department head's
report is about their department (another one is refused with 403), a partner manager's about
their partner. Schedules are listed by admins and analysts and changed by admins.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from corridor.api.deps import AnalystScopeDep, ScopeDep, StoreDep, only_query
from corridor.api.errors import error_responses
from corridor.reports import content, render, schedules
from corridor.reports.model import Report
from corridor.reports.periods import ReportPeriod, Subject

router = APIRouter(prefix="/api/v1", tags=["reports"])

FORMATS = ("json", "html", "text", "pdf")
_MEDIA = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    "pdf": "application/pdf",
}
_REPORT_PARAMS = ("scope", "period", "at", "format", "confidence")
_AT_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"


_OTHER_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: JSON (format=json), an HTML page with its charts inline "
        "(html), plain text (text) or a PDF (pdf, printed by Chromium)",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **error_responses(401, 403, 422, 503),
}


@router.get(
    "/reports",
    operation_id="get_report",
    summary="The CX report of a scope and period",
    response_model=Report,
    responses=_OTHER_FORMATS,
    dependencies=[only_query(*_REPORT_PARAMS)],
)
async def get_report(
    store: StoreDep,
    scope: AnalystScopeDep,
    about: Annotated[
        str | None,
        Query(
            alias="scope",
            description="what the report is about: department=NAME, partner=ID or "
            "touchpoint=KEY; left out, the whole corridor (for a department head, their "
            "department; for a partner manager, their partner)",
            max_length=200,
        ),
    ] = None,
    period: Annotated[
        Literal["week", "month", "quarter"],
        Query(description="the last full week, month or quarter"),
    ] = "month",
    at: Annotated[
        str | None,
        Query(
            description="report the last full period before this date (default today)",
            pattern=_AT_PATTERN,
            examples=["2025-07-01"],
        ),
    ] = None,
    fmt: Annotated[
        Literal["json", "html", "text", "pdf"],
        Query(alias="format", description="json, html, text or pdf"),
    ] = "json",
    confidence: Annotated[
        float, Query(description="two-sided level of every interval", ge=0.5, lt=1.0)
    ] = 0.95,
) -> Response:
    """Headline gap, NPS, CSAT and CES with n, intervals and the change against the previous
    period in words with its p-value; the touch points that moved most; drift and ripple
    findings; the largest themes with two redacted quotes each; the closed loop's cases; and
    the gap's forecast — everything within what the caller may see."""
    subject = content.reader_subject(Subject.parse(about), scope)
    when = ReportPeriod.last_full(period, at or None)

    def make() -> bytes:
        report = content.build_report(store, subject, when, scope=scope, confidence=confidence)
        return render.as_file(report, fmt)

    data = await anyio.to_thread.run_sync(make)
    headers = {}
    if fmt in ("pdf", "html"):
        name = f"cx-report-{subject.spec.replace('=', '-')}-{when.key}.{fmt}"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(data, media_type=_MEDIA[fmt], headers=headers)


# -- schedules --------------------------------------------------------------------------------
class ScheduleIn(BaseModel):
    """A new report schedule."""

    cadence: str = Field(description="weekly (Monday) or monthly (the 1st)", examples=["weekly"])
    role: str = Field(
        description="send to the users of this role: admin, analyst, department_head or "
        "partner_manager"
    )
    department: str | None = Field(None, description="only the users of this department")
    partner: str | None = Field(None, description="only the users of this partner")
    scope: str | None = Field(
        None,
        description="what every report is about (department=NAME, partner=ID, "
        "touchpoint=KEY, corridor); null: each recipient's own department or partner",
    )
    hour: int = Field(8, ge=0, le=23, description="the hour of the day it is sent")
    time_zone: str = Field(
        "UTC", description="time zone of recipients without their own (IANA name)"
    )


@router.get(
    "/report-schedules",
    operation_id="list_report_schedules",
    summary="The report schedules (a scoped reader: those that reach them)",
    response_model=list[schedules.Schedule],
    responses=error_responses(401, 403, 422),
    dependencies=[only_query()],
)
def list_report_schedules(store: StoreDep, scope: AnalystScopeDep) -> list[schedules.Schedule]:
    """Every schedule for admins and analysts; for a department head or partner manager, the
    schedules that send them reports."""
    found = schedules.list_schedules(store)
    if not scope.sees_all:
        found = [s for s in found if schedules.reaches(s, scope.principal)]
    return found


@router.post(
    "/report-schedules",
    operation_id="add_report_schedule",
    summary="Schedule a report by e-mail",
    response_model=schedules.Schedule,
    status_code=201,
    responses=error_responses(401, 403, 422),
)
def add_report_schedule(body: ScheduleIn, store: StoreDep, scope: ScopeDep) -> schedules.Schedule:
    """A new schedule (admins): the users of ``role`` with an e-mail address get the report,
    each as they may see it, weekly on Monday or monthly on the 1st at ``hour`` in their own
    time zone."""
    scope.require_admin("schedule reports")
    made = schedules.add_schedule(
        store, cadence=body.cadence, role=body.role, department=body.department,
        partner=body.partner, subject=body.scope, time_zone=body.time_zone, hour=body.hour,
        created_by=scope.principal.username,
    )  # fmt: skip
    return made


@router.delete(
    "/report-schedules/{schedule_id}",
    operation_id="remove_report_schedule",
    summary="Stop a report schedule",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404),
)
def remove_report_schedule(schedule_id: str, store: StoreDep, scope: ScopeDep) -> Response:
    """Stop sending it (admins); reports already queued are still delivered."""
    scope.require_admin("stop report schedules")
    schedules.remove_schedule(store, schedule_id)
    return Response(status_code=204)
