"""Declaring a router's routes one line each: ``@_route("GET", "/path", "Summary", Reply, 404)``
gives the route its operation id (the handler's name), its summary, its reply model, and the
error replies it documents in the one error shape, with the router's own rules (which errors
every route has, which routes refuse query parameters they do not name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from fastapi import APIRouter

from corridor.api.deps import only_query
from corridor.api.errors import error_responses

Handler = TypeVar("Handler", bound=Callable[..., Any])


@dataclass(frozen=True)
class RouteDeclarer:
    """Declares routes on ``router``: each documents the ``always`` error statuses, then its own;
    the routes ``refuse_query`` names (every one, only GETs, or none) refuse a query parameter
    not in their ``query`` (422, documented after the others)."""

    router: APIRouter
    always: tuple[int, ...]
    refuse_query: Literal["all", "GET", "none"] = "all"

    def __call__(
        self,
        method: str,
        path: str,
        summary: str,
        reply: Any,
        *errors: int,
        status_code: int | None = None,
        query: tuple[str, ...] = (),
        operation_id: str | None = None,
        unreadable: bool = False,
        refuses: bool | None = None,
        **extra: Any,
    ) -> Callable[[Handler], Handler]:
        """The decorator declaring one route: ``reply`` its reply model, ``errors`` the error
        statuses of its own, ``query`` the query parameters it takes; ``operation_id`` when it is
        not the handler's name; ``unreadable``: it reads a body of its own and documents 400 for
        one it cannot read (first); ``refuses``: whether it refuses a query parameter not in
        ``query`` (default: the router's rule); ``extra``: further arguments of
        ``APIRouter.api_route``."""
        if refuses is None:
            refuses = self.refuse_query == "all" or self.refuse_query == method
        statuses = (
            *((400,) if unreadable else ()),
            *self.always,
            *errors,
            *((422,) if refuses else ()),
        )

        def declare(handler: Handler) -> Handler:
            return self.router.api_route(
                path,
                methods=[method],
                operation_id=operation_id or handler.__name__,
                summary=summary,
                status_code=status_code,
                response_model=reply,
                responses=error_responses(*statuses),
                dependencies=[only_query(*query)] if refuses else None,
                **extra,
            )(handler)

        return declare


__all__ = ["Handler", "RouteDeclarer"]
