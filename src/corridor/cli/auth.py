"""``corridor users add|list|remove|notify`` and ``corridor keys create|list|revoke``.

Each opens the store itself; when a running server holds an embedded store (a DuckDB file opens
in one process at a time), the command goes through that server's API instead, with the local
admin credential the server publishes next to the store (:mod:`corridor.auth.local_server`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from corridor.auth.scope import ROLE_HELP, ROLES, Role
from corridor.cli.common import KeyIdArg, StoreOpt, UsernameArg, console, on_store_or_server

if TYPE_CHECKING:
    from corridor.auth.accounts import ApiKey, User
    from corridor.auth.local_server import ServerClient
    from corridor.store import Store


users_app = typer.Typer(help="Users and their roles (who may see what).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for scripts and systems.", no_args_is_help=True)

_ROLES_HELP = "; ".join(f"{r}: {h}" for r, h in ROLE_HELP.items())


def _delete(store: str | None, here: Callable[[Store], object], resource: str, name: str) -> None:
    """``here(store)``; or, when a running server holds the store, ``DELETE
    /api/v1/{resource}/{name}`` through it."""
    on_store_or_server(
        store, here, lambda c: c.call("DELETE", f"/api/v1/{resource}/{quote(name, safe='')}")
    )


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _user_from(d: dict[str, Any]) -> User:
    from corridor.auth.accounts import User

    created = datetime.fromisoformat(d["created_at"])
    return User(d["username"], Role(d["role"]), d["department"], d["partner"], created)


def _key_from(d: dict[str, Any]) -> ApiKey:
    from corridor.auth.accounts import ApiKey

    created = datetime.fromisoformat(d["created_at"])
    return ApiKey(d["key_id"], d["username"], d["name"], created, _time(d["revoked_at"]))


@users_app.command("add")
def users_add(
    username: UsernameArg,
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}. {_ROLES_HELP}")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="at least 8 characters (asked for when not given)",
        ),
    ],
    department: Annotated[str | None, typer.Option(help="a department head's department")] = None,
    partner: Annotated[str | None, typer.Option(help="a partner manager's partner_id")] = None,
    store: StoreOpt = None,
) -> None:
    """Add a user with a role."""
    from corridor.auth import accounts

    body = {
        "username": username,
        "password": password,
        "role": role,
        "department": department,
        "partner": partner,
    }
    user = on_store_or_server(
        store,
        lambda s: accounts.add_user(
            s, username, password, role, department=department, partner=partner
        ),
        lambda c: _user_from(c.call("POST", "/api/v1/users", json_body=body)),
    )
    console.print(f"added {user.username} ({user.principal().label})")


@users_app.command("list")
def users_list(store: StoreOpt = None) -> None:
    """List users, their roles and scopes."""
    from corridor.auth import accounts

    users = on_store_or_server(
        store,
        accounts.list_users,
        lambda c: [_user_from(u) for u in c.call("GET", "/api/v1/users")],
    )
    if not users:
        console.print("no users yet; add one with `corridor users add NAME --role admin`")
        return
    table = Table("user", "role", "department", "partner", "created")
    for u in users:
        table.add_row(
            u.username,
            u.role.value,
            u.department or "",
            u.partner or "",
            f"{u.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@users_app.command("notify")
def users_notify(
    username: UsernameArg,
    email: Annotated[str, typer.Option(help="where their notifications go")],
    mode: Annotated[
        str, typer.Option(help="immediate (each at once), digest or off")
    ] = "immediate",
    digest: Annotated[str, typer.Option(help="a digest's period: hourly or daily")] = "daily",
    store: StoreOpt = None,
) -> None:
    """How a user hears of the cases they own or follow, by e-mail."""
    from corridor.auth import accounts
    from corridor.errors import AccountError
    from corridor.loop import mail

    def here(s: Store) -> dict[str, Any]:
        if accounts.get_user(s, username) is None:
            raise AccountError(f"no user {username!r}; `corridor users list` shows who exists")
        p = mail.set_preference(s, username, email, mode=mode, digest=digest)
        return {"username": p.username, "email": p.email, "mode": p.mode, "digest": p.digest}

    def via_server(c: ServerClient) -> dict[str, Any]:
        body = {"email": email, "mode": mode, "digest": digest}
        return dict(c.call("PUT", f"/api/v1/admin/users/{quote(username, safe='')}/notifications",
                           json_body=body))  # fmt: skip

    p = on_store_or_server(store, here, via_server)
    how = {"immediate": "each notification at once", "off": "no notifications"}.get(
        p["mode"], f"a {p['digest']} digest"
    )
    console.print(f"{p['username']} gets {how} at {p['email']}", markup=False)


@users_app.command("remove")
def users_remove(username: UsernameArg, store: StoreOpt = None) -> None:
    """Remove a user: their API keys are revoked and their sessions end at once."""
    from corridor.auth import accounts

    _delete(store, lambda s: accounts.remove_user(s, username), "users", username)
    console.print(f"removed {username}; their API keys are revoked and their sessions ended")


@keys_app.command("create")
def keys_create(
    username: Annotated[str, typer.Argument(help="the user the key acts as")],
    name: Annotated[str | None, typer.Option(help="what the key is for")] = None,
    store: StoreOpt = None,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from corridor.auth import accounts

    def remote(c: ServerClient) -> tuple[ApiKey, str]:
        made = c.call("POST", "/api/v1/keys", json_body={"username": username, "name": name})
        return _key_from(made), str(made["key"])

    key, secret = on_store_or_server(
        store, lambda s: accounts.create_key(s, username, name), remote
    )
    console.print(f"API key {key.key_id} for {username} (shown once; keep it safe):")
    # plain print: a key must not be wrapped or styled, so it can be copied whole
    print(secret)
    console.print(f"use it as the header  Authorization: Bearer {secret[:10]}…")


@keys_app.command("list")
def keys_list(
    username: Annotated[str | None, typer.Option("--user", help="only this user's keys")] = None,
    store: StoreOpt = None,
) -> None:
    """List API keys (ids only; the keys themselves are never stored)."""
    from corridor.auth import accounts

    params = {"user": username} if username else None
    keys = on_store_or_server(
        store,
        lambda s: accounts.list_keys(s, username),
        lambda c: [_key_from(k) for k in c.call("GET", "/api/v1/keys", params=params)],
    )
    table = Table("key id", "user", "name", "created", "revoked")
    for k in keys:
        table.add_row(
            k.key_id,
            k.username,
            k.name or "",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: KeyIdArg, store: StoreOpt = None) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    from corridor.auth import accounts

    key_id = accounts.key_id_of(key_id)
    _delete(store, lambda s: accounts.revoke_key(s, key_id), "keys", key_id)
    console.print(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
