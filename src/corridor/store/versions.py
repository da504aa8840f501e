"""The store's data version: a count of the committed writes to the tables analyses read, with
when each was committed, for keeping analyses' answers (:mod:`corridor.api.answer_cache`).

A kept answer computed at version ``v`` has missed every write after ``v``; how far behind it is
is the time since the first of them (:meth:`DataVersions.behind`). Writes that only add or
refresh data (an ingest batch, the rollup's refresh, text analysis) let a kept answer lag within
the cache's bound; a write that removes or rewrites rows of an analysed table (an erasure, a
retention purge, a merge of identities, a migration, any statement whose target is not known)
is a *fence* (so is a corridor map loaded: it replaces the touch points' rows): no answer
computed before it is served again (:meth:`DataVersions.behind` is infinite), so erased data
never lingers in a kept answer.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

__all__ = ["DERIVED", "DataVersions"]

#: tables that hold what is derived from the records (the rollup, its dirty days, the texts'
#: analysis) or bookkeeping of the ingest: rewriting them removes nothing a record said
DERIVED = frozenset(
    {"feedback_rollup", "rollup_dirty", "rollup_pending", "text_analysis", "ingest_batches"}
)


class DataVersions:
    """One store's (or one DuckDB file's) data version, the commit times of the last ``keep``
    versions and the latest fence. Thread-safe."""

    def __init__(self, keep: int = 4096) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._fence = 0
        self._at: deque[float] = deque(maxlen=keep)  # time.monotonic() of each kept version

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def bump(self, *, fence: bool = False) -> None:
        """A write committed (after the commit: a reader that sees the new version sees the
        data). ``fence``: it removed or rewrote records (see the module's docs)."""
        with self._lock:
            self._version += 1
            self._at.append(time.monotonic())
            if fence:
                self._fence = self._version

    def behind(self, version: int) -> float | None:
        """Seconds since the first write after ``version`` committed; None while ``version``
        is the latest; infinite when a fence was committed after it (or it is older than the
        versions remembered)."""
        with self._lock:
            if version >= self._version:
                return None
            if self._fence > version:
                return math.inf
            oldest = self._version - len(self._at) + 1
            if version + 1 < oldest:
                return math.inf
            return max(0.0, time.monotonic() - self._at[version + 1 - oldest])
