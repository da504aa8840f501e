"""A data subject's requests and the audit log, for admins (docs/privacy.md).

``GET /api/v1/people/{person_id}/export`` (a ZIP archive), ``GET
/api/v1/people/{person_id}/erasure-preview``, ``POST /api/v1/people/{person_id}/erase``,
``POST /api/v1/people/{person_id}/anonymise``, ``GET /api/v1/audit``, ``GET
/api/v1/audit/export`` (JSON lines), ``GET/PUT /api/v1/privacy/settings``. Every one is logged
in the audit log with the admin, the key or session they came with, and the client address.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from corridor.api.declare import RouteDeclarer
from corridor.api.deps import ScopeDep, StoreDep, only_query
from corridor.api.errors import error_responses
from corridor.auth.scope import Scope
from corridor.domain.contract import IDENTITY_TYPES, MAX_ID_LENGTH
from corridor.privacy import audit, requests, settings
from corridor.privacy.export import archive
from corridor.privacy.subject import find_group

router = APIRouter(prefix="/api/v1", tags=["privacy"])
#: an admin's route: 401, 403, its own errors, and 422 for a query parameter it does not take
_route = RouteDeclarer(router, (401, 403))


async def get_privacy_scope(scope: ScopeDep) -> Scope:
    """A scope that may answer data-subject requests and read the audit log (admin only)."""
    scope.require_admin("export, erase or anonymise a person's data, or read the audit log")
    return scope


PrivacyDep = Annotated[Scope, Depends(get_privacy_scope)]
By = Annotated[
    Literal["person_id", "email", "phone", "crm_id", "device_id"],
    Query(
        description="what the path names: the person id (default) or one of their "
        f"identities ({', '.join(IDENTITY_TYPES)})"
    ),
]


def _actor(request: Request, scope: Scope) -> audit.Actor:
    keyed = bool(request.headers.get("authorization") or request.headers.get("x-api-key"))
    return audit.Actor(
        scope.principal.username,
        "key" if keyed else "user",
        request.client.host if request.client else None,
    )


class PartOut(BaseModel):
    part: str = Field(description="the kind of data", examples=["feedback"])
    table: str = Field(description="the table it lies in")
    rows: int = Field(description="rows of the person group in it")
    about: str = Field(description="what it is")


class PreviewOut(BaseModel):
    persons: int = Field(description="the person and everyone merged into them")
    identities: int = Field(description="their e-mails, phones, CRM and device ids")
    parts: list[PartOut]
    total_rows: int


class RequestOut(BaseModel):
    request_id: str = Field(description="the request's id (in the audit log's detail)")
    action: str = Field(description="erase or anonymise")
    state: str = Field(description="done, or running (carried on by the next start)")
    already: bool = Field(description="the person had been erased already: nothing changed")
    removed: dict[str, int] = Field(description="rows removed or changed, per part")


class AuditEntry(BaseModel):
    seq: int = Field(description="the line's number, rising")
    at: str = Field(description="when, ISO-8601 UTC")
    actor: str = Field(description="a username (signed in or by key), or the scheduler")
    actor_kind: str = Field(description="user, key, cli or system")
    action: str = Field(description="what was done", examples=["person.erase"])
    target_kind: str | None = Field(description="what it was done to (person, ...)")
    target: str | None = Field(description="a person as the salted hash of their id")
    address: str | None = Field(description="the client address, or cli")
    detail: dict[str, Any] = Field(description="counts and kinds, never personal data")


class AuditPage(BaseModel):
    total: int = Field(description="lines matching")
    entries: list[AuditEntry]


def _days(key: str, more: str = "", **default: Any) -> Any:
    """A retention period in days: a JSON whole number (not true, not "30"), 0 turning it off."""
    words = f"{settings.RETENTION[key]} (0: off{more})"
    return Field(ge=0, le=settings.MAX_DAYS, strict=True, description=words, **default)


class PrivacySettings(BaseModel):
    resurrection: Literal["refuse", "accept"] = Field(
        description="a later record naming an erased identity: refused, or a new person"
    )
    retention_feedback_text_days: int = _days("retention.feedback_text_days")
    retention_original_text_days: int = _days("retention.original_text_days")
    retention_prospect_days: int = _days("retention.prospect_days")
    retention_notification_days: int | None = _days(
        "retention.notification_days", "; left out of a PUT: unchanged", default=None
    )


def _settings_out(values: dict[str, str]) -> PrivacySettings:
    return PrivacySettings.model_validate(
        {k.replace(".", "_"): int(v) if k in settings.RETENTION else v for k, v in values.items()}
    )


@router.get(
    "/people/{person_id}/export",
    operation_id="export_person",
    summary="Everything held about a person, as a ZIP archive",
    response_class=Response,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the archive: manifest.json, parts/*.json, csv/*.csv",
        },
        **error_responses(401, 403, 404, 422),
    },
    dependencies=[only_query("by")],
)
async def export_person(
    person_id: str, request: Request, store: StoreDep, scope: PrivacyDep, by: By = "person_id"
) -> Response:
    """The person's and their merged persons' profile, identities, merges, interactions,
    feedback with texts (and kept originals), text analysis, survey links, responses and
    invitations, alerts, cases with their history, churn score and notifications; with a
    manifest of the parts. Logged as `person.export`."""
    actor = _actor(request, scope)

    def work() -> tuple[str, bytes]:
        group = find_group(store, person_id[:MAX_ID_LENGTH], by=by)
        return group.canonical, archive(store, group, actor=actor)

    canonical, data = await anyio.to_thread.run_sync(work)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in canonical)[:80]
    return Response(
        data,
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="person-{safe}.zip"'},
    )


@_route(
    "GET",
    "/people/{person_id}/erasure-preview",
    "What an erase or anonymise of a person would touch",
    PreviewOut,
    404,
    query=("by",),
)
def preview_erasure(
    person_id: str, store: StoreDep, scope: PrivacyDep, by: By = "person_id"
) -> PreviewOut:
    """Rows per part of the person group (counts only)."""
    group = find_group(store, person_id[:MAX_ID_LENGTH], by=by)
    return PreviewOut.model_validate(requests.preview(store, group))


def _request_route(action: str, summary: str, doc: str) -> None:
    """``POST /api/v1/people/{person_id}/ACTION`` (erase, anonymise)."""

    def route(
        person_id: str,
        request: Request,
        store: StoreDep,
        scope: PrivacyDep,
        by: By = "person_id",
    ) -> RequestOut:
        ref = person_id[:MAX_ID_LENGTH]
        out = requests.request(store, ref, action, by=by, actor=_actor(request, scope))  # type: ignore[arg-type]
        return RequestOut.model_validate(out)

    route.__doc__ = doc
    _route(
        "POST",
        f"/people/{{person_id}}/{action}",
        summary,
        RequestOut,
        404,
        query=("by",),
        operation_id=f"{action}_person",
    )(route)


_request_route(
    "erase",
    "Erase a person and everyone merged into them",
    """Removes every row of the person group everywhere, keeps salted hashes of their
    identities (so a later record naming one is refused, or taken as a new person, as the
    `resurrection` setting says), and brings the rollup and the fitted models up to date.
    Idempotent: again, it answers `already: true`. Logged as `person.erase`.""",
)
_request_route(
    "anonymise",
    "Anonymise a person: records kept for aggregates, identifiers and text removed",
    """The records stay under a random person id (segment, region and kind kept, so every
    aggregate is unchanged); identities, merges, attributes, texts, survey answers, case notes,
    scores and notifications go. Idempotent; logged as `person.anonymise`.""",
)


@_route("GET", "/audit", "The audit log", AuditPage, query=("action", "after", "limit"))
def list_audit(
    store: StoreDep,
    scope: PrivacyDep,
    action: Annotated[
        str | None, Query(max_length=100, description="an action, or a prefix: person.*")
    ] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="lines after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
) -> AuditPage:
    """Who did what, when, from where; oldest first."""
    lines, total = audit.entries(store, action=action, after=after, limit=limit)
    return AuditPage(total=total, entries=[AuditEntry.model_validate(e) for e in lines])


@router.get(
    "/audit/export",
    operation_id="export_audit",
    summary="The whole audit log as JSON lines",
    response_class=Response,
    responses={
        200: {
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            "description": "one JSON object per line, oldest first",
        },
        **error_responses(401, 403),
    },
    dependencies=[only_query()],
)
def export_audit(request: Request, store: StoreDep, scope: PrivacyDep) -> Response:
    """Every line (the export itself is logged as `audit.export`)."""
    body = b"".join(audit.export_lines(store))
    audit.log(store, _actor(request, scope), "audit.export", detail={"bytes": len(body)})
    return Response(body, media_type="application/x-ndjson")


@router.get(
    "/privacy/settings",
    operation_id="get_privacy_settings",
    summary="The privacy settings",
    response_model=PrivacySettings,
    responses=error_responses(401, 403),
    dependencies=[only_query()],
)
def get_privacy_settings(store: StoreDep, scope: PrivacyDep) -> PrivacySettings:
    """Resurrection policy and retention periods."""
    return _settings_out(settings.read_settings(store))


@_route("PUT", "/privacy/settings", "Change the privacy settings", PrivacySettings)
def put_privacy_settings(
    body: PrivacySettings, request: Request, store: StoreDep, scope: PrivacyDep
) -> PrivacySettings:
    """Every setting at once (logged as `privacy.settings`)."""
    changes = {
        "resurrection": body.resurrection,
        "retention.feedback_text_days": str(body.retention_feedback_text_days),
        "retention.original_text_days": str(body.retention_original_text_days),
        "retention.prospect_days": str(body.retention_prospect_days),
    }
    if body.retention_notification_days is not None:
        changes["retention.notification_days"] = str(body.retention_notification_days)
    actor = _actor(request, scope)
    out = settings.change_settings(store, changes, by=actor.name)
    audit.log(store, actor, "privacy.settings", detail=changes)
    return _settings_out(out)
