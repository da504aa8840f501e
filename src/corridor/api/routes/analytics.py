"""``GET /api/v1/gaps``, ``/api/v1/metrics/{nps,csat,ces}``: analyses by name, thin.

Query parameters: ``by`` (repeat it, or comma-separate: ``by=touchpoint,region``), ``period``
(day, week, month, quarter), ``since`` / ``until`` (ISO-8601; since inclusive, until exclusive),
``confidence`` (default 0.95), and a filter per dimension named after it
(``region=north&channel=web,app``; an empty value selects records without one). Anything else is
refused with the list of what is allowed.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from corridor.analytics.core.catalog import ANALYSES, Analysis
from corridor.analytics.core.dimensions import DIMENSIONS, PERIODS
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.api import numbers
from corridor.api.deps import AnalystScopeDep, StoreDep
from corridor.api.errors import error_responses
from corridor.store import Store

router = APIRouter(prefix="/api/v1", tags=["analytics"])

PARAMS = ("by", "period", "since", "until", "confidence")
PATHS = {
    "gaps": "/gaps",
    "nps": "/metrics/nps",
    "csat": "/metrics/csat",
    "ces": "/metrics/ces",
    "promises": "/promises",
    "drift": "/drift",
    "facets": "/facets",
    "sources": "/facets/sources",
}

# One reader at a time per store connection: DuckDB connections are not shared across threads.
_read_locks: dict[int, threading.Lock] = {}


def _read_lock(store: Store) -> threading.Lock:
    return _read_locks.setdefault(id(store), threading.Lock())


def parse_query(request: Request) -> dict[str, Any]:
    """The analysis parameters of a request; unknown parameters are refused, not ignored."""
    q = request.query_params
    unknown = [k for k in q if k not in PARAMS and k not in DIMENSIONS]
    if unknown:
        raise AnalyticsQueryError(
            f"unknown query parameter(s) {', '.join(sorted(set(unknown)))}; allowed: "
            f"{', '.join(PARAMS)}, or a filter named after a dimension: {', '.join(DIMENSIONS)}"
        )
    by = [b.strip() for v in q.getlist("by") for b in v.split(",") if b.strip()]
    filters = {
        name: [v.strip() or None for raw in q.getlist(name) for v in raw.split(",")]
        for name in dict.fromkeys(k for k in q if k in DIMENSIONS)
    }
    level = numbers.confidence(q.get("confidence"))
    return {
        "by": by or None,
        "period": q.get("period") or None,
        "filters": filters or None,
        "since": q.get("since") or None,
        "until": q.get("until") or None,
        "confidence": level,
    }


def run_analysis(store: Store, analysis: Analysis, params: dict[str, Any]) -> dict[str, Any]:
    with _read_lock(store):
        result = analysis(store, **params)
    return {
        "analysis": analysis.name,
        "title": analysis.title,
        **result.metadata(),
        "rows": result.to_records(),
    }


def _route(analysis: Analysis) -> Any:
    async def endpoint(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
        params = parse_query(request)
        params["filters"] = scope.restrict(params["filters"])
        body = await anyio.to_thread.run_sync(run_analysis, store, analysis, params)
        if scope.touchpoints is not None:
            # no rows of other departments' touch points (promises lists every promise of the
            # map, with n = 0 where the department filter leaves nothing)
            body["rows"] = [
                r
                for r in body["rows"]
                if "touchpoint" not in r or scope.sees_touchpoint(r["touchpoint"])
            ]
        return Response(orjson.dumps(body), media_type="application/json")

    endpoint.__name__ = f"analysis_{analysis.name}"
    endpoint.__doc__ = (
        f"{analysis.title}, per grouping and period, with n and "
        "intervals.\n\nQuery parameters: `by` (repeat or comma-separate; one of "
        f"{', '.join(DIMENSIONS)}), `period` ({', '.join(PERIODS)}), `since`/`until` "
        "(ISO-8601), `confidence`, and a filter per dimension, e.g. `region=north`."
    )
    return endpoint


for _name, _path in PATHS.items():
    router.add_api_route(
        _path,
        _route(ANALYSES[_name]),
        methods=["GET"],
        responses=error_responses(401, 403, 422),
        summary=ANALYSES[_name].title,
    )
