"""ASGI middleware every request passes: the request-forgery guard and the last-resort error
catcher.

**Request forgery (CSRF).** A browser sends the session cookie with any request to this host, a
form posted by a page on another port or site included (cookies are not bound to a port, and
``SameSite=Lax`` lets a same-site page through). So a request that may change something
(POST, PUT, PATCH, DELETE) is refused with 403 unless it comes from a page Corridor served
itself, which the browser proves with the ``Origin`` header (``Referer`` where a browser leaves
``Origin`` out) — the OWASP "verifying origin with standard headers" defence. A request that
carries an API key (``Authorization`` / ``X-API-Key``) is not checked: a browser never adds
those headers to a cross-site request without a CORS preflight, which Corridor never grants.
A request with neither credential nor origin (a script with no cookie) passes through to the
routes, which answer 401. Origins other than the server's own (a reverse proxy's public
address) are allowed by ``CORRIDOR_TRUSTED_ORIGINS``.

**NUL characters.** No id, filter value or parameter can hold a NUL character (PostgreSQL text
cannot), and one that reaches the store fails there or ends an SQL literal early: a 500. So
:class:`NulGuard` refuses (422) a URL whose path or query string holds one (``%00``), on every
route and page alike.

**Errors.** Starlette hands an unexpected exception to its outermost middleware, which sends the
500 and then re-raises, so uvicorn drops the keep-alive connection and the client's *next*
request fails too. :class:`CatchAll` answers the 500 in the one error shape itself and lets the
connection live.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes, urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corridor.api import errors
from corridor.api.deps import SESSION_COOKIE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _origin_of(url: str) -> tuple[str, str] | None:
    """``https://host:8443/path`` → ``("https", "host:8443")`` (default ports dropped)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = 80 if parts.scheme == "http" else 443
    return parts.scheme, host if port in (None, default) else f"{host}:{port}"


def _host_of(host_header: str, scheme: str) -> str:
    """The request's own ``Host`` normalised like :func:`_origin_of` (default port dropped)."""
    parsed = _origin_of(f"{scheme}://{host_header}")
    return parsed[1] if parsed else host_header.lower()


class RequestForgeryGuard:
    """Refuse (403) state-changing requests a browser sent from a page Corridor did not serve."""

    def __init__(
        self, app: ASGIApp, *, trusted_origins: Iterable[str] = (), https_only: bool = False
    ) -> None:
        self.app = app
        self.https_only = https_only
        self.trusted = {o for o in (_origin_of(t) for t in trusted_origins) if o is not None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        response = errors.error_response(403, "cross_origin_refused", refusal)
        await response(scope, receive, send)

    def _refusal(self, request: Request) -> str | None:
        headers = request.headers
        has_key = bool(headers.get("authorization") or headers.get("x-api-key"))
        has_cookie = SESSION_COOKIE in request.cookies
        origin = headers.get("origin")
        if origin is None or origin == "null":
            referer = headers.get("referer")
            claimed = referer if referer else (None if origin is None else "null")
        else:
            claimed = origin
        if claimed is None:
            if has_cookie and not has_key:
                return (
                    f"{request.method} {request.url.path} was sent with a session cookie but no "
                    "Origin or Referer header, so it may come from another site's page; browsers "
                    "send these headers themselves. Scripts should authenticate with an API key "
                    "('Authorization: Bearer cor_…') instead of a cookie"
                )
            return None
        if has_key and not has_cookie:
            return None
        found = _origin_of(claimed)
        if found is not None and self._allowed(found, request):
            return None
        shown = "a page with no origin" if claimed == "null" else f"a page at {claimed[:200]!r}"
        return (
            f"{request.method} {request.url.path} came from {shown}, not from Corridor's own "
            f"pages at {request.url.scheme}://{headers.get('host', '')}; requests that change "
            "data are accepted only from Corridor's pages (or with an API key). Behind a proxy "
            "with another public address, list it in CORRIDOR_TRUSTED_ORIGINS"
        )

    def _allowed(self, origin: tuple[str, str], request: Request) -> bool:
        if origin in self.trusted:
            return True
        scheme, netloc = origin
        if self.https_only and scheme != "https":
            return False
        own = _host_of(request.headers.get("host", ""), request.url.scheme)
        # the scheme may differ behind a TLS-terminating proxy; the host and port may not
        return netloc == own


class HttpMiddleware:
    """An ASGI middleware that sees HTTP requests only, in :meth:`http`; anything else (the
    lifespan, a websocket) passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class NulGuard(HttpMiddleware):
    """Refuse (422) a request whose path or query string holds a NUL character."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope["query_string"]):
            where = "path" if "\x00" in scope["path"] else "query string"
            response = errors.error_response(
                422,
                "invalid_request",
                f"the URL's {where} holds a NUL character (%00); no id, filter or parameter "
                "can contain one: remove it",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class CatchAll(HttpMiddleware):
    """Answer an unexpected exception with the one error shape's 500, keeping the connection.
    Every answer also says how long the server took until it started (W3C ``Server-Timing:
    app;dur=<ms>``): a page's or an analysis' own time, apart from the network's."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False
        began = time.perf_counter()

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                took = (time.perf_counter() - began) * 1000
                headers = [*message.get("headers", ()), (b"server-timing", b"app;dur=%.1f" % took)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # a reply is half sent: nothing sensible can follow it
                raise
            response = await errors.handle_error(Request(scope), exc)
            await response(scope, receive, send)
