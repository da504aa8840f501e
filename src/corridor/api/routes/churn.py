"""``GET /api/v1/churn/{survival,cox,risk}`` and ``/api/v1/lifetime[/people]``: churn and
customer lifetime, thin.

Common query parameters: ``until`` (ISO-8601, exclusive: the as-of time; default the last
interaction in the store), ``confidence`` (default 0.95), and filters named after
``segment``, ``region`` (the customer's) or ``touchpoint``, ``stage``, ``department``,
``channel``, ``partner``, ``agent`` (customers with at least one interaction there). Each route
adds its own (listed on it); anything else is refused with the list of what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.customers.churn import cox_table, person_risk, risk_table, survival_table
from corridor.analytics.customers.churn_people import ALLOWED_FILTERS
from corridor.analytics.customers.lifetime import lifetime_params, lifetime_table, person_value
from corridor.api import numbers
from corridor.api.deps import AnalystScopeDep, ScopeDep, StoreDep
from corridor.api.errors import error_responses
from corridor.api.routes.analytics import _read_lock
from corridor.api.routes.people import not_found, sees_person
from corridor.auth.scope import Scope
from corridor.store import Store

router = APIRouter(prefix="/api/v1", tags=["churn and lifetime"])

COMMON = ("until", "confidence")
#: extra parameters per route: name -> (kind, default); kind "str", "list", "int" or "float"
EXTRA: dict[str, dict[str, tuple[str, Any]]] = {
    "survival": {"by": ("list", ["segment"])},
    "cox": {"min_rated": ("int", 30)},
    "risk": {"horizon_months": ("float", 3.0), "min_rated": ("int", 30), "limit": ("int", 100)},
    "lifetime": {},
    "lifetime_people": {
        "horizon_months": ("float", 12.0),
        "discount_monthly": ("float", 0.01),
        "limit": ("int", 100),
    },
    "person_risk": {"horizon_months": ("float", 3.0)},
    "person_value": {"horizon_months": ("float", 12.0), "discount_monthly": ("float", 0.01)},
}
#: routes about one person take no filters or as-of time
_PERSON = ("person_risk", "person_value")


def _split(values: list[str]) -> list[str]:
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


def parse(request: Request, name: str) -> dict[str, Any]:
    """The parameters of a request to route ``name``; unknown ones are refused."""
    q = request.query_params
    extra = EXTRA[name]
    common = () if name in _PERSON else COMMON
    filters_ok = () if name in _PERSON else ALLOWED_FILTERS
    unknown = [k for k in q if k not in common and k not in extra and k not in filters_ok]
    if unknown:
        allowed = [*common, *extra]
        tail = f", or a filter named after {', '.join(filters_ok)}" if filters_ok else ""
        raise AnalyticsQueryError(
            f"unknown query parameter(s) {', '.join(sorted(set(unknown)))}; allowed: "
            f"{', '.join(allowed) or 'none'}{tail}"
        )
    params: dict[str, Any] = {}
    if name not in _PERSON:
        params["filters"] = {
            d: [v.strip() or None for raw in q.getlist(d) for v in raw.split(",")]
            for d in dict.fromkeys(k for k in q if k in ALLOWED_FILTERS)
        } or None
        params["until"] = q.get("until") or None
        params["confidence"] = numbers.confidence(q.get("confidence"))
    for key, (kind, default) in extra.items():
        if key not in q:
            params[key] = default
        elif kind == "list":  # given but empty (``by=``): none
            params[key] = _split(q.getlist(key))
        elif kind in ("int", "float"):
            typ = int if kind == "int" else float
            params[key] = numbers.parse_number(q[key], key, typ, default)
        else:
            params[key] = q[key]
    return params


def _run(
    store: Store,
    scope: Scope,
    name: str,
    run: Callable[..., AnalyticsResult],
    params: dict[str, Any],
) -> dict[str, Any]:
    with _read_lock(store):
        result = run(store, **params)
    body = {"analysis": name, **result.metadata(), "rows": result.to_records()}
    why = scope.reasons_withheld
    if name == "risk" and why is not None:  # as for one customer (Scope.shown_outlook)
        body["rows"] = [{k: v for k, v in r.items() if k != "reasons"} for r in body["rows"]]
        body["reasons_withheld"] = why
    return body


async def _answer(
    request: Request, store: Store, scope: Scope, name: str, run: Callable[..., AnalyticsResult]
) -> Response:
    params = parse(request, name)
    params["filters"] = scope.restrict(params["filters"])
    if scope.touchpoints is not None and name in ("cox", "risk"):
        params["touchpoints"] = sorted(scope.touchpoints)  # a department's own touch points
    body = await anyio.to_thread.run_sync(_run, store, scope, name, run, params)
    return Response(orjson.dumps(body), media_type="application/json")


_ERRORS = error_responses(401, 403, 422)


@router.get("/churn/survival", responses=_ERRORS, summary="Retention curves (Kaplan–Meier)")
async def churn_survival(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """Share of customers still customers 1, 3, 6, 12, 18, 24, 36, 48 and 60 months after they
    started, per `by` (segment — the default — or region; `by=` for none), with log-log
    intervals, and the log-rank test across groups (`test`)."""
    return await _answer(request, store, scope, "survival", survival_table)


@router.get("/churn/cox", responses=_ERRORS, summary="What drives churn (Cox model)")
async def churn_cox(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """Cox proportional hazards of churn on each touch point's latest gap (time-varying):
    hazard ratio per point of gap with intervals and p-values, concordance, and a
    proportional-hazards check. `min_rated`: customers with a rating a touch point needs to
    enter the model (default 30)."""
    return await _answer(request, store, scope, "cox", cox_table)


@router.get("/churn/risk", responses=_ERRORS, summary="Customers most likely to churn")
async def churn_risk(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """Active customers' probability of churning within `horizon_months` (default 3), highest
    first, with intervals and the reasons that raise it most. `limit` (default 100),
    `min_rated` (default 30)."""
    return await _answer(request, store, scope, "risk", risk_table)


@router.get("/lifetime", responses=_ERRORS, summary="BG/NBD and Gamma-Gamma parameters")
async def lifetime(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """The fitted BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, gamma) parameters with
    standard errors and intervals, and the fits' log-likelihoods."""
    return await _answer(request, store, scope, "lifetime", lifetime_params)


@router.get("/lifetime/people", responses=_ERRORS, summary="Customer lifetime value per buyer")
async def lifetime_people(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """Per buyer, highest CLV first: P(alive), expected purchases in `horizon_months`
    (default 12), expected value per purchase and CLV discounted at `discount_monthly`
    (default 0.01), each with an interval. `limit` (default 100)."""
    return await _answer(request, store, scope, "lifetime_people", lifetime_table)


async def _person(
    request: Request,
    store: Store,
    scope: Scope,
    name: str,
    run: Callable[..., dict[str, Any]],
    pid: str,
) -> Response:
    params = parse(request, name)

    def call() -> dict[str, Any]:
        with _read_lock(store):
            body = run(store, pid, **params)
            if not sees_person(store, str(body.get("canonical_id") or pid), scope):
                raise not_found(pid, scope)  # as for an unknown id: nothing is revealed
        return scope.shown_outlook(body)

    body = await anyio.to_thread.run_sync(call)
    return Response(orjson.dumps(body, default=str), media_type="application/json")


@router.get("/churn/risk/{person_id}", responses=_ERRORS, summary="One customer's churn risk")
async def churn_person(
    person_id: str, request: Request, store: StoreDep, scope: ScopeDep
) -> Response:
    """One customer's probability of churning within `horizon_months`, with its interval and
    reasons; `status` is active, churned or unknown. The model is fitted once per store state
    and reused. Every signed-in role may ask (agents see it on the customer's timeline too); a
    department head or partner manager only about a customer with a record in their scope, and
    without the reasons (they count records outside it)."""
    return await _person(request, store, scope, "person_risk", person_risk, person_id)


@router.get(
    "/lifetime/people/{person_id}", responses=_ERRORS, summary="One customer's lifetime value"
)
async def lifetime_person(
    person_id: str, request: Request, store: StoreDep, scope: ScopeDep
) -> Response:
    """One buyer's P(alive), expected purchases, expected value and CLV with intervals;
    `status` is buyer or no_purchases. Every signed-in role may ask, as for churn risk (scoped
    roles about customers in their scope only)."""
    return await _person(request, store, scope, "person_value", person_value, person_id)
