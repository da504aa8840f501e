"""Answers of the analysis routes, kept while the data they read stands (or lags it by at most
a small bound), and computed once however many ask at the same time.

Most analyses are fast because they read rollups; some fit models on every request (the churn
model's cross-validation, the drivers' bootstrap, ripple's event cells), seconds to a minute on
a big store. An analyst who opens the same view again, or a colleague who opens it after them,
should not wait again for the same answer. So the app keeps each answer (the response body
exactly as sent) under its analysis, its query string and the caller's scope, together with
the store's :meth:`~corridor.store.base.Store.data_version` when it was computed. A later
request with the same key is answered from it while that version stands. Answers also expire
after ``max_age_s`` (an analysis whose default window ends "now" moves with the clock).

**Writes.** Any committed write to a table an analysis reads (an ingest, a text analysed, a map
loaded, an erasure) changes the version. A kept answer computed before it is *behind* from
then on (:meth:`~corridor.store.base.Store.data_behind`: seconds since the first write it has
not seen). It is still served while it is less than ``max_stale_s`` behind (the server's
``answer_max_stale_s``, ``CORRIDOR_ANSWER_MAX_STALE_S``), and the first request that finds it
more than half that bound behind starts one recomputation in the background, which replaces
it when done. An answer more than ``max_stale_s`` behind is never served: the request waits for
a fresh one. With ``max_stale_s`` 0 every write makes the next answer fresh. A write that
removed or rewrote records (an erasure, a retention purge, a merge of identities, a corridor map
loaded) is a fence: no answer computed before it is served again, whatever the bound
(:mod:`corridor.store.versions`).
:meth:`AnswerCache.get` says how far behind the answer it gives is; the routes send it as the
``Corridor-Data-Behind`` header (seconds, ``0`` for an answer of the latest data).

**At once.** Concurrent requests that find no answer to serve wait for the one computation of
that key in progress (single flight), provided it started on data within the bound, instead of
each computing the same answer.

Nothing is kept on a store that other processes may write to unseen (PostgreSQL:
``data_version`` is None): every request computes. The cache is bounded in bytes; the least
recently used answers go first.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from corridor.auth.scope import Scope
from corridor.store import Store

__all__ = ["BEHIND_HEADER", "PAGE_WEIGHT", "Answer", "AnswerCache", "behind_header", "scope_key"]

T = TypeVar("T")
#: the bytes a page's data (a dict of analyses' results, not serialised) counts for
PAGE_WEIGHT = 256 * 1024
#: the response header that says how far behind the latest data an answer is, in seconds
BEHIND_HEADER = "Corridor-Data-Behind"


def behind_header(answer: Answer[Any]) -> dict[str, str]:
    """The :data:`BEHIND_HEADER` of ``answer``: seconds, one decimal (``0``: the latest data)."""
    return {BEHIND_HEADER: f"{answer.behind_s:.1f}" if answer.behind_s else "0"}


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


@dataclass(frozen=True)
class Answer(Generic[T]):
    """An answer and how far behind the latest data it is: seconds since the first write it has
    not seen (0: an answer of the latest data)."""

    value: T
    behind_s: float = 0.0


class _Flight:
    """One computation of a key in progress, on the data version it started at."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class AnswerCache:
    """Response bodies by (analysis, query, scope), served while the store's data version
    stands or they are less than ``max_stale_s`` behind it; at most ``max_bytes`` in all, each
    for at most ``max_age_s`` seconds; concurrent requests for a key share the computation in
    progress (single flight)."""

    def __init__(
        self,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 600.0,
        max_stale_s: float = 0.0,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.max_stale_s = max_stale_s
        self._lock = threading.Lock()
        # key -> (data version, when its computation started, answer, bytes)
        self._items: OrderedDict[Hashable, tuple[int, float, Any, int]] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._bytes = 0
        #: requests answered from a kept answer
        self.hits = 0
        #: requests that found none to serve (they computed, or waited for a computation)
        self.misses = 0
        #: of the misses, those that waited for a computation another request started
        self.joined = 0
        #: computations run (by requests, and in the background)
        self.computed = 0
        #: of them, the background recomputations of answers served behind the data
        self.refreshes = 0
        self._threads: set[threading.Thread] = set()
        self._closed = False

    def get(
        self,
        store: Store,
        name: str,
        query: Mapping[str, Sequence[str]],
        scope: Scope | None,
        compute: Callable[[], T],
        weight: Callable[[T], int] = len,  # type: ignore[assignment]
    ) -> Answer[T]:
        """The kept answer for this request if it may be served, else ``compute()``'s (kept
        for the next one), or the one a concurrent request is computing. ``weight``: the bytes
        an answer counts for (a body's length by default)."""
        version = store.data_version()
        if version is None:
            with self._lock:
                self.computed += 1
            return Answer(compute())
        key = (id(store), name, tuple(sorted((k, tuple(v)) for k, v in query.items())),
               scope_key(scope))  # fmt: skip
        now = time.monotonic()
        with self._lock:
            kept = self._items.get(key)
            if kept is not None and now - kept[1] < self.max_age_s:
                behind = store.data_behind(kept[0])
                if behind is None or behind < self.max_stale_s:
                    self._items.move_to_end(key)
                    self.hits += 1
                    if behind is not None and behind >= self.max_stale_s / 2:
                        self._refresh(store, key, kept[0], version, compute, weight)
                    return Answer(kept[2], behind or 0.0)
            self.misses += 1
            flight = self._flights.get(key)
            lag = None if flight is None else self._lag(store, flight.version, version)
            if flight is not None and lag is not None:
                self.joined += 1
                owner = False
            else:
                flight = self._flights[key] = _Flight(version)
                owner, lag = True, 0.0
        if owner:
            self._run(key, flight, now, compute, weight)
        else:
            flight.done.wait()
        if flight.error is not None:
            raise flight.error
        value: T = flight.value
        # behind as this request came: it sees every write committed before it came, or
        # misses those of the last ``lag`` seconds (less than the bound)
        return Answer(value, lag)

    def _lag(self, store: Store, computing: int, version: int) -> float | None:
        """How far behind a computation on data version ``computing`` is for a request that
        came at ``version``: 0 on the same data; None (not to be used) when it is not less
        than the bound behind."""
        if computing >= version:
            return 0.0
        behind = store.data_behind(computing)
        if behind is None:
            return 0.0
        return behind if behind < self.max_stale_s else None

    def _refresh(
        self,
        store: Store,
        key: Hashable,
        kept: int,
        version: int,
        compute: Callable[[], Any],
        weight: Callable[[Any], int],
    ) -> None:
        """Start one background recomputation of ``key`` (under the lock), unless one on data
        newer than the kept answer's is under way."""
        flight = self._flights.get(key)
        if self._closed or (flight is not None and flight.version > kept):
            return
        flight = self._flights[key] = _Flight(version)
        self.refreshes += 1

        def run() -> None:
            try:
                with contextlib.suppress(BaseException):  # a waiter gets the error; nobody else
                    self._run(key, flight, time.monotonic(), compute, weight)
            finally:
                with self._lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=run, name="corridor-answer-refresh", daemon=True)
        self._threads.add(thread)
        thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Start no more background recomputations and wait (up to ``timeout`` seconds in
        all) for those running: the app calls it at shutdown, before its store is closed
        under them."""
        with self._lock:
            self._closed = True
            running = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in running:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def _run(
        self,
        key: Hashable,
        flight: _Flight,
        started: float,
        compute: Callable[[], Any],
        weight: Callable[[Any], int],
    ) -> None:
        """Compute ``flight``'s answer, keep it unless a newer one is kept, and wake those
        waiting for it."""
        try:
            with self._lock:
                self.computed += 1
            # on the version read before: a write meanwhile makes it behind at once
            flight.value = compute()
            size = weight(flight.value)
            if size <= self.max_bytes // 4:
                self._keep(key, (flight.version, started, flight.value, size))
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.done.set()

    def _keep(self, key: Hashable, item: tuple[int, float, Any, int]) -> None:
        with self._lock:
            old = self._items.get(key)
            if old is not None and old[0] > item[0]:
                return  # a computation that started later finished first
            if old is not None:
                del self._items[key]
                self._bytes -= old[3]
            self._items[key] = item
            self._bytes += item[3]
            while self._bytes > self.max_bytes:
                _, (_, _, _, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
