"""The privacy page, ``/admin/privacy``: a data subject's request answered by an admin.

Find the person (by id, e-mail, phone or CRM id) and see what an erase or anonymise would touch
(rows per part, nothing personal beyond what the admin typed); download their archive; erase or
anonymise them (a confirmation page first); the privacy settings; the latest requests and audit
log lines. Admins only, like the users page; a form post is guarded like every other write.
"""

from __future__ import annotations

from typing import Any, Unpack

import anyio.to_thread
from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import URL

from corridor.errors import CorridorError
from corridor.privacy import audit, requests, settings
from corridor.privacy.subject import find_group
from corridor.store import Store
from corridor.web.admin_views import AdminDep, AdminRequest
from corridor.web.replies import Outcome, told

router = APIRouter(include_in_schema=False)

BYS = {"person_id": "person id", "email": "e-mail", "phone": "phone", "crm_id": "CRM id"}


def _overview(store: Store) -> dict[str, Any]:
    lines, total = audit.latest(store, limit=30)
    return {
        "settings": settings.read_settings(store),
        "recent": requests.requests_list(store, limit=20),
        "audit": lines,
        "audit_total": total,
    }


async def _page(
    admin: AdminRequest,
    *,
    ref: str = "",
    by: str = "person_id",
    preview: dict[str, Any] | None = None,
    **outcome: Unpack[Outcome],
) -> HTMLResponse:
    data = await anyio.to_thread.run_sync(_overview, admin.store)
    status, shown = told(outcome)
    return admin.show(
        "privacy.html",
        status,
        **shown,
        ref=ref,
        by=by,
        bys=BYS,
        preview=preview,
        retention=settings.RETENTION,
        **data,
    )


def _actor(admin: AdminRequest) -> audit.Actor:
    client = admin.request.client
    return audit.Actor(admin.scope.principal.username, "user", client.host if client else None)


@router.get("/admin/privacy", response_class=HTMLResponse)
async def privacy_page(admin: AdminDep, ref: str = "", by: str = "person_id") -> Response:
    if not ref.strip():
        return await _page(admin)
    ref = ref.strip()[:300]
    by = by if by in BYS else "person_id"
    value = ref.lower() if by == "email" else ref
    try:
        group = await anyio.to_thread.run_sync(lambda: find_group(admin.store, value, by=by))
        shown = await anyio.to_thread.run_sync(requests.preview, admin.store, group)
    except CorridorError as e:
        return await _page(admin, status=404, error=str(e), ref=ref, by=by)
    shown["canonical"] = group.canonical
    shown["members"] = list(group.persons)
    return await _page(admin, ref=ref, by=by, preview=shown)


@router.post("/admin/privacy/request", response_class=HTMLResponse)
async def privacy_request(
    admin: AdminDep, person_id: str = Form(""), action: str = Form(""), confirm: str = Form("")
) -> Response:
    if action not in requests.ACTIONS or not person_id:
        return await _page(admin, status=422, error="Choose a person and erase or anonymise.")
    if confirm != "yes":
        verb = "Erase" if action == "erase" else "Anonymise"
        return admin.show(
            "admin_confirm.html",
            title=f"{verb} {person_id} and everyone merged into them?",
            message="This cannot be undone. Erase removes every record; anonymise keeps the "
            "records under a random id for aggregates and removes every identifier and text. "
            "Either way the identities' salted hashes are kept so the person is not silently "
            "brought back, and the action is logged.",
            action="/admin/privacy/request",
            field="person_id",
            value=person_id,
            extra={"action": action},
            button=f"{verb} {person_id}",
            cancel=str(URL("/admin/privacy").include_query_params(ref=person_id)),
        )
    actor = _actor(admin)
    try:
        out = await anyio.to_thread.run_sync(
            lambda: requests.request(admin.store, person_id, action, actor=actor)  # type: ignore[arg-type]
        )
    except CorridorError as e:
        return await _page(admin, status=404, error=str(e))
    rows = sum(out["removed"].values())
    done = str(out.get("action") or action)  # (an earlier request's: asked again, it may differ)
    notice = (
        f"{person_id} had been {done}d already (request {out['request_id']})."
        if out["already"]
        else f"Done: {done} of {person_id}, {rows} rows (request {out['request_id']}). "
        "Run `corridor people compact` in a quiet moment to remove the old bytes from the "
        "store's files."
    )
    return await _page(admin, notice=notice)
