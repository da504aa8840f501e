"""``POST /api/v1/{kind}``: one record, a JSON array of records, or NDJSON.

One route per record kind (so each is documented with its own record model), plus a fallback
that answers an unknown kind with the list of known ones (and a wrong method on another
resource at /api/v1/<name> with 405 and every method it has).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from corridor.api import routing
from corridor.api.body import check_json_content_type, read_body
from corridor.api.deps import IngestLimiterDep, IngestorDep, SettingsDep, WriterScopeDep
from corridor.api.errors import error_responses
from corridor.api.schemas import EXAMPLES, RECORD_MODELS, IngestReply
from corridor.domain.contract import KINDS, RecordKind, get_kind
from corridor.ingest.payload import ingest_body
from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["ingest"])


async def ingest(
    kind: RecordKind,
    request: Request,
    ingestor: Ingestor,
    settings: Settings,
    limiter: anyio.CapacityLimiter,
) -> Response:
    content_type = request.headers.get("content-type")
    check_json_content_type(content_type)
    body = await read_body(request, settings.max_body_bytes)
    work = functools.partial(
        ingest_body,
        ingestor,
        kind,
        body,
        content_type,
        max_records=settings.max_batch_records,
        source="api",
    )
    report = await anyio.to_thread.run_sync(work, limiter=limiter)
    status = 422 if report.accepted == 0 and report.rejected > 0 else 200
    return Response(
        orjson.dumps(report.as_dict(max_errors=settings.max_errors_reported)),
        status_code=status,
        media_type="application/json",
    )


def _request_body(kind: RecordKind) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{RECORD_MODELS[kind.name].__name__}"}
    json_media: dict[str, Any] = {
        "schema": {"oneOf": [ref, {"type": "array", "items": ref}]},
    }
    if kind.name in EXAMPLES:
        example = EXAMPLES[kind.name]
        json_media["examples"] = {
            "one": {"summary": "one record", "value": example},
            "array": {"summary": "an array of records", "value": [example]},
        }
    return {
        "requestBody": {
            "required": True,
            "description": (
                f"One {kind.name} record, a JSON array of them, or NDJSON (one record per "
                "line; content type application/x-ndjson or application/jsonl). Fields not in "
                "the contract are kept as attributes. Items are numbered from 1 (array "
                "position or NDJSON line) in the reply."
            ),
            "content": {
                "application/json": json_media,
                "application/x-ndjson": {"schema": ref},
            },
        }
    }


_REPLY = {
    200: {
        "model": IngestReply,
        "description": "At least one record accepted (committed), or nothing wrong.",
    },
    422: {
        "model": IngestReply,
        "description": "Nothing accepted and something rejected: the same report shape, with "
        "every problem listed (item, id, field, reason). A request that cannot be read at all "
        "is a 400 in the error shape instead.",
    },
    **error_responses(400, 401, 403, 404, 413, 415, 503),
}


def _endpoint(kind: RecordKind) -> Callable[..., Awaitable[Response]]:
    async def endpoint(
        request: Request,
        ingestor: IngestorDep,
        settings: SettingsDep,
        limiter: IngestLimiterDep,
        scope: WriterScopeDep,
    ) -> Response:
        return await ingest(kind, request, ingestor, settings, limiter)

    endpoint.__name__ = f"ingest_{kind.name}"
    endpoint.__doc__ = (
        f"{kind.description}\n\nValidates every record against the data contract, stores the "
        "valid ones (a record whose id is already stored is counted in `duplicates` and not "
        "stored again) and lists every rejected one with its item number, field and reason. "
        "Good records are stored even when others in the batch are rejected. A 2xx reply means "
        "the accepted records are committed; after a lost reply, send the batch again."
    )
    return endpoint


for _kind in KINDS.values():
    router.add_api_route(
        f"/{_kind.name}",
        _endpoint(_kind),
        methods=["POST"],
        summary=f"Send {_kind.name.replace('_', ' ')}",
        operation_id=f"ingest_{_kind.name}",
        response_model=None,
        responses=_REPLY,
        openapi_extra=_request_body(_kind),
    )


#: answers what no other route does under /api/v1/<name>; included after every other router
fallback = routing.fallback(APIRouter(prefix="/api/v1"))


@fallback.api_route("/{kind}", methods=list(routing.METHODS), include_in_schema=False)
@routing.fallback
async def unknown_route(kind: str, request: Request) -> Response:
    """A path other routes have, with another method: 405 listing them all; a POST to an
    unknown kind: 404 listing the kinds; anything else: 404."""
    allowed = routing.allowed_methods(request)
    if allowed:
        raise HTTPException(405, headers={"Allow": ", ".join(allowed)})
    if request.method == "POST":
        get_kind(kind)  # an unknown kind: UnknownKindError (404) lists the known ones
    raise HTTPException(404)
