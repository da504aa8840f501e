"""Fitting the per-person models (churn risk, lifetime value) off the request path.

On a large store a fit takes a minute or more (about 70 s at 10 M interactions), far too long
for an agent waiting on a customer's page. So pages never fit: they read the latest fitted
model (its ``as_of`` is shown) from the app's
:class:`~corridor.analytics.customers.models.FittedModels` (``app.state.models``), and one
background thread per server fits the models into it (reading the store through a backend of
its own), first at start-up, then whenever the store has changed, at most once per
``min_interval`` seconds. ``corridor serve`` starts it as it starts serving; ``corridor demo``
first fits once in the foreground (:meth:`ModelRefresher.fit_now`), so its first page shows
the numbers. Until the first fit is done, the page says so and when it should be done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from corridor.analytics.customers.models import CHURN_RISK, LIFETIME, FittedModels
from corridor.store import Store

log = logging.getLogger("corridor.web")

#: a first fit's expected seconds, before any fit of this server has been timed: a fixed part
#: plus seconds per 1,000 people (customers and prospects) of the store — measured on a shared
#: 2-core machine (lifetime 0.6 s at 5,600 people and 1.1 s at 28,000; churn risk, since it
#: cross-validates a gradient-boosted model beside the logistic one, 6.9–8.8 s at 4,200),
#: rounded up. Afterwards the previous fit's own time is the estimate.
FIRST_FIT_ESTIMATE = {CHURN_RISK: (3.0, 1.2), LIFETIME: (0.5, 0.05)}


def estimate_s(store: Store) -> dict[str, float]:
    """Each model's expected first-fit time on ``store``, from its number of people."""
    thousands = store.count("people") / 1000
    return {name: a + b * thousands for name, (a, b) in FIRST_FIT_ESTIMATE.items()}


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
        # the store state last fitted, and when (monotonic); only the fitting thread writes
        self._fitted_state: tuple[Any, ...] | None = None
        self._last_fit = -float("inf")

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="corridor-model-refresher", daemon=True
                )
                self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait briefly (a fit in progress is abandoned by the
        process exit; it holds no write)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def fit_now(self, progress: Callable[[str, float], None] | None = None) -> dict[str, float]:
        """Fit both models in this thread, unless they are fitted for the store as it is;
        call it before :meth:`start` (one fitting thread at a time). Returns the seconds each
        fit took (empty when nothing needed fitting); ``progress(label, fraction_done)`` is
        told as each model starts."""
        from corridor.analytics.customers.models import store_state

        state = store_state(self.store)
        if state == self._fitted_state:
            return {}
        return self._fit(state, progress)

    def _fit(
        self, state: tuple[Any, ...], progress: Callable[[str, float], None] | None = None
    ) -> dict[str, float]:
        from corridor.analytics.customers.churn_risk import person_risk
        from corridor.analytics.customers.lifetime import person_value

        store, models = self.store, self.models
        expected = estimate_s(store)
        total = sum(expected.values())
        took: dict[str, float] = {}
        with models.fitting_round(
            [(CHURN_RISK, expected[CHURN_RISK]), (LIFETIME, expected[LIFETIME])]
        ):
            for name, label, lookup, done in (
                (CHURN_RISK, "churn risk", person_risk, 0.0),
                (LIFETIME, "lifetime value", person_value, expected[CHURN_RISK] / total),
            ):
                if progress is not None:
                    progress(label, done)
                started = time.monotonic()
                # a lookup of nobody fits the model and keeps it in the app's models
                lookup(store, "", models=models)
                took[name] = time.monotonic() - started
        if progress is not None:
            progress("fitted", 1.0)
        self._fitted_state, self._last_fit = state, time.monotonic()
        log.info("models fitted in %.1f s", sum(took.values()))
        return took

    def _run(self) -> None:
        from corridor.analytics.customers.models import store_state

        # Outside store.reading(): a fit takes minutes on a large store and would hold a reader
        # slot all that time. This thread reads through a backend of its own (the store's rule
        # for a thread reading outside reading()), closed with the store.
        while not self._stop.is_set():
            try:
                state = store_state(self.store)
                due = time.monotonic() - self._last_fit >= self.min_interval
                if state != self._fitted_state and (self._fitted_state is None or due):
                    self._fit(state)
                self.last_error = None
            except Exception as e:  # keep serving the last model; say why in the log
                self.last_error = str(e)
                log.exception("fitting the churn and lifetime models failed")
            self._stop.wait(self.poll)


def refresher(app_state: Any, store: Store, *, start: bool = True) -> ModelRefresher:
    """The app's refresher (fitting into ``app_state.models``), started on first use (made,
    not started, with ``start=False``)."""
    r: ModelRefresher | None = getattr(app_state, "model_refresher", None)
    if r is None:
        r = app_state.model_refresher = ModelRefresher(store, app_state.models)
    if start:
        r.start()
    return r
