"""``GET /api/v1/health``: is the store reachable, at which schema version, what does it hold,
and how the per-person models stand."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, Request

import corridor
from corridor.analytics.customers.models import CHURN_RISK, LIFETIME, FittedModels
from corridor.analytics.feedback import rollup_pending
from corridor.api.deps import IngestorDep, StoreDep
from corridor.api.schemas import Health, JobInfo, MapInfo, ModelInfo, StoreInfo
from corridor.domain.contract import KINDS
from corridor.loop.scheduler import job_states
from corridor.store import Store

router = APIRouter(prefix="/api/v1", tags=["health"])

#: tables counted by health and the landing page
COUNTED = (*KINDS, "identities", "person_merges")


def redact(url: str) -> str:
    """A store URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def record_counts(store: Store) -> tuple[dict[str, int], list[str]]:
    """Rows of each counted table, and which counts are estimates (see
    :meth:`corridor.store.base.Store.row_counts`)."""
    return store.row_counts(COUNTED)


@router.get(
    "/health", operation_id="health", summary="Store, schema and map status", response_model=Health
)
def health(request: Request, store: StoreDep, ingestor: IngestorDep) -> Health:
    """Answers 200 when the store can be read. `counts`: rows of each record table, exact
    except those named in `counts_estimated` (on PostgreSQL, tables over 64 MiB are estimated
    from the server's statistics rather than read whole). `models`: how the churn-risk and lifetime
    models stand (fitted when, in how long, or being fitted)."""
    cmap = ingestor.corridor_map
    counts, estimated = record_counts(store)
    version = store.query("SELECT max(version) FROM schema_migrations")[0][0]
    return Health(
        status="ok",
        version=corridor.__version__,
        store=StoreInfo(
            url=redact(store.url), engine=store.dialect, schema_version=int(version or 0)
        ),
        corridor_map=MapInfo(
            loaded=cmap is not None,
            stages=len(cmap.stages) if cmap else 0,
            touchpoints=len(cmap.touchpoints) if cmap else 0,
            promises=sum(len(t.promises) for t in cmap.touchpoints) if cmap else 0,
        ),
        counts=counts,
        counts_estimated=estimated,
        models=model_info(getattr(request.app.state, "models", None)),
        jobs=job_info(store),
        rollup_pending=rollup_pending.waiting(store),
    )


def job_info(store: Store) -> list[JobInfo]:
    """The scheduler's jobs, as the ``jobs`` table has them."""
    now = datetime.now(UTC)
    return [
        JobInfo(
            name=j.name,
            last_status=j.last_status,
            last_finished_at=j.last_finished_at,
            next_run_at=j.next_run_at,
            overdue=(now - j.next_run_at).total_seconds() > 60,
        )
        for j in job_states(store)
    ]


def model_info(models: FittedModels | None) -> dict[str, ModelInfo]:
    """The state of each per-person model the app keeps."""
    if models is None:
        return {}
    out: dict[str, ModelInfo] = {}
    for name in (CHURN_RISK, LIFETIME):
        st = models.state(name)
        out[name] = ModelInfo(
            status=st.status,
            fitted_at=st.fitted_at,
            took_s=None if st.took_s is None else round(st.took_s, 1),
            fitting_started_at=st.started_at if st.status == "fitting" else None,
            ready_in_s=None if st.ready_in_s is None else round(st.ready_in_s, 1),
        )
    return out
