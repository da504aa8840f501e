"""Webhook endpoints, notifications and their delivery log, and the scheduler's jobs, for
admins.

``GET/POST /api/v1/admin/webhooks``, ``PATCH|DELETE /api/v1/admin/webhooks/{endpoint_id}``,
``GET|PUT /api/v1/admin/users/{username}/notifications``,
``POST /api/v1/admin/webhooks/{endpoint_id}/test``, ``GET /api/v1/admin/deliveries``,
``GET /api/v1/admin/deliveries/{notification_id}``,
``POST /api/v1/admin/deliveries/{notification_id}/redeliver``, ``GET /api/v1/admin/jobs`` and
``DELETE /api/v1/admin/jobs/{name}``.
The ``corridor webhooks`` and ``corridor jobs`` commands call these when a running server holds
an embedded store. Only an admin may add an endpoint that reaches private addresses
(``allow_private``): every route here is for admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from corridor.api.declare import RouteDeclarer
from corridor.api.deps import ScopeDep, StoreDep
from corridor.auth import accounts
from corridor.auth.scope import Scope
from corridor.loop import mail, outbox, scheduler, webhooks
from corridor.store import Store

router = APIRouter(prefix="/api/v1/admin", tags=["webhooks and jobs"])


async def get_loop_admin(scope: ScopeDep) -> Scope:
    """A scope that may manage webhooks and see deliveries and jobs (admin only)."""
    scope.require_admin("manage webhooks, notifications and jobs")
    return scope


LoopAdminDep = Annotated[Scope, Depends(get_loop_admin)]
EndpointId = Annotated[int, Path(description="the webhook endpoint's id", ge=1)]
NotificationId = Annotated[int, Path(description="the notification's id (outbox row)", ge=1)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field would be dropped silently

    url: str = Field(
        description="where to POST events: http:// or https://, no credentials in it",
        examples=["https://hooks.example.com/corridor"],
    )
    event_types: list[str] = Field(
        default_factory=list,
        description="event types to send ('case.*' for a prefix); empty: every event",
        examples=[["case.*", "alert.fired"]],
    )
    allow_private: bool = Field(
        default=False,
        description="let this endpoint reach private, loopback and link-local addresses (a "
        "receiver inside your network); refused by default",
    )
    description: str | None = Field(default=None, description="what the endpoint is for")
    batch_max: int = Field(
        default=1,
        ge=1,
        le=webhooks.MAX_BATCH,
        description="the most events one request carries: 1, one event per request; more, a "
        'batch {"type": "batch", "data": {"events": [...]}} under a webhook-id of its own, '
        "for a receiver of many events",
    )


class EndpointOut(BaseModel):
    id: int = Field(description="the endpoint's id")
    url: str
    event_types: list[str] = Field(description="event types it receives; empty: every event")
    enabled: bool
    allow_private: bool = Field(description="may reach private and loopback addresses")
    description: str | None
    created_at: datetime
    batch_max: int = Field(description="the most events one request carries (1: one each)")


class EndpointCreated(EndpointOut):
    secret: str = Field(
        description="the signing secret (whsec_…): the receiver verifies webhook-signature "
        "with it (Standard Webhooks). Shown in this reply only"
    )


class NotificationOut(BaseModel):
    id: int = Field(description="the notification's id (one event for one target)")
    key: str = Field(
        description="the idempotency key: the webhook-id header, on every attempt (in a batch: "
        "the event's id)"
    )
    event_type: str = Field(examples=["case.opened"])
    target_kind: Literal["webhook", "email", "digest"] = Field(
        description="webhook (target: endpoint id), email (an address) or digest (a username)"
    )
    target: str
    state: outbox.State
    attempts: int = Field(description="attempts since it was enqueued or last redelivered")
    created_at: datetime
    next_attempt_at: datetime = Field(description="state pending: when it is tried next")
    last_error: str | None = Field(description="why the latest attempt failed")
    delivered_at: datetime | None
    batch_key: str | None = Field(
        default=None,
        description="the batch it is sent in (its webhook-id) for an endpoint that takes "
        "several events per request; null: sent alone",
    )


class AttemptOut(BaseModel):
    attempt: int = Field(description="1 for the first attempt, counting every one")
    attempted_at: datetime
    status_code: int | None = Field(
        description="the receiver's HTTP status (SMTP reply code for mail); null: no answer"
    )
    duration_ms: float
    error: str | None


class NotificationDetail(NotificationOut):
    payload: dict[str, Any] = Field(
        description="the body sent: {type, timestamp, data} (Standard Webhooks envelope)"
    )
    log: list[AttemptOut] = Field(description="every attempt, first first")


class JobOut(BaseModel):
    name: str = Field(examples=["outbox.dispatch"])
    every_s: float = Field(description="seconds between two runs")
    last_started_at: datetime | None
    last_finished_at: datetime | None
    next_run_at: datetime
    running: bool = Field(description="a process holds its lease now")
    lease_owner: str | None = Field(description="the process running it (host:pid:tag)")
    last_status: Literal["ok", "failed"] | None = Field(description="null before the first run")
    last_message: str | None
    runs: int


def _endpoint(e: webhooks.Endpoint) -> EndpointOut:
    return EndpointOut(
        id=e.id,
        url=e.url,
        event_types=list(e.event_types),
        enabled=e.enabled,
        allow_private=e.allow_private,
        description=e.description,
        created_at=e.created_at,
        batch_max=e.batch_max,
    )


def _notification(n: outbox.Notification) -> NotificationOut:
    return NotificationOut.model_validate(n, from_attributes=True)


def _detail(store: Store, notification_id: int) -> NotificationDetail:
    n = outbox.get_notification(store, notification_id)
    log = [
        AttemptOut.model_validate(a, from_attributes=True)
        for a in outbox.list_attempts(store, notification_id)
    ]
    return NotificationDetail(**_notification(n).model_dump(), payload=n.payload, log=log)


#: an admin route: 401 and 403 (not an admin), 422 for a query parameter not in ``query``, and
#: its own errors
_route = RouteDeclarer(router, (401, 403, 422))


@_route("GET", "/webhooks", "List webhook endpoints", list[EndpointOut])
async def list_webhooks(store: StoreDep, scope: LoopAdminDep) -> list[EndpointOut]:
    """Every webhook endpoint, by id (secrets are not listed)."""
    found = await anyio.to_thread.run_sync(webhooks.list_endpoints, store)
    return [_endpoint(e) for e in found]


@_route("POST", "/webhooks", "Add a webhook endpoint", EndpointCreated, status_code=201)
async def add_webhook(body: EndpointIn, store: StoreDep, scope: LoopAdminDep) -> EndpointCreated:
    """Add an endpoint; the reply holds its signing secret, once. A URL on a private,
    loopback or link-local address is refused with 422 unless ``allow_private`` is set; a host
    name is checked at every delivery, against every address it resolves to."""

    def add() -> webhooks.Endpoint:
        return webhooks.add_endpoint(
            store,
            body.url,
            event_types=body.event_types,
            allow_private=body.allow_private,
            description=body.description,
            batch_max=body.batch_max,
        )

    made = await anyio.to_thread.run_sync(add)
    return EndpointCreated(**_endpoint(made).model_dump(), secret=made.secret)


@_route("DELETE", "/webhooks/{endpoint_id}", "Remove a webhook endpoint", EndpointOut, 404)
async def remove_webhook(
    endpoint_id: EndpointId, store: StoreDep, scope: LoopAdminDep
) -> EndpointOut:
    """Remove an endpoint; its notifications not yet delivered are cancelled (the log stays).
    Returns the endpoint as it was."""
    gone = await anyio.to_thread.run_sync(webhooks.remove_endpoint, store, endpoint_id)
    return _endpoint(gone)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(
        description="false pauses the endpoint: its events are queued as ever and wait "
        "(neither sent nor cancelled) until it is true again"
    )


@_route("PATCH", "/webhooks/{endpoint_id}", "Pause or resume a webhook endpoint", EndpointOut, 404)
async def patch_webhook(
    endpoint_id: EndpointId, body: EndpointPatch, store: StoreDep, scope: LoopAdminDep
) -> EndpointOut:
    """Pause (`enabled: false`) or resume an endpoint, e.g. while its receiver is down for
    maintenance: nothing queued for it is lost or sent meanwhile."""
    changed = await anyio.to_thread.run_sync(webhooks.set_enabled, store, endpoint_id, body.enabled)
    return _endpoint(changed)


class NotificationPrefs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(description="where the user's notifications go", max_length=320)
    mode: Literal["immediate", "digest", "off"] = Field(
        "immediate", description="each notification at once, in a digest, or none"
    )
    digest: Literal["hourly", "daily"] = Field("daily", description="how often a digest goes")


class NotificationPrefsOut(NotificationPrefs):
    username: str
    last_digest_at: datetime | None = None


def _known_user(store: Store, username: str) -> None:
    if accounts.get_user(store, username) is None:
        raise mail.PreferenceNotFoundError(
            f"no user {username!r}; `corridor users list` shows who exists"
        )


def _prefs_out(p: Any) -> NotificationPrefsOut:
    return NotificationPrefsOut(
        username=p.username,
        email=p.email,
        mode=p.mode,
        digest=p.digest,
        last_digest_at=p.last_digest_at,
    )


@_route(
    "PUT",
    "/users/{username}/notifications",
    "Set how a user is notified by e-mail",
    NotificationPrefsOut,
    404,
)
async def put_notifications(
    username: Annotated[str, Path(description="the user", max_length=64)],
    body: NotificationPrefs,
    store: StoreDep,
    scope: LoopAdminDep,
) -> NotificationPrefsOut:
    """Where and how a user hears of the cases they own or follow: each notification at once,
    an hourly or daily digest, or none."""

    def put() -> Any:
        _known_user(store, username)
        return mail.set_preference(store, username, body.email, mode=body.mode, digest=body.digest)

    return _prefs_out(await anyio.to_thread.run_sync(put))


@_route(
    "GET",
    "/users/{username}/notifications",
    "How a user is notified by e-mail",
    NotificationPrefsOut,
    404,
)
async def get_notifications(
    username: Annotated[str, Path(description="the user", max_length=64)],
    store: StoreDep,
    scope: LoopAdminDep,
) -> NotificationPrefsOut:
    """The user's e-mail notification settings (404 when none are set: no e-mail is sent)."""

    def get() -> Any:
        _known_user(store, username)
        found = mail.get_preference(store, username)
        if found is None:
            raise mail.PreferenceNotFoundError(
                f"{username} has no e-mail notification settings: set them with PUT (or "
                f"`corridor users notify {username} --email ADDRESS`)"
            )
        return found

    return _prefs_out(await anyio.to_thread.run_sync(get))


@_route(
    "POST",
    "/webhooks/{endpoint_id}/test",
    "Send a test event to a webhook endpoint",
    NotificationOut,
    404,
    status_code=201,
)
async def test_webhook(
    endpoint_id: EndpointId, store: StoreDep, scope: LoopAdminDep
) -> NotificationOut:
    """Enqueue a ``webhook.test`` event for this endpoint, delivered like any notification
    (within a second while the scheduler runs). Follow it at ``/admin/deliveries/{id}``."""
    made = await anyio.to_thread.run_sync(webhooks.send_test, store, endpoint_id)
    return _notification(made)


@_route(
    "GET",
    "/deliveries",
    "List notifications and their delivery state",
    list[NotificationOut],
    query=("state", "endpoint", "limit"),
)
async def list_deliveries(
    store: StoreDep,
    scope: LoopAdminDep,
    state: Annotated[
        outbox.State | None,
        Query(description="only notifications in this state"),
    ] = None,
    endpoint: Annotated[
        int | None, Query(description="only those for this webhook endpoint", ge=1)
    ] = None,
    limit: Annotated[int, Query(description="at most this many, newest first", ge=1, le=1000)] = 50,
) -> list[NotificationOut]:
    """Notifications (one event for one target), newest first."""

    def read() -> list[outbox.Notification]:
        return outbox.list_notifications(store, state=state, endpoint=endpoint, limit=limit)

    return [_notification(n) for n in await anyio.to_thread.run_sync(read)]


@_route(
    "GET",
    "/deliveries/{notification_id}",
    "One notification with its delivery log",
    NotificationDetail,
    404,
)
async def get_delivery(
    notification_id: NotificationId, store: StoreDep, scope: LoopAdminDep
) -> NotificationDetail:
    """The notification, the body it sends and every attempt (status, duration, error)."""
    return await anyio.to_thread.run_sync(_detail, store, notification_id)


@_route(
    "POST",
    "/deliveries/{notification_id}/redeliver",
    "Send a notification again",
    NotificationOut,
    404,
)
async def redeliver_delivery(
    notification_id: NotificationId, store: StoreDep, scope: LoopAdminDep
) -> NotificationOut:
    """Due at once, with a fresh budget of attempts, whatever its state (a digest line and a
    cancelled notification cannot be: 422). It keeps its ``webhook-id``, so a receiver that
    already processed it can tell."""
    return _notification(await anyio.to_thread.run_sync(outbox.redeliver, store, notification_id))


@_route("GET", "/jobs", "List the scheduler's jobs", list[JobOut])
async def list_jobs(store: StoreDep, scope: LoopAdminDep) -> list[JobOut]:
    """Every scheduled job: when it ran, how that went, when it runs next, who runs it now."""
    states = await anyio.to_thread.run_sync(scheduler.job_states, store)
    return [JobOut(**s.__dict__, running=s.running) for s in states]


@_route("DELETE", "/jobs/{name}", "Forget a job no server runs any more", JobOut, 404, 409)
async def forget_job(
    name: Annotated[str, Path(description="the job's name", max_length=200)],
    store: StoreDep,
    scope: LoopAdminDep,
) -> JobOut:
    """Remove a job's row (a lake sync no server is started with any more, which health would
    otherwise show as overdue for ever); returns it as it was. 409 while it runs. A server that
    still runs the job writes its row again within seconds."""
    gone = await anyio.to_thread.run_sync(scheduler.forget, store, name)
    return JobOut(**gone.__dict__, running=gone.running)
