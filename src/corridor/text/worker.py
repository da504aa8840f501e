"""Background text analysis for a running server: pending texts are analysed right after the
feedback batch that brought them commits, off the request path.

The ingestor calls :meth:`TextWorker.poke` after each committed feedback batch with text; the
worker thread wakes, runs :func:`corridor.text.jobs.analyze_pending` (the default lexicon model)
until nothing is pending, and sleeps again. It also looks every ``interval`` seconds, so texts
left pending by a crash or by another process are picked up. A failure is logged and retried on
the next wake-up; ingestion never waits for it.
"""

from __future__ import annotations

import logging
import threading

from corridor.store.base import Store
from corridor.text.jobs import analyze_pending

__all__ = ["TextWorker"]

log = logging.getLogger(__name__)


class TextWorker:
    def __init__(self, store: Store, *, interval: float = 30.0, batch_size: int = 5_000) -> None:
        self.store = store
        self.interval = interval
        self.batch_size = batch_size
        self.analysed = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="corridor-text", daemon=True)
            self._thread.start()
            self.poke()  # texts left pending before this start

    def poke(self) -> None:
        """New texts are pending: analyse them soon."""
        self._idle.clear()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the pending texts seen so far are analysed (for tests and shutdown)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.analysed += analyze_pending(self.store, batch_size=self.batch_size).analysed
            except Exception:  # the next wake-up retries; ingestion is not affected
                log.exception("background text analysis failed; will retry")
            if not self._wake.is_set():
                self._idle.set()
