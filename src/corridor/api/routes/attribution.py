"""``GET /api/v1/ripple``, ``/departments/impact``, ``/partners``, ``/agents``, ``/alignment``,
``/alignment/channels``: who caused the gaps, thin.

Common query parameters: ``since`` / ``until`` (ISO-8601), ``confidence``; the scorecards and
alignment views also take a filter per dimension named after it (``region=north``). Each route
adds its own (listed on it); anything else is refused with the list of what is allowed.

Scope: a department head sees the events and impact of their department, and scorecards and
alignment computed over their department's touch points; a partner manager sees their partner's
row of the partner scorecard (the shrinkage prior is still fitted over every partner) next to the
brand's own baseline, their partner's agents, and no department ripples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from corridor.analytics.attribution.alignment import alignment_table
from corridor.analytics.attribution.ripple import department_impact, ripple_table
from corridor.analytics.attribution.scorecards import partner_scorecard
from corridor.analytics.core.dimensions import DIMENSIONS
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.result import AnalyticsResult
from corridor.api import numbers
from corridor.api.deps import AnalystScopeDep, StoreDep
from corridor.api.errors import error_responses
from corridor.api.routes.analytics import _read_lock
from corridor.auth.scope import Scope
from corridor.store import Store

router = APIRouter(prefix="/api/v1", tags=["attribution"])

COMMON = ("since", "until", "confidence")
#: per route: extra parameters (name → (kind, default)) and whether dimension filters apply
EXTRA: dict[str, tuple[dict[str, tuple[str, Any]], bool]] = {
    "ripple": (
        {
            "department": ("list", None),
            "event": ("list", None),
            "alpha": ("float", 0.05),
            "churn": ("bool", True),
        },
        False,
    ),
    "impact": ({"alpha": ("float", 0.05), "churn": ("bool", True)}, False),
    "partners": ({"min_n": ("int", 1)}, True),
    "agents": ({"min_n": ("int", 1)}, True),
    "alignment": ({"by": ("str", "department")}, True),
    "channels": ({"measure": ("str", "experience")}, True),
}


def parse(request: Request, name: str) -> dict[str, Any]:
    """The parameters of a request to route ``name``; unknown ones are refused."""
    q = request.query_params
    extra, with_filters = EXTRA[name]
    dims = DIMENSIONS if with_filters else ()
    unknown = [k for k in q if k not in COMMON and k not in extra and k not in dims]
    if unknown:
        allowed = ", ".join((*COMMON, *extra))
        more = f", or a filter named after a dimension: {', '.join(dims)}" if dims else ""
        raise AnalyticsQueryError(
            f"unknown query parameter(s) {', '.join(sorted(set(unknown)))}; allowed: "
            f"{allowed}{more}"
        )
    params: dict[str, Any] = {"since": q.get("since") or None, "until": q.get("until") or None}
    if with_filters:
        params["filters"] = {
            d: [v.strip() or None for raw in q.getlist(d) for v in raw.split(",")]
            for d in dict.fromkeys(k for k in q if k in DIMENSIONS)
        } or None
    params["confidence"] = numbers.confidence(q.get("confidence"))
    for key, (kind, default) in extra.items():
        raw = q.get(key)
        if raw is None:
            params[key] = default
        elif kind == "list":
            params[key] = [v.strip() for r in q.getlist(key) for v in r.split(",") if v.strip()]
        elif kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise AnalyticsQueryError(f"{key} {raw!r} is not true or false")
            params[key] = raw.lower() in ("true", "1", "yes")
        elif kind == "int":
            params[key] = numbers.whole_number(raw, key, default)
        elif kind == "float":
            params[key] = numbers.number(raw, key, default)
        else:
            params[key] = raw
    return params


#: per route: the row columns whose sum is the reply's ``n`` (as each analysis counts it), so a
#: reply whose rows a scope narrowed counts only the rows shown
COUNTED: dict[str, tuple[str, ...]] = {
    "ripple": ("n_treated", "n_control"),
    "impact": (),  # computed from the scope's own ripples: its n is already the scope's
    "partners": ("n",),
    "agents": ("n",),
    "alignment": ("n_records",),
    "channels": ("n",),
}


def _visible_n(name: str, rows: list[dict[str, Any]]) -> int:
    return int(sum(float(r.get(c) or 0) for r in rows for c in COUNTED[name]))


def _run(
    store: Store,
    name: str,
    run: Callable[..., AnalyticsResult],
    params: dict[str, Any],
    keep: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    with _read_lock(store):
        result = run(store, **params)
    records = result.to_records()
    rows = [r for r in records if keep(r)]
    meta = result.metadata()
    if len(rows) < len(records):  # totals count only what the user is shown
        meta["n"] = _visible_n(name, rows)
    return {"analysis": name, **meta, "rows": rows}


async def _answer(
    store: Store,
    name: str,
    run: Callable[..., AnalyticsResult],
    params: dict[str, Any],
    keep: Callable[[dict[str, Any]], bool],
) -> Response:
    body = await anyio.to_thread.run_sync(_run, store, name, run, params, keep)
    return Response(orjson.dumps(body), media_type="application/json")


def _department_rows(scope: Scope) -> Callable[[dict[str, Any]], bool]:
    return lambda r: scope.sees_operations(r.get("department"))


def _departments(scope: Scope, asked: list[str] | None) -> list[str] | None:
    if scope.departments is None:
        return asked
    scope.restrict({"department": asked} if asked else None)  # 403 outside the scope
    return sorted(scope.departments)


RESPONSES = error_responses(401, 403, 422)


@router.get("/ripple", responses=RESPONSES, summary="Ripple effects of operational events")
async def ripple(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """Per operational event: its effect on the gap, complaint share and churn at the touch
    points (and region) it may affect, by difference in differences against untouched
    comparable units (interrupted time series when there are none), with intervals, p-values
    and Benjamini–Hochberg q-values. Parameters: `department`, `event` (repeat or
    comma-separate), `since`/`until` (event start), `confidence`, `alpha`, `churn`
    (false skips the per-event churn query)."""
    params = parse(request, "ripple")
    params["department"] = _departments(scope, params["department"])
    return await _answer(store, "ripple", ripple_table, params, _department_rows(scope))


@router.get("/departments/impact", responses=RESPONSES, summary="Departments by customer impact")
async def impact(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """Departments ranked by customer impact: the sum over their significant events of effect
    on the gap × affected interactions (with an interval), and excess churned customers.
    Parameters: `since`/`until`, `confidence`, `alpha`, `churn`."""
    params = parse(request, "impact")
    if scope.departments is None:
        return await _answer(store, "impact", department_impact, params, _department_rows(scope))

    def own_impact(source: Store, **p: Any) -> AnalyticsResult:
        # a department head's impact comes from their own department's events only, so its n,
        # q-values and rank hold nothing of other departments (the rank is 1 of 1: dropped)
        ripples = ripple_table(source, department=sorted(scope.departments or ()), **p)
        res = department_impact(source, ripples=ripples, confidence=p["confidence"])
        return replace(res, frame=res.frame.drop(columns=["rank"], errors="ignore"))

    return await _answer(store, "impact", own_impact, params, _department_rows(scope))


def _scorecard(kind: str) -> Any:
    async def endpoint(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
        params = parse(request, "partners" if kind == "partner" else "agents")
        filters = scope.restrict(params["filters"])
        keep: Callable[[dict[str, Any]], bool] = lambda r: True  # noqa: E731
        if kind == "partner" and filters and "partner" in filters:
            # the prior needs every partner: compute over all, show the partners asked for
            # (a partner manager's own) next to the brand's baseline
            shown = set(filters["partner"])
            filters = {k: v for k, v in filters.items() if k != "partner"} or None

            def keep(r: dict[str, Any]) -> bool:
                return bool(r.get("baseline")) or r.get("partner") in shown

        params["filters"] = filters
        params["kind"] = kind
        return await _answer(store, f"{kind}s", partner_scorecard, params, keep)

    endpoint.__name__ = f"{kind}_scorecard"
    endpoint.__doc__ = (
        f"The {kind} scorecard: touch-point-adjusted gap, NPS, promise-kept rate and complaint "
        "share with raw intervals and empirical-Bayes shrunk estimates with posterior "
        "intervals, a rank and a `select` flag (credibly better/worse than "
        + ("the brand's own channels" if kind == "partner" else "the average agent")
        + "). Parameters: `since`/`until`, `confidence`, `min_n`, and a filter per dimension "
        "(on the partner card, `partner=` selects the rows shown; the prior is fitted over all)."
    )
    return endpoint


router.add_api_route(
    "/partners", _scorecard("partner"), methods=["GET"], responses=RESPONSES,
    summary="Partner scorecard",
)  # fmt: skip
router.add_api_route(
    "/agents", _scorecard("agent"), methods=["GET"], responses=RESPONSES,
    summary="Agent scorecard",
)  # fmt: skip


@router.get("/alignment", responses=RESPONSES, summary="Employees' predictions vs customers")
async def alignment(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """Employees' predicted experience against customers' actual per department (or `by` =
    touchpoint): bias with interval, mean absolute error, correlation with Fisher-z interval.
    Parameters: `by`, `since`/`until`, `confidence`, and a filter per dimension."""
    params = parse(request, "alignment")
    params["filters"] = scope.restrict(params["filters"])
    params["view"] = "employees"

    def keep(r: dict[str, Any]) -> bool:
        dept_ok = "department" not in r or scope.sees_department(r["department"])
        tp_ok = "touchpoint" not in r or scope.sees_touchpoint(r["touchpoint"])
        # a partner manager sees the departments their partner's customers rated, not the
        # other departments' prediction counts
        return dept_ok and tp_ok and (scope.partners is None or bool(r.get("n_records")))

    if scope.partners is None:
        return await _answer(store, "alignment", alignment_table, params, keep)

    def partner_view(source: Store, **p: Any) -> AnalyticsResult:
        res = alignment_table(source, **p)
        # predictions left unmatched by the partner's feedback are the departments' own
        return replace(res, frame=res.frame.assign(n_unmatched=None))

    return await _answer(store, "alignment", partner_view, params, keep)


@router.get("/alignment/channels", responses=RESPONSES, summary="Consistency across channels")
async def channels(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
    """Per touch point served in several channels: channel means with intervals, spread,
    standard deviation across channels and Welch's ANOVA of equal means. Parameters:
    `measure` (experience or gap), `since`/`until`, `confidence`, and a filter per dimension."""
    params = parse(request, "channels")
    params["filters"] = scope.restrict(params["filters"])
    params["view"] = "channels"
    return await _answer(
        store,
        "channels",
        alignment_table,
        params,
        lambda r: scope.sees_touchpoint(r.get("touchpoint")),
    )
