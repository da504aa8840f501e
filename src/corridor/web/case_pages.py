"""The closed loop's pages: the case inbox (``/cases``), one case (``/cases/{id}``) with the
forms that work it, and the rules page (``/rules``) with its dry runs.

Every page reads through :mod:`corridor.loop` with the signed-in user's scope: a case outside
it answers the same 404 page as an unknown id, for reading and for every form alike; an agent
sees the open cases of customers, read only (their forms answer 403). Forms post to the page's
own server, which the request-forgery guard checks by ``Origin`` like every other write, and
answer with a redirect back to the case (post/redirect/get), or the page again with what was
wrong (422).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import URL

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.auth.scope import Scope
from corridor.errors import PermissionDeniedError
from corridor.loop import cases, rules
from corridor.loop.cases import CaseError, CaseNotFoundError
from corridor.loop.rules import RuleError, RuleNotFoundError
from corridor.store import Store
from corridor.web import case_views, rule_views
from corridor.web.replies import Outcome, told
from corridor.web.routes import _home_for, _scope, _signed_in, render

router = APIRouter(include_in_schema=False)

DONE = {
    "assigned": "Assignment saved.",
    "note": "Note added.",
    "state": "State changed.",
    "priority": "Priority changed.",
}


def _refused(request: Request, scope: Scope, status: int, title: str, message: str) -> Response:
    return render(
        request,
        "error.html",
        status=status,
        scope=scope,
        title=title,
        message=message,
        home=_home_for(scope.principal),
    )


def _no_case(request: Request, scope: Scope, case_id: str) -> Response:
    """The one 404 page of a case that does not exist or that the user may not see."""
    return _refused(
        request,
        scope,
        404,
        "No such case",
        f"There is no case {case_id!r} in your view. The case inbox (/cases) lists the cases "
        "you can see.",
    )


async def _show(
    request: Request,
    template: str,
    build: Callable[[Store, Scope, Any], dict[str, Any]],
    *,
    analyses: bool = False,
    status: int = 200,
    **ctx: Any,
) -> Response:
    """Sign-in first; run ``build(store, scope, cmap)`` off the event loop and render it; the
    loop's errors become pages that say what to do."""
    found = await _signed_in(request)
    if isinstance(found, Response):
        return found
    scope, store, cmap = found

    def work() -> dict[str, Any]:
        if analyses:
            scope.require_analyst_views()
        with store.reading():
            return build(store, scope, cmap)

    try:
        data = await anyio.to_thread.run_sync(work)
    except CaseNotFoundError:
        return _no_case(request, scope, request.path_params.get("case_id", ""))
    except RuleNotFoundError as e:
        return _refused(request, scope, 404, "No such rule", f"{e}; the rules page lists them.")
    except PermissionDeniedError as e:
        return _refused(request, scope, 403, "Not in your view", str(e))
    except (CaseError, RuleError, AnalyticsQueryError) as e:
        return _refused(request, scope, 422, "Cannot show that", str(e))
    return render(request, template, status=status, scope=scope, **ctx, **data)


# -- the inbox --------------------------------------------------------------------------------
@router.get("/cases", response_class=HTMLResponse)
async def inbox(
    request: Request,
    state: str = "",
    priority: str = "",
    touchpoint: str = "",
    mine: str = "",
    sla: str = "",
    page: int = 0,
) -> Response:
    def build(store: Store, scope: Scope, cmap: Any) -> dict[str, Any]:
        return case_views.inbox(
            store,
            scope,
            cmap,
            state=state,
            priority=priority,
            touchpoint=touchpoint,
            mine=mine == "yes",
            sla_state=sla,
            page=page,
        )

    def link(**changes: Any) -> str:
        """This inbox with ``changes`` to its query (the other filters kept)."""
        params = {**request.query_params, **changes}
        return str(URL(request.url.path).include_query_params(**params))

    return await _show(request, "cases.html", build, link=link)


# -- one case ---------------------------------------------------------------------------------
async def _case(
    request: Request,
    case_id: str,
    *,
    status: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    done = request.query_params.get("done", "")

    def build(store: Store, scope: Scope, cmap: Any) -> dict[str, Any]:
        return case_views.case_page(store, scope, cmap, case_id, models=request.app.state.models)

    return await _show(
        request,
        "case.html",
        build,
        status=status,
        error=error,
        notice=DONE.get(done) if error is None else None,
        form=form or {},
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_page(request: Request, case_id: str) -> Response:
    return await _case(request, case_id)


async def _act(
    request: Request,
    case_id: str,
    done: str,
    change: Callable[[Store, Scope], object],
    form: dict[str, str],
) -> Response:
    """Make one change to a case as the signed-in user, then back to the case page."""
    scope = await _scope(request, back=f"/cases/{quote(case_id)}")
    if isinstance(scope, Response):
        return scope
    store: Store = request.app.state.store
    try:
        await anyio.to_thread.run_sync(change, store, scope)
    except CaseNotFoundError:
        return _no_case(request, scope, case_id)
    except PermissionDeniedError as e:
        return _refused(request, scope, 403, "Read only", str(e))
    except CaseError as e:
        return await _case(request, case_id, status=422, error=f"Not saved: {e}.", form=form)
    target = URL(f"/cases/{quote(case_id)}").include_query_params(done=done)
    return RedirectResponse(str(target), status_code=303)


@router.post("/cases/{case_id}/assign", response_class=HTMLResponse)
async def assign(request: Request, case_id: str, assignee: str = Form("me")) -> Response:
    def change(store: Store, scope: Scope) -> object:
        who = {"me": scope.principal.username, "nobody": None}.get(assignee, assignee)
        return cases.assign(store, scope, case_id, who)

    return await _act(request, case_id, "assigned", change, {"assignee": assignee})


@router.post("/cases/{case_id}/notes", response_class=HTMLResponse)
async def add_note(request: Request, case_id: str, text: str = Form("")) -> Response:
    def change(store: Store, scope: Scope) -> object:
        return cases.add_note(store, scope, case_id, text)

    return await _act(request, case_id, "note", change, {"text": text})


@router.post("/cases/{case_id}/state", response_class=HTMLResponse)
async def change_state(
    request: Request,
    case_id: str,
    state: str = Form(""),
    root_cause: str = Form(""),
    note: str = Form(""),
) -> Response:
    def change(store: Store, scope: Scope) -> object:
        return cases.change_state(
            store,
            scope,
            case_id,
            state,
            root_cause=root_cause or None,
            note=note.strip() or None,
        )

    form = {"state": state, "root_cause": root_cause, "state_note": note}
    return await _act(request, case_id, "state", change, form)


@router.post("/cases/{case_id}/priority", response_class=HTMLResponse)
async def change_priority(request: Request, case_id: str, priority: str = Form("")) -> Response:
    def change(store: Store, scope: Scope) -> object:
        return cases.set_priority(store, scope, case_id, priority)

    return await _act(request, case_id, "priority", change, {"priority": priority})


# -- rules ------------------------------------------------------------------------------------
async def _rules(request: Request, **outcome: Unpack[Outcome]) -> Response:
    status, shown = told(outcome)
    return await _show(
        request,
        "rules.html",
        lambda store, scope, cmap: rule_views.rules_page(store, scope),
        analyses=True,
        status=status,
        **shown,
    )


@router.get("/rules", response_class=HTMLResponse)
async def rules_page(request: Request, added: str = "", disabled: str = "") -> Response:
    notice = None
    if added:
        notice = f"Added rule {added}: it fires from now on."
    elif disabled:
        notice = f"Disabled rule {disabled}: it fires no more; its alerts and cases stay."
    return await _rules(request, notice=notice)


async def _writer(request: Request) -> Scope | Response:
    """An admin's or analyst's scope; else the sign-in redirect or a 403 page."""
    scope = await _scope(request, back="/rules")
    if isinstance(scope, Response) or scope.may_write:
        return scope
    p = scope.principal
    return _refused(
        request,
        scope,
        403,
        "Read only",
        f"{p.username} ({p.label}) may read the rules but not change them; an admin or "
        "analyst may.",
    )


@router.post("/rules", response_class=HTMLResponse)
async def add_rule(request: Request) -> Response:
    scope = await _writer(request)
    if isinstance(scope, Response):
        return scope
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    store: Store = request.app.state.store

    def add() -> rules.Rule:
        return rules.add_rule(
            store, rule_views.rule_from_form(form), actor=scope.principal.username
        )

    try:
        rule = await anyio.to_thread.run_sync(add)
    except RuleError as e:
        return await _rules(request, status=422, error=f"Rule not added: {e}.", form=form)
    return RedirectResponse(
        str(URL("/rules").include_query_params(added=rule.rule_id)), status_code=303
    )


@router.post("/rules/{rule_id}/disable", response_class=HTMLResponse)
async def disable_rule(request: Request, rule_id: str, confirm: str = Form("")) -> Response:
    scope = await _writer(request)
    if isinstance(scope, Response):
        return scope
    store: Store = request.app.state.store
    try:
        rule = await anyio.to_thread.run_sync(rules.get_rule, store, rule_id)
        if confirm != "yes":
            return render(
                request,
                "admin_confirm.html",
                scope=scope,
                title=f"Disable rule {rule.rule_id}?",
                message=f"{rule.rule_id} ({rule.describe()}) will fire no more, from now on. "
                "Its alerts and cases stay. A rule cannot be enabled again; add a new one "
                "instead.",
                action=f"/rules/{quote(rule.rule_id)}/disable",
                field="rule_id",
                value=rule.rule_id,
                button=f"Disable {rule.rule_id}",
                cancel="/rules",
            )
        await anyio.to_thread.run_sync(
            lambda: rules.disable_rule(store, rule_id, actor=scope.principal.username)
        )
    except RuleNotFoundError as e:
        return await _rules(request, status=404, error=f"{e}.")
    return RedirectResponse(
        str(URL("/rules").include_query_params(disabled=rule_id)), status_code=303
    )


@router.get("/rules/{rule_id}/test", response_class=HTMLResponse)
async def test_rule(request: Request, rule_id: str, since: str = "", until: str = "") -> Response:
    return await _show(
        request,
        "rule_test.html",
        lambda store, scope, cmap: rule_views.test_page(
            store, scope, rule_id, since or None, until or None
        ),
        analyses=True,
    )
