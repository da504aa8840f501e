"""The analysis routes, generated from the registry: one ``GET /api/v1/<path>`` per analysis.

Each route documents every query parameter (type, allowed values, default, bounds) and its
response (the rows' declared columns) in ``/openapi.json``, reads the query string through the
declaration (:meth:`~corridor.analytics.core.registry.Analysis.parse`: unknown parameters are
refused with the list of what is allowed; lists comma-separated or repeated), applies the
declared scope rule (:func:`~corridor.analytics.core.scoping.run_scoped`) and runs in a worker
thread under the store's read rule (:meth:`corridor.store.Store.reading`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.responses import Response

from corridor.analytics.core import registry
from corridor.analytics.core.dimensions import DIMENSIONS
from corridor.analytics.core.registry import Analysis
from corridor.analytics.core.result_columns import Column
from corridor.analytics.core.scoping import run_scoped
from corridor.analytics.customers.models import FittedModels
from corridor.api.answer_cache import AnswerCache, behind_header
from corridor.api.deps import AnalystScopeDep, StoreDep
from corridor.api.errors import error_responses
from corridor.auth.scope import Scope
from corridor.store import Store

router = APIRouter(prefix="/api/v1")

_TYPES: dict[str, Any] = {
    "number": float,
    "integer": int,
    "string": str,
    "boolean": bool,
    "datetime": datetime,
    "object": dict[str, Any],
    "array": list[Any],
}
_KEYS = (
    Column("period", "datetime", "start of the period (UTC), when a period is asked for"),
    Column("period_label", "string", "the period as people write it: 2025-03, 2025-W09, 2025-Q1"),
)


def _row_model(a: Analysis) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    dims = [Column(d, "string", DIMENSIONS[d].description) for d in DIMENSIONS]
    for col in (*dims, *_KEYS, *a.columns):
        fields[col.name] = (
            _TYPES[col.type] | None,
            Field(default=None, description=col.help or None),
        )
    model: type[BaseModel] = create_model(
        f"{_camel(a.name)}Row",
        __config__=ConfigDict(extra="allow"),
        **fields,
    )
    return model


def _body_model(a: Analysis) -> type[BaseModel]:
    row = _row_model(a)
    extras: dict[str, Any] = {
        k: (Any, Field(default=None, description=f"declared extra: {k}")) for k in a.extras
    }
    model: type[BaseModel] = create_model(
        f"{_camel(a.name)}Answer",
        analysis=(str, Field(description="the analysis' name")),
        title=(str, Field(description="what it answers")),
        kind=(str, Field(description="the result type")),
        n=(int, Field(description="records the result rests on (those the caller may see)")),
        confidence=(float, Field(description="two-sided level of every interval")),
        method=(str, Field(description="how the numbers were computed")),
        query=(dict[str, Any], Field(description="the request, as the analysis read it")),
        rows=(list[row], Field(description="one row per group (and period)")),  # type: ignore[valid-type]
        reasons_withheld=(
            str | None,
            Field(default=None, description="why some columns are not shown to this role"),
        ),
        **extras,
    )
    return model


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def openapi_parameters(a: Analysis) -> list[dict[str, Any]]:
    """The query parameters of ``a`` as OpenAPI parameter objects."""
    return [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "description": p.describe(),
            "schema": p.schema(),
            **({"style": "form", "explode": True} if p.kind == "list" else {}),
        }
        for p in (*a.parameters(), *a.filter_params())
    ]


def query_lists(request: Request) -> dict[str, list[str]]:
    q = request.query_params
    return {k: q.getlist(k) for k in dict.fromkeys(q.keys())}


def answer(
    a: Analysis,
    store: Store,
    scope: Scope | None,
    query: dict[str, list[str]],
    models: FittedModels | None = None,
) -> Any:
    """The body of a reply to ``a`` with these query values, as ``scope`` may see it; from the
    app's background fit (``models``) when it holds this very answer for a user who sees
    everything (:attr:`Analysis.reuse`)."""
    kwargs = a.bind(a.parse(query))
    with store.reading():  # the store's read rule (bounded, concurrent)
        kept = None
        if a.reuse is not None and models is not None and (scope is None or scope.sees_all):
            kept = a.reuse(models, store, dict(kwargs))
        result = a.finish(kept) if kept is not None else run_scoped(a, store, scope, kwargs)
    return a.body(result)


def _endpoint(a: Analysis) -> Any:
    async def endpoint(request: Request, store: StoreDep, scope: AnalystScopeDep) -> Response:
        query = query_lists(request)

        models = getattr(request.app.state, "models", None)

        def compute() -> bytes:
            return orjson.dumps(answer(a, store, scope, query, models))

        cache: AnswerCache | None = getattr(request.app.state, "answers", None)
        if cache is None:
            body = await anyio.to_thread.run_sync(compute)
            return Response(body, media_type="application/json")
        # kept while the data stands, or lags it within a bound (see corridor.api.answer_cache)
        got = await anyio.to_thread.run_sync(cache.get, store, a.name, query, scope, compute)
        return Response(got.value, media_type="application/json", headers=behind_header(got))

    endpoint.__name__ = f"analysis_{a.name}"
    return endpoint


def add_routes(target: APIRouter) -> None:
    for a in registry.analyses().values():
        if a.person:
            continue  # one person's answers: routes of their own (api/routes/outlook.py)
        target.add_api_route(
            a.path,
            _endpoint(a),
            methods=["GET"],
            summary=a.title,
            description=a.description,
            tags=[a.tag],
            responses={
                200: {"model": _body_model(a), "description": a.title},
                **error_responses(401, 403, 422),
            },
            openapi_extra={"parameters": openapi_parameters(a)},
        )


add_routes(router)

__all__ = ["answer", "openapi_parameters", "router"]
