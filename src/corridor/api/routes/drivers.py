"""``GET /api/v1/drivers``, ``/api/v1/journeys``, ``/api/v1/wallet``: key drivers, journeys and
share of wallet, thin.

Common query parameters as for the other analyses: ``by`` (repeat or comma-separate), ``since``
/ ``until`` (ISO-8601), ``confidence``, and a filter per dimension named after it
(``segment=consumer``; an empty value selects records without one). Each route adds its own
(listed on it); anything else is refused with the list of what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from corridor.analytics.core.dimensions import DIMENSIONS
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.customers.drivers import DRIVER_KINDS, OUTCOMES, driver_table
from corridor.analytics.customers.journeys import LEVELS, VIEWS, journey_table
from corridor.analytics.customers.wallet import wallet_table
from corridor.api import numbers
from corridor.api.deps import AnalystScopeDep, StoreDep
from corridor.api.errors import error_responses
from corridor.api.routes.analytics import _read_lock
from corridor.auth.scope import Scope
from corridor.store import Store

router = APIRouter(prefix="/api/v1", tags=["drivers and journeys"])

COMMON = ("by", "since", "until", "confidence")
#: extra parameters per route: name → (kind, default); kind "str", "list" or "int"
EXTRA: dict[str, dict[str, tuple[str, Any]]] = {
    "drivers": {
        "outcome": ("str", "nps"),
        "drivers": ("str", "touchpoint"),
        "select": ("list", None),
        "bootstrap": ("int", 200),
        "seed": ("int", 0),
        "min_n": ("int", 30),
    },
    "journeys": {
        "view": ("str", "paths"),
        "level": ("str", "touchpoint"),
        "conversion": ("list", ["purchase"]),
        "max_length": ("int", 8),
        "limit": ("int", 20),
        "bootstrap": ("int", 200),
        "seed": ("int", 0),
    },
    "wallet": {},
}


def _split(values: list[str]) -> list[str]:
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


def parse(request: Request, name: str) -> dict[str, Any]:
    """The parameters of a request to route ``name``; unknown ones are refused."""
    q = request.query_params
    extra = EXTRA[name]
    unknown = [k for k in q if k not in COMMON and k not in extra and k not in DIMENSIONS]
    if unknown:
        raise AnalyticsQueryError(
            f"unknown query parameter(s) {', '.join(sorted(set(unknown)))}; allowed: "
            f"{', '.join((*COMMON, *extra))}, or a filter named after a dimension: "
            f"{', '.join(DIMENSIONS)}"
        )
    params: dict[str, Any] = {
        "filters": {
            d: [v.strip() or None for raw in q.getlist(d) for v in raw.split(",")]
            for d in dict.fromkeys(k for k in q if k in DIMENSIONS)
        }
        or None,
        "since": q.get("since") or None,
        "until": q.get("until") or None,
    }
    by = _split(q.getlist("by"))
    if by:
        params["by"] = by
    params["confidence"] = numbers.confidence(q.get("confidence"))
    for key, (kind, default) in extra.items():
        if key not in q:
            params[key] = default
        elif kind == "list":
            params[key] = _split(q.getlist(key)) or default
        elif kind == "int":
            params[key] = numbers.whole_number(q[key], key, default)
        else:
            params[key] = q[key]
    return params


def _run(
    store: Store, name: str, run: Callable[..., AnalyticsResult], params: dict[str, Any]
) -> dict[str, Any]:
    with _read_lock(store):
        result = run(store, **params)
    return {"analysis": name, **result.metadata(), "rows": result.to_records()}


async def _answer(
    request: Request,
    store: Store,
    scope: Scope,
    name: str,
    run: Callable[..., AnalyticsResult],
) -> Response:
    params = parse(request, name)
    params["filters"] = scope.restrict(params["filters"])
    if "select" in params and params["select"] and params.get("drivers") != "facet":
        hidden = [t for t in params["select"] if not scope.sees_touchpoint(t)]
        if hidden:
            scope.restrict({"touchpoint": hidden})  # refuses with the scope's 403 message
    body = await anyio.to_thread.run_sync(_run, store, name, run, params)
    return Response(orjson.dumps(body), media_type="application/json")


DRIVERS_DOC = (
    "Which touch-point gaps (or facets) drive an outcome: relative weights and LMG shares of "
    "R² with bootstrap intervals, and the importance × performance quadrant of each driver.\n\n"
    f"Parameters: `outcome` ({', '.join(OUTCOMES)}), `drivers` ({', '.join(DRIVER_KINDS)}), "
    "`select` (driver names, at most 15), `bootstrap` (resamples, 20–10000), `seed`, `min_n`, "
    "and the common ones."
)
JOURNEYS_DOC = (
    "Customer journeys: top paths, directly-follows transitions, stage drop-off and time "
    "between stages, or Markov removal-effect attribution of conversions.\n\n"
    f"Parameters: `view` ({', '.join(VIEWS)}), `level` ({', '.join(LEVELS)}), `conversion` "
    "(interaction outcomes that count as converting; default purchase), `max_length`, "
    "`limit`, `bootstrap`, `seed`, and the common ones (no `by`)."
)
WALLET_DOC = (
    "Share of wallet by the Wallet Allocation Rule from customers' brand rankings "
    "(`brand_rank`, `brands_used` feedback columns), per segment unless `by` says otherwise."
)
_ERRORS = error_responses(401, 403, 422)


@router.get("/drivers", responses=_ERRORS, summary="Key drivers", description=DRIVERS_DOC)
async def drivers(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    return await _answer(request, store, scope, "drivers", driver_table)


@router.get("/journeys", responses=_ERRORS, summary="Journeys", description=JOURNEYS_DOC)
async def journeys(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    return await _answer(request, store, scope, "journeys", journey_table)


@router.get("/wallet", responses=_ERRORS, summary="Share of wallet", description=WALLET_DOC)
async def wallet(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    return await _answer(request, store, scope, "wallet", wallet_table)
