"""Dependencies: what a route needs from the app, as ``Annotated`` aliases.

They are ``async`` so FastAPI calls them on the event loop instead of sending each to a thread.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, Request

from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings
from corridor.store import Store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_ingestor(request: Request) -> Ingestor:
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


#: ingest requests converted and stored at once; more wait their turn. The store takes one
#: write at a time anyway, and each request in progress holds its records in memory.
INGEST_WORKERS = 2


async def get_ingest_limiter(request: Request) -> anyio.CapacityLimiter:
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "ingest_limiter", None)
    if limiter is None:  # made inside the event loop, on first use
        limiter = state.ingest_limiter = anyio.CapacityLimiter(INGEST_WORKERS)
    return limiter


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]
IngestLimiterDep = Annotated[anyio.CapacityLimiter, Depends(get_ingest_limiter)]
