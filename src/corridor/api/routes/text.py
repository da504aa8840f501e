"""``/api/v1/text/themes``, ``/text/comments`` and the theme edits: the voice of the customer's
listings, read from the stored text analysis; thin.

The text analyses themselves (``/text/sentiment``, ``/text/intents``, ``/text/sources``,
``/text/themes/stats``) are generated from the registry (:mod:`corridor.api.analyses`). These two
listings declare their parameters the same way (:class:`~corridor.analytics.core.registry.Param`,
read and documented by the same code), narrowed to the caller's scope. Renaming and merging
themes needs an admin or analyst.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from corridor.analytics.core.registry import DIMENSION_NAMES, Analysis, Param
from corridor.analytics.feedback import text as queries
from corridor.api.analyses import openapi_parameters, query_lists
from corridor.api.deps import AnalystScopeDep, StoreDep, WriterScopeDep
from corridor.api.errors import error_responses
from corridor.store import Store
from corridor.text import themestore

router = APIRouter(prefix="/api/v1/text", tags=["voice of the customer"])

_Route = Callable[..., Awaitable[Response]]


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


def _listing(name: str, *params: Param) -> Analysis:
    """A listing's parameters, declared like an analysis' (not an analysis: no registry entry)."""
    return Analysis(
        name, name, _listing, path="", description="", since=False, until=False,
        confidence=False, params=params, filters=DIMENSION_NAMES,
    )  # fmt: skip


THEMES = _listing("themes", Param("all", "bool", False, "also list retired themes"))
COMMENTS = _listing("comments", Param("limit", "int", 20, "how many, newest first", ge=1, le=1000))


class ThemeRow(BaseModel):
    """A theme with its size and sentiment within the caller's scope."""

    model_config = ConfigDict(extra="allow")
    theme_id: str
    label: str | None = None
    keywords: Any = Field(None, description="the words that characterise it")
    model: str | None = Field(None, description="how it was found")
    renamed: bool | None = Field(None, description="an analyst named it")
    merged_into: str | None = Field(None, description="the theme it was merged into")
    created_at: str | None = None
    retired_at: str | None = None
    n: int | None = Field(None, description="analysed texts with the theme")
    share: float | None = Field(None, description="share of the analysed texts")
    share_low: float | None = None
    share_high: float | None = None
    mean_sentiment: float | None = None
    mean_sentiment_low: float | None = None
    mean_sentiment_high: float | None = None


class ThemesReply(BaseModel):
    themes: list[ThemeRow]
    n: int = Field(description="analysed texts counted (merged themes once)")


class Comment(BaseModel):
    """One analysed feedback text, redacted."""

    model_config = ConfigDict(extra="allow")
    feedback_id: str
    occurred_at: datetime | None = None
    touchpoint: str | None = None
    source: str | None = None
    text: str | None = Field(None, description="the text, personal data redacted")
    sentiment: float | None = Field(None, description="−1 … +1")
    sentiment_label: str | None = None
    intent: str | None = None
    emotions: list[str] | None = None
    theme: str | None = None
    theme_label: str | None = None


class CommentsReply(BaseModel):
    n: int = Field(description="comments in the reply")
    comments: list[Comment]


def _read(listing: Analysis, request: Request) -> dict[str, Any]:
    return listing.parse(query_lists(request))


def _get_listing(
    path: str, listing: Analysis, reply: type[BaseModel], summary: str
) -> Callable[[_Route], _Route]:
    """Declare a listing's route: ``reply`` on success, its parameters documented from
    ``listing`` (they are read from the query string by :func:`_read`, not by FastAPI)."""
    return router.get(
        path,
        responses={200: {"model": reply, "description": summary}, **error_responses(401, 403, 422)},
        summary=summary,
        openapi_extra={"parameters": openapi_parameters(listing)},
    )


@_get_listing("/themes", THEMES, ThemesReply, "Themes")
async def themes(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """The themes (id, label, keywords, merges) with their size, share of the analysed texts
    and mean sentiment (with 95 % intervals) within the caller's scope. `all=true` also lists
    retired themes; filters per dimension narrow the texts counted."""
    given = _read(THEMES, request)
    restricted = scope.restrict(given.get("filters"))
    body = await anyio.to_thread.run_sync(_themes, store, restricted, bool(given.get("all")))
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


@_get_listing("/comments", COMMENTS, CommentsReply, "Recent comments")
async def comments(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """The latest redacted feedback texts with sentiment, intent, emotions and theme, newest
    first. `limit` (1…1000, default 20) and filters per dimension."""
    given = _read(COMMENTS, request)
    limit = int(given.get("limit") or 20)
    restricted = scope.restrict(given.get("filters"))

    def run() -> list[dict[str, Any]]:
        with store.reading():
            return queries.recent_comments(store, None, limit, restricted)

    rows = await anyio.to_thread.run_sync(run)
    return _json({"n": len(rows), "comments": rows})
