"""Background text analysis for a running server: the texts of a feedback batch are analysed
right after the batch commits, off the request path.

The ingestor calls :meth:`TextWorker.poke` after each committed feedback batch with text, handing
over the batch (its records' ids and stored texts) and, when a text rule is active, the rules'
rows of its records (their touch point, department, partner, segment and region as the batch's
transaction read them). The worker thread wakes, analyses the texts handed over
(:func:`corridor.text.jobs.analyze_handed`: the default lexicon model; the text rules fire on
the rows handed over), and sleeps again: nothing is searched and nothing read again. Every
``interval`` seconds, at start, after a failed round and when more than :attr:`TextWorker.KEEP`
texts wait, it also looks for every pending text (:func:`corridor.text.jobs.analyze_pending`),
so texts left pending by a crash or by another process are picked up. A failure is logged and
retried; ingestion never waits for it.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from corridor.loop import batch_rows
from corridor.store.base import Store
from corridor.text.jobs import analyze_handed, analyze_pending
from corridor.workers import PokedWorker

__all__ = ["TextWorker"]


class TextWorker(PokedWorker):
    #: texts handed over and not yet analysed are kept up to this many; past it they are
    #: dropped and the next round looks for every pending text instead
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
        self._lock = threading.Lock()
        self._handed: list[tuple[pa.Table, pa.Table | None]] = []
        #: when the oldest batch in ``_handed`` was handed over
        self._handed_at: datetime | None = None
        self._sweep = True  # the first round looks for texts left pending
        self._swept_at = time.monotonic()

    def poke(self, batch: pa.Table | None = None, rows: pa.Table | None = None) -> None:
        """Texts are pending: analyse them soon. ``batch``: the committed feedback batch that
        brought them (``feedback_id``, ``text``; None: look for every pending text); ``rows``:
        the text rules' rows of its records (see the module notes)."""
        with self._lock:
            if batch is None or "text" not in batch.column_names:
                self._sweep = True
            else:
                texts = batch.select(["feedback_id", "text"])
                texts = texts.filter(pc.fill_null(pc.not_equal(texts.column("text"), ""), False))
                if texts.num_rows:
                    self._handed.append((texts, rows))
                    self._handed_at = self._handed_at or datetime.now(UTC)
                if sum(t.num_rows for t, _ in self._handed) > self.KEEP:
                    self._handed.clear()
                    self._handed_at = None
                    self._sweep = True
        super().poke()

    def _analyse(self) -> None:
        with self._lock:
            handed, self._handed = self._handed, []
            handed_at, self._handed_at = self._handed_at, None
            sweep = self._sweep or time.monotonic() - self._swept_at >= self.interval
            self._sweep = False
        try:
            if handed:
                texts = pa.concat_tables(
                    [t.cast(_TEXTS, safe=False) for t, _ in handed], promote_options="none"
                )
                self.analysed += analyze_handed(
                    self.store, texts, known=_known(handed), handed_at=handed_at
                )
            if sweep:
                self._swept_at = time.monotonic()
                self.analysed += analyze_pending(self.store, batch_size=self.batch_size).analysed
        except BaseException:  # what was handed over is looked for next round
            with self._lock:
                self._sweep = True
            raise


_TEXTS = pa.schema([("feedback_id", pa.string()), ("text", pa.string())])


def _known(handed: list[tuple[pa.Table, pa.Table | None]]) -> pa.Table | None:
    """The text rules' rows handed over, as one table (None: none, or of tables that do not
    stack: their records are read instead)."""
    return batch_rows.stack([r for _, r in handed if r is not None])
