"""``PUT /api/v1/map`` loads (or replaces) the corridor map; ``GET /api/v1/map`` shows it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from corridor.api.body import document_body, read_body
from corridor.api.deps import IngestorDep, ScopeDep, SettingsDep, WriterScopeDep
from corridor.api.errors import error_responses
from corridor.api.schemas import MapLoaded
from corridor.auth.scope import Role
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.payload import parse_map
from corridor.store.maps import describe, orphaned_touchpoints

router = APIRouter(prefix="/api/v1", tags=["corridor map"])

_MAP_BODY = document_body(
    "The corridor map: stages in order, and touch points with their stage, channels, owning "
    "department and promises. YAML, or JSON with content type application/json.",
    {"$ref": "#/components/schemas/CorridorMap"},
)


@router.put(
    "/map",
    operation_id="put_map",
    summary="Load or replace the corridor map",
    response_model=MapLoaded,
    responses=error_responses(400, 401, 403, 413, 422),
    openapi_extra=_MAP_BODY,
)
async def put_map(
    request: Request,
    ingestor: IngestorDep,
    settings: SettingsDep,
    scope: WriterScopeDep,
    force: Annotated[
        bool,
        Query(
            description="load even if it drops touch points that stored records use (admins "
            "only; those records then point nowhere)"
        ),
    ] = False,
) -> MapLoaded:
    """Every loaded version is kept; the new one is in force from now on. A map that drops
    touch points stored records still use is refused (422, naming each with its record counts);
    ``force=true`` loads it all the same, and only an admin may (403 otherwise)."""
    body = await read_body(request, settings.max_body_bytes)
    cmap = parse_map(body, request.headers.get("content-type"))
    if force and scope.role is not Role.ADMIN:
        lost = await run_in_threadpool(orphaned_touchpoints, ingestor.store, cmap)
        if lost:
            scope.require_admin(
                f"force a map that leaves stored records pointing nowhere ({describe(lost)}); "
                "keep those touch points in the map, or ask an admin"
            )
    version = await run_in_threadpool(ingestor.load_map, cmap, force=force)
    return MapLoaded(
        version=version,
        stages=len(cmap.stages),
        touchpoints=len(cmap.touchpoints),
        promises=sum(len(t.promises) for t in cmap.touchpoints),
    )


@router.get(
    "/map",
    operation_id="get_map",
    summary="The corridor map in force",
    response_model=CorridorMap,
    response_model_exclude_none=True,
    responses=error_responses(404),
)
def get_map(ingestor: IngestorDep, scope: ScopeDep) -> CorridorMap:
    """The document last loaded, as JSON (send it back with PUT to change it)."""
    cmap = ingestor.corridor_map
    if cmap is None:
        raise HTTPException(
            404,
            "no corridor map is loaded yet; load one with PUT /api/v1/map (YAML or JSON) or "
            "`corridor map load FILE`",
        )
    return cmap
