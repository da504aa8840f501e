"""Fitting the per-person models (churn risk, lifetime value) off the request path.

On a large store a fit takes a minute or more (about 70 s at 10 M interactions), far too long
for an agent waiting on a customer's page. So pages never fit: they read the latest fitted
model (its ``as_of`` is shown) from the app's
:class:`~corridor.analytics.customers.models.FittedModels` (``app.state.models``), and one
background thread per server fits the models into it (reading the store through a backend of
its own), first at start-up, then whenever the store has changed, at most once per
``min_interval`` seconds. Until the first fit is done, the page says so.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from corridor.analytics.customers.models import FittedModels
from corridor.store import Store

log = logging.getLogger("corridor.web")


class ModelRefresher:
    def __init__(
        self,
        store: Store,
        models: FittedModels,
        min_interval: float = 600.0,
        poll: float = 60.0,
    ) -> None:
        self.store, self.models = store, models
        self.min_interval, self.poll = min_interval, poll
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
        from corridor.analytics.customers.churn_risk import person_risk
        from corridor.analytics.customers.lifetime import person_value
        from corridor.analytics.customers.models import store_state

        # Outside store.reading(): a fit takes minutes on a large store and would hold a reader
        # slot all that time. This thread reads through a backend of its own (the store's rule
        # for a thread reading outside reading()), closed with the store.
        store, models = self.store, self.models
        fitted_state: tuple[Any, ...] | None = None
        last_fit = -float("inf")
        while not self._stop.is_set():
            try:
                state = store_state(store)
                due = time.monotonic() - last_fit >= self.min_interval
                if state != fitted_state and (fitted_state is None or due):
                    started = time.monotonic()
                    # a lookup of nobody fits both models and keeps them in the app's models
                    person_risk(store, "", models=models)
                    person_value(store, "", models=models)
                    fitted_state, last_fit = state, time.monotonic()
                    log.info("models fitted in %.1f s", last_fit - started)
                self.last_error = None
            except Exception as e:  # keep serving the last model; say why in the log
                self.last_error = str(e)
                log.exception("fitting the churn and lifetime models failed")
            self._stop.wait(self.poll)


def refresher(app_state: Any, store: Store) -> ModelRefresher:
    """The app's refresher (fitting into ``app_state.models``), started on first use."""
    r: ModelRefresher | None = getattr(app_state, "model_refresher", None)
    if r is None:
        r = app_state.model_refresher = ModelRefresher(store, app_state.models)
    r.start()
    return r
