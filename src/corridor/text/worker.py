"""Background text analysis for a running server: pending texts are analysed right after the
feedback batch that brought them commits, off the request path.

The ingestor calls :meth:`TextWorker.poke` after each committed feedback batch with text; the
worker thread wakes, runs :func:`corridor.text.jobs.analyze_pending` (the default lexicon model)
until nothing is pending, and sleeps again. With the poke come, when a text rule is active, the
rules' rows of the batch's records (their touch point, department, partner, segment and region
as the batch's transaction read them), so that firing the text rules reads none of them again;
records not handed over (another process's, or past :attr:`TextWorker.KEEP` rows) are read. It
also looks every ``interval`` seconds, so texts left pending by a crash or by another process
are picked up. A failure is logged and retried on the next wake-up; ingestion never waits for
it.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from corridor.store.base import Store
from corridor.text.jobs import analyze_pending
from corridor.workers import PokedWorker

__all__ = ["TextWorker"]


class TextWorker(PokedWorker):
    #: rows handed over by :meth:`poke` and not yet used are kept up to this many (the oldest
    #: are dropped past it: those records are read again instead)
    KEEP = 50_000

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
        self._known: list[pa.Table] = []
        self._known_lock = threading.Lock()

    def poke(self, rows: pa.Table | None = None) -> None:
        """Texts are pending: analyse them soon. ``rows``: the text rules' rows of the records
        of the batch that brought them (see the module notes)."""
        if rows is not None and rows.num_rows:
            with self._known_lock:
                self._known.append(rows)
                while sum(t.num_rows for t in self._known) > self.KEEP:
                    self._known.pop(0)
        super().poke()

    def _analyse(self) -> None:
        used: set[int] = set()

        def known() -> pa.Table | None:
            """The rows handed over so far (read after each batch of pending texts: the
            records of batches that committed meanwhile are among them)."""
            with self._known_lock:
                handed = list(self._known)
            used.update(id(t) for t in handed)
            try:
                return pa.concat_tables(handed, promote_options="permissive") if handed else None
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # read by query instead
                return None

        try:
            report = analyze_pending(self.store, batch_size=self.batch_size, known=known)
        finally:  # what this round was given is used (or its records read)
            with self._known_lock:
                self._known = [t for t in self._known if id(t) not in used]
        self.analysed += report.analysed
