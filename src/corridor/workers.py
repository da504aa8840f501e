"""A background thread that does a job when poked, and on a timer.

A server hands work that must not hold up a request to one: the request makes the work durable
(a pending text, an acknowledged survey answer), pokes the worker and answers. The worker wakes,
runs its job until nothing is left, and sleeps again; it also looks every ``interval`` seconds,
so work left by a crash or by another process is picked up. A failing job is logged and retried
on the next wake-up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from corridor.store.writelock import background

__all__ = ["PokedWorker"]

log = logging.getLogger(__name__)


class PokedWorker:
    """Runs ``job`` in a thread of its own (named ``name``) after :meth:`poke`, and every
    ``interval`` seconds. ``drain``: :meth:`stop` first does the work poked so far.
    ``settle``: seconds to wait after a poke before starting, so that work poked meanwhile is
    done in the same round (one round for many pokes costs less than one each)."""

    def __init__(
        self,
        job: Callable[[], object],
        *,
        name: str,
        interval: float = 30.0,
        drain: bool = False,
        settle: float = 0.0,
    ) -> None:
        self.job = job
        self.name = name
        self.interval = interval
        self.drain = drain
        self.settle = settle
        self._poked = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
            self.poke()  # work left pending before this start

    def poke(self) -> None:
        """New work is pending: do it soon."""
        self._idle.clear()
        self._poked = True
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the round in progress (and, with ``drain``, the work poked so far)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the work poked so far is done (for tests and shutdown)."""
        return self._idle.wait(timeout)

    def _round(self) -> None:
        try:
            self.job()
        except Exception:  # the next wake-up retries
            log.exception("%s failed; will retry", self.name)

    def _run(self) -> None:
        with background():  # a request waiting for the store's writer goes first
            self._loop()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            poked, self._poked = self._poked, False
            if poked and self.settle > 0:
                self._stop.wait(self.settle)  # let more work arrive (a stop ends the wait)
                self._wake.clear()  # what was poked meanwhile is done by this round
                self._poked = False
            if self._stop.is_set():
                if poked and self.drain:  # poked before the stop: that work first
                    self._round()
                break
            self._round()
            if not self._wake.is_set():
                self._idle.set()
        self._idle.set()
