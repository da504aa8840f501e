"""Which methods a path has, across every route: for a 405's ``Allow``.

Routing alone answers a wrong method with the methods of the *first* route on the path only
(``PUT /login`` said "allowed: GET" though ``POST /login`` exists), and where a catch-all such as
``/api/v1/{kind}`` takes the path, it answers for it. :func:`allowed_methods` asks every route
(catch-alls marked with :func:`fallback` aside) whether it takes each method at the path.
"""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.requests import Request
from starlette.routing import BaseRoute, Match

#: the methods a path is tried with, in the order ``Allow`` lists them
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_MARK = "_corridor_fallback"
T = TypeVar("T")


def fallback(obj: T) -> T:
    """Mark a catch-all (its endpoint, or its router): it does not count as having a path."""
    setattr(obj, _MARK, True)
    return obj


def _is_fallback(route: BaseRoute) -> bool:
    holders: list[Any] = [
        getattr(route, "endpoint", None),
        getattr(route, "original_router", None),  # FastAPI's included router, not flattened
    ]
    return any(getattr(h, _MARK, False) for h in holders)


def allowed_methods(request: Request, path: str | None = None) -> list[str]:
    """The methods some route takes at ``path`` (default: the request's), in :data:`METHODS`
    order; empty when no route has the path."""
    routes = [r for r in request.app.router.routes if not _is_fallback(r)]
    scope = {**request.scope, "path": request.scope["path"] if path is None else path}
    allowed = []
    for method in METHODS:
        scope["method"] = method
        if any(r.matches(scope)[0] is Match.FULL for r in routes):
            allowed.append(method)
    return allowed
