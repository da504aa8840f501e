"""``GET /api/v1/health``: is the store reachable, at which schema version, what does it hold."""

from __future__ import annotations

import re

from fastapi import APIRouter

import corridor
from corridor.api.deps import IngestorDep, StoreDep
from corridor.api.schemas import Health, MapInfo, StoreInfo
from corridor.domain.contract import KINDS
from corridor.store import Store

router = APIRouter(prefix="/api/v1", tags=["health"])

#: tables counted by health and the landing page
COUNTED = (*KINDS, "identities", "person_merges")


def redact(url: str) -> str:
    """A store URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def record_counts(store: Store) -> dict[str, int]:
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in COUNTED)
    return {str(name): int(n) for name, n in store.query(sql)}


@router.get(
    "/health", operation_id="health", summary="Store, schema and map status", response_model=Health
)
def health(store: StoreDep, ingestor: IngestorDep) -> Health:
    """Answers 200 when the store can be read; the counts are exact row counts."""
    cmap = ingestor.corridor_map
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
        counts=record_counts(store),
    )
