"""Webhook endpoints and signed delivery (the Standard Webhooks scheme).

Each attempt is one ``POST`` of the event envelope (``{"type", "timestamp", "data"}``, JSON) with
the headers ``webhook-id`` (the outbox row's idempotency key, the same on every retry),
``webhook-timestamp`` (seconds since the epoch, of this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under the endpoint's ``whsec_`` secret).

An endpoint with ``batch_max`` > 1 takes up to that many events per request: the envelope
``{"type": "batch", "timestamp", "data": {"events": [...]}}``, each event its usual envelope
with its ``id`` (the row's idempotency key) added, under a ``webhook-id`` of the batch's own.
Which rows go together is written when they are first claimed (the outbox's ``batch_key``), so
a retry sends the same events under the same webhook-id.

Targets on private, loopback, link-local (cloud metadata), multicast or otherwise non-global
addresses are refused unless an admin allowed them for that endpoint: the host is resolved when
the connection is made and every address it resolves to is checked, and the connection goes to
the address that was checked (a name that resolves elsewhere a moment later changes nothing).
Redirects are not followed and proxies from the environment are not used.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
import orjson
from standardwebhooks import Webhook

import corridor
from corridor.domain.plain_text import has_control
from corridor.errors import CorridorError, NotFoundError
from corridor.loop import outbox
from corridor.loop.outbox import Attempt, Notification
from corridor.loop.outbox_rows import WEBHOOK_EVENTS, envelope, matches
from corridor.store.base import Store

__all__ = [
    "BATCH_EVENT",
    "MAX_BATCH",
    "Endpoint",
    "EndpointNotFoundError",
    "PrivateTargetError",
    "WebhookSender",
    "add_endpoint",
    "check_address",
    "get_endpoint",
    "list_endpoints",
    "new_secret",
    "remove_endpoint",
    "send_test",
    "set_enabled",
    "sign",
]

#: status codes worth another attempt besides 5xx
RETRY_STATUS = (408, 429)
_COLUMNS = (
    "id, url, secret, event_types, enabled, allow_private, description, created_at, batch_max"
)
#: the most events one request may carry (an endpoint's ``batch_max``)
MAX_BATCH = 1000
#: the envelope type of a request that carries several events
BATCH_EVENT = "batch"


class EndpointNotFoundError(NotFoundError):
    """No webhook endpoint with that id."""


class InvalidEndpointError(CorridorError, ValueError):
    status_code = 422


class PrivateTargetError(CorridorError):
    """A webhook target that resolves to an address Corridor does not send to by default."""

    status_code = 422


@dataclass(frozen=True)
class Endpoint:
    id: int
    url: str
    #: ``whsec_`` + base64 of 24 random bytes: what the receiver verifies signatures with
    secret: str
    #: the event types it receives (``case.*`` prefixes allowed); empty: every event
    event_types: tuple[str, ...]
    enabled: bool
    #: an admin allowed private, loopback and link-local targets for this endpoint
    allow_private: bool
    description: str | None
    created_at: datetime
    #: the most events one request carries: 1, one event per request (the usual webhook); more,
    #: a batch (``{"type": "batch", "data": {"events": [...]}}``) under a webhook-id of its own
    batch_max: int = 1

    @classmethod
    def of(cls, row: Sequence[Any]) -> Endpoint:
        types = tuple(t for t in str(row[3]).split(",") if t)
        return cls(
            int(row[0]),
            str(row[1]),
            str(row[2]),
            types,
            bool(row[4]),
            bool(row[5]),
            row[6],
            row[7],
            int(row[8] or 1),
        )


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# -- the target check -------------------------------------------------------------------------
def check_address(address: str) -> str | None:
    """Why Corridor does not send to ``address`` by default, or None when it is a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None


def _refusal(host: str, address: str, why: str) -> PrivateTargetError:
    named = host if host == address else f"{host} resolves to {address}"
    return PrivateTargetError(
        f"webhook target refused: {named}, {why}; an admin may allow private targets for this "
        "endpoint (`corridor webhooks add URL --allow-private`, or allow_private in the API)"
    )


def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Every address ``host`` resolves to, each checked (unless ``allow_private``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            why = check_address(address)
            if why is not None:
                raise _refusal(host, address, why)
    return addresses


class _CheckedBackend(httpcore.SyncBackend):
    """Connects only to addresses that passed the check, to the very address checked."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_checked(host, port, allow_private=self.allow_private)
        except socket.gaierror as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e.strerror or e}") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    address, port, timeout, local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every sender (loading the CA bundle takes tens of milliseconds)."""
    return httpx.create_ssl_context()


def _client(allow_private: bool, timeout: float) -> httpx.Client:
    # verify= the shared context: else the transport loads the CA bundle again for its own
    transport = httpx.HTTPTransport(verify=_ssl_context(), trust_env=False)
    # the pool's network backend is the one place every connection is made: check it there
    transport._pool = httpcore.ConnectionPool(
        ssl_context=_ssl_context(),
        max_connections=16,
        network_backend=_CheckedBackend(allow_private),
    )
    return httpx.Client(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    )


# -- endpoints --------------------------------------------------------------------------------
def _check_url(url: str, allow_private: bool) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # (a port out of range raises here)
    except ValueError as e:
        raise InvalidEndpointError(
            f"webhook URL {url!r}: {e}; give an http:// or https:// URL with a host, e.g. "
            "https://hooks.example.com/corridor"
        ) from None
    if port == 0:
        raise InvalidEndpointError(f"webhook URL {url!r}: port 0 cannot be reached")
    if any(ch.isspace() for ch in url):
        raise InvalidEndpointError(f"webhook URL {url!r} holds a space: encode it as %20")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidEndpointError(
            f"webhook URL {url!r}: give an http:// or https:// URL with a host, e.g. "
            "https://hooks.example.com/corridor"
        )
    if parts.username or parts.password:
        raise InvalidEndpointError(
            f"webhook URL {url!r} holds credentials; receivers verify the signature instead"
        )
    host = parts.hostname
    if not allow_private:  # literal addresses and localhost are refused at once (no DNS here)
        literal = host
        if host == "localhost" or host.endswith(".localhost"):
            literal = "127.0.0.1"
        try:
            why = check_address(literal)
        except ValueError:
            why = None  # a name: checked at each delivery, when it is resolved
        if why is not None:
            raise _refusal(host, literal, why)
    return url


def add_endpoint(
    store: Store,
    url: str,
    *,
    event_types: Sequence[str] = (),
    allow_private: bool = False,
    description: str | None = None,
    secret: str | None = None,
    batch_max: int = 1,
) -> Endpoint:
    """Add a webhook endpoint (admins only: the surfaces check the role). ``allow_private``
    lets it reach private and loopback addresses (a receiver inside the network);
    ``batch_max`` > 1: up to that many events per request (a receiver of many events)."""
    if not 1 <= batch_max <= MAX_BATCH:
        raise InvalidEndpointError(
            f"batch_max {batch_max}: give 1 (one event per request) to {MAX_BATCH:,}"
        )
    for text in (url, description or "", *event_types):
        if has_control(text):
            raise InvalidEndpointError(
                f"{text[:60]!r} holds control characters; an endpoint's URL, description and "
                "event types are plain text"
            )
    url = _check_url(url, allow_private)
    types = [t.strip() for t in event_types if t and t.strip()]
    for t in types:
        if "," in t or " " in t:
            raise InvalidEndpointError(f"event type {t!r}: one type (or prefix.*) per entry")
        if not any(matches(t, known) for known in WEBHOOK_EVENTS):
            raise InvalidEndpointError(
                f"event type {t!r} matches no event an endpoint is sent; give some of "
                f"{', '.join(WEBHOOK_EVENTS)}, a prefix such as case.*, or none for all"
            )
    secret = secret or new_secret()
    try:
        Webhook(secret)
    except Exception:
        raise InvalidEndpointError(
            "the secret must be whsec_ followed by base64 (leave it out to have one made)"
        ) from None
    with store.transaction() as tx:
        rows = tx.fetchall(
            "INSERT INTO webhook_endpoints (url, secret, event_types, enabled, allow_private, "
            f"description, created_at, batch_max) VALUES (?, ?, ?, TRUE, ?, ?, ?, ?) "
            f"RETURNING {_COLUMNS}",
            [
                url,
                secret,
                ",".join(types),
                allow_private,
                description,
                datetime.now(UTC),
                batch_max,
            ],
        )
    return Endpoint.of(rows[0])


def list_endpoints(store: Store) -> list[Endpoint]:
    rows = store.query(f"SELECT {_COLUMNS} FROM webhook_endpoints ORDER BY id")
    return [Endpoint.of(r) for r in rows]


def _no_endpoint(endpoint_id: int) -> EndpointNotFoundError:
    return EndpointNotFoundError(
        f"no webhook endpoint {endpoint_id}; `corridor webhooks list` (GET "
        "/api/v1/admin/webhooks) lists them"
    )


def get_endpoint(store: Store, endpoint_id: int) -> Endpoint:
    rows = store.query(f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = ?", [endpoint_id])
    if not rows:
        raise _no_endpoint(endpoint_id)
    return Endpoint.of(rows[0])


def remove_endpoint(store: Store, endpoint_id: int) -> Endpoint:
    """Remove an endpoint; its notifications not yet delivered are cancelled (the delivery log
    is kept). Returns the endpoint as it was."""
    with store.transaction() as tx:
        rows = tx.fetchall(f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = ?", [endpoint_id])
        if not rows:
            raise _no_endpoint(endpoint_id)
        tx.execute("DELETE FROM webhook_endpoints WHERE id = ?", [endpoint_id])
        outbox.cancel_endpoint_rows(tx, endpoint_id)
    return Endpoint.of(rows[0])


def set_enabled(store: Store, endpoint_id: int, enabled: bool) -> Endpoint:
    """Pause (``enabled`` False) or resume an endpoint. While paused, its events are queued as
    ever but wait, neither sent nor cancelled, to go out in order once it is resumed."""
    get_endpoint(store, endpoint_id)  # an unknown id is said as such
    with store.transaction() as tx:
        tx.execute("UPDATE webhook_endpoints SET enabled = ? WHERE id = ?", [enabled, endpoint_id])
    if enabled:
        outbox.wake()  # what waited is due now
    return get_endpoint(store, endpoint_id)


def send_test(store: Store, endpoint_id: int) -> Notification:
    """Enqueue a ``webhook.test`` event for one endpoint (in a transaction of its own, like any
    notification); the dispatcher sends it within a second."""
    get_endpoint(store, endpoint_id)
    key = f"test-{endpoint_id}-{secrets.token_hex(8)}"
    with store.transaction() as tx:
        outbox.enqueue(
            tx,
            "webhook.test",
            {"endpoint": endpoint_id, "message": "a test event sent by Corridor"},
            key=key,
            endpoints=[endpoint_id],
        )
        found = tx.fetchall("SELECT id FROM outbox WHERE idempotency_key = ?", [key])
    return outbox.get_notification(store, int(found[0][0]))


# -- sending ----------------------------------------------------------------------------------
def sign(secret: str, msg_id: str, at: datetime, body: str) -> str:
    """The ``webhook-signature`` header for one attempt."""
    return str(Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class WebhookSender:
    """Sends webhook rows of the outbox: one per call of :meth:`deliver`, from any thread.
    Its HTTP clients are made on first use; close it (or use it in ``with``) when done."""

    def __init__(self, store: Store, *, timeout_s: float = 10.0) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self._clients: dict[bool, httpx.Client] = {}
        #: endpoints read once per sender (one dispatch run): id -> endpoint, None if removed
        self._endpoints: dict[int, Endpoint | None] = {}
        self._largest: int | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client_for(self, allow_private: bool) -> httpx.Client:
        with self._lock:
            client = self._clients.get(allow_private)
            if client is None:
                client = self._clients[allow_private] = _client(allow_private, self.timeout_s)
        return client

    def _endpoint(self, endpoint_id: int) -> Endpoint | None:
        with self._lock:
            if endpoint_id not in self._endpoints:
                rows = self.store.query(
                    f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = ?", [endpoint_id]
                )
                self._endpoints[endpoint_id] = Endpoint.of(rows[0]) if rows else None
            return self._endpoints[endpoint_id]

    def largest_batch(self) -> int:
        """The largest ``batch_max`` of the endpoints (1 when none batches), read once."""
        with self._lock:
            if self._largest is None:
                rows = self.store.query("SELECT max(batch_max) FROM webhook_endpoints")
                self._largest = max(1, int(rows[0][0] or 1)) if rows else 1
            return self._largest

    def deliver(self, row: Notification) -> Attempt:
        """Send one row: its envelope, under its own key as webhook-id."""
        return self._post(int(row.target), row.key, orjson.dumps(row.payload).decode())

    def deliver_batch(self, rows: Sequence[Notification]) -> Attempt:
        """Send rows for one endpoint as one request, under their batch's key as webhook-id:
        ``{"type": "batch", "timestamp", "data": {"events": [{"id", "type", "timestamp",
        "data"}, ...]}}``, each event with its own id (a row's idempotency key)."""
        first = rows[0]
        events = [{"id": r.key, **r.payload} for r in rows]
        doc = envelope(BATCH_EVENT, {"events": events}, datetime.now(UTC))
        return self._post(
            int(first.target), first.batch_key or first.key, orjson.dumps(doc).decode()
        )

    def _post(self, endpoint_id: int, msg_id: str, body: str) -> Attempt:
        endpoint = self._endpoint(endpoint_id)
        if endpoint is None:
            return Attempt(False, error="the webhook endpoint was removed")
        at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": f"Corridor/{corridor.__version__}",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": sign(endpoint.secret, msg_id, at, body),
        }
        started = time.perf_counter()
        try:
            reply = self._client_for(endpoint.allow_private).post(
                endpoint.url, content=body.encode(), headers=headers
            )
        except PrivateTargetError as e:
            return Attempt(False, error=str(e), duration_ms=_ms(started))
        except httpx.TimeoutException as e:
            why = f"no answer within {self.timeout_s:g} s ({type(e).__name__})"
            return Attempt(False, error=why, retry=True, duration_ms=_ms(started))
        except httpx.TransportError as e:
            why = f"cannot reach {endpoint.url}: {e or type(e).__name__}"
            return Attempt(False, error=why, retry=True, duration_ms=_ms(started))
        duration = _ms(started)
        code = reply.status_code
        if 200 <= code < 300:
            return Attempt(True, status_code=code, duration_ms=duration)
        error = f"HTTP {code}" + (f": {reply.text[:200]}" if reply.text else "")
        if code in RETRY_STATUS or code >= 500:
            wait = _retry_after(reply.headers.get("retry-after")) if code in (429, 503) else None
            return Attempt(False, code, error, retry=True, retry_after_s=wait, duration_ms=duration)
        return Attempt(False, code, error, duration_ms=duration)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
