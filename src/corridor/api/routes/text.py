"""``/api/v1/text/…``: voice of the customer, read from the stored text analysis; thin.

GET routes take the analyses' query parameters (``by``, ``period``, ``since``, ``until``,
``confidence`` and a filter per dimension, see :mod:`corridor.api.routes.analytics`), narrowed
to the caller's scope. Renaming and merging themes needs an admin or analyst.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from corridor.analytics.core.dimensions import DIMENSIONS
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.feedback import text as queries
from corridor.api import numbers
from corridor.api.deps import AnalystScopeDep, StoreDep, WriterScopeDep
from corridor.api.errors import error_responses
from corridor.store import Store
from corridor.text import themestore

router = APIRouter(prefix="/api/v1/text", tags=["voice of the customer"])


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _themes(store: Store, filters: Any, include_retired: bool) -> dict[str, Any]:
    with store.reading():
        stats = {r["theme"]: r for r in queries.theme_summary(store, filters)}
        themes = themestore.list_themes(store, include_retired=include_retired)
    rows = []
    for t in themes:
        s = stats.get(t.theme_id, {})
        rows.append(
            t.as_dict()
            | {
                k: s.get(k)
                for k in (
                    "n",
                    "share",
                    "share_low",
                    "share_high",
                    "mean_sentiment",
                    "mean_sentiment_low",
                    "mean_sentiment_high",
                )
            }
        )
    rows.sort(key=lambda r: -(r["n"] or 0))
    return {"themes": rows, "n": sum(r["n"] or 0 for r in rows if r["merged_into"] is None)}


@router.get("/themes", responses=error_responses(401, 403, 422), summary="Themes")
async def themes(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """The themes (id, label, keywords, merges) with their size, share of the analysed texts
    and mean sentiment (with 95 % intervals) within the caller's scope. `all=true` also lists
    retired themes; filters per dimension narrow the texts counted."""
    q = request.query_params
    unknown = [k for k in q if k != "all" and k not in DIMENSIONS]
    if unknown:
        raise AnalyticsQueryError(
            f"unknown query parameter(s) {', '.join(sorted(set(unknown)))}; allowed: all, or a "
            f"filter named after a dimension: {', '.join(DIMENSIONS)}"
        )
    filters = {
        k: [v.strip() or None for raw in q.getlist(k) for v in raw.split(",")]
        for k in dict.fromkeys(k for k in q if k in DIMENSIONS)
    }
    restricted = scope.restrict(filters or None)
    body = await anyio.to_thread.run_sync(_themes, store, restricted, q.get("all") == "true")
    return _json(body)


class ThemeRename(BaseModel):
    label: str = Field(min_length=1, max_length=200, description="the analyst's name")


class ThemeMerge(BaseModel):
    themes: list[str] = Field(min_length=1, description="theme ids to merge")
    into: str = Field(description="the theme they become part of")
    label: str | None = Field(default=None, max_length=200, description="rename the target")


@router.patch(
    "/themes/{theme_id}", responses=error_responses(401, 403, 422), summary="Rename a theme"
)
async def rename_theme(
    theme_id: str, body: ThemeRename, store: StoreDep, scope: WriterScopeDep
) -> Response:
    """Give a theme an analyst's name; it persists, also across rediscovery."""
    theme = await anyio.to_thread.run_sync(themestore.rename_theme, store, theme_id, body.label)
    return _json(theme.as_dict())


@router.post("/themes/merge", responses=error_responses(401, 403, 422), summary="Merge themes")
async def merge_themes(body: ThemeMerge, store: StoreDep, scope: WriterScopeDep) -> Response:
    """Merge themes into another; their texts count under it from then on."""
    theme = await anyio.to_thread.run_sync(
        themestore.merge_themes, store, body.themes, body.into, body.label
    )
    return _json(theme.as_dict())


@router.get("/comments", responses=error_responses(401, 403, 422), summary="Recent comments")
async def comments(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """The latest redacted feedback texts with sentiment, intent, emotions and theme, newest
    first. `touchpoint`, `limit` (1…1000, default 20) and filters per dimension."""
    q = request.query_params
    unknown = [k for k in q if k not in ("limit",) and k not in DIMENSIONS]
    if unknown:
        raise AnalyticsQueryError(
            f"unknown query parameter(s) {', '.join(sorted(set(unknown)))}; allowed: limit, or a "
            f"filter named after a dimension: {', '.join(DIMENSIONS)}"
        )
    limit = numbers.whole_number(q.get("limit", "20"), "limit", 20)
    filters = {
        k: [v.strip() or None for raw in q.getlist(k) for v in raw.split(",")]
        for k in dict.fromkeys(k for k in q if k in DIMENSIONS)
    }
    restricted = scope.restrict(filters or None)

    def run() -> list[dict[str, Any]]:
        with store.reading():
            return queries.recent_comments(store, None, limit, restricted)

    rows = await anyio.to_thread.run_sync(run)
    return _json({"n": len(rows), "comments": rows})
