"""The store's one writer, taken first by whoever a person is waiting for.

A store runs one write transaction at a time (:meth:`corridor.store.base.Store.transaction`).
Besides the writes somebody waits for (an HTTP request, a command), a server makes writes of
its own in background threads: the work after an ingest's commit, the text analysis, the
scheduler's jobs (the outbox's dispatcher claims and records each delivery). With an ordinary
lock those queue with the requests in no order, and a request that finds three of them waiting
waits for all three: on the closed loop's benchmark, with 20 rules evaluated and a trickle of
alerts, a feedback POST waited 17 ms a batch for the lock against 5 ms without rules.

:class:`WriteLock` lets a thread that marked itself as a background writer
(:func:`background`) wait while a foreground thread is waiting for the lock, for at most
:attr:`WriteLock.YIELD_S` seconds; after that it goes next, and then a waiting request, turn
about: background work is delayed, never starved, however busy the requests keep the store, and
a request waits for at most one background transaction besides the one running. A transaction
in progress is never interrupted: a request still waits for the one that holds the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["WriteLock", "background", "is_background"]

_local = threading.local()


@contextmanager
def background() -> Iterator[None]:
    """Mark this thread's writes, inside the block, as background work (a worker's loop)."""
    before = getattr(_local, "background", False)
    _local.background = True
    try:
        yield
    finally:
        _local.background = before


def is_background() -> bool:
    """Whether this thread's writes are background work now (see :func:`background`)."""
    return bool(getattr(_local, "background", False))


class WriteLock:
    """A reentrant lock that foreground threads take before background ones (see the module
    notes). Used as ``with lock:`` or through :meth:`acquire` and :meth:`release`."""

    #: the longest a background writer lets waiting foreground writers go first, in seconds
    YIELD_S = 0.25

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._foreground_waiting = 0
        #: background writers that have let requests go first for YIELD_S
        self._overdue = 0
        #: an overdue background writer went last: a waiting request goes next
        self._foreground_turn = False

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            try:
                if is_background():
                    self._wait_background()
                else:
                    self._wait_foreground()
            except BaseException:  # (interrupted) others may be waiting on what it changed
                self._cond.notify_all()
                raise
            self._owner, self._depth = me, 1

    def _wait_foreground(self) -> None:
        """Until the lock is free and no overdue background writer is waiting for its turn."""
        self._foreground_waiting += 1
        try:
            while self._owner is not None or (self._overdue and not self._foreground_turn):
                self._cond.wait()
            self._foreground_turn = False
        finally:
            self._foreground_waiting -= 1

    def _wait_background(self) -> None:
        """Until the lock is free and no request waits for it; or, after YIELD_S, until it is
        free and it is not a request's turn. An overdue writer and the waiting requests then
        take turns: without the turns, a request that releases the lock and takes it again at
        once could keep a background writer out for ever, and background writers that are
        overdue one after another could keep a request out for ever."""
        deadline = time.monotonic() + self.YIELD_S
        overdue = False
        try:
            while True:
                left = deadline - time.monotonic()
                if not overdue and left <= 0:
                    overdue = True
                    self._overdue += 1
                if self._owner is None:
                    if not self._foreground_waiting:
                        return
                    if overdue and not self._foreground_turn:
                        self._foreground_turn = True
                        return
                # woken by a release, or at the deadline to become overdue
                self._cond.wait(None if overdue else left)
        finally:
            if overdue:
                self._overdue -= 1

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a write lock this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
