"""The app factory: ``create_app(settings)`` → a FastAPI app over one store.

The store (unless a caller hands one in), the one :class:`~corridor.ingest.pipeline.Ingestor` and
the fitted per-person models (:class:`~corridor.analytics.customers.models.FittedModels`,
``app.state.models``) are built here, not as module globals, so tests and embedders bring their
own; whatever the app opened it closes on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

import corridor
from corridor.analytics.customers.models import CHURN_RISK, FittedModels
from corridor.api import analyses, errors
from corridor.api.answer_cache import AnswerCache
from corridor.api.audit_trail import AuditTrail
from corridor.api.middleware import CatchAll, NulGuard, RequestForgeryGuard
from corridor.api.routes import admin as admin_routes
from corridor.api.routes import cases as case_routes
from corridor.api.routes import health, ingest, outlook, people, survey_invitations
from corridor.api.routes import loop as loop_routes
from corridor.api.routes import map as map_routes
from corridor.api.routes import privacy as privacy_routes
from corridor.api.routes import reports as report_routes
from corridor.api.routes import surveys as survey_routes
from corridor.api.routes import text as text_routes
from corridor.api.schemas import RECORD_MODELS
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.after_commit import AfterCommitWorker
from corridor.ingest.pipeline import Ingestor
from corridor.loop import Scheduler, churn_jump, lake, scheduler
from corridor.privacy import retention
from corridor.settings import Settings
from corridor.store import Store, open_store
from corridor.surveys import jobs as survey_jobs
from corridor.surveys import responses
from corridor.surveys import upkeep as survey_upkeep
from corridor.text.worker import TextWorker
from corridor.web import admin_views, case_pages, privacy_views, replies, survey_admin, survey_pages
from corridor.web import routes as web_routes
from corridor.workers import PokedWorker

assert survey_jobs  # importing it registers the invitations job with the scheduler
assert retention  # importing it registers the privacy.retention job with the scheduler
assert survey_upkeep  # and the responses' job (crash recovery, unfinished responses sent)

DESCRIPTION = """
Corridor measures the gap between what customers expected and what they experienced at every
touch point of the customer corridor.

**Ingestion** (`POST /api/v1/{kind}`): one record, a JSON array, or NDJSON. Every item is
accounted for in the reply (`received = accepted + rejected`); rejected items are listed with
their item number, field and reason, and never stop the good ones. A 2xx reply means the
accepted records are committed; the same id sent twice is stored once, so retrying is safe.

**Errors** share one shape: `{"error": {"code": "...", "message": "...", "details": [...]}}`.
"""


async def _http_error(request: Request, exc: Exception) -> Response:
    """An HTTP error: a browser's page that does not exist gets the HTML 404 page
    (:func:`corridor.web.replies.page_not_found`); everything else the API's error shape."""
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 404:
        page = replies.page_not_found(request)
        if page is not None:
            return page
    return await errors.handle_error(request, exc)


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the API. ``store``: use this store (the caller closes it) instead of opening
    ``settings.store_url``."""
    settings = settings or Settings()
    owns_store = store is None
    the_store = open_store(settings.store_url) if store is None else store
    try:
        ingestor = Ingestor(
            the_store,
            keep_original_text=settings.keep_original_text,
            analyze_text=settings.text_analysis == "inline",
            rollup_upkeep=settings.rollup_upkeep,
        )
    except BaseException:
        if owns_store:
            the_store.close()
        raise
    # feedback texts are analysed off the request path, right after their batch commits
    text_worker = TextWorker(the_store) if settings.text_analysis == "background" else None
    if text_worker is not None:
        ingestor.on_pending_text = text_worker.poke
    # new feedback's rollup rows and record rules: right after its batch commits, many batches
    # at once; on start, what a stopped server left queued
    rollup_worker = (
        AfterCommitWorker(the_store, texts_analysed=settings.text_analysis == "inline")
        if settings.rollup_upkeep == "background"
        else None
    )
    if rollup_worker is not None:
        ingestor.on_pending_rollup = rollup_worker.poke
        ingestor.rollup_behind = rollup_worker.behind

    # survey answers are stored as feedback off the request path, right after they are
    # acknowledged, as a group; on start, those a crash left acknowledged but not stored
    survey_finisher = PokedWorker(
        lambda: responses.finish_pending(the_store, ingestor),
        name="corridor-survey-answers",
        interval=10.0,
        drain=True,
        settle=0.2,
    )

    # the loop's jobs (notification delivery, digests, SLA clocks, ...): one scheduler per server,
    # with the scheduled lake sync when the settings name a lake
    specs = [*scheduler.REGISTRY.values(), *lake.jobs(settings)]
    jobs = Scheduler(the_store, settings, specs) if settings.scheduler == "on" else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        survey_finisher.start()
        if text_worker is not None:
            text_worker.start()
        if rollup_worker is not None:
            rollup_worker.start()
        if jobs is not None:
            jobs.start()
        try:
            yield
        finally:
            if jobs is not None:
                jobs.stop()
            survey_finisher.stop(timeout=60.0)
            if text_worker is not None:
                text_worker.stop()
            if rollup_worker is not None:
                rollup_worker.stop(timeout=60.0)
            refresher = getattr(app.state, "model_refresher", None)
            if refresher is not None:
                refresher.stop()
            app.state.answers.close()  # its background recomputations read the store
            ingestor.close()
            if owns_store:
                the_store.close()

    # Swagger UI and ReDoc assets are served by Corridor itself: the docs work air-gapped.
    app = FastAPIOffline(
        title="Corridor",
        version=corridor.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = the_store
    app.state.ingestor = ingestor
    app.state.text_worker = text_worker
    app.state.survey_finisher = survey_finisher
    #: the analysis routes' answers, kept while the data they read stands (or lags it by less
    #: than settings.answer_max_stale_s), one computation of each at a time
    app.state.answers = AnswerCache(max_stale_s=settings.answer_max_stale_s)
    app.state.scheduler = jobs
    #: the churn-risk and lifetime models fitted on this store, kept while the app runs
    app.state.models = FittedModels()
    # after each refit of the churn model: score every customer, check the churn_jump rules
    app.state.models.on_fitted(CHURN_RISK, churn_jump.listener(the_store))
    errors.install(app)
    web_routes.install(app)  # a page's dependency may answer the request itself
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(
        RequestForgeryGuard,
        trusted_origins=[o for o in settings.trusted_origins.split(",") if o.strip()],
        https_only=settings.secure_cookies,
    )
    app.add_middleware(AuditTrail)  # changes and reads of a customer, in the audit log
    app.add_middleware(NulGuard)  # a NUL in the URL: 422 before any route reads it
    app.add_middleware(CatchAll)  # outermost: a 500 answered here keeps the connection
    for module in (ingest, map_routes, people, analyses, outlook, health, web_routes, case_pages):
        app.include_router(module.router)
    for admin_router in (admin_routes.router, admin_views.router, loop_routes.router):
        app.include_router(admin_router)
    app.include_router(text_routes.router)
    app.include_router(report_routes.router)  # importing it registers reports.send
    app.include_router(case_routes.router)
    app.include_router(privacy_routes.router)
    app.include_router(privacy_views.router)
    app.include_router(survey_routes.router)
    app.include_router(survey_invitations.router)
    app.include_router(survey_pages.router)
    app.include_router(survey_admin.router)
    app.include_router(ingest.fallback)
    _document_records(app)
    return app


def _document_records(app: FastAPI) -> None:
    """Add the record models (request bodies the routes read raw) to the OpenAPI components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        models: list[type[BaseModel]] = [*RECORD_MODELS.values(), CorridorMap]
        for model in models:
            _add_schema(components, model)
        _one_error_shape(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _one_error_shape(schema: dict[str, Any]) -> None:
    """FastAPI documents its own 422 body; ours is the one error shape, so say that. And every
    error a route can answer is documented in that shape: 400 where there is a body to read,
    401 on every API route but health, 403 on every write (the request-forgery guard), and
    ``default`` for the rest (500, 503, ...)."""
    default = "#/components/schemas/HTTPValidationError"
    ours = {"$ref": "#/components/schemas/ErrorBody"}

    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": ours}}}

    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            reply = responses.get("422", {})
            media = reply.get("content", {}).get("application/json", {})
            if media.get("schema", {}).get("$ref") == default:
                media["schema"] = ours
                reply["description"] = "The request does not match the API (error shape)"
            if "requestBody" in op:
                responses.setdefault("400", error("The body cannot be read (error shape)"))
            if path.startswith("/api/v1/") and path != "/api/v1/health":
                responses.setdefault("401", error("No valid API key or session (error shape)"))
            if method in ("post", "put", "patch", "delete"):
                responses.setdefault(
                    "403",
                    error("Not allowed, or a browser request from another site (error shape)"),
                )
            responses.setdefault(
                "default",
                error(
                    "Any other error, e.g. 500 internal_error, 503 store_unavailable (error shape)"
                ),
            )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    if "ErrorBody" not in components:
        _add_schema(components, errors.ErrorBody)


def _add_schema(components: dict[str, Any], model: type[BaseModel]) -> None:
    js = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in js.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components[model.__name__] = js
