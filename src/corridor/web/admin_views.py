"""The admin page, ``/admin``: users and API keys, managed through the running server.

Server-rendered forms, no script: add a user, remove one, create a key (its secret is shown on
the reply page, once), revoke one. Removing and revoking ask for confirmation on a page of their
own first. Only admins may open any of it; others get a page saying so. A form post is guarded
against other sites like every other write (the request-forgery guard checks its ``Origin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Unpack

import anyio.to_thread
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import URL

from corridor.auth import accounts
from corridor.auth.scope import ROLE_HELP, ROLES, Role, Scope
from corridor.errors import AccountError
from corridor.ingest.pipeline import Ingestor
from corridor.store import Store
from corridor.web.replies import Outcome, told
from corridor.web.routes import Answered, _home_for, _scope, render

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class AdminRequest:
    """What an admin page is made from: the request, the admin's scope and the store."""

    request: Request
    scope: Scope
    store: Store

    def show(self, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        """``template`` rendered for the admin, with ``ctx``."""
        return render(self.request, template, status, self.scope, **ctx)


async def _admin(request: Request) -> AdminRequest:
    """The admin's request; else :class:`~corridor.web.routes.Answered` with the sign-in
    redirect, or a 403 page for another role."""
    scope = await _scope(request, back="/admin")
    if isinstance(scope, Response):
        raise Answered(scope)
    if scope.role is Role.ADMIN:
        return AdminRequest(request, scope, request.app.state.store)
    principal = scope.principal
    raise Answered(
        render(
            request,
            "error.html",
            status=403,
            scope=scope,
            title="Admins only",
            message=f"{principal.username} ({principal.label}) may not manage users and API "
            "keys; only an admin may. Ask one to make the change.",
            home=_home_for(principal),
        )
    )


#: an admin page's request: anyone else gets the sign-in redirect or a page saying admins only
AdminDep = Annotated[AdminRequest, Depends(_admin)]


def _listing(store: Store, cmap_departments: list[str]) -> dict[str, Any]:
    return {
        "users": accounts.list_users(store),
        "keys": accounts.list_keys(store),
        "departments": cmap_departments,
    }


async def _page(
    admin: AdminRequest,
    *,
    created: tuple[accounts.ApiKey, str] | None = None,
    **outcome: Unpack[Outcome],
) -> HTMLResponse:
    ingestor: Ingestor = admin.request.app.state.ingestor
    cmap = ingestor.corridor_map
    depts = sorted({t.department for t in cmap.touchpoints}) if cmap else []
    data = await anyio.to_thread.run_sync(_listing, admin.store, depts)
    status, shown = told(outcome)
    return admin.show(
        "admin.html",
        status,
        roles=ROLES,
        role_help={r.value: h for r, h in ROLE_HELP.items()},
        **shown,
        created=created,
        min_password=accounts.MIN_PASSWORD,
        **data,
    )


async def _missing(admin: AdminRequest, what: str, value: str) -> HTMLResponse:
    """The admin page again, with a 404: there is no ``what`` ``value``."""
    return await _page(admin, status=404, error=f"No {what} {value!r}; the list below is current.")


def _confirm(
    admin: AdminRequest,
    verb: str,
    what: str,
    value: str,
    message: str,
    *,
    action: str,
    field: str,
) -> HTMLResponse:
    """The page that asks before ``verb`` (Remove, Revoke) the ``what`` ``value``: its button
    posts ``field=value`` with ``confirm=yes`` to ``action``."""
    return admin.show(
        "admin_confirm.html",
        title=f"{verb} {what} {value}?",
        message=message,
        action=action,
        field=field,
        value=value,
        button=f"{verb} {value}",
    )


def _done(**params: str) -> RedirectResponse:
    return RedirectResponse(str(URL("/admin").include_query_params(**params)), status_code=303)


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(
    admin: AdminDep,
    added: str = "",
    removed: str = "",
    revoked: str = "",
) -> Response:
    notice = None
    if added:
        notice = f"Added user {added}."
    elif removed:
        notice = f"Removed user {removed}: their API keys are revoked and their sessions ended."
    elif revoked:
        notice = f"Revoked API key {revoked}: requests with it are refused from now on."
    return await _page(admin, notice=notice)


@router.post("/admin/users", response_class=HTMLResponse)
async def admin_add_user(
    admin: AdminDep,
    username: str = Form(""),
    role: str = Form(""),
    password: str = Form(""),
    department: str = Form(""),
    partner: str = Form(""),
) -> Response:
    form = {"username": username, "role": role, "department": department, "partner": partner}
    try:
        user = await anyio.to_thread.run_sync(
            lambda: accounts.add_user(
                admin.store,
                username.strip(),
                password,
                role,
                department=department.strip() or None,
                partner=partner.strip() or None,
            )
        )
    except AccountError as e:
        return await _page(
            admin, status=422, error=f"User not added: {e}.", form={**form, "for": "user"}
        )
    return _done(added=user.username)


@router.post("/admin/users/remove", response_class=HTMLResponse)
async def admin_remove_user(
    admin: AdminDep, username: str = Form(""), confirm: str = Form("")
) -> Response:
    if username == admin.scope.principal.username:
        return await _page(
            admin,
            status=422,
            error=f"You cannot remove yourself ({username}): you would lose access at once; "
            "another admin can remove you.",
        )
    user = await anyio.to_thread.run_sync(accounts.get_user, admin.store, username)
    if user is None:
        return await _missing(admin, "user", username)
    if confirm != "yes":
        keys = await anyio.to_thread.run_sync(accounts.list_keys, admin.store, username)
        live = sum(1 for k in keys if k.revoked_at is None)
        return _confirm(
            admin,
            "Remove",
            "user",
            username,
            f"{username} ({user.principal().label}) will be removed, their {live} live API "
            "key(s) revoked and their sessions ended, at once. This cannot be undone (you can "
            "add the user again, with new keys).",
            action="/admin/users/remove",
            field="username",
        )
    try:
        await anyio.to_thread.run_sync(accounts.remove_user, admin.store, username)
    except AccountError as e:  # removed in between
        return await _page(admin, status=404, error=f"{e}.")
    return _done(removed=username)


@router.post("/admin/keys", response_class=HTMLResponse)
async def admin_create_key(
    admin: AdminDep, username: str = Form(""), name: str = Form("")
) -> Response:
    try:
        created = await anyio.to_thread.run_sync(
            accounts.create_key, admin.store, username, name.strip() or None
        )
    except AccountError as e:
        return await _page(
            admin,
            status=422,
            error=f"No key created: {e}.",
            form={"key_user": username, "key_name": name, "for": "key"},
        )
    return await _page(admin, created=created)


@router.post("/admin/keys/revoke", response_class=HTMLResponse)
async def admin_revoke_key(
    admin: AdminDep, key_id: str = Form(""), confirm: str = Form("")
) -> Response:
    key = await anyio.to_thread.run_sync(accounts.get_key, admin.store, key_id)
    if key is None:
        return await _missing(admin, "API key", key_id)
    if confirm != "yes":
        return _confirm(
            admin,
            "Revoke",
            "API key",
            key.key_id,
            f"Key {key.key_id} of {key.username}"
            + (f" ({key.name})" if key.name else "")
            + " will be refused from the next request on. This cannot be undone (create a new "
            "key instead).",
            action="/admin/keys/revoke",
            field="key_id",
        )
    await anyio.to_thread.run_sync(accounts.revoke_key, admin.store, key.key_id)
    return _done(revoked=key.key_id)
