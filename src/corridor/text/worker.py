"""Background text analysis for a running server: pending texts are analysed right after the
feedback batch that brought them commits, off the request path.

The ingestor calls :meth:`TextWorker.poke` after each committed feedback batch with text; the
worker thread wakes, runs :func:`corridor.text.jobs.analyze_pending` (the default lexicon model)
until nothing is pending, and sleeps again. It also looks every ``interval`` seconds, so texts
left pending by a crash or by another process are picked up. A failure is logged and retried on
the next wake-up; ingestion never waits for it.
"""

from __future__ import annotations

from corridor.store.base import Store
from corridor.text.jobs import analyze_pending
from corridor.workers import PokedWorker

__all__ = ["TextWorker"]


class TextWorker(PokedWorker):
    def __init__(
        self,
        store: Store,
        *,
        interval: float = 30.0,
        batch_size: int = 5_000,
        settle: float = 0.2,
    ) -> None:
        # texts of the batches committed within ``settle`` seconds are analysed as one
        super().__init__(self._analyse, name="corridor-text", interval=interval, settle=settle)
        self.store = store
        self.batch_size = batch_size
        self.analysed = 0

    def _analyse(self) -> None:
        self.analysed += analyze_pending(self.store, batch_size=self.batch_size).analysed
