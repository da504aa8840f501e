"""Answers of the analysis routes, kept until the data they read changes.

Most analyses are fast because they read rollups; some fit models on every request (the churn
model's cross-validation, the drivers' bootstrap, ripple's event cells), seconds to a minute on
a big store. An analyst who opens the same view again, or a colleague who opens it after them,
should not wait again for the same answer. So the app keeps each answer (the response body
exactly as sent) under its analysis, its query string and the caller's scope, together with
the store's :meth:`~corridor.store.base.Store.data_version` when it was computed. A later
request with the same key is answered from it while that version stands; any committed write to
a table an analysis reads (an ingest, a text analysed, a map loaded, an erasure) changes the
version, and the next request computes afresh. Answers also expire after ``max_age_s`` (an
analysis whose default window ends "now" moves with the clock).

Nothing is kept on a store that other processes may write to unseen (PostgreSQL:
``data_version`` is None). The cache is bounded in bytes; the least recently used answers go
first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from corridor.auth.scope import Scope
from corridor.store import Store

__all__ = ["PAGE_WEIGHT", "AnswerCache", "scope_key"]

T = TypeVar("T")
#: the bytes a page's data (a dict of analyses' results, not serialised) counts for
PAGE_WEIGHT = 256 * 1024


def scope_key(scope: Scope | None) -> Hashable:
    """What of a scope decides what an answer holds: the role and the restrictions."""
    if scope is None:
        return None
    return (
        scope.role.value,
        *(
            None if part is None else tuple(sorted(part))
            for part in (scope.departments, scope.partners, scope.touchpoints)
        ),
    )


class AnswerCache:
    """Response bodies by (analysis, query, scope), valid while the store's data version
    stands; at most ``max_bytes`` in all, each for at most ``max_age_s`` seconds."""

    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024, max_age_s: float = 600.0) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[int, float, Any, int]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get_or_compute(
        self,
        store: Store,
        name: str,
        query: Mapping[str, Sequence[str]],
        scope: Scope | None,
        compute: Callable[[], T],
        weight: Callable[[T], int] = len,  # type: ignore[assignment]
    ) -> T:
        """The kept answer for this request, or ``compute()``'s (kept for the next one).
        ``weight``: the bytes an answer counts for (a body's length by default)."""
        version = store.data_version()
        if version is None:
            return compute()
        key = (id(store), name, tuple(sorted((k, tuple(v)) for k, v in query.items())),
               scope_key(scope))  # fmt: skip
        now = time.monotonic()
        with self._lock:
            kept = self._items.get(key)
            if kept is not None and kept[0] == version and now - kept[1] < self.max_age_s:
                self._items.move_to_end(key)
                self.hits += 1
                answer: T = kept[2]
                return answer
            self.misses += 1
        fresh = compute()  # on the version read before: a write meanwhile makes it stale at once
        size = weight(fresh)
        if size <= self.max_bytes // 4:
            with self._lock:
                old = self._items.pop(key, None)
                if old is not None:
                    self._bytes -= old[3]
                self._items[key] = (version, now, fresh, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, _, _, dropped) = self._items.popitem(last=False)
                    self._bytes -= dropped
        return fresh
