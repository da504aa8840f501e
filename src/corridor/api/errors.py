"""One error handler, one JSON error shape.

Every error the API returns, whatever raised it, reads::

    {"error": {"code": "unknown_kind", "message": "unknown record kind 'foo'; allowed: ...",
               "details": []}}

``code`` is stable and machine-readable, ``message`` says what went wrong and what to do next,
``details`` lists the individual problems where there are several (request validation). A
:class:`~corridor.errors.CorridorError` is rendered with its ``status_code``; an unexpected
exception becomes a 500 with a generic message and a reference to the server log, never a
traceback.
"""

from __future__ import annotations

import logging
import re
import uuid
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from corridor import errors as ce
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.api import routing

log = logging.getLogger("corridor.api")

#: codes of the errors Corridor raises on purpose; a subclass not listed takes its nearest
#: listed ancestor's code, else one derived from its class name
CODES: dict[type[ce.CorridorError], str] = {
    AnalyticsQueryError: "invalid_query",
    ce.UnknownKindError: "unknown_kind",
    ce.CorridorMapError: "invalid_corridor_map",
    ce.ContractError: "contract_violation",
    ce.PayloadTooLargeError: "payload_too_large",
    ce.PayloadError: "invalid_payload",
    ce.SchemaVersionError: "schema_version_too_new",
    ce.StoreReadOnlyError: "store_read_only",
    ce.StoreError: "store_unavailable",
    ce.AuthenticationError: "unauthenticated",
    ce.PermissionDeniedError: "forbidden",
    ce.AccountError: "invalid_account",
}


class ErrorInfo(BaseModel):
    code: str = Field(description="stable, machine-readable error code", examples=["not_found"])
    message: str = Field(description="what went wrong and what to do next")
    details: list[Any] = Field(
        default_factory=list, description="individual problems, where there are several"
    )


class ErrorBody(BaseModel):
    """The one shape of every error reply."""

    error: ErrorInfo


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return Response(
        orjson.dumps(_utf8(jsonable_encoder(body))),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _utf8(value: Any) -> Any:
    """``value`` with every string valid UTF-8: an error quoting what was sent may quote a lone
    surrogate (``\\udc80`` in a JSON key), which JSON cannot carry; it is shown as ``?``."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_utf8(k): _utf8(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_utf8(v) for v in value]
    return value


def corridor_code(exc: ce.CorridorError) -> str:
    for cls in type(exc).__mro__:
        if cls in CODES:
            return CODES[cls]
        if cls is ce.CorridorError:
            break
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
    return name.removesuffix("_error") or "error"


def _phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def _status_code(status: int) -> str:
    phrase = _phrase(status)
    if phrase is None:
        return f"http_{status}"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


def _http_message(request: Request, exc: StarletteHTTPException) -> str:
    detail = exc.detail if isinstance(exc.detail, str) else None
    default = _phrase(exc.status_code)
    if detail and detail != default:
        return detail
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        return f"nothing at {path}; the API is listed at /docs and /openapi.json"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow") or (exc.headers or {}).get("Allow")
        return f"{method} is not allowed on {path}" + (f"; allowed: {allowed}" if allowed else "")
    return detail or default or f"HTTP {exc.status_code}"


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "message": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]


async def handle_error(request: Request, exc: Exception) -> Response:
    """The one handler: every error becomes ``{"error": {code, message, details}}``."""
    if isinstance(exc, ce.CorridorError):
        # (an error of several problems lists each one: a survey definition's)
        details = getattr(exc, "details", None)
        return error_response(exc.status_code, corridor_code(exc), str(exc), details)
    if isinstance(exc, RequestValidationError):
        details = _validation_details(exc)
        first = details[0] if details else None
        where = ".".join(first["loc"]) if first else ""
        message = "the request does not match the API" + (
            f": {where}: {first['message']}" if first else ""
        )
        return error_response(422, "invalid_request", message + "; see /docs", details)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 405:  # routing names the first route's methods; say every one's
            allowed = routing.allowed_methods(request)
            exc = StarletteHTTPException(405, headers={"Allow": ", ".join(allowed)})
            if not allowed:  # only a catch-all took the path
                exc = StarletteHTTPException(404)
        headers = dict(exc.headers) if exc.headers else None
        return error_response(
            exc.status_code,
            _status_code(exc.status_code),
            _http_message(request, exc),
            headers=headers,
        )
    ref = uuid.uuid4().hex[:12]
    log.error(
        "unexpected error (reference %s) on %s %s",
        ref,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    return error_response(
        500,
        "internal_error",
        f"an unexpected error stopped this request (reference {ref} in the server log); "
        "nothing from it was acknowledged, so it is safe to retry. If it persists, report it "
        "with the reference",
    )


def install(app: FastAPI) -> None:
    for cls in (ce.CorridorError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(cls, handle_error)


#: ``responses=`` entries for OpenAPI: the error shape under each status a route may return
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {"model": ErrorBody, "description": f"{_phrase(s) or s} (error shape)"} for s in statuses
    }
