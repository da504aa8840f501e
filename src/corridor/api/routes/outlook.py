"""``GET /api/v1/churn/risk/{person_id}`` and ``/api/v1/lifetime/people/{person_id}``: one
customer's churn risk and lifetime value, for a customer page or an agent's timeline.

The tables over every customer (``/churn/risk``, ``/lifetime/people``) are generated from the
registry (:mod:`corridor.api.analyses`); these two answer about one person, so every signed-in
role may ask (scoped roles about customers with a record in their scope only, and without the
reasons, which count records outside it: :meth:`~corridor.auth.scope.Scope.shown_outlook`).
The models are fitted on the whole store and kept by the app (``app.state.models``). While the
server's first fit of a model runs (``corridor serve`` starts it at once), a question about it
is answered at once with ``status: pending``, ``ready_in_s`` and a ``Retry-After`` header,
instead of waiting minutes for the fit on a large store; afterwards the kept model answers, and
a question after an ingest waits for the refit.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.customers.churn_risk import HORIZON_MONTHS, person_risk
from corridor.analytics.customers.lifetime import person_value
from corridor.analytics.customers.models import CHURN_RISK, LIFETIME, FittedModels
from corridor.analytics.customers.outlook import PersonChurnRisk, PersonLifetimeValue
from corridor.api.deps import ScopeDep, StoreDep
from corridor.api.errors import error_responses
from corridor.api.routes.people import not_found, sees_person
from corridor.auth.scope import Scope
from corridor.store import Store

router = APIRouter(prefix="/api/v1", tags=["churn and lifetime"])

_Route = Callable[..., Awaitable[Response]]


def _refuse_unknown(request: Request, allowed: tuple[str, ...]) -> None:
    unknown = sorted({k for k in request.query_params if k not in allowed})
    if unknown:
        raise AnalyticsQueryError(
            f"unknown query parameter(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


@dataclass(frozen=True)
class _Asked:
    """A question about one person (``person_id``): the request, the store, the asker's scope."""

    person_id: str
    request: Request
    store: Store
    scope: Scope

    async def answer(
        self, run: Callable[..., dict[str, Any]], model: str, params: dict[str, Any]
    ) -> Response:
        """``run(store, person_id, **params)`` off the event loop, as the scope may see it; a
        query parameter not in ``params`` is refused. While the first fit of ``model`` runs
        (none kept yet), ``run`` does not wait for it: the answer is ``pending``, with when to
        ask again."""
        _refuse_unknown(self.request, tuple(params))
        store, scope, pid = self.store, self.scope, self.person_id
        models: FittedModels | None = getattr(self.request.app.state, "models", None)

        def call() -> dict[str, Any]:
            with store.reading():
                wait = models is None or not models.state(model).first_fit
                body = run(store, pid, **params, models=models, refit=wait)
                if not sees_person(store, str(body.get("canonical_id") or pid), scope):
                    raise not_found(pid, scope)  # as for an unknown id: nothing is revealed
            return scope.shown_outlook(body)

        body = await anyio.to_thread.run_sync(call)
        headers = {}
        if body.get("status") == "pending":
            ready_in = body.get("ready_in_s")
            headers["Retry-After"] = str(max(1, math.ceil(ready_in)) if ready_in else RETRY_S)
        return Response(
            orjson.dumps(body, default=str), media_type="application/json", headers=headers
        )


async def _asked(person_id: str, request: Request, store: StoreDep, scope: ScopeDep) -> _Asked:
    return _Asked(person_id, request, store, scope)


AskedDep = Annotated[_Asked, Depends(_asked)]


def _months_ahead(most: int, what: str) -> Any:
    """The horizon of a person's answer: months ahead, above 0 and at most ``most``."""
    return Query(
        gt=0, le=most, allow_inf_nan=False, description=f"{what}; above 0 and at most {most}"
    )


#: Retry-After of a pending answer when nothing says how long the fit takes
RETRY_S = 10


def _get_person(
    path: str, reply: type[BaseModel], what: str, summary: str
) -> Callable[[_Route], _Route]:
    """Declare a route about one person: ``reply`` (``what``) on success."""
    retry = {
        "description": "only with status pending: seconds until the model should be fitted",
        "schema": {"type": "integer", "minimum": 1},
    }
    return router.get(
        path,
        responses={
            200: {"model": reply, "description": what, "headers": {"Retry-After": retry}},
            **error_responses(401, 404, 422),
        },
        summary=summary,
    )


@_get_person(
    "/churn/risk/{person_id}",
    PersonChurnRisk,
    "The customer's churn risk",
    "One customer's churn risk",
)
async def churn_person(
    asked: AskedDep,
    horizon_months: Annotated[
        float, _months_ahead(24, "months ahead the probability is for")
    ] = HORIZON_MONTHS,
) -> Response:
    """One customer's probability of churning within `horizon_months`, with its interval and
    reasons; `status` is active, churned or unknown. The model is fitted once per store state
    and reused; while the server's first fit runs, `status` is pending, with `ready_in_s` and a
    `Retry-After` header saying when to ask again. Every signed-in role may ask (agents see it
    on the customer's timeline too); a department head or partner manager only about a customer
    with a record in their scope, and without the reasons (they count records outside it)."""
    return await asked.answer(person_risk, CHURN_RISK, {"horizon_months": horizon_months})


@_get_person(
    "/lifetime/people/{person_id}",
    PersonLifetimeValue,
    "The buyer's lifetime value",
    "One customer's lifetime value",
)
async def lifetime_person(
    asked: AskedDep,
    horizon_months: Annotated[
        float, _months_ahead(120, "months ahead of the expected purchases and CLV")
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
    `status` is buyer or no_purchases (pending, with `ready_in_s` and `Retry-After`, while the
    server's first fit runs). Every signed-in role may ask, as for churn risk (scoped roles
    about customers in their scope only)."""
    params = {"horizon_months": horizon_months, "discount_monthly": discount_monthly}
    return await asked.answer(person_value, LIFETIME, params)


__all__ = ["router"]
