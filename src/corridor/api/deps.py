"""Dependencies: what a route needs from the app, as ``Annotated`` aliases.

They are ``async`` so FastAPI calls them on the event loop instead of sending each to a thread.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request

from corridor.auth import accounts, local_server
from corridor.auth.scope import LOCAL_ADMIN, Principal, Scope
from corridor.errors import AuthenticationError
from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings
from corridor.store import Store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_ingestor(request: Request) -> Ingestor:
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


#: ingest requests converted and stored at once; more wait their turn. The store takes one
#: write at a time anyway, and each request in progress holds its records in memory.
INGEST_WORKERS = 2


async def get_ingest_limiter(request: Request) -> anyio.CapacityLimiter:
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "ingest_limiter", None)
    if limiter is None:  # made inside the event loop, on first use
        limiter = state.ingest_limiter = anyio.CapacityLimiter(INGEST_WORKERS)
    return limiter


#: the cookie that holds a web session token
SESSION_COOKIE = "corridor_session"


def _api_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


async def current_principal(request: Request) -> Principal | None:
    """Who sent the request: an API key (``Authorization: Bearer …`` or ``X-API-Key``) wins over
    a session cookie; ``None`` when neither is there. A key that is sent but not valid is an
    error, never a silent fallback to the cookie."""
    settings: Settings = request.app.state.settings
    if settings.auth == "off":
        return LOCAL_ADMIN
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    store: Store = request.app.state.store
    key = _api_key(request)
    if key and (local := local_server.principal_for_key(request.app.state, key)) is not None:
        request.state.principal = local  # the server's own credential (`corridor serve`)
        return local
    if key:
        user = await anyio.to_thread.run_sync(accounts.authenticate_key, store, key)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        found = (
            await anyio.to_thread.run_sync(accounts.session_user, store, token) if token else None
        )
        if found is None:
            return None
        user = found
    principal = request.state.principal = user.principal()
    return principal


async def get_principal(request: Request) -> Principal:
    principal = await current_principal(request)
    if principal is None:
        raise AuthenticationError(
            "sign in first: send an API key as 'Authorization: Bearer cor_…' (create one with "
            "`corridor keys create USER`), or sign in on the web page /login"
        )
    return principal


async def get_scope(
    request: Request, principal: Annotated[Principal, Depends(get_principal)]
) -> Scope:
    ingestor: Ingestor = request.app.state.ingestor
    return Scope.of(principal, ingestor.corridor_map)


async def get_analyst_scope(scope: Annotated[Scope, Depends(get_scope)]) -> Scope:
    """A scope that may see analyses (every role but agent)."""
    scope.require_analyst_views()
    return scope


async def get_writer_scope(scope: Annotated[Scope, Depends(get_scope)]) -> Scope:
    """A scope that may send and change data (admin, analyst)."""
    scope.require_write()
    return scope


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]
IngestLimiterDep = Annotated[anyio.CapacityLimiter, Depends(get_ingest_limiter)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ScopeDep = Annotated[Scope, Depends(get_scope)]
AnalystScopeDep = Annotated[Scope, Depends(get_analyst_scope)]
WriterScopeDep = Annotated[Scope, Depends(get_writer_scope)]


def only_query(*names: str) -> Any:
    """A route dependency refusing (422 ``invalid_query``) a query parameter not in ``names``,
    worded as the analyses word it, before the route's own parameters are read."""
    from corridor.analytics.core.errors import AnalyticsQueryError

    async def refuse_unknown(request: Request) -> None:
        unknown = sorted({k for k in request.query_params if k not in names})
        if unknown:
            raise AnalyticsQueryError(
                f"unknown query parameter(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(names) or 'none'}"
            )

    return Depends(refuse_unknown)
