"""What a page answers besides its own content: the outcome of a form post, shown on the page
after it (:class:`Outcome`, the admin, privacy and rules pages), and the HTML 404 page for a
browser asking for a page that does not exist (:func:`page_not_found`)."""

from __future__ import annotations

from typing import Any, TypedDict

from starlette.requests import Request
from starlette.responses import Response

from corridor.web.routes import render


class Outcome(TypedDict, total=False):
    """How a form post came out, for the page shown after it: its status (200 unless given),
    an error or a notice, and the form as typed (to fill in again)."""

    status: int
    error: str | None
    notice: str | None
    form: dict[str, str] | None


def told(outcome: Outcome) -> tuple[int, dict[str, Any]]:
    """(the status, the template's ``error``, ``notice`` and ``form``) of ``outcome``."""
    shown = {k: outcome.get(k) for k in ("error", "notice")}
    return outcome.get("status", 200), shown | {"form": outcome.get("form") or {}}


#: paths that are the API's (its errors are JSON whoever asks)
_API_PATHS = ("/api/", "/openapi.json", "/docs", "/redoc")


def page_not_found(request: Request) -> Response | None:
    """The HTML 404 page for a browser asking for a page that does not exist (a mistyped or
    outdated address), with the way to the start page; None for the API's paths and for a
    client that does not ask for HTML (they get the API's JSON error)."""
    path = request.url.path
    if request.method not in ("GET", "HEAD") or path.startswith(_API_PATHS):
        return None
    if "text/html" not in request.headers.get("accept", ""):
        return None
    return render(
        request,
        "error.html",
        status=404,
        title="Page not found",
        message=f"There is no page at {path}. Check the address, or start again from the "
        "start page.",
        home="/",
    )


__all__ = ["Outcome", "page_not_found", "told"]
