"""``corridor users add|list|remove`` and ``corridor keys create|list|revoke``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from corridor.auth.scope import ROLE_HELP, ROLES
from corridor.cli_common import StoreOpt, console

users_app = typer.Typer(help="Users and their roles (who may see what).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for scripts and systems.", no_args_is_help=True)

_ROLES_HELP = "; ".join(f"{r}: {h}" for r, h in ROLE_HELP.items())


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="login name")],
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
    from corridor.store import open_store

    with open_store(store) as s:
        user = accounts.add_user(
            s, username, password, role, department=department, partner=partner
        )
    console.print(f"added {user.username} ({user.principal().label})")


@users_app.command("list")
def users_list(store: StoreOpt = None) -> None:
    """List users, their roles and scopes."""
    from corridor.auth import accounts
    from corridor.store import open_store

    with open_store(store) as s:
        users = accounts.list_users(s)
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


@users_app.command("remove")
def users_remove(
    username: Annotated[str, typer.Argument(help="login name")],
    store: StoreOpt = None,
) -> None:
    """Remove a user: their API keys are revoked and their sessions end at once."""
    from corridor.auth import accounts
    from corridor.store import open_store

    with open_store(store) as s:
        accounts.remove_user(s, username)
    console.print(f"removed {username}; their API keys are revoked and their sessions ended")


@keys_app.command("create")
def keys_create(
    username: Annotated[str, typer.Argument(help="the user the key acts as")],
    name: Annotated[str | None, typer.Option(help="what the key is for")] = None,
    store: StoreOpt = None,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from corridor.auth import accounts
    from corridor.store import open_store

    with open_store(store) as s:
        key, secret = accounts.create_key(s, username, name)
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
    from corridor.store import open_store

    with open_store(store) as s:
        keys = accounts.list_keys(s, username)
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
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key id (or the whole key)")],
    store: StoreOpt = None,
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    from corridor.auth import accounts
    from corridor.store import open_store

    with open_store(store) as s:
        accounts.revoke_key(s, key_id)
    console.print(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
