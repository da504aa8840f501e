"""Survey definitions and links, for admins and analysts.

``PUT /api/v1/surveys/{survey_id}`` loads a definition (YAML or JSON; a changed one becomes the
next version), ``GET /api/v1/surveys`` lists them, ``GET /api/v1/surveys/{survey_id}`` shows one
(``?version=`` an older one). ``POST /api/v1/surveys/{survey_id}/links`` makes a personal or an
anonymous link (its token is in the reply, once), ``GET /api/v1/surveys/{survey_id}/links``
lists them, ``POST /api/v1/surveys/{survey_id}/links/{link_id}/revoke`` withdraws one. The
``corridor surveys`` commands call these when a running server holds an embedded store. The
public form pages are not here: see :mod:`corridor.web.survey_pages`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from corridor.api.body import document_body, read_body
from corridor.api.declare import RouteDeclarer
from corridor.api.deps import IngestorDep, SettingsDep, StoreDep, WriterScopeDep
from corridor.surveys import catalog, links
from corridor.surveys.definition import parse, read_document
from corridor.surveys.errors import LinkNotFoundError, SurveyDefinitionError

router = APIRouter(prefix="/api/v1/surveys", tags=["surveys"])
#: a route for admins and analysts: 401, 403, its own errors, and 422 for a query parameter it
#: does not take
_route = RouteDeclarer(router, (401, 403))

SurveyId = Annotated[str, Path(description="the survey's id", max_length=64)]
LinkId = Annotated[str, Path(description="the link's id (lnk-…)", max_length=64)]

_DEFINITION_BODY = document_body(
    "The survey definition, YAML or JSON (see docs/surveys.md): id, title, touchpoints, "
    "languages, questions (bound to feedback fields or custom), show_if, translations.",
    {"type": "object"},
)


class SurveyLoaded(BaseModel):
    survey_id: str
    version: int = Field(description="the version now in force")
    created: bool = Field(description="false: the same content was loaded before (no new version)")


class SurveyOut(BaseModel):
    survey_id: str
    title: dict[str, str] = Field(description="the title per language")
    version: int = Field(description="the version shown")
    latest_version: int
    touchpoints: list[str]
    languages: list[str]
    fallback_language: str
    questions: int
    pages: int
    created_at: datetime
    updated_at: datetime
    loaded_at: datetime = Field(description="when this version was loaded")
    loaded_by: str | None


class SurveyDetail(SurveyOut):
    definition: dict[str, Any] = Field(description="this version's definition, normalised")


class LinkIn(BaseModel):
    anonymous: bool = Field(
        default=False,
        description="true: a link anyone may answer, many times (a QR code at a counter); "
        "false: a personal link for person_id, answered once",
    )
    person_id: str | None = Field(default=None, max_length=256, description="personal links")
    interaction_id: str | None = Field(
        default=None, max_length=256, description="the interaction the survey asks about"
    )
    touchpoint: str | None = Field(
        default=None,
        max_length=64,
        description="default: the interaction's, else the survey's only touch point",
    )
    channel: str | None = Field(
        default=None, max_length=32, description="how the link reaches people: email, sms, qr"
    )
    language: str | None = Field(
        default=None, max_length=20, description="the form's language unless the visitor picks"
    )
    valid_days: float | None = Field(
        default=None,
        gt=0,
        le=3650,
        description="days until it expires (personal default: the survey's link_days; "
        "anonymous: never)",
    )
    expires_at: datetime | None = Field(default=None, description="instead of valid_days")


@dataclass(frozen=True)
class LinkOut(links.Link):
    state: Literal["active", "used", "revoked", "expired"]


@dataclass(frozen=True)
class LinkCreated(LinkOut):
    token: Annotated[str, Field(description="the link's secret token; shown in this reply only")]
    path: Annotated[str, Field(description="the short URL's path: /s/<token>")]
    url: Annotated[str, Field(description="the short URL on this server")]


def _out(s: catalog.Stored) -> SurveyOut:
    d = s.as_dict()
    d.pop("definition")
    return SurveyOut(**d)


@_route(
    "PUT",
    "/{survey_id}",
    "Load a survey definition (a changed one becomes the next version)",
    SurveyLoaded,
    413,
    unreadable=True,
    openapi_extra=_DEFINITION_BODY,
)
async def put_survey(
    request: Request,
    survey_id: SurveyId,
    store: StoreDep,
    ingestor: IngestorDep,
    settings: SettingsDep,
    scope: WriterScopeDep,
) -> SurveyLoaded:
    """A definition whose problems are listed in the 422 (where, and how to fix each). Loading
    the same content again keeps the version; a response keeps the version it answered."""
    body = await read_body(request, min(settings.max_body_bytes, 1024 * 1024))
    doc = read_document(body, "the request body")
    doc.setdefault("id", survey_id)
    if isinstance(doc["id"], str) and doc["id"] != survey_id:
        raise SurveyDefinitionError(
            "the request body",
            [("id", f"{doc['id']!r} differs from the URL's {survey_id!r}; make them the same")],
        )
    survey = parse(doc, source="the request body")
    version, created = await anyio.to_thread.run_sync(
        lambda: catalog.save(
            store,
            survey,
            by=scope.principal.username,
            cmap=ingestor.corridor_map,
            source="the request body",
        )
    )
    return SurveyLoaded(survey_id=survey.id, version=version, created=created)


@_route("GET", "", "List surveys (their latest versions)", list[SurveyOut])
async def list_surveys(store: StoreDep, scope: WriterScopeDep) -> list[SurveyOut]:
    found = await anyio.to_thread.run_sync(catalog.list_all, store)
    return [_out(s) for s in found]


@_route(
    "GET",
    "/{survey_id}",
    "A survey's definition (the latest version, or ?version=)",
    SurveyDetail,
    404,
    query=("version",),
)
async def get_survey(
    survey_id: SurveyId,
    store: StoreDep,
    scope: WriterScopeDep,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="a version")] = None,
) -> SurveyDetail:
    found = await anyio.to_thread.run_sync(catalog.get, store, survey_id, version)
    return SurveyDetail(**found.as_dict())


@_route(
    "POST",
    "/{survey_id}/links",
    "Make a personal or anonymous link (its token is shown once)",
    LinkCreated,
    404,
    status_code=201,
    operation_id="create_survey_link",
    unreadable=True,
)
async def create_link(
    request: Request, survey_id: SurveyId, body: LinkIn, store: StoreDep, scope: WriterScopeDep
) -> LinkCreated:
    def make() -> tuple[links.Link, str]:
        # the body's fields are links.create's options, name for name
        return links.create(store, survey_id, **body.model_dump(), by=scope.principal.username)

    link, token = await anyio.to_thread.run_sync(make)
    path = links.path(token)
    url = str(request.base_url).rstrip("/") + path
    return LinkCreated(**link.as_dict(), token=token, path=path, url=url)


@_route(
    "GET",
    "/{survey_id}/links",
    "A survey's links, newest first (no tokens)",
    list[LinkOut],
    404,
    query=("limit",),
    operation_id="list_survey_links",
)
async def list_links(
    survey_id: SurveyId,
    store: StoreDep,
    scope: WriterScopeDep,
    limit: Annotated[int, Query(ge=1, le=10_000, description="most links listed")] = 1000,
) -> list[LinkOut]:
    def found() -> list[links.Link]:
        catalog.get(store, survey_id)
        return links.list_links(store, survey_id, limit)

    return [LinkOut(**k.as_dict()) for k in await anyio.to_thread.run_sync(found)]


@_route(
    "POST",
    "/{survey_id}/links/{link_id}/revoke",
    "Withdraw a link: from now on it is refused (410)",
    LinkOut,
    404,
    operation_id="revoke_survey_link",
)
async def revoke_link(
    survey_id: SurveyId, link_id: LinkId, store: StoreDep, scope: WriterScopeDep
) -> LinkOut:
    def revoke() -> links.Link:
        link = links.get(store, link_id)
        if link.survey_id != survey_id:
            raise LinkNotFoundError(f"survey {survey_id!r} has no link {link_id!r}")
        return links.revoke(store, link_id)

    return LinkOut(**(await anyio.to_thread.run_sync(revoke)).as_dict())
