"""Reading a request body with a size cap: checked against Content-Length first, then counted
while it streams in, so a client that sends more than it announced is stopped too."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from starlette.requests import ClientDisconnect

from corridor.errors import PayloadError, PayloadTooLargeError
from corridor.ingest.payload import NDJSON_TYPES, media_type

#: JSON media types besides the NDJSON ones (``application/<anything>+json`` is JSON too)
JSON_TYPES = frozenset({"application/json", "text/json"})


def document_body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads a required document of its own (with
    :func:`read_body`): ``schema`` in JSON or YAML."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/json": {"schema": dict(schema)},
                "application/yaml": {"schema": dict(schema)},
            },
        }
    }


def _too_large(limit: int, size: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body ({size}) is larger than the limit of {_human(limit)}; split the "
        "batch into smaller requests (or raise CORRIDOR_MAX_BODY_BYTES)"
    )


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes; :class:`PayloadTooLargeError` (413) beyond."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise PayloadError(f"invalid Content-Length header {declared!r}") from None
        if n > limit:
            raise _too_large(limit, f"{n:,} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, f"more than {size:,} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise PayloadError(
            f"the client disconnected after {size:,} bytes, before the body was complete; "
            "nothing was stored"
        ) from None
    return b"".join(chunks)


def check_json_content_type(content_type: str | None) -> None:
    """Refuse (415) a body announced as anything but JSON or NDJSON.

    ``text/plain`` is refused too although it may hold JSON: it is what an HTML form on another
    site can send without the browser asking first, so a JSON API that took it would help a
    forged request along. A body with no content type at all is read as JSON or NDJSON."""
    mt = media_type(content_type)
    if not mt or mt in NDJSON_TYPES or mt in JSON_TYPES or mt.endswith("+json"):
        return
    raise HTTPException(
        415,
        f"unsupported content type {mt!r}; send application/json (one object or an array of "
        "objects) or application/x-ndjson (one object per line). CSV and Parquet files load "
        "with `corridor import`",
    )
