"""``GET /api/v1/churn/risk/{person_id}`` and ``/api/v1/lifetime/people/{person_id}``: one
customer's churn risk and lifetime value, for a customer page or an agent's timeline.

The tables over every customer (``/churn/risk``, ``/lifetime/people``) are generated from the
registry (:mod:`corridor.api.analyses`); these two answer about one person, so every signed-in
role may ask (scoped roles about customers with a record in their scope only, and without the
reasons, which count records outside it: :meth:`~corridor.auth.scope.Scope.shown_outlook`).
The models are fitted on the whole store and kept by the app (``app.state.models``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio.to_thread
import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.customers.churn_risk import HORIZON_MONTHS, person_risk
from corridor.analytics.customers.lifetime import person_value
from corridor.api.deps import ScopeDep, StoreDep
from corridor.api.errors import error_responses
from corridor.api.routes.people import not_found, sees_person
from corridor.auth.scope import Scope
from corridor.store import Store

router = APIRouter(prefix="/api/v1", tags=["churn and lifetime"])


class RiskReason(BaseModel):
    """One feature that raises the customer's churn risk."""

    feature: str = Field(description="the feature (gap:<touchpoint>, tenure_months, ...)")
    log_odds: float = Field(description="what it adds to the log-odds against the average")


class _Outlook(BaseModel):
    model_config = ConfigDict(extra="allow")

    person_id: str = Field(description="the id asked about")
    canonical_id: str = Field(description="the person after identity merges")
    as_of: str | None = Field(None, description="the time the model was fitted as of (ISO-8601)")
    reason: str | None = Field(
        None, description="why no model is available yet (status unavailable)"
    )


class PersonChurnRisk(_Outlook):
    """One customer's probability of churning within ``horizon_months``."""

    status: Literal["active", "churned", "unknown", "unavailable", "pending"] = Field(
        description="active (with the risk), churned (with churned_at), unknown (not a "
        "customer with interactions), unavailable (the store cannot support a model yet: "
        "reason), pending (a page's lookup while the model is being fitted)"
    )
    horizon_months: float | None = Field(None, description="months ahead the risk is for")
    churned_at: str | None = Field(None, description="when the customer churned (ISO-8601)")
    cv_auc: float | None = Field(None, description="the model's cross-validated AUC")
    risk: float | None = Field(None, description="probability of churning within the horizon")
    risk_low: float | None = Field(None, description="lower end of its interval")
    risk_high: float | None = Field(None, description="upper end of its interval")
    confidence: float | None = Field(None, description="two-sided level of the interval")
    reasons: list[RiskReason] | None = Field(
        None, description="the up to three features that raise the risk most"
    )
    summary: str | None = Field(None, description="the reasons in words")
    reasons_withheld: str | None = Field(
        None, description="why the reasons are not shown to this role"
    )


class PersonLifetimeValue(_Outlook):
    """One buyer's lifetime figures; a figure the models cannot give is null."""

    status: Literal["buyer", "no_purchases", "unavailable", "pending"] = Field(
        description="buyer (with the figures), no_purchases, unavailable (too few buyers to "
        "fit the models yet: reason), pending (a page's lookup while the models are fitted)"
    )
    horizon_months: float | None = Field(None, description="months ahead of the figures")
    discount_monthly: float | None = Field(None, description="monthly discount rate of the CLV")
    confidence: float | None = Field(None, description="two-sided level of every interval")
    segment: str | None = None
    region: str | None = None
    frequency: float | None = Field(None, description="transactions after the first")
    recency_weeks: float | None = Field(None, description="weeks from first to last purchase")
    age_weeks: float | None = Field(None, description="weeks from first purchase to as_of")
    monetary: float | None = Field(None, description="mean value of the repeat transactions")
    p_alive: float | None = Field(None, description="probability the buyer is still active")
    p_alive_low: float | None = None
    p_alive_high: float | None = None
    expected_purchases: float | None = Field(
        None, description="purchases expected within the horizon"
    )
    expected_purchases_low: float | None = None
    expected_purchases_high: float | None = None
    expected_value: float | None = Field(None, description="expected value per purchase")
    clv: float | None = Field(None, description="customer lifetime value, discounted")
    clv_low: float | None = None
    clv_high: float | None = None
    clv_reason: str | None = Field(None, description="why the CLV is not available")


def _refuse_unknown(request: Request, allowed: tuple[str, ...]) -> None:
    unknown = sorted({k for k in request.query_params if k not in allowed})
    if unknown:
        raise AnalyticsQueryError(
            f"unknown query parameter(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


async def _person(
    request: Request,
    store: Store,
    scope: Scope,
    run: Callable[..., dict[str, Any]],
    pid: str,
    params: dict[str, Any],
) -> Response:
    _refuse_unknown(request, tuple(params))
    models = getattr(request.app.state, "models", None)

    def call() -> dict[str, Any]:
        with store.reading():
            body = run(store, pid, **params, models=models)
            if not sees_person(store, str(body.get("canonical_id") or pid), scope):
                raise not_found(pid, scope)  # as for an unknown id: nothing is revealed
        return scope.shown_outlook(body)

    body = await anyio.to_thread.run_sync(call)
    return Response(orjson.dumps(body, default=str), media_type="application/json")


def _responses(model: type[BaseModel], what: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "description": what}, **error_responses(401, 404, 422)}


@router.get(
    "/churn/risk/{person_id}",
    responses=_responses(PersonChurnRisk, "The customer's churn risk"),
    summary="One customer's churn risk",
)
async def churn_person(
    person_id: str,
    request: Request,
    store: StoreDep,
    scope: ScopeDep,
    horizon_months: Annotated[
        float,
        Query(
            gt=0,
            le=24,
            allow_inf_nan=False,
            description="months ahead the probability is for; above 0 and at most 24",
        ),
    ] = HORIZON_MONTHS,
) -> Response:
    """One customer's probability of churning within `horizon_months`, with its interval and
    reasons; `status` is active, churned or unknown. The model is fitted once per store state
    and reused. Every signed-in role may ask (agents see it on the customer's timeline too); a
    department head or partner manager only about a customer with a record in their scope, and
    without the reasons (they count records outside it)."""
    params = {"horizon_months": horizon_months}
    return await _person(request, store, scope, person_risk, person_id, params)


@router.get(
    "/lifetime/people/{person_id}",
    responses=_responses(PersonLifetimeValue, "The buyer's lifetime value"),
    summary="One customer's lifetime value",
)
async def lifetime_person(
    person_id: str,
    request: Request,
    store: StoreDep,
    scope: ScopeDep,
    horizon_months: Annotated[
        float,
        Query(
            gt=0,
            le=120,
            allow_inf_nan=False,
            description="months ahead of the expected purchases and CLV; above 0 and at most 120",
        ),
    ] = 12.0,
    discount_monthly: Annotated[
        float,
        Query(
            ge=0,
            lt=1,
            allow_inf_nan=False,
            description="monthly discount rate of the CLV (0.01 for 1 % a month); at least 0 "
            "and below 1",
        ),
    ] = 0.01,
) -> Response:
    """One buyer's P(alive), expected purchases, expected value and CLV with intervals;
    `status` is buyer or no_purchases. Every signed-in role may ask, as for churn risk (scoped
    roles about customers in their scope only)."""
    params = {"horizon_months": horizon_months, "discount_monthly": discount_monthly}
    return await _person(request, store, scope, person_value, person_id, params)


__all__ = ["PersonChurnRisk", "PersonLifetimeValue", "RiskReason", "router"]
