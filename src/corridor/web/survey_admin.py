"""``/admin/surveys``: the surveys loaded, their versions, touch points, languages and links,
for admins and analysts (read only: surveys are loaded with ``corridor surveys load`` or
``PUT /api/v1/surveys/{id}``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from corridor.store import Store
from corridor.surveys import catalog
from corridor.web.routes import _home_for, _scope, render

router = APIRouter(include_in_schema=False)


def _listing(store: Store) -> list[dict[str, Any]]:
    counts = catalog.activity(store)
    out = []
    for s in catalog.list_all(store):
        sv = s.survey
        n_links, opened, submitted = counts.get(sv.id, (0, 0, 0))
        out.append(
            {
                "id": sv.id,
                "title": sv.t(sv.title, sv.fallback_language),
                "version": s.version,
                "touchpoints": ", ".join(sv.touchpoints),
                "languages": ", ".join(sv.languages),
                "questions": len(sv.questions),
                "pages": sv.pages,
                "links": n_links,
                "opened": opened,
                "submitted": submitted,
                "updated_at": f"{s.updated_at:%Y-%m-%d %H:%M}",
            }
        )
    return out


@router.get("/admin/surveys", response_class=HTMLResponse)
async def surveys_page(request: Request) -> Response:
    scope = await _scope(request)
    if isinstance(scope, Response):
        return scope
    if not scope.may_write:
        return render(
            request,
            "error.html",
            status=403,
            scope=scope,
            title="Admins and analysts only",
            message=f"{scope.principal.username} ({scope.principal.label}) may not manage "
            "surveys; an admin or analyst may.",
            home=_home_for(scope.principal),
        )
    store: Store = request.app.state.store
    found = await anyio.to_thread.run_sync(_listing, store)
    return render(request, "surveys.html", scope=scope, surveys=found)
