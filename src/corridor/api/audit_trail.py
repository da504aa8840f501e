"""Every change made over HTTP, and every read of one customer, in the audit log.

One ASGI middleware, so no route has to remember it: after a request by a signed-in user or an
API key (the principal the route's authentication found) it appends one line to the audit log
(:mod:`corridor.privacy.audit`):

- a write (POST, PUT, PATCH, DELETE) to any route but those that log themselves in more detail
  (the privacy routes) and the ingest of records (``ingest_batches`` keeps those): action
  ``METHOD /route/{template}`` (a user or key created, a role changed, a rule, case or survey
  changed, ...), the route's template rather than its concrete path, so an id typed into a URL
  is not copied into the log; ``detail`` the HTTP status;
- a read of one customer (their page, record, cases, churn risk or lifetime value): action
  ``person.read``, the person as the salted hash of their canonical id.

A line that cannot be written is logged by the server and never fails the request (its answer
has gone already).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from starlette.types import Message, Receive, Scope, Send

from corridor.api.middleware import HttpMiddleware
from corridor.domain.contract import KINDS
from corridor.privacy import audit, ledger
from corridor.store.base import Tx

log = logging.getLogger("corridor.api")

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: reads of one customer, by route template
PERSON_READS = frozenset(
    {
        "/api/v1/people/{person_id}",
        "/api/v1/people/{person_id}/cases",
        "/api/v1/churn/risk/{person_id}",
        "/api/v1/lifetime/people/{person_id}",
        "/customers/{person_id}",
    }
)
#: writes that log themselves (in more detail) or are records, not changes
_QUIET_PREFIXES = ("/api/v1/people/{person_id}/", "/admin/privacy", "/api/v1/privacy/", "/s/")
_INGEST = frozenset(f"/api/v1/{kind}" for kind in KINDS)


def _line(scope: Scope, status: int) -> tuple[str, str | None] | None:
    """What to log about this request: (action, the person id read), or None."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    method = scope.get("method", "GET")
    if method == "GET" and template in PERSON_READS and status < 400:
        return "person.read", str(scope.get("path_params", {}).get("person_id") or "")
    if method in WRITES and template not in _INGEST and not template.startswith(_QUIET_PREFIXES):
        return f"{method} {template}", None
    return None


def _write(tx: Tx, actor: audit.Actor, action: str, person: str | None, status: int) -> None:
    if person is None:
        audit.append(tx, actor, action, target_kind="route", detail={"status": status})
        return
    rows = tx.fetchall("SELECT canonical_id FROM people WHERE person_id = ?", (person,))
    canonical = str(rows[0][0]) if rows and rows[0][0] else person
    audit.append(
        tx,
        actor,
        action,
        target_kind="person",
        target=ledger.subject_hash(tx, canonical),
        detail={"status": status},
    )


class AuditTrail(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, watching)
        what = _line(scope, status)
        if what is None:
            return
        principal = (scope.get("state") or {}).get("principal")
        app: Any = scope.get("app")
        if principal is None and app is not None and app.state.settings.auth == "off":
            from corridor.auth.scope import LOCAL_ADMIN

            principal = LOCAL_ADMIN
        if principal is None or app is None:
            return  # not signed in: refused before any route ran
        headers = dict(scope.get("headers") or [])
        keyed = b"authorization" in headers or b"x-api-key" in headers
        client = scope.get("client")
        actor = audit.Actor(
            principal.username, "key" if keyed else "user", client[0] if client else None
        )
        action, person = what
        store = app.state.store
        try:
            await anyio.to_thread.run_sync(
                lambda: store.write_beside(lambda tx: _write(tx, actor, action, person, status))
            )
        except Exception:
            log.exception("the audit line for %s could not be written", action)
