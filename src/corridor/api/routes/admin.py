"""Users and API keys, for admins, through the running server.

``GET/POST /api/v1/users``, ``DELETE /api/v1/users/{username}``, ``GET/POST /api/v1/keys``,
``DELETE /api/v1/keys/{key_id}``. While ``corridor serve`` holds an embedded store, no other
process can open it: these routes (and the admin page, and the CLI, which calls them through the
server's local credential) are how a leaked key is revoked without stopping the server. A revoked
key or removed user is refused from the next request on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

from corridor.api.declare import RouteDeclarer
from corridor.api.deps import ScopeDep, StoreDep
from corridor.auth import accounts
from corridor.auth.scope import ROLE_HELP, ROLES, Role, Scope
from corridor.errors import AccountError

router = APIRouter(prefix="/api/v1", tags=["users and API keys"])


async def get_admin_scope(scope: ScopeDep) -> Scope:
    """A scope that may manage users and API keys (admin only)."""
    scope.require_admin("manage users and API keys")
    return scope


AdminDep = Annotated[Scope, Depends(get_admin_scope)]


class UserOut(BaseModel):
    username: str = Field(description="the login name", examples=["lena"])
    role: Role = Field(description="what the user may see and do")
    department: str | None = Field(description="a department head's department")
    partner: str | None = Field(description="a partner manager's partner_id")
    created_at: datetime


class UserIn(BaseModel):
    username: str = Field(
        description="1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
        examples=["lena"],
    )
    password: str = Field(
        description=f"at least {accounts.MIN_PASSWORD} characters; stored as an argon2id hash",
        json_schema_extra={"writeOnly": True, "format": "password"},
    )
    role: str = Field(
        description="what the user may see and do: "
        + "; ".join(f"{r}: {h}" for r, h in ROLE_HELP.items()),
        json_schema_extra={"enum": list(ROLES)},
    )
    department: str | None = Field(
        default=None, description="required for a department_head, refused for other roles"
    )
    partner: str | None = Field(
        default=None, description="required for a partner_manager, refused for other roles"
    )


class KeyOut(BaseModel):
    key_id: str = Field(description="the key's public id (the part after cor_)")
    username: str = Field(description="the user the key acts as")
    name: str | None = Field(description="what the key is for")
    created_at: datetime
    revoked_at: datetime | None = Field(description="when it was revoked; null while live")


class KeyIn(BaseModel):
    username: str = Field(description="the user the key acts as", examples=["etl"])
    name: str | None = Field(default=None, max_length=200, description="what the key is for")


class KeyCreated(KeyOut):
    key: str = Field(
        description="the whole key, cor_<key_id>_<secret>: shown in this reply only (just its "
        "hash is stored); send it as 'Authorization: Bearer …'"
    )


def _user(u: accounts.User) -> UserOut:
    return UserOut.model_validate(u, from_attributes=True)


def _key(k: accounts.ApiKey) -> KeyOut:
    return KeyOut.model_validate(k, from_attributes=True)


#: an admin route: 401 and 403 (not an admin) and its own errors
_admin_route = RouteDeclarer(router, (401, 403), refuse_query="none")


def _no_user(username: str) -> HTTPException:
    return HTTPException(
        404, f"no user {username!r}; GET /api/v1/users lists them, POST /api/v1/users adds one"
    )


@_admin_route("GET", "/users", "List users", list[UserOut])
def list_users(store: StoreDep, scope: AdminDep) -> list[UserOut]:
    """Every user with their role and scope, by username. Admins only."""
    return [_user(u) for u in accounts.list_users(store)]


@_admin_route("POST", "/users", "Add a user", UserOut, 422, status_code=201)
def add_user(body: UserIn, store: StoreDep, scope: AdminDep) -> UserOut:
    """Create a user with a role; a department head needs ``department``, a partner manager
    ``partner``. A name that exists already, or a short password, is refused with 422."""
    user = accounts.add_user(
        store,
        body.username,
        body.password,
        body.role,
        department=body.department,
        partner=body.partner,
    )
    return _user(user)


@_admin_route("DELETE", "/users/{username}", "Remove a user", UserOut, 404, 422)
def remove_user(
    username: Annotated[str, Path(description="the user to remove")],
    store: StoreDep,
    scope: AdminDep,
) -> UserOut:
    """Remove a user: their API keys are revoked and their sessions end at once. Returns the
    user as it was. Admins cannot remove themselves (another admin can)."""
    if username == scope.principal.username:
        raise AccountError(
            f"you cannot remove yourself ({username}): you would lose access at once; another "
            "admin can remove you"
        )
    user = accounts.get_user(store, username)
    if user is None:
        raise _no_user(username)
    accounts.remove_user(store, username)
    return _user(user)


@_admin_route("GET", "/keys", "List API keys", list[KeyOut])
def list_keys(
    store: StoreDep,
    scope: AdminDep,
    user: Annotated[str | None, Query(description="only this user's keys")] = None,
) -> list[KeyOut]:
    """API key records, live and revoked (ids only; the keys themselves are never stored)."""
    return [_key(k) for k in accounts.list_keys(store, user)]


@_admin_route("POST", "/keys", "Create an API key", KeyCreated, 404, 422, status_code=201)
def create_key(body: KeyIn, store: StoreDep, scope: AdminDep) -> KeyCreated:
    """A new API key for a user. The reply holds the whole key, once; keep it safe."""
    if accounts.get_user(store, body.username) is None:
        raise _no_user(body.username)
    key, secret = accounts.create_key(store, body.username, body.name)
    return KeyCreated(**_key(key).model_dump(), key=secret)


@_admin_route("DELETE", "/keys/{key_id}", "Revoke an API key", KeyOut, 404)
def revoke_key(
    key_id: Annotated[str, Path(description="the key id (the part after cor_)")],
    store: StoreDep,
    scope: AdminDep,
) -> KeyOut:
    """Revoke an API key: every request with it is refused from now on. Revoking a revoked key
    changes nothing. Returns the key record with its ``revoked_at``."""
    if accounts.get_key(store, key_id) is None:
        raise HTTPException(404, f"no API key {key_id!r}; GET /api/v1/keys lists the key ids")
    accounts.revoke_key(store, key_id)
    found = accounts.get_key(store, key_id)
    assert found is not None
    return _key(found)
