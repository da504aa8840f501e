"""Fitting the per-person models (churn risk, lifetime value) off the request path.

On a large store a fit takes a minute or more (about 70 s at 10 M interactions), far too long
for an agent waiting on a customer's page. So pages never fit: they read the latest fitted
model (its ``as_of`` is shown), and one background thread per server fits it on its own
connection to the store, first at start-up, then whenever the store has changed, at most once
per ``min_interval`` seconds. Until the first fit is done, the page says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from corridor.store import Store

log = logging.getLogger("corridor.web")


class _Tables(Mapping[str, Any]):
    """The store's tables through a backend of the refresher's own (a separate connection)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getitem__(self, name: str) -> Any:
        return self._backend.table(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._backend.list_tables())

    def __len__(self) -> int:
        return len(self._backend.list_tables())


class ModelRefresher:
    def __init__(self, store: Store, min_interval: float = 600.0, poll: float = 60.0) -> None:
        self.store, self.min_interval, self.poll = store, min_interval, poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="corridor-model-refresher", daemon=True
                )
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait briefly (a fit in progress is abandoned by the
        process exit; it holds no write)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        from corridor.analytics.customers.churn_risk import person_risk, store_state
        from corridor.analytics.customers.lifetime import person_value

        backend = self.store._make_ibis()  # its own cursor / connection
        tables = _Tables(backend)
        key = id(self.store)
        fitted_state: tuple[Any, ...] | None = None
        last_fit = -float("inf")
        try:
            while not self._stop.is_set():
                try:
                    state = store_state(tables)
                    due = time.monotonic() - last_fit >= self.min_interval
                    if state != fitted_state and (fitted_state is None or due):
                        started = time.monotonic()
                        # a lookup of nobody fits and caches both models under the store's key
                        person_risk(tables, "", cache_key=key)
                        person_value(tables, "", cache_key=key)
                        fitted_state, last_fit = state, time.monotonic()
                        log.info("models fitted in %.1f s", last_fit - started)
                    self.last_error = None
                except Exception as e:  # keep serving the last model; say why in the log
                    self.last_error = str(e)
                    log.exception("fitting the churn and lifetime models failed")
                self._stop.wait(self.poll)
        finally:
            close = getattr(getattr(backend, "con", None), "close", None)
            if close is not None:
                close()


def refresher(app_state: Any, store: Store) -> ModelRefresher:
    """The app's refresher, started on first use."""
    r: ModelRefresher | None = getattr(app_state, "model_refresher", None)
    if r is None:
        r = app_state.model_refresher = ModelRefresher(store)
    r.start()
    return r
