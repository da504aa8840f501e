"""The scheduled lake sync: ``lake.sync``, a job of the server's scheduler when the setting
``lake_sync`` (``CORRIDOR_LAKE_SYNC``, ``corridor serve --lake-sync PATH``) names a lake folder.

Each run is :func:`corridor.store.lake_sync.sync` of the server's store (on a lake store, of its
``ops=`` store) into that folder, every ``lake_sync_every_s`` seconds, in one process at a time
(the scheduler's lease, and the lake's own lock file against a ``corridor lake sync`` run by
hand). A sync stopped half-way (the server stopping, the process killed) is completed by the
next, as the lake's method guarantees. Not registered at import time, unlike the other jobs: a
server without the setting has no such job (:func:`jobs` gives the scheduler its spec).
"""

from __future__ import annotations

from pathlib import Path

from corridor.errors import StoreError
from corridor.loop.scheduler import JobContext, JobSpec
from corridor.settings import Settings
from corridor.store.base import Store

JOB = "lake.sync"


class Stopping(StoreError):
    """The server is stopping: the sync ends after the file it wrote (the next one completes
    the lake)."""


def source(store: Store) -> Store:
    """The store a sync reads: the store itself, or a lake store's operational store."""
    ops = getattr(store, "ops", None)
    return ops if getattr(store, "lake", None) is not None and ops is not None else store


def lake_sync_job(ctx: JobContext) -> str:
    """Bring the lake ``ctx.settings.lake_sync`` up to date with the store."""
    from corridor.store.lake_sync import sync

    lake = ctx.settings.lake_sync
    if not lake:  # the spec is only made with the setting; a changed one ends here
        return "off (no lake_sync set)"

    def step(_: str, __: Path) -> None:
        if ctx.stopping.is_set():
            raise Stopping("the server is stopping; the next sync completes the lake")

    store = source(ctx.store)
    with store.reading():  # one of the store's reader slots, for the sync's reads
        report = sync(store, lake, on_step=step)
    if not report.written:
        return f"{report.lake}: up to date ({report.seconds:.1f} s)"
    noun = "record" if report.written == 1 else "records"
    return f"{report.lake}: {report.written:,} {noun} written in {report.seconds:.1f} s"


def jobs(settings: Settings) -> list[JobSpec]:
    """The lake's jobs for a server with ``settings``: ``lake.sync`` when ``lake_sync`` is set."""
    if not settings.lake_sync:
        return []
    return [JobSpec(JOB, settings.lake_sync_every_s, lake_sync_job)]
