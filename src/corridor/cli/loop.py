"""``corridor webhooks add|list|remove|enable|disable|test|deliveries|redeliver`` and
``corridor jobs list``.

Each opens the store itself; when a running server holds an embedded store, the command goes
through that server's admin API instead (``/api/v1/admin/...``), as ``corridor users`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, get_args
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from corridor.cli.common import (
    EndpointIdArg,
    NotificationIdArg,
    StoreOpt,
    console,
    on_store_or_server,
)
from corridor.loop.outbox_rows import State

if TYPE_CHECKING:
    from corridor.store import Store

webhooks_app = typer.Typer(
    help="Webhook endpoints and the delivery of notifications.", no_args_is_help=True
)
jobs_app = typer.Typer(help="The scheduler's jobs.", no_args_is_help=True)

#: the outbox's states, in words (corridor.loop.outbox_rows.State)
_STATES = ", ".join(get_args(State)[:-1]) + f" or {get_args(State)[-1]}"


def _when(value: Any) -> str:
    if value is None or value == "":
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{at:%Y-%m-%d %H:%M:%S}"


def _fields(record: Any, names: str) -> dict[str, Any]:
    """The attributes ``names`` (space-separated) of ``record``, as the admin API gives them."""
    return {name: getattr(record, name) for name in names.split()}


def _endpoint_dict(e: Any) -> dict[str, Any]:
    fields = "id url event_types enabled allow_private description created_at secret batch_max"
    return _fields(e, fields) | {"event_types": list(e.event_types)}


def _notification_dict(n: Any) -> dict[str, Any]:
    return _fields(
        n,
        "id key event_type target_kind target state attempts created_at next_attempt_at "
        "last_error delivered_at",
    )


def _on_endpoint(
    store: str | None,
    endpoint_id: int,
    method: str,
    act: Callable[[Store, int], Any],
    suffix: str = "",
    as_dict: Callable[[Any], dict[str, Any]] = _endpoint_dict,
    **request: Any,
) -> dict[str, Any]:
    """``act(store, endpoint_id)`` as ``as_dict`` gives it; or, when a running server holds the
    store, ``METHOD /api/v1/admin/webhooks/ID[SUFFIX]`` through it."""
    path = f"/api/v1/admin/webhooks/{endpoint_id}{suffix}"
    done: dict[str, Any] = on_store_or_server(
        store,
        lambda s: as_dict(act(s, endpoint_id)),
        lambda c: c.call(method, path, **request),
    )
    return done


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="where to POST events (http:// or https://)")],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", help="an event type to send, or a prefix like case.* (repeatable; none: all)"
        ),
    ] = None,
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private",
            help="let it reach private, loopback and link-local addresses (refused by default)",
        ),
    ] = False,
    description: Annotated[str | None, typer.Option(help="what the endpoint is for")] = None,
    batch_max: Annotated[
        int,
        typer.Option(
            "--batch-max",
            help="up to this many events per request, in one envelope of type batch "
            "(1: one event per request; at most 1000)",
        ),
    ] = 1,
    store: StoreOpt = None,
) -> None:
    """Add a webhook endpoint; its signing secret is printed once."""
    from corridor.loop import webhooks

    body = {
        "url": url,
        "event_types": event or [],
        "allow_private": allow_private,
        "description": description,
        "batch_max": batch_max,
    }

    def here(s: Store) -> dict[str, Any]:
        made = webhooks.add_endpoint(
            s,
            url,
            event_types=event or [],
            allow_private=allow_private,
            description=description,
            batch_max=batch_max,
        )
        return _endpoint_dict(made)

    made = on_store_or_server(
        store, here, lambda c: c.call("POST", "/api/v1/admin/webhooks", json_body=body)
    )
    types = ", ".join(made["event_types"]) or "every event"
    batches = made.get("batch_max", 1)
    console.print(
        f"webhook endpoint {made['id']}: {escape(made['url'])} ({types})"
        + (f", up to {batches} events per request" if batches > 1 else "")
        + (" [yellow](private targets allowed)[/]" if made["allow_private"] else ""),
        soft_wrap=True,
    )
    console.print("its signing secret (shown once; the receiver verifies webhook-signature):")
    print(made["secret"])  # plain: copied whole


@webhooks_app.command("list")
def webhooks_list(store: StoreOpt = None) -> None:
    """List webhook endpoints."""
    from corridor.loop import webhooks

    found = on_store_or_server(
        store,
        lambda s: [_endpoint_dict(e) for e in webhooks.list_endpoints(s)],
        lambda c: c.call("GET", "/api/v1/admin/webhooks"),
    )
    if not found:
        console.print("no webhook endpoints yet; add one with `corridor webhooks add URL`")
        return
    table = Table("id", "url", "events", "batch", "private ok", "description", "created")
    for e in found:
        table.add_row(
            str(e["id"]),
            escape(e["url"]),
            ", ".join(e["event_types"]) or "all",
            str(e.get("batch_max", 1)),
            "yes" if e["allow_private"] else "",
            escape(e["description"] or ""),
            _when(e["created_at"]),
        )
    console.print(table)


@webhooks_app.command("remove")
def webhooks_remove(endpoint_id: EndpointIdArg, store: StoreOpt = None) -> None:
    """Remove a webhook endpoint; its undelivered notifications are cancelled."""
    from corridor.loop import webhooks

    gone = _on_endpoint(store, endpoint_id, "DELETE", webhooks.remove_endpoint)
    console.print(f"removed webhook endpoint {gone['id']} ({escape(gone['url'])})", soft_wrap=True)


def _set_enabled(store: str | None, endpoint_id: int, enabled: bool) -> None:
    from corridor.loop import webhooks

    done = _on_endpoint(
        store,
        endpoint_id,
        "PATCH",
        lambda s, i: webhooks.set_enabled(s, i, enabled),
        json_body={"enabled": enabled},
    )
    what = "resumed: what waited goes out now" if enabled else "paused: its events wait for it"
    console.print(f"webhook endpoint {done['id']} ({escape(done['url'])}) {what}", soft_wrap=True)


@webhooks_app.command("disable")
def webhooks_disable(endpoint_id: EndpointIdArg, store: StoreOpt = None) -> None:
    """Pause an endpoint (its receiver is down for maintenance?): its events are queued as ever
    and wait, neither sent nor cancelled, until `corridor webhooks enable`."""
    _set_enabled(store, endpoint_id, False)


@webhooks_app.command("enable")
def webhooks_enable(endpoint_id: EndpointIdArg, store: StoreOpt = None) -> None:
    """Resume a paused endpoint; what waited for it goes out."""
    _set_enabled(store, endpoint_id, True)


@webhooks_app.command("test")
def webhooks_test(endpoint_id: EndpointIdArg, store: StoreOpt = None) -> None:
    """Enqueue a webhook.test event for one endpoint (a running server sends it at once)."""
    from corridor.loop import webhooks

    made = _on_endpoint(store, endpoint_id, "POST", webhooks.send_test, "/test", _notification_dict)
    console.print(
        f"test event enqueued as notification {made['id']} (webhook-id {made['key']}); follow "
        f"it with `corridor webhooks deliveries {made['id']}`"
    )


def _attempt_dict(a: Any) -> dict[str, Any]:
    return _fields(a, "attempt attempted_at status_code duration_ms error")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    notification_id: Annotated[
        int | None, typer.Argument(help="show this notification and its every attempt")
    ] = None,
    state: Annotated[str | None, typer.Option(help=f"only this state: {_STATES}")] = None,
    endpoint: Annotated[int | None, typer.Option(help="only those for this endpoint")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 50,
    store: StoreOpt = None,
) -> None:
    """List notifications (webhooks and e-mail) and how their delivery went, newest first."""
    from corridor.loop import outbox

    if notification_id is not None:
        _show_delivery(store, notification_id)
        return
    from corridor.loop.outbox import STATES

    if state is not None and state not in STATES:
        raise typer.BadParameter(f"{state!r}: use one of {_STATES}", param_hint="--state")
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    if endpoint:
        params["endpoint"] = endpoint

    def here(s: Store) -> list[dict[str, Any]]:
        found = outbox.list_notifications(s, state=state, endpoint=endpoint, limit=limit)
        return [_notification_dict(n) for n in found]

    rows = on_store_or_server(
        store, here, lambda c: c.call("GET", "/api/v1/admin/deliveries", params=params)
    )
    if not rows:
        console.print("no notifications" + (f" in state {state}" if state else ""))
        return
    table = Table("id", "event", "to", "state", "tries", "created", "next / delivered", "error")
    for n in rows:
        colour = {"delivered": "green", "failed": "red", "pending": "yellow"}.get(n["state"], "")
        when = n["delivered_at"] if n["state"] == "delivered" else n["next_attempt_at"]
        table.add_row(
            str(n["id"]),
            n["event_type"],
            f"{n['target_kind']} {escape(n['target'])}",
            f"[{colour}]{n['state']}[/]" if colour else n["state"],
            str(n["attempts"]),
            _when(n["created_at"]),
            _when(when) if n["state"] in ("pending", "delivered") else "",
            escape((n["last_error"] or "")[:80]),
        )
    console.print(table)


def _show_delivery(store: str | None, notification_id: int) -> None:
    from corridor.loop import outbox

    def here(s: Store) -> dict[str, Any]:
        n = outbox.get_notification(s, notification_id)
        log = [_attempt_dict(a) for a in outbox.list_attempts(s, notification_id)]
        return {**_notification_dict(n), "payload": n.payload, "log": log}

    n = on_store_or_server(
        store, here, lambda c: c.call("GET", f"/api/v1/admin/deliveries/{notification_id}")
    )
    console.print(
        f"notification {n['id']}: {n['event_type']} to {n['target_kind']} "
        f"{escape(n['target'])}, {n['state']} (webhook-id {n['key']})",
        soft_wrap=True,
    )
    if n["last_error"]:
        console.print(f"last error: {escape(n['last_error'])}", soft_wrap=True)
    table = Table("attempt", "at", "status", "ms", "error")
    for a in n["log"]:
        table.add_row(
            str(a["attempt"]),
            _when(a["attempted_at"]),
            "" if a["status_code"] is None else str(a["status_code"]),
            f"{a['duration_ms']:.0f}",
            escape(a["error"] or ""),
        )
    console.print(table)


@webhooks_app.command("redeliver")
def webhooks_redeliver(notification_id: NotificationIdArg, store: StoreOpt = None) -> None:
    """Send a notification again, with a fresh budget of attempts (same webhook-id)."""
    from corridor.loop import outbox

    made = on_store_or_server(
        store,
        lambda s: _notification_dict(outbox.redeliver(s, notification_id)),
        lambda c: c.call("POST", f"/api/v1/admin/deliveries/{notification_id}/redeliver"),
    )
    console.print(
        f"notification {made['id']} is due again (a running server sends it within a second)"
    )


@jobs_app.command("list")
def jobs_list(store: StoreOpt = None) -> None:
    """List the scheduler's jobs: last run and outcome, next run, who runs it now."""
    from corridor.loop.scheduler import job_states

    def here(s: Store) -> list[dict[str, Any]]:
        return [{**j.__dict__, "running": j.running} for j in job_states(s)]

    jobs = on_store_or_server(store, here, lambda c: c.call("GET", "/api/v1/admin/jobs"))
    if not jobs:
        console.print("no jobs yet: `corridor serve` registers them when it starts")
        return
    table = Table("job", "every", "last run", "status", "message", "next run", "runs", "running")
    for j in jobs:
        status = j["last_status"] or ""
        colour = {"ok": "green", "failed": "red"}.get(status)
        table.add_row(
            j["name"],
            f"{j['every_s']:g} s",
            _when(j["last_started_at"]),
            f"[{colour}]{status}[/]" if colour else status,
            escape((j["last_message"] or "")[:60]),
            _when(j["next_run_at"]),
            str(j["runs"]),
            escape(j["lease_owner"] or "") if j["running"] else "",
        )
    console.print(table)


@jobs_app.command("forget")
def jobs_forget(
    name: Annotated[str, typer.Argument(help="the job's name, as `corridor jobs list` shows it")],
    store: StoreOpt = None,
) -> None:
    """Forget a job no server runs any more (health shows it overdue for ever otherwise). A
    running job is refused; a server that still runs it puts it back within seconds."""
    from corridor.loop.scheduler import forget

    on_store_or_server(
        store,
        lambda s: forget(s, name).__dict__,
        lambda c: c.call("DELETE", f"/api/v1/admin/jobs/{quote(name, safe='')}"),
    )
    console.print(f"job {name} forgotten")


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(jobs_app, name="jobs")
